import { createHash } from "node:crypto";
import { computePlanHash } from "@packrun/planning";
import { parseApprovalResponse } from "./approval-exchange.ts";
import {
  approvalsDocument,
  artifactsIndexDocument,
  bundlePaths,
  bundleVersion,
  inputsDocument,
  keyMemberPath,
  type ManifestMember,
  manifestDocument,
  outputsDocument,
} from "./bundle-layout.ts";
import { type BundleStatement, parseBundleStatement } from "./bundle-statement.ts";
import { type DsseEnvelope, parseEnvelope, serializeEnvelope } from "./dsse-envelope.ts";
import { evidenceJson, type JsonValue } from "./evidence-json.ts";
import { inTotoPayloadType, type PackRunStatement, parseStatement, subjectsOf } from "./in-toto.ts";
import { loadVerificationKey, type VerificationKey } from "./keys.ts";
import type { PackRunPredicate } from "./pack-run-predicate.ts";
import { planConsistencyProblems } from "./plan-consistency.ts";
import { parseProvenanceStatement, provenanceProblems } from "./slsa-provenance.ts";
import { type ReadArchiveLimits, readTarGz } from "./tar-gz.ts";
import { terminalEventTypes } from "./transcript.ts";
import { verifyEnvelope } from "./verify-envelope.ts";

/** One verification check and its outcome. */
export interface BundleCheck {
  /** What was checked, e.g. "signature", "member-digest", "transcript-sequence". */
  check: string;
  /** The bundle member the check is about (the one to blame when it fails). */
  member?: string;
  ok: boolean;
  message: string;
}

/** What {@link verifyBundle} found. */
export interface BundleReport {
  /** True when every check passed. */
  ok: boolean;
  checks: BundleCheck[];
  /** The failed checks (a subset of `checks`). */
  failures: BundleCheck[];
  runId?: string;
  status?: string;
  pack?: { name: string; version: string; digest: string };
  planHash?: string;
  /** Key id that verified the run attestation's signature. */
  keyId?: string;
  /** Key id that verified bundle.dsse.json, the signature over every member. */
  bundleKeyId?: string;
  /**
   * True when the signatures verified with keys the caller supplied; false when only the
   * bundle's own embedded keys were used, which proves integrity but not origin.
   */
  keyTrusted: boolean;
  /**
   * Which keys the signatures were checked with: `trusted` (the caller's), `integrity-only` (the
   * bundle's own, as asked with `integrityOnly`), or `none`: no trusted key was given and
   * integrity-only was not asked for, so the report fails with a `trusted-key` check.
   */
  trust: "trusted" | "integrity-only" | "none";
}

/** Options for {@link verifyBundle}. */
export interface VerifyBundleOptions {
  /**
   * Trusted verification keys (loaded keys or PEM text), e.g. from the published JWK Set or
   * `--key`. Without them the report fails (`trusted-key`) unless `integrityOnly` is set.
   */
  keys?: readonly (VerificationKey | string)[];
  /**
   * Without trusted keys, check the signatures with the bundle's own embedded keys and pass:
   * this proves the bundle is intact, not who made it (anyone can re-sign with their own key).
   */
  integrityOnly?: boolean;
  limits?: ReadArchiveLimits;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseJson(bytes: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(bytes.toString("utf8")) };
  } catch {
    return { ok: false };
  }
}

function valuesByName(list: unknown, key: string): Record<string, JsonValue> | undefined {
  if (!Array.isArray(list)) return undefined;
  const values: Record<string, JsonValue> = {};
  for (const item of list) {
    if (!isRecord(item) || typeof item.name !== "string") return undefined;
    if (Object.hasOwn(item, "value")) values[item.name] = item[key] as JsonValue;
  }
  return values;
}

/** Members every bundle has; keys/<keyid>.pem and artifacts/sha256/<hex> vary. */
const fixedMembers = [
  bundlePaths.manifest,
  bundlePaths.plan,
  bundlePaths.inputs,
  bundlePaths.outputs,
  bundlePaths.transcript,
  bundlePaths.artifactsIndex,
  bundlePaths.approvals,
  bundlePaths.attestation,
  bundlePaths.bundleAttestation,
];

/**
 * Verifies an evidence bundle offline and reports every check: both DSSE signatures (the run
 * attestation and bundle.dsse.json, the signed list of every member) under the trusted keys, that
 * every tar member is in the signed list with its digest and nothing listed is missing, the
 * statement, every member against what the signed statement binds (plan hash, inputs, outputs,
 * approvals, artifacts, transcript digest), the manifest, the transcript's sequence continuity
 * 1..n and its consistency with the statement. A failure names the member at fault. Without
 * trusted keys the report fails unless `integrityOnly` is set. Never throws for a bad bundle.
 */
export async function verifyBundle(
  bytes: Uint8Array,
  options: VerifyBundleOptions = {},
): Promise<BundleReport> {
  const checks: BundleCheck[] = [];
  const report = (check: string, member: string | undefined, ok: boolean, message: string) => {
    checks.push({ check, ...(member === undefined ? {} : { member }), ok, message });
  };
  let trusted: VerificationKey[] = [];
  let keyProblem: string | undefined;
  try {
    trusted = (options.keys ?? []).map((key, index) =>
      typeof key === "string" ? loadVerificationKey(key, `trusted key ${index + 1}`) : key,
    );
  } catch (error) {
    keyProblem = (error as Error).message;
  }
  const useEmbedded = (options.keys ?? []).length === 0;
  const trust = !useEmbedded ? "trusted" : options.integrityOnly ? "integrity-only" : "none";
  const result: BundleReport = { ok: false, checks, failures: [], keyTrusted: false, trust };
  const finish = (): BundleReport => {
    result.failures = checks.filter((check) => !check.ok);
    result.ok = result.failures.length === 0;
    return result;
  };

  const archive = await readTarGz(bytes, options.limits);
  if (!archive.ok) {
    report("archive", undefined, false, archive.reason);
    return finish();
  }
  const members = archive.members;
  report("archive", undefined, true, `${members.size} members`);
  if (trust === "none") {
    // Fail closed: the embedded key is whoever made the bundle, possibly a forger.
    report(
      "trusted-key",
      undefined,
      false,
      "no trusted key: pass the evidence service's public key(s) (--key, PACKRUN_TRUSTED_KEYS; published at /.well-known/packrun/signing-keys), or --integrity-only to check integrity without origin",
    );
  }
  /** Members whose bytes are confirmed by the signed statement (or are the statement itself). */
  const bound = new Set<string>();
  const bind = (member: string, ok: boolean, check: string, message: string) => {
    report(check, member, ok, message);
    if (ok) bound.add(member);
  };

  for (const path of fixedMembers) {
    // A missing bundle.dsse.json is reported once, as a bundle of layout 1 (below).
    if (!members.has(path) && path !== bundlePaths.bundleAttestation)
      report("member-present", path, false, `${path} is missing`);
  }

  // Embedded public keys.
  const embedded: VerificationKey[] = [];
  for (const [path, content] of members) {
    if (!path.startsWith("keys/")) continue;
    try {
      const key = loadVerificationKey(content, path);
      const canonical = key.publicKeyPem === content.toString("utf8");
      const named = path === keyMemberPath(key.keyId);
      bind(
        path,
        canonical && named,
        "key",
        !named
          ? `${path} holds key ${key.keyId}, not the key its name says`
          : canonical
            ? `public key ${key.keyId} (${key.algorithm})`
            : `${path} is not in canonical PEM form (altered)`,
      );
      if (named) embedded.push(key);
    } catch {
      bind(path, false, "key", `${path} is not a supported PEM public key`);
    }
  }

  // Signatures and statements.
  const keys = useEmbedded ? embedded : trusted;
  let statement: PackRunStatement | undefined;
  const run = checkEnvelope(
    members,
    bundlePaths.attestation,
    keys,
    useEmbedded,
    keyProblem,
    report,
  );
  if (run !== undefined) {
    result.keyId = run.keyId;
    const parsedStatement = parseStatement(run.payload);
    if (!parsedStatement.ok) {
      report("statement", bundlePaths.attestation, false, parsedStatement.reason);
    } else {
      const subjectsOk =
        JSON.stringify(parsedStatement.statement.subject) ===
        JSON.stringify(subjectsOf(parsedStatement.statement.predicate));
      report(
        "statement",
        bundlePaths.attestation,
        subjectsOk,
        subjectsOk
          ? "in-toto Statement v1 with a pack-run predicate; subjects match the predicate"
          : "statement subjects do not match its predicate's plan, artifacts and outputs",
      );
      if (run.valid && subjectsOk) {
        statement = parsedStatement.statement;
        bound.add(bundlePaths.attestation);
      }
    }
  }
  let bundleStatement: BundleStatement | undefined;
  if (!members.has(bundlePaths.bundleAttestation)) {
    report(
      "bundle-version",
      bundlePaths.manifest,
      false,
      `no ${bundlePaths.bundleAttestation}: a bundle of layout 1, whose member list (manifest.json) is not signed, so any member could have been added; this version verifies layout ${bundleVersion} only. Download the bundle again (packrun bundle RUN_ID, or GET /api/runs/{id}/bundle): the evidence service rebuilds it in layout ${bundleVersion} from the stored attestation`,
    );
  } else {
    const signed = checkEnvelope(
      members,
      bundlePaths.bundleAttestation,
      keys,
      useEmbedded,
      keyProblem,
      report,
    );
    if (signed !== undefined) {
      result.bundleKeyId = signed.keyId;
      const parsed = parseBundleStatement(signed.payload);
      if (!parsed.ok) {
        report("statement", bundlePaths.bundleAttestation, false, parsed.reason);
      } else {
        const { predicate: bundle } = parsed.statement;
        const agrees =
          statement === undefined ||
          (bundle.runId === statement.predicate.runId &&
            bundle.planHash === statement.predicate.planHash);
        report(
          "statement",
          bundlePaths.bundleAttestation,
          agrees,
          agrees
            ? `evidence-bundle statement (layout ${bundle.bundleVersion}) listing ${parsed.statement.subject.length} members`
            : `the signed member list is of run ${bundle.runId} (plan ${bundle.planHash}), not of the attested run`,
        );
        if (signed.valid && agrees) bundleStatement = parsed.statement;
      }
    }
  }
  checkSignedMembers(members, bundleStatement, report);
  const predicate = statement?.predicate;
  result.keyTrusted = trust === "trusted" && result.keyId !== undefined;
  if (predicate !== undefined) {
    result.runId = predicate.runId;
    result.status = predicate.status;
    result.pack = predicate.pack;
    result.planHash = predicate.planHash;
    checkBoundMembers(members, predicate, bind, report);
  }
  checkTranscript(members.get(bundlePaths.transcript), predicate, report);
  checkProvenance(members, predicate, keys, useEmbedded, keyProblem, report, bind);
  checkOfflineApprovals(members.get(bundlePaths.transcript), predicate, report);
  checkManifest(members, predicate, bound, report);
  return finish();
}

/**
 * provenance.dsse.json, when present: signed like the run attestation, SLSA Provenance v1, and
 * about the attested run (its artifacts, pack, plan hash, inputs, builder and times). A run with
 * artifacts attested before provenance existed has none; its absence is reported, not failed:
 * the signed member list already proves nothing was removed.
 */
function checkProvenance(
  members: Map<string, Buffer>,
  predicate: PackRunPredicate | undefined,
  keys: readonly VerificationKey[],
  embedded: boolean,
  keyProblem: string | undefined,
  report: Report,
  bind: Bind,
): void {
  const path = bundlePaths.provenance;
  if (!members.has(path)) {
    if (predicate !== undefined && predicate.artifacts.length > 0) {
      report("provenance", path, true, "no SLSA provenance: attested before packrun produced it");
    }
    return;
  }
  const signed = checkEnvelope(members, path, keys, embedded, keyProblem, report);
  if (signed === undefined) return;
  const parsed = parseProvenanceStatement(signed.payload);
  if (!parsed.ok) {
    bind(path, false, "provenance", parsed.reason);
    return;
  }
  if (predicate === undefined) {
    report("provenance", path, false, "cannot be checked without a valid run attestation");
    return;
  }
  const problems = provenanceProblems(parsed.statement, predicate);
  bind(
    path,
    signed.valid && problems.length === 0,
    "provenance",
    problems.length === 0
      ? `SLSA Provenance v1 of ${parsed.statement.subject.length} artifacts with ${parsed.statement.predicate.buildDefinition.resolvedDependencies.length} resolved dependencies`
      : `SLSA provenance disagrees with the attestation: ${problems.join("; ")}`,
  );
}

type Report = (check: string, member: string | undefined, ok: boolean, message: string) => void;

/** A DSSE member whose signature verified; `valid` also requires its type and written form. */
interface SignedPayload {
  keyId: string;
  payload: Buffer;
  valid: boolean;
}

/**
 * Checks the DSSE envelope at `path`: JSON, its signature under `keys`, the in-toto payloadType
 * and its written (canonical) form. Returns the payload when the signature verified.
 */
function checkEnvelope(
  members: Map<string, Buffer>,
  path: string,
  keys: readonly VerificationKey[],
  embedded: boolean,
  keyProblem: string | undefined,
  report: Report,
): SignedPayload | undefined {
  const bytes = members.get(path);
  if (bytes === undefined) return undefined;
  const json = parseJson(bytes);
  const parsed = json.ok ? parseEnvelope(json.value) : undefined;
  if (parsed === undefined || !parsed.ok) {
    const reason = parsed === undefined ? "not JSON" : `not a DSSE envelope: ${parsed.reason}`;
    report("signature", path, false, reason);
    return undefined;
  }
  const envelope: DsseEnvelope = parsed.envelope;
  const verification = verifyEnvelope(envelope, keys);
  const canonical = serializeEnvelope(envelope) === bytes.toString("utf8");
  const typeOk = envelope.payloadType === inTotoPayloadType;
  if (!verification.ok) {
    report(
      "signature",
      path,
      false,
      keyProblem ??
        (embedded ? verification.reason : `not signed by a trusted key: ${verification.reason}`),
    );
  } else {
    report(
      "signature",
      path,
      true,
      embedded
        ? `signed by ${verification.keyId}, verified with the bundle's own key only: integrity, not origin`
        : `signed by trusted key ${verification.keyId}`,
    );
    if (!members.has(keyMemberPath(verification.keyId))) {
      report("key", keyMemberPath(verification.keyId), false, "the signing key's PEM is missing");
    }
  }
  if (!canonical) {
    report("canonical-form", path, false, "envelope JSON is not in its written form (altered)");
  }
  if (!typeOk) {
    report(
      "statement",
      path,
      false,
      `payloadType is ${envelope.payloadType}, expected ${inTotoPayloadType}`,
    );
  }
  if (!verification.ok) return undefined;
  return { keyId: verification.keyId, payload: verification.payload, valid: canonical && typeOk };
}

/**
 * Every tar member but bundle.dsse.json must be in the signed member list with the digest it
 * has, and every listed member must be present: nothing can be added, dropped or changed.
 */
function checkSignedMembers(
  members: Map<string, Buffer>,
  statement: BundleStatement | undefined,
  report: Report,
): void {
  // Without a verified list the bundle already fails (on bundle.dsse.json, or as layout 1);
  // blaming every member as well would hide which one was at fault.
  if (statement === undefined) return;
  const listed = new Map(
    statement.subject.map((subject) => [subject.name, `sha256:${subject.digest.sha256}`]),
  );
  for (const [path, content] of members) {
    if (path === bundlePaths.bundleAttestation) continue;
    const expected = listed.get(path);
    const digest = sha256(content);
    if (expected === undefined) {
      report(
        "member-signed",
        path,
        false,
        `${path} is not in the signed member list (${bundlePaths.bundleAttestation}): added after signing`,
      );
    } else if (expected !== digest) {
      report(
        "member-signed",
        path,
        false,
        `${path} hashes to ${digest}, the signed member list says ${expected}`,
      );
    } else {
      report("member-signed", path, true, `${path} ${digest} is in the signed member list`);
    }
  }
  for (const path of listed.keys()) {
    if (!members.has(path)) {
      report(
        "member-signed",
        path,
        false,
        `${path} is in the signed member list but missing from the bundle`,
      );
    }
  }
}
type Bind = (member: string, ok: boolean, check: string, message: string) => void;

function checkDocument(
  members: Map<string, Buffer>,
  path: string,
  bind: Bind,
  expected: (value: unknown) => unknown,
): void {
  const bytes = members.get(path);
  if (bytes === undefined) return;
  const json = parseJson(bytes);
  if (!json.ok) {
    bind(path, false, "content", `${path} is not JSON`);
    return;
  }
  let text: string;
  try {
    text = evidenceJson(expected(json.value));
  } catch (error) {
    bind(path, false, "content", `${path}: ${(error as Error).message}`);
    return;
  }
  const ok = text === bytes.toString("utf8");
  bind(
    path,
    ok,
    "content",
    ok ? `${path} matches the attestation` : `${path} differs from what the attestation binds`,
  );
}

function checkBoundMembers(
  members: Map<string, Buffer>,
  predicate: PackRunPredicate,
  bind: Bind,
  report: Report,
): void {
  const plan = members.get(bundlePaths.plan);
  if (plan !== undefined) {
    const digest = sha256(plan);
    bind(
      bundlePaths.plan,
      digest === predicate.planHash,
      "plan-hash",
      digest === predicate.planHash
        ? `plan.json hashes to the attested planHash ${predicate.planHash}`
        : `plan.json hashes to ${digest}, the attestation says ${predicate.planHash}`,
    );
    const json = parseJson(plan);
    if (json.ok && digest === predicate.planHash) {
      const recomputed = computePlanHash(json.value);
      const problems = planConsistencyProblems(json.value, {
        pack: predicate.pack,
        stepIds: predicate.steps.map((step) => step.id),
        approvalIds: predicate.approvals.map((approval) => approval.approvalId),
        policyStepIds: predicate.policyDecisions.map((decision) => decision.stepId),
        inputDigests: new Map(predicate.inputs.map((input) => [input.name, input.digest])),
      });
      if (recomputed !== predicate.planHash) {
        problems.unshift(`plan.json is not canonical JSON (recomputed planHash ${recomputed})`);
      }
      report(
        "plan-consistency",
        bundlePaths.attestation,
        problems.length === 0,
        problems.length === 0
          ? "the attested pack, steps, approvals and inputs agree with the plan"
          : problems.join("; "),
      );
    }
  }
  const packSource = members.get(bundlePaths.packSource);
  if (packSource === undefined) {
    // Bundles of runs attested before pack sources were kept; the signed member list
    // (bundle.dsse.json) proves none was removed.
    report(
      "pack-source",
      undefined,
      true,
      `no ${bundlePaths.packSource}: this run was attested without its pack source`,
    );
  } else {
    const digest = sha256(packSource);
    bind(
      bundlePaths.packSource,
      digest === predicate.pack.digest,
      "pack-source",
      digest === predicate.pack.digest
        ? `pack.yaml is the published source of ${predicate.pack.name}@${predicate.pack.version} (${digest}), bound to plan ${predicate.planHash}`
        : `pack.yaml hashes to ${digest}, the attestation says the pack is ${predicate.pack.digest}`,
    );
  }
  checkDocument(members, bundlePaths.inputs, bind, (value) => {
    const values = valuesByName(isRecord(value) ? value.inputs : undefined, "value");
    if (values === undefined)
      throw new Error("expected {inputs: [{name, digest, value}], secrets}");
    return inputsDocument(predicate, values);
  });
  checkDocument(members, bundlePaths.outputs, bind, (value) => {
    const values = valuesByName(isRecord(value) ? value.outputs : undefined, "value");
    if (values === undefined) throw new Error("expected {outputs: [{name, type, digest, value?}]}");
    return outputsDocument(predicate, values);
  });
  checkDocument(members, bundlePaths.approvals, bind, () => approvalsDocument(predicate));
  // Artifact files are judged against the signed predicate; the index must then say exactly
  // which attested artifacts are present.
  const attested = new Set(predicate.artifacts.map((artifact) => artifact.digest));
  const present = new Set<string>();
  for (const [path, content] of members) {
    if (!path.startsWith("artifacts/sha256/")) continue;
    const digest = `sha256:${path.slice("artifacts/sha256/".length)}`;
    const actual = sha256(content);
    if (attested.has(digest)) present.add(digest);
    if (!attested.has(digest)) {
      bind(path, false, "artifact", `${path} is not an artifact the attestation names`);
    } else if (actual !== digest) {
      bind(path, false, "artifact", `${path} hashes to ${actual}`);
    } else {
      bind(path, true, "artifact", `${path} matches its attested digest`);
    }
  }
  checkDocument(members, bundlePaths.artifactsIndex, bind, () =>
    artifactsIndexDocument(predicate, present),
  );
  const transcript = members.get(bundlePaths.transcript);
  if (transcript !== undefined) {
    const digest = sha256(transcript);
    const ok =
      digest === predicate.transcript.digest &&
      transcript.length === predicate.transcript.sizeBytes;
    bind(
      bundlePaths.transcript,
      ok,
      "transcript-digest",
      ok
        ? `transcript.ndjson matches the attested digest (${predicate.transcript.events} events)`
        : `transcript.ndjson hashes to ${digest} (${transcript.length} bytes), the attestation says ${predicate.transcript.digest} (${predicate.transcript.sizeBytes} bytes)`,
    );
  }
}

function checkTranscript(
  bytes: Buffer | undefined,
  predicate: PackRunPredicate | undefined,
  report: Report,
): void {
  if (bytes === undefined) return;
  const member = bundlePaths.transcript;
  const text = bytes.toString("utf8");
  if (text.length > 0 && !text.endsWith("\n")) {
    report("transcript-sequence", member, false, "transcript.ndjson does not end with a newline");
    return;
  }
  const lines = text.length === 0 ? [] : text.slice(0, -1).split("\n");
  const problems: string[] = [];
  const consistency: string[] = [];
  let expected = 1;
  let terminalAt = -1;
  let terminalType = "";
  for (const [index, line] of lines.entries()) {
    const json = parseJson(Buffer.from(line));
    if (!json.ok || !isRecord(json.value)) {
      problems.push(`line ${index + 1} is not a JSON object`);
      break;
    }
    const event = json.value;
    if (event.sequence !== expected) {
      problems.push(
        `line ${index + 1} has sequence ${String(event.sequence)}, expected ${expected} (gap, duplicate or reorder)`,
      );
      break;
    }
    expected++;
    if (predicate !== undefined && event.runId !== predicate.runId) {
      consistency.push(`event ${String(event.sequence)} belongs to run ${String(event.runId)}`);
    }
    if (typeof event.type === "string" && Object.hasOwn(terminalEventTypes, event.type)) {
      if (terminalAt !== -1)
        consistency.push(`second terminal event at sequence ${String(event.sequence)}`);
      terminalAt = index;
      terminalType = event.type;
    }
  }
  if (lines.length === 0) problems.push("transcript is empty");
  report(
    "transcript-sequence",
    member,
    problems.length === 0,
    problems.length === 0
      ? `sequences 1..${lines.length}, no gap or duplicate`
      : problems.join("; "),
  );
  if (predicate === undefined || problems.length > 0) return;
  if (lines.length !== predicate.transcript.events) {
    consistency.push(`${lines.length} events, the attestation says ${predicate.transcript.events}`);
  }
  if (terminalAt !== lines.length - 1) {
    consistency.push("the last event is not the run's terminal event");
  } else if (terminalEventTypes[terminalType] !== predicate.status) {
    consistency.push(`terminal event ${terminalType} contradicts status ${predicate.status}`);
  }
  report(
    "transcript-consistency",
    member,
    consistency.length === 0,
    consistency.length === 0
      ? `ends with run.${predicate.status}, as attested`
      : consistency.join("; "),
  );
}

/**
 * Offline approvals recorded in the transcript (decision events whose metadata has `offline:
 * "true"`): each carries the approver's response verbatim, which must be a well-formed response
 * for this run, its plan hash and the event's gate, with the digest recorded beside it. The
 * approver's signature is not checked here (the bundle holds no approver keys): re-verify it with
 * the approver's public key.
 */
function checkOfflineApprovals(
  bytes: Buffer | undefined,
  predicate: PackRunPredicate | undefined,
  report: Report,
): void {
  if (bytes === undefined || predicate === undefined) return;
  const member = bundlePaths.transcript;
  for (const line of bytes.toString("utf8").split("\n")) {
    if (line === "") continue;
    const json = parseJson(Buffer.from(line));
    if (!json.ok || !isRecord(json.value)) return; // reported by the sequence check
    const event = json.value;
    const metadata = isRecord(event.metadata) ? event.metadata : {};
    if (
      metadata.offline !== "true" ||
      (event.type !== "gate.approved" && event.type !== "gate.rejected")
    )
      continue;
    const where = `event ${String(event.sequence)} (${String(event.type)} by ${String(metadata.approver)})`;
    const text = typeof metadata.response === "string" ? metadata.response : "";
    const parsed = parseApprovalResponse(text);
    const problems: string[] = [];
    if (!parsed.ok) problems.push(parsed.reason);
    else {
      const response = parsed.value;
      if (response.runId !== predicate.runId) problems.push(`it answers run ${response.runId}`);
      if (response.planHash !== predicate.planHash)
        problems.push(`it approves plan ${response.planHash}`);
      if (response.gateStepId !== event.stepId)
        problems.push(`it is for gate ${response.gateStepId}, not ${String(event.stepId)}`);
      const expected = event.type === "gate.approved" ? "approve" : "reject";
      if (response.decision !== expected) problems.push(`it says ${response.decision}`);
      if (metadata.responseDigest !== sha256(Buffer.from(text)))
        problems.push("its recorded responseDigest differs");
    }
    report(
      "offline-approval",
      member,
      problems.length === 0,
      problems.length === 0
        ? `${where}: the approver's response is recorded verbatim, for this run, plan and gate; signed with approver key ${String(metadata.keyId)} (re-verify with that key)`
        : `${where}: ${problems.join("; ")}`,
    );
  }
}

function checkManifest(
  members: Map<string, Buffer>,
  predicate: PackRunPredicate | undefined,
  bound: ReadonlySet<string>,
  report: Report,
): void {
  const manifestPath = bundlePaths.manifest;
  const bytes = members.get(manifestPath);
  const actual = [...members.keys()].filter(
    (path) => path !== manifestPath && path !== bundlePaths.bundleAttestation,
  );
  if (bytes === undefined) return;
  const json = parseJson(bytes);
  const entries: ManifestMember[] = [];
  let wellFormed = json.ok && isRecord(json.value) && Array.isArray(json.value.members);
  if (wellFormed && json.ok && isRecord(json.value)) {
    for (const entry of json.value.members as unknown[]) {
      if (
        !isRecord(entry) ||
        typeof entry.path !== "string" ||
        typeof entry.digest !== "string" ||
        typeof entry.sizeBytes !== "number"
      ) {
        wellFormed = false;
        break;
      }
      entries.push({ path: entry.path, digest: entry.digest, sizeBytes: entry.sizeBytes });
    }
  }
  if (!wellFormed || !json.ok || !isRecord(json.value)) {
    report("manifest", manifestPath, false, "manifest.json is not a valid manifest");
    for (const path of actual) {
      if (!bound.has(path))
        report(
          "member-digest",
          path,
          false,
          `${path} cannot be checked: the manifest is unreadable`,
        );
    }
    return;
  }
  const manifest = json.value;
  const listed = new Map(entries.map((entry) => [entry.path, entry]));
  let manifestOk = listed.size === entries.length;
  for (const path of actual) {
    const content = members.get(path) as Buffer;
    const entry = listed.get(path);
    const digest = sha256(content);
    if (entry === undefined) {
      if (bound.has(path)) {
        manifestOk = false;
        report("member-digest", manifestPath, false, `manifest.json does not list ${path}`);
      } else {
        report("member-digest", path, false, `${path} is not listed in manifest.json`);
      }
    } else if (entry.digest !== digest || entry.sizeBytes !== content.length) {
      if (bound.has(path)) {
        manifestOk = false;
        report(
          "member-digest",
          manifestPath,
          false,
          `manifest.json lists ${entry.digest} for ${path}, which matches the attestation and hashes to ${digest}`,
        );
      } else {
        report(
          "member-digest",
          path,
          false,
          `${path} hashes to ${digest} (${content.length} bytes), manifest.json lists ${entry.digest} (${entry.sizeBytes} bytes)`,
        );
      }
    } else {
      report("member-digest", path, true, `${path} ${digest}`);
    }
  }
  for (const entry of entries) {
    if (
      !members.has(entry.path) ||
      entry.path === manifestPath ||
      entry.path === bundlePaths.bundleAttestation
    ) {
      manifestOk = false;
      report(
        "member-digest",
        manifestPath,
        false,
        `manifest.json lists ${entry.path}, which is not in the bundle`,
      );
    }
  }
  const header = {
    runId: typeof manifest.runId === "string" ? manifest.runId : "",
    planHash: typeof manifest.planHash === "string" ? manifest.planHash : "",
  };
  const canonical = evidenceJson(manifestDocument(header, entries)) === bytes.toString("utf8");
  const agrees =
    predicate === undefined ||
    (header.runId === predicate.runId && header.planHash === predicate.planHash);
  const ok = manifestOk && canonical && agrees;
  report(
    "manifest",
    manifestPath,
    ok,
    ok
      ? `manifest.json lists all ${entries.length} members`
      : !agrees
        ? "manifest.json names another run or plan"
        : !canonical
          ? "manifest.json is not in its written form (altered)"
          : "manifest.json does not describe the bundle",
  );
}
