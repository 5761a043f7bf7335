import { createHash } from "node:crypto";
import { type TranscriptSummary, transcriptLine } from "@packrun/attestation";
import type { Queryable } from "@packrun/db";
import { type EventRow, transcriptEvent } from "./event-model.ts";
import { readEvents } from "./event-store.ts";

const pageSize = 2000;

/** transcript.ndjson of a run, events 1..`upTo`, streamed from the database page by page. */
export async function* transcriptChunks(
  db: Queryable,
  runId: string,
  upTo: number,
): AsyncGenerator<Buffer> {
  for await (const rows of transcriptPages(db, runId, upTo)) yield transcriptBytes(rows);
}

async function* transcriptPages(
  db: Queryable,
  runId: string,
  upTo: number,
): AsyncGenerator<EventRow[]> {
  let after = 0;
  while (after < upTo) {
    const rows = await readEvents(db, {
      runId,
      afterSequence: after,
      upToSequence: upTo,
      limit: pageSize,
    });
    if (rows.length === 0) return;
    yield rows;
    after = rows.at(-1)?.sequence ?? upTo;
  }
}

const transcriptBytes = (rows: readonly EventRow[]) =>
  Buffer.from(rows.map((row) => transcriptLine(transcriptEvent(row))).join(""), "utf8");

/**
 * Event count, byte size and SHA-256 of transcript.ndjson for events 1..`upTo`, and the type of
 * event `upTo` ("" if absent): read in the same pass.
 */
export async function summarizeTranscript(
  db: Queryable,
  runId: string,
  upTo: number,
): Promise<{ summary: TranscriptSummary; lastType: string }> {
  const hash = createHash("sha256");
  let sizeBytes = 0;
  let lastType = "";
  for await (const rows of transcriptPages(db, runId, upTo)) {
    const chunk = transcriptBytes(rows);
    hash.update(chunk);
    sizeBytes += chunk.length;
    const last = rows.at(-1);
    if (last?.sequence === upTo) lastType = last.type;
  }
  return { summary: { events: upTo, sizeBytes, digest: `sha256:${hash.digest("hex")}` }, lastType };
}
