import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  buildPredicate,
  buildStatement,
  inTotoPayloadType,
  parseRunRecord,
  planConsistencyProblems,
  serializeEnvelope,
  serializeStatement,
  signEnvelope,
  terminalEventTypes,
} from "@packrun/attestation";
import type { Database, Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { canonicalJson, computePlanHash } from "@packrun/planning";
import { type Attestation, AttestationSchema } from "@packrun/proto/evidence/v1";
import { listArtifacts } from "./artifact-records.ts";
import type { KeyRing } from "./key-ring.ts";
import { findRun, lockRun } from "./runs.ts";
import { summarizeTranscript } from "./transcript-store.ts";

/** A row of `evidence.attestations`. */
export interface AttestationRow {
  run_id: string;
  key_id: string;
  envelope_json: string;
  public_key_pem: string;
  plan_json: string;
  run_record: JsonObject;
  created_at: Date;
}

const columns = "run_id, key_id, envelope_json, public_key_pem, plan_json, run_record, created_at";

/** The proto message of a stored attestation. */
export function attestationMessage(row: AttestationRow): Attestation {
  return create(AttestationSchema, {
    runId: row.run_id,
    envelopeJson: row.envelope_json,
    keyId: row.key_id,
    createdAt: timestampFromDate(row.created_at),
  });
}

async function storedAttestation(
  db: Queryable,
  runId: string,
): Promise<AttestationRow | undefined> {
  const { rows } = await db.query<AttestationRow>(
    `SELECT ${columns} FROM evidence.attestations WHERE run_id = $1`,
    [runId],
  );
  return rows[0];
}

/**
 * The run's attestation.
 * @throws PackrunError RUN_NOT_FOUND, or ATTESTATION_NOT_FOUND before FinalizeRun
 */
export async function getAttestation(
  db: Queryable,
  tenant: string,
  runId: string,
): Promise<AttestationRow> {
  await findRun(db, tenant, runId);
  const row = await storedAttestation(db, runId);
  if (row === undefined) {
    throw new PackrunError(
      "ATTESTATION_NOT_FOUND",
      `run ${runId} has no attestation yet (FinalizeRun)`,
    );
  }
  return row;
}

function parsePlan(planJson: string): unknown {
  try {
    return JSON.parse(planJson);
  } catch {
    throw new PackrunError("REQUEST_INVALID", "plan_json is not valid JSON");
  }
}

/** What FinalizeRun receives. */
export interface FinalizeRequest {
  tenant: string;
  runId: string;
  runRecord: unknown;
  planJson: string;
}

/**
 * Signs the run's attestation, exactly once per run. The run must have its terminal event; the
 * record must agree with it and with the plan, and the plan must hash to the record's planHash.
 * Everything happens under the run's row lock, and the attestation's primary key is the last
 * word: a retried or raced call returns the stored attestation with created=false.
 */
export async function finalizeRun(
  deps: { database: Database; keys: KeyRing; logger: Logger },
  request: FinalizeRequest,
): Promise<{ row: AttestationRow; created: boolean }> {
  const { tenant, runId } = request;
  const { database } = deps;
  await findRun(database, tenant, runId);
  const existing = await storedAttestation(database, runId);
  if (existing !== undefined) return { row: existing, created: false };

  const record = parseRunRecord(request.runRecord);
  if (record.runId !== runId) {
    throw new PackrunError(
      "RUN_RECORD_INVALID",
      `run_record.runId ${record.runId} is not run ${runId}`,
    );
  }
  const plan = parsePlan(request.planJson);
  const planHash = computePlanHash(plan);
  if (planHash !== record.planHash) {
    throw new PackrunError(
      "PLAN_HASH_MISMATCH",
      `plan_json hashes to ${planHash}, but the run's planHash is ${record.planHash}; refusing to attest`,
    );
  }
  const problems = planConsistencyProblems(plan, {
    pack: record.pack,
    stepIds: record.steps.map((step) => step.id),
    approvalIds: record.approvals.map((approval) => approval.approvalId),
    policyStepIds: record.policyDecisions.map((decision) => decision.stepId),
    inputValues: record.inputs,
  });
  if (problems.length > 0) {
    throw new PackrunError(
      "RUN_RECORD_INVALID",
      `run_record contradicts the plan: ${problems.join("; ")}`,
    );
  }

  return database.transaction(async (tx) => {
    const run = await lockRun(tx, tenant, runId);
    const raced = await storedAttestation(tx, runId);
    if (raced !== undefined) return { row: raced, created: false };
    if (run.terminalSequence === null) {
      throw new PackrunError(
        "RUN_NOT_FINISHED",
        `run ${runId} has no terminal event (run.succeeded, run.failed or run.cancelled) yet`,
      );
    }
    const { rows } = await tx.query<{ type: string }>(
      "SELECT type FROM evidence.events WHERE run_id = $1 AND sequence = $2",
      [runId, run.terminalSequence],
    );
    const terminalType = rows[0]?.type ?? "";
    if (terminalEventTypes[terminalType] !== record.status) {
      throw new PackrunError(
        "RUN_RECORD_INVALID",
        `run_record.status is ${record.status}, but the run ended with ${terminalType}`,
      );
    }
    const artifacts = (await listArtifacts(tx, runId)).map((row) => ({
      name: row.name,
      stepId: row.step_id,
      type: row.type,
      digest: row.digest,
      sizeBytes: row.size_bytes,
      sourcePath: row.source_path,
    }));
    const transcript = await summarizeTranscript(tx, runId, run.terminalSequence);
    const predicate = buildPredicate(record, { artifacts, transcript });
    const envelope = signEnvelope(
      inTotoPayloadType,
      serializeStatement(buildStatement(predicate)),
      deps.keys.signing,
    );
    const inserted = await tx.query<AttestationRow>(
      `INSERT INTO evidence.attestations (run_id, key_id, envelope_json, public_key_pem, plan_json, run_record)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO NOTHING RETURNING ${columns}`,
      [
        runId,
        deps.keys.signing.keyId,
        serializeEnvelope(envelope),
        deps.keys.signing.publicKeyPem,
        canonicalJson(plan),
        JSON.stringify(record),
      ],
    );
    const row = inserted.rows[0];
    if (row === undefined) {
      return { row: (await storedAttestation(tx, runId)) as AttestationRow, created: false };
    }
    deps.logger.info(
      {
        runId,
        keyId: row.key_id,
        status: record.status,
        events: transcript.events,
        artifacts: artifacts.length,
      },
      "run attested",
    );
    return { row, created: true };
  });
}
