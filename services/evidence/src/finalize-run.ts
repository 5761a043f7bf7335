import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  buildPredicate,
  buildProvenanceStatement,
  buildStatement,
  inTotoPayloadType,
  parseRunRecord,
  planConsistencyProblems,
  serializeEnvelope,
  serializeProvenanceStatement,
  serializeStatement,
  signEnvelope,
  terminalEventTypes,
} from "@packrun/attestation";
import type { Database, Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import { canonicalJson, sha256Digest } from "@packrun/planning";
import { type Attestation, AttestationSchema } from "@packrun/proto/evidence/v1";
import type { KeyRing } from "./key-ring.ts";
import { lockRun, runNotFound } from "./runs.ts";
import { summarizeTranscript } from "./transcript-store.ts";

/** A row of `evidence.attestations`. */
export interface AttestationRow {
  run_id: string;
  key_id: string;
  envelope_json: string;
  public_key_pem: string;
  plan_json: string;
  run_record: JsonObject;
  /** The pack source as published; null for runs attested without it. */
  pack_source: string | null;
  created_at: Date;
  /** SLSA Provenance v1 envelope; null without artifacts (or attested before it existed). */
  provenance_envelope_json: string | null;
}

const columns =
  "run_id, key_id, envelope_json, public_key_pem, plan_json, run_record, pack_source, created_at, provenance_envelope_json";

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

/** The run's owner and attestation columns (null without one), in one read. */
const runAttestationSql = `SELECT r.tenant, a.run_id, a.key_id, a.envelope_json, a.public_key_pem,
       a.plan_json, a.run_record, a.pack_source, a.created_at, a.provenance_envelope_json
  FROM evidence.runs r LEFT JOIN evidence.attestations a ON a.run_id = r.run_id
 WHERE r.run_id = $1`;

/**
 * The attestation of a run of `tenant`, or undefined before FinalizeRun.
 * @throws PackrunError RUN_NOT_FOUND when the run is absent or another tenant's
 */
async function findAttestation(
  db: Queryable,
  tenant: string,
  runId: string,
): Promise<AttestationRow | undefined> {
  const { rows } = await db.query<{ tenant: string } & Nullable<AttestationRow>>(
    runAttestationSql,
    [runId],
  );
  const row = rows[0];
  if (row === undefined || row.tenant !== tenant) throw runNotFound(runId);
  return attestationRow(row);
}

type Nullable<T> = { [K in keyof T]: T[K] | null };

/** The attestation columns of a joined row, or undefined when they are null (no attestation). */
function attestationRow(row: Nullable<AttestationRow>): AttestationRow | undefined {
  if (row.run_id === null) return undefined;
  return {
    run_id: row.run_id,
    key_id: row.key_id as string,
    envelope_json: row.envelope_json as string,
    public_key_pem: row.public_key_pem as string,
    plan_json: row.plan_json as string,
    run_record: row.run_record as JsonObject,
    pack_source: row.pack_source,
    created_at: row.created_at as Date,
    provenance_envelope_json: row.provenance_envelope_json,
  };
}

/**
 * What finalisation reads under the run's lock, in one statement: the attestation (a raced
 * call's), or else the run's stored artifacts (none joined when the run is attested).
 */
const attestationOrArtifactsSql = `SELECT a.run_id, a.key_id, a.envelope_json, a.public_key_pem,
       a.plan_json, a.run_record, a.pack_source, a.created_at, a.provenance_envelope_json,
       f.step_id, f.name, f.type, f.digest, f.size_bytes, f.source_path
  FROM (VALUES ($1::text)) AS r (run_id)
  LEFT JOIN evidence.attestations a ON a.run_id = r.run_id
  LEFT JOIN evidence.artifacts f
    ON a.run_id IS NULL AND f.run_id = r.run_id AND f.status = 'stored'`;

type AttestationOrArtifactRow = Nullable<AttestationRow> & {
  step_id: string | null;
  name: string | null;
  type: string | null;
  digest: string | null;
  size_bytes: number | null;
  source_path: string | null;
};

/**
 * The run's attestation.
 * @throws PackrunError RUN_NOT_FOUND, or ATTESTATION_NOT_FOUND before FinalizeRun
 */
export async function getAttestation(
  db: Queryable,
  tenant: string,
  runId: string,
): Promise<AttestationRow> {
  const row = await findAttestation(db, tenant, runId);
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
  /** The pack source as published; empty or absent: none kept (older executors). */
  packSource?: string;
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
  const existing = await findAttestation(database, tenant, runId);
  if (existing !== undefined) return { row: existing, created: false };

  const record = parseRunRecord(request.runRecord);
  if (record.runId !== runId) {
    throw new PackrunError(
      "RUN_RECORD_INVALID",
      `run_record.runId ${record.runId} is not run ${runId}`,
    );
  }
  const plan = parsePlan(request.planJson);
  // What is stored, and what the plan hash is computed over (canonicalised once).
  const planText = canonicalJson(plan);
  const planHash = sha256Digest(planText);
  if (planHash !== record.planHash) {
    throw new PackrunError(
      "PLAN_HASH_MISMATCH",
      `plan_json hashes to ${planHash}, but the run's planHash is ${record.planHash}; refusing to attest`,
    );
  }
  const packSource =
    request.packSource === undefined || request.packSource === "" ? null : request.packSource;
  if (packSource !== null && sha256Digest(packSource) !== record.pack.digest) {
    throw new PackrunError(
      "RUN_RECORD_INVALID",
      `pack_source hashes to ${sha256Digest(packSource)}, but run_record.pack.digest is ${record.pack.digest}; refusing to attest`,
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
    // Read after the lock is held: an artifact recorded or an attestation stored before is seen.
    const { rows: found } = await tx.query<AttestationOrArtifactRow>(attestationOrArtifactsSql, [
      runId,
    ]);
    const raced = found[0] === undefined ? undefined : attestationRow(found[0]);
    if (raced !== undefined) return { row: raced, created: false };
    if (run.terminalSequence === null) {
      throw new PackrunError(
        "RUN_NOT_FINISHED",
        `run ${runId} has no terminal event (run.succeeded, run.failed or run.cancelled) yet`,
      );
    }
    // The transcript ends with the terminal event: its type comes with it.
    const { summary: transcript, lastType: terminalType } = await summarizeTranscript(
      tx,
      runId,
      run.terminalSequence,
    );
    if (terminalEventTypes[terminalType] !== record.status) {
      throw new PackrunError(
        "RUN_RECORD_INVALID",
        `run_record.status is ${record.status}, but the run ended with ${terminalType}`,
      );
    }
    const artifacts = found
      .filter((row) => row.name !== null)
      .map((row) => ({
        name: row.name as string,
        stepId: row.step_id as string,
        type: row.type as string,
        digest: row.digest as string,
        sizeBytes: row.size_bytes as number,
        sourcePath: row.source_path as string,
      }));
    const predicate = buildPredicate(record, { artifacts, transcript });
    const envelope = signEnvelope(
      inTotoPayloadType,
      serializeStatement(buildStatement(predicate)),
      deps.keys.signing,
    );
    // Supply-chain policy tools read SLSA provenance: one for every run that stored artifacts.
    const provenance =
      artifacts.length === 0
        ? null
        : serializeEnvelope(
            signEnvelope(
              inTotoPayloadType,
              serializeProvenanceStatement(buildProvenanceStatement(predicate, record, plan)),
              deps.keys.signing,
            ),
          );
    const inserted = await tx.query<AttestationRow>(
      `INSERT INTO evidence.attestations (run_id, key_id, envelope_json, public_key_pem, plan_json, run_record, provenance_envelope_json, pack_source)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id) DO NOTHING RETURNING ${columns}`,
      [
        runId,
        deps.keys.signing.keyId,
        serializeEnvelope(envelope),
        deps.keys.signing.publicKeyPem,
        planText,
        JSON.stringify(record),
        provenance,
        packSource,
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
