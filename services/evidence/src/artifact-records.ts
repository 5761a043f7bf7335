import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Database, Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import { type Artifact, ArtifactSchema } from "@packrun/proto/evidence/v1";
import { lockRun } from "./runs.ts";

/** A row of `evidence.artifacts`. */
export interface ArtifactRow {
  run_id: string;
  step_id: string;
  name: string;
  type: string;
  digest: string;
  size_bytes: number;
  source_path: string;
  status: string;
  created_at: Date;
}

/** What is recorded once an artifact's content is in the store. */
export interface NewArtifact {
  tenant: string;
  runId: string;
  stepId: string;
  name: string;
  type: "file" | "object";
  digest: string;
  sizeBytes: number;
  sourcePath: string;
}

const columns = "run_id, step_id, name, type, digest, size_bytes, source_path, status, created_at";

/** True when the run already has its attestation (nothing may be added any more). */
export async function isAttested(db: Queryable, runId: string): Promise<boolean> {
  const { rows } = await db.query("SELECT 1 FROM evidence.attestations WHERE run_id = $1", [runId]);
  return rows.length > 0;
}

/**
 * Records a stored artifact. Re-uploading the same step's artifact name (a retried attempt)
 * replaces the record. Refused once the run is attested: the attestation names its artifacts.
 */
export async function recordArtifact(db: Database, artifact: NewArtifact): Promise<ArtifactRow> {
  return db.transaction(async (tx) => {
    await lockRun(tx, artifact.tenant, artifact.runId);
    if (await isAttested(tx, artifact.runId)) {
      throw new PackrunError(
        "RUN_FINISHED",
        `run ${artifact.runId} is already attested; artifacts can no longer be added`,
      );
    }
    const { rows } = await tx.query<ArtifactRow>(
      `INSERT INTO evidence.artifacts (run_id, step_id, name, type, digest, size_bytes, source_path, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 'stored')
       ON CONFLICT (run_id, step_id, name) DO UPDATE
          SET type = EXCLUDED.type, digest = EXCLUDED.digest, size_bytes = EXCLUDED.size_bytes,
              source_path = EXCLUDED.source_path, status = 'stored', created_at = now()
       RETURNING ${columns}`,
      [
        artifact.runId,
        artifact.stepId,
        artifact.name,
        artifact.type,
        artifact.digest,
        artifact.sizeBytes,
        artifact.sourcePath,
      ],
    );
    return rows[0] as ArtifactRow;
  });
}

/** The run's stored artifacts, by step then name. */
export async function listArtifacts(db: Queryable, runId: string): Promise<ArtifactRow[]> {
  const { rows } = await db.query<ArtifactRow>(
    `SELECT ${columns} FROM evidence.artifacts WHERE run_id = $1 AND status = 'stored'
      ORDER BY step_id, name`,
    [runId],
  );
  return rows;
}

/**
 * A stored artifact of the run with this digest.
 * @throws PackrunError ARTIFACT_NOT_FOUND
 */
export async function findArtifact(
  db: Queryable,
  runId: string,
  digest: string,
): Promise<ArtifactRow> {
  const { rows } = await db.query<ArtifactRow>(
    `SELECT ${columns} FROM evidence.artifacts WHERE run_id = $1 AND digest = $2 AND status = 'stored' LIMIT 1`,
    [runId, digest],
  );
  const row = rows[0];
  if (row === undefined) {
    throw new PackrunError("ARTIFACT_NOT_FOUND", `run ${runId} has no artifact ${digest}`);
  }
  return row;
}

/** The proto message of a stored artifact. */
export function artifactMessage(row: ArtifactRow): Artifact {
  return create(ArtifactSchema, {
    runId: row.run_id,
    stepId: row.step_id,
    name: row.name,
    type: row.type,
    digest: row.digest,
    sizeBytes: BigInt(row.size_bytes),
    sourcePath: row.source_path,
    status: row.status,
    createdAt: timestampFromDate(row.created_at),
  });
}
