import { createHash, randomBytes, randomUUID } from "node:crypto";
import {
  type ApprovalRequest,
  approvalRequestDigest,
  digestJson,
  type JsonValue,
  parseApprovalRequest,
  parseApprovalResponse,
  serializeEnvelope,
  verifyEnvelope,
} from "@packrun/attestation";
import type { Database } from "@packrun/db";
import { type ErrorCode, isPackrunError, PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { RunService, RunView } from "../rpc/run-service.ts";
import type { StepRow } from "../store/run-rows.ts";
import { type ApproverKey, type ApproverKeySource, currentApproverKeys } from "./approver-keys.ts";

/** Signs an approval request payload with the evidence service's key (its SignApprovalRequest). */
export type ApprovalRequestSigner = (request: {
  tenant: string;
  runId: string;
  payloadJson: string;
}) => Promise<{ envelopeJson: string }>;

/** Dependencies of {@link createOfflineApprovals}. */
export interface OfflineApprovalsOptions {
  database: Database;
  runs: RunService;
  /** Undefined without an evidence service: exports are refused (UNAVAILABLE). */
  sign: ApprovalRequestSigner | undefined;
  approverKeys: ApproverKeySource;
  logger: Logger;
}

/** Export and import of offline approvals (docs/security.md, "Offline approvals"). */
export interface OfflineApprovals {
  /** Issues a signed request for one gate instance awaiting approval. */
  exportRequest(request: {
    tenant: string;
    runId: string;
    /** The gate's step id, or an approval id only one gate of the run uses. */
    gate: string;
    /** 0: {@link defaultRequestTtlSeconds}. */
    ttlSeconds: number;
    requestedBy: string;
  }): Promise<{ envelopeJson: string; requestId: string; expiresAt: Date }>;
  /** Verifies and applies a signed response; every refusal is recorded in the run's evidence. */
  importResponse(request: {
    tenant: string;
    envelopeJson: string;
    importedBy: string;
  }): Promise<{ view: RunView; gateStepId: string; approver: string; recorded: boolean }>;
}

/** How long an exported request is valid by default: 24 hours. */
export const defaultRequestTtlSeconds = 24 * 60 * 60;
/** The longest validity a request may be given: 30 days. */
export const maxRequestTtlSeconds = 30 * 24 * 60 * 60;
/** Input values longer than this (as JSON) are summarised by digest only. */
const inputValueSummaryChars = 200;

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface RequestRow {
  request_id: string;
  tenant: string;
  run_id: string;
  step_id: string;
  approval_id: string;
  plan_hash: string;
  nonce: string;
  request_digest: string;
  expires_at: Date;
}

/** The approval gate `gate` names in `view`: its step id, or an approval id one gate uses. */
function gateOf(view: RunView, gate: string): StepRow {
  const gates = view.steps.filter((step) => step.kind === "approval-gate");
  const byStep = gates.find((step) => step.step_id === gate);
  if (byStep !== undefined) return byStep;
  const byApproval = gates.filter(
    (step) => step.planned.kind === "approval-gate" && step.planned.gate.approvalId === gate,
  );
  const [only] = byApproval;
  if (only === undefined)
    throw new PackrunError(
      "GATE_NOT_AWAITING",
      `run ${view.run.id} has no approval gate "${gate}"`,
    );
  if (byApproval.length > 1)
    throw new PackrunError(
      "APPROVAL_TOKEN_MISMATCH",
      `approval "${gate}" is used by ${byApproval.length} gates of run ${view.run.id} (${byApproval.map((step) => step.step_id).join(", ")}); name one gate's step id`,
    );
  return only;
}

function approvalIdOf(step: StepRow): string {
  return step.planned.kind === "approval-gate" ? step.planned.gate.approvalId : "";
}

/** The run's inputs as the request shows them: each digest, and short values themselves. */
function inputsSummary(inputs: Record<string, unknown>): ApprovalRequest["inputs"] {
  return Object.keys(inputs)
    .sort()
    .map((name) => {
      const value = inputs[name] as JsonValue;
      const text = JSON.stringify(value);
      return {
        name,
        digest: digestJson(value),
        ...(text.length <= inputValueSummaryChars ? { value } : {}),
      };
    });
}

const sha256 = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;

/** Creates the offline approval export and import over the run service. */
export function createOfflineApprovals(options: OfflineApprovalsOptions): OfflineApprovals {
  const { database, runs, logger } = options;

  return {
    async exportRequest(request) {
      const ttl = request.ttlSeconds === 0 ? defaultRequestTtlSeconds : request.ttlSeconds;
      if (ttl < 60 || ttl > maxRequestTtlSeconds)
        throw new PackrunError(
          "REQUEST_INVALID",
          `ttlSeconds must be between 60 and ${maxRequestTtlSeconds} (30 days), not ${ttl}`,
        );
      if (request.gate === "")
        throw new PackrunError("REQUEST_INVALID", "gate is required (its step id or approval id)");
      const view = await runs.get(request.tenant, request.runId);
      const step = gateOf(view, request.gate);
      if (step.state !== "awaiting-approval")
        throw new PackrunError(
          "GATE_NOT_AWAITING",
          `gate "${step.step_id}" of run ${view.run.id} is ${step.state}, not awaiting approval`,
        );
      if (options.sign === undefined)
        throw new PackrunError(
          "UNAVAILABLE",
          "offline approval requests are signed by the evidence service, which this executor is not configured with (PACKRUN_EVIDENCE_URL)",
        );
      const approvalId = approvalIdOf(step);
      const approval = view.approvals.find((each) => each.id === approvalId);
      const now = new Date();
      let expiresAt = new Date(now.getTime() + ttl * 1000);
      if (step.expires_at !== null && step.expires_at < expiresAt) expiresAt = step.expires_at;
      const payload: ApprovalRequest = {
        _type: "https://packrun.dev/approval-request/v1",
        requestId: randomUUID(),
        nonce: randomBytes(32).toString("base64url"),
        tenant: view.run.tenant,
        runId: view.run.id,
        pack: {
          name: view.run.pack_name,
          version: view.run.pack_version,
          digest: view.run.pack_digest,
        },
        planHash: view.run.plan_hash,
        gate: {
          stepId: step.step_id,
          approvalId,
          message: step.planned.kind === "approval-gate" ? step.planned.gate.message : "",
          grants: approval?.grants ?? [],
        },
        inputs: inputsSummary(view.run.inputs),
        quorum: {
          required: approval?.required ?? 1,
          approvedBy: view.decisions
            .filter((decision) => decision.step_id === step.step_id && decision.approved)
            .map((decision) => decision.approver),
        },
        issuedAt: now.toISOString(),
        expiresAt: expiresAt.toISOString(),
        requestedBy: request.requestedBy,
      };
      const { envelopeJson } = await options.sign({
        tenant: view.run.tenant,
        runId: view.run.id,
        payloadJson: JSON.stringify(payload),
      });
      // What the response must name: the digest of the payload bytes actually signed.
      const signed = parseApprovalRequest(envelopeJson);
      if (!signed.ok || signed.value.requestId !== payload.requestId)
        throw new PackrunError(
          "INTERNAL",
          `the evidence service returned no valid signed request${signed.ok ? "" : `: ${signed.reason}`}`,
        );
      await database.query(
        `INSERT INTO approval_requests (request_id, tenant, run_id, step_id, approval_id, plan_hash, nonce, request_digest, requested_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          payload.requestId,
          payload.tenant,
          payload.runId,
          step.step_id,
          approvalId,
          payload.planHash,
          payload.nonce,
          approvalRequestDigest(signed.payload),
          request.requestedBy,
          expiresAt,
        ],
      );
      logger.info(
        {
          runId: payload.runId,
          gateStepId: step.step_id,
          requestId: payload.requestId,
          requestedBy: request.requestedBy,
          expiresAt: payload.expiresAt,
        },
        "offline approval request exported",
      );
      return { envelopeJson, requestId: payload.requestId, expiresAt };
    },

    async importResponse(request) {
      const parsed = parseApprovalResponse(request.envelopeJson);
      // Nothing trustworthy names a run: refused, but recorded nowhere.
      if (!parsed.ok) throw new PackrunError("APPROVAL_RESPONSE_INVALID", parsed.reason);
      const response = parsed.value;
      // The response in its written form (as `packrun approvals sign` wrote it, whatever JSON
      // formatting it travelled in): an auditor re-verifies it with the approver's key.
      const verbatim = serializeEnvelope(parsed.envelope);
      const evidence: Record<string, string> = {
        offline: "true",
        requestId: response.requestId,
        responseDigest: sha256(verbatim),
        response: verbatim,
        importedBy: request.importedBy,
      };
      const refuse = async (
        code: ErrorCode,
        reason: string,
        at: { runId: string; approvalId: string; gateStepId?: string },
        approver: string,
      ): Promise<never> => {
        if (uuid.test(at.runId)) {
          await runs
            .recordApprovalRefusal({
              tenant: request.tenant,
              runId: at.runId,
              approvalId: at.approvalId,
              approver,
              code,
              reason,
              ...(at.gateStepId === undefined ? {} : { gateStepId: at.gateStepId }),
              evidence,
            })
            .catch((error: unknown) => {
              // A response naming another tenant's or no run has no evidence trail here.
              if (!isPackrunError(error) || error.code !== "RUN_NOT_FOUND")
                logger.error(
                  { err: error, runId: at.runId },
                  "recording a refused offline approval failed",
                );
            });
        }
        throw new PackrunError(code, reason);
      };
      const claimed = {
        runId: response.runId,
        approvalId: response.approvalId,
        gateStepId: response.gateStepId,
      };

      // 1. Who signed: a key configured for this tenant, and its signature must verify.
      const configured =
        (await currentApproverKeys(options.approverKeys)).get(request.tenant) ?? [];
      const hinted = new Set(parsed.envelope.signatures.map((signature) => signature.keyid));
      const named = configured.filter((entry) => hinted.has(entry.key.keyId));
      const verified = verifyEnvelope(
        parsed.envelope,
        configured.map((entry) => entry.key),
      );
      const signer: ApproverKey | undefined = verified.ok
        ? configured.find((entry) => entry.key.keyId === verified.keyId)
        : undefined;
      if (signer === undefined) {
        if (named.length > 0)
          return refuse(
            "APPROVAL_SIGNATURE_INVALID",
            `the response names approver key ${named[0]?.key.keyId} (${named[0]?.approver}), but its signature does not verify with it: altered or forged`,
            claimed,
            named[0]?.approver ?? "unknown",
          );
        const keyIds = [...hinted].map((keyId) => keyId || "(none)").join(", ");
        return refuse(
          "APPROVER_UNKNOWN",
          `the response is signed by key ${keyIds}, which is not an approver key of tenant ${request.tenant}`,
          claimed,
          `key:${[...hinted][0] || "unknown"}`,
        );
      }
      const approver = signer.approver;
      evidence.keyId = signer.key.keyId;

      // 2. Which request it answers: one this tenant exported, bound by id, nonce and digest.
      const stored = (
        await database.query<RequestRow>(
          "SELECT * FROM approval_requests WHERE request_id = $1 AND tenant = $2",
          [response.requestId, request.tenant],
        )
      ).rows[0];
      if (stored === undefined)
        return refuse(
          "APPROVAL_REQUEST_UNKNOWN",
          `no approval request ${response.requestId} was exported for tenant ${request.tenant}`,
          claimed,
          approver,
        );
      // 3. Whether it decides the gate: the request it answers, unexpired, the run's plan, the
      // gate's grants, single use (one response per request and approver key) and quorum, by
      // the same rules as online approvals. Refusals are recorded there.
      const decided = await runs.decideApproval({
        tenant: request.tenant,
        runId: stored.run_id,
        credential: {
          kind: "offline",
          approver,
          groups: signer.groups,
          keyId: signer.key.keyId,
          request: {
            requestId: stored.request_id,
            runId: stored.run_id,
            stepId: stored.step_id,
            approvalId: stored.approval_id,
            planHash: stored.plan_hash,
            nonce: stored.nonce,
            requestDigest: stored.request_digest,
            expiresAt: stored.expires_at,
          },
          response: {
            runId: response.runId,
            gateStepId: response.gateStepId,
            approvalId: response.approvalId,
            planHash: response.planHash,
            nonce: response.nonce,
            requestDigest: response.requestDigest,
          },
          now: new Date(),
        },
        named: { gateStepId: "", approvalId: "" },
        approve: response.decision === "approve",
        comment: response.comment,
        evidence,
      });
      logger.info(
        {
          runId: stored.run_id,
          gateStepId: stored.step_id,
          requestId: stored.request_id,
          approver,
          keyId: signer.key.keyId,
          decision: response.decision,
          recorded: decided.recorded,
          importedBy: request.importedBy,
        },
        "offline approval imported",
      );
      return { ...decided, approver };
    },
  };
}
