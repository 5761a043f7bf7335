import { createHash } from "node:crypto";
import type { Database } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { ArtifactHeader, PutArtifactRequest } from "@packrun/proto/evidence/v1";
import { type ArtifactRow, isAttested, recordArtifact } from "./artifact-records.ts";
import type { ArtifactStore } from "./artifact-store.ts";
import { appendEvents } from "./event-store.ts";
import { requireRunRef } from "./identifiers.ts";
import { ensureRun } from "./runs.ts";

const digestPattern = /^sha256:[0-9a-f]{64}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects
const controlCharacters = /[\u0000-\u001f\u007f]/;

function validateHeader(header: ArtifactHeader) {
  const { tenant, runId } = requireRunRef(header);
  if (header.name === "" || header.name.length > 500 || controlCharacters.test(header.name)) {
    throw new PackrunError(
      "REQUEST_INVALID",
      "artifact name must be 1-500 characters without control characters",
    );
  }
  const type = header.type === "" ? "file" : header.type;
  if (type !== "file" && type !== "object") {
    throw new PackrunError(
      "REQUEST_INVALID",
      `artifact type must be "file" or "object", not ${JSON.stringify(header.type)}`,
    );
  }
  if (header.stepId.length > 500 || header.sourcePath.length > 4096) {
    throw new PackrunError("REQUEST_INVALID", "artifact step_id or source_path too long");
  }
  if (header.expectedDigest !== "" && !digestPattern.test(header.expectedDigest)) {
    throw new PackrunError(
      "REQUEST_INVALID",
      "expected_digest must be sha256:<64 lowercase hex digits>",
    );
  }
  return { tenant, runId, type: type as "file" | "object" };
}

/**
 * Serves one PutArtifact stream: header first, then content chunks. The content goes to the
 * store (temp file, hash, fsync, rename) and is recorded only once complete; any failure
 * leaves no record.
 */
export async function putArtifact(
  deps: { database: Database; store: ArtifactStore; logger: Logger; maxArtifactBytes: number },
  requests: AsyncIterable<PutArtifactRequest>,
): Promise<ArtifactRow> {
  const iterator = requests[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done || first.value.part.case !== "header") {
    throw new PackrunError(
      "REQUEST_INVALID",
      "the first PutArtifact message must carry the header",
    );
  }
  const header = first.value.part.value;
  const { tenant, runId, type } = validateHeader(header);
  await ensureRun(deps.database, tenant, runId);
  if (await isAttested(deps.database, runId)) {
    throw new PackrunError(
      "RUN_FINISHED",
      `run ${runId} is already attested; artifacts can no longer be added`,
    );
  }
  const logger = deps.logger.child({ runId, stepId: header.stepId, artifact: header.name });
  async function* chunks(): AsyncIterable<Uint8Array> {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      if (next.value.part.case !== "chunk") {
        throw new PackrunError(
          "REQUEST_INVALID",
          "only the first PutArtifact message may carry a header",
        );
      }
      yield next.value.part.value;
    }
  }
  let stored: Awaited<ReturnType<ArtifactStore["put"]>>;
  try {
    stored = await deps.store.put(chunks(), {
      maxBytes: deps.maxArtifactBytes,
      ...(header.expectedDigest === "" ? {} : { expectedDigest: header.expectedDigest }),
    });
  } catch (error) {
    logger.warn({ err: error }, "artifact not stored");
    throw error;
  }
  const row = await recordArtifact(deps.database, {
    tenant,
    runId,
    stepId: header.stepId,
    name: header.name,
    type,
    digest: stored.digest,
    sizeBytes: stored.sizeBytes,
    sourcePath: header.sourcePath,
  });
  logger.info({ digest: stored.digest, sizeBytes: stored.sizeBytes }, "artifact stored");
  await appendArtifactStored(deps.database, tenant, row, logger);
  return row;
}

/**
 * Puts `artifact.stored` (name, digest, size) into the run's event log, so the log and its live
 * subscribers see the artifact the moment it is stored. Keyed by step, name and digest: the same
 * upload repeated is one event, a retried attempt with other content another. The artifact is
 * stored either way; a run that has already ended (cancelled meanwhile) just gets no event.
 */
async function appendArtifactStored(
  database: Database,
  tenant: string,
  row: ArtifactRow,
  logger: Logger,
): Promise<void> {
  const sizeBytes = Number(row.size_bytes);
  const [result] = await appendEvents(database, [
    {
      tenant,
      runId: row.run_id,
      // Step ids and names can be long: their hash keeps the key within its 200 characters.
      idempotencyKey: `artifact.stored:${createHash("sha256").update(`${row.step_id}\0${row.name}\0${row.digest}`).digest("hex")}`,
      time: row.created_at,
      level: 3,
      type: "artifact.stored",
      stepId: row.step_id,
      message: `${row.name} (${sizeBytes} bytes, ${row.digest})`,
      metadataJson: JSON.stringify({
        name: row.name,
        digest: row.digest,
        sizeBytes,
        type: row.type,
        sourcePath: row.source_path,
      }),
    },
  ]);
  if (result !== undefined && !result.ok) {
    logger.warn({ err: result.error }, "artifact.stored event not logged");
  }
}
