import { createHash } from "node:crypto";
import { type TranscriptSummary, transcriptLine } from "@packrun/attestation";
import type { Queryable } from "@packrun/db";
import { transcriptEvent } from "./event-model.ts";
import { readEvents } from "./event-store.ts";

const pageSize = 2000;

/** transcript.ndjson of a run, events 1..`upTo`, streamed from the database page by page. */
export async function* transcriptChunks(
  db: Queryable,
  runId: string,
  upTo: number,
): AsyncGenerator<Buffer> {
  let after = 0;
  while (after < upTo) {
    const rows = await readEvents(db, {
      runId,
      afterSequence: after,
      upToSequence: upTo,
      limit: pageSize,
    });
    if (rows.length === 0) return;
    yield Buffer.from(rows.map((row) => transcriptLine(transcriptEvent(row))).join(""), "utf8");
    after = rows.at(-1)?.sequence ?? upTo;
  }
}

/** Event count, byte size and SHA-256 of transcript.ndjson for events 1..`upTo`. */
export async function summarizeTranscript(
  db: Queryable,
  runId: string,
  upTo: number,
): Promise<TranscriptSummary> {
  const hash = createHash("sha256");
  let sizeBytes = 0;
  for await (const chunk of transcriptChunks(db, runId, upTo)) {
    hash.update(chunk);
    sizeBytes += chunk.length;
  }
  return { events: upTo, sizeBytes, digest: `sha256:${hash.digest("hex")}` };
}
