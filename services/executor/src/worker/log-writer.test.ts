import assert from "node:assert/strict";
import type { Database } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { test } from "vitest";
import { createLogWriter, type LogChunkEvent, logChunkType } from "./log-writer.ts";

/** A database that records each INSERT's chunks and lines and can be made unreachable. */
function fakeDatabase() {
  const batches: { stepId: string; message: string }[][] = [];
  const chunks: LogChunkEvent[][] = [];
  let down = false;
  const database: Database = {
    query: (async (_text: string, params?: unknown[]) => {
      if (down)
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
          code: "ECONNREFUSED",
        });
      // A little latency, so that batches pile up like against a real database.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const rows = JSON.parse(String(params?.[0])) as LogChunkEvent[];
      chunks.push(rows);
      batches.push(
        rows.flatMap((chunk) =>
          chunk.lines.map((l) => ({ stepId: chunk.stepId, message: l.message })),
        ),
      );
      return { rows: [], rowCount: 0 };
    }) as Database["query"],
    transaction: async () => {
      throw new Error("not used");
    },
    close: async () => {},
  };
  return {
    database,
    batches,
    chunks,
    setDown: (value: boolean) => {
      down = value;
    },
  };
}

const logger = createLogger({ service: "test", level: "silent" });
const run = { id: "00000000-0000-4000-8000-000000000001", tenant: "acme" };
const line = (stepId: string, i: number) => ({
  type: "log.stdout",
  level: "info" as const,
  stepId,
  message: `${stepId} ${i}`,
  idempotencyKey: `${run.id}/${stepId}/1/log/${i}`,
});

test("a flooding step does not hold another step's lines back: batches are shared fairly", async () => {
  const { database, batches } = fakeDatabase();
  const writer = createLogWriter(database, logger, { maxBatch: 100 });
  for (let i = 0; i < 10_000; i++) writer.append(run, line("flood", i));
  writer.append(run, line("quiet", 0));
  await writer.flush(run.id);
  const quietBatch = batches.findIndex((batch) => batch.some((l) => l.stepId === "quiet"));
  assert.ok(quietBatch >= 0 && quietBatch <= 1, `the quiet line went out in batch ${quietBatch}`);
  // Every line written once, each step's lines in order.
  const flood = batches.flat().filter((l) => l.stepId === "flood");
  assert.equal(flood.length, 10_000);
  assert.deepEqual(
    flood.slice(0, 5).map((l) => l.message),
    ["flood 0", "flood 1", "flood 2", "flood 3", "flood 4"],
  );
  assert.ok(flood.every((l, i) => l.message === `flood ${i}`));
  await writer.close();
});

test("lines written while the database is down are retried, not lost; NUL becomes U+FFFD", async () => {
  const { database, batches, setDown } = fakeDatabase();
  const writer = createLogWriter(database, logger, { intervalMs: 10, retryMs: 20 });
  setDown(true);
  writer.append(run, { ...line("a", 0), message: "before\u0000after" });
  writer.append(run, line("a", 1));
  const flushed = writer.flush();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(batches.length, 0);
  setDown(false);
  await flushed;
  assert.deepEqual(
    batches.flat().map((l) => l.message),
    ["before\uFFFDafter", "a 1"],
  );
  await writer.close();
});

test("flush(runId) waits only for that run's lines", async () => {
  const { database, batches } = fakeDatabase();
  const writer = createLogWriter(database, logger, { maxBatch: 10 });
  const other = { id: "00000000-0000-4000-8000-000000000002", tenant: "acme" };
  for (let i = 0; i < 1000; i++) writer.append(other, line("busy", i));
  writer.append(run, line("mine", 0));
  await writer.flush(run.id);
  assert.ok(batches.flat().some((l) => l.stepId === "mine"));
  assert.ok(
    batches.flat().filter((l) => l.stepId === "busy").length < 1000,
    "did not wait for all",
  );
  await writer.close();
  assert.equal(batches.flat().length, 1001);
});

test("a step's lines become chunks of at most chunkBytes, one outbox row each, every line kept in order", async () => {
  const { database, chunks } = fakeDatabase();
  const writer = createLogWriter(database, logger, { chunkBytes: 1024 });
  const message = (i: number) => `line ${i} ${"x".repeat(90)}`;
  for (let i = 0; i < 500; i++)
    writer.append(run, { ...line("big", i), message: message(i), metadata: { line: i } });
  writer.append(run, line("small", 0));
  await writer.flush();
  const rows = chunks.flat();
  assert.ok(rows.every((chunk) => chunk.type === logChunkType && chunk.runId === run.id));
  // 500 lines of ~100 bytes (+64 counted per line) in chunks of 1 KiB: several lines per
  // chunk, far fewer rows than lines.
  const big = rows.filter((chunk) => chunk.stepId === "big");
  assert.ok(big.length >= 500 / 6 && big.length < 500 / 4, `${big.length} chunks`);
  for (const chunk of big) {
    const bytes = chunk.lines.reduce((sum, l) => sum + Buffer.byteLength(l.message) + 64, 0);
    assert.ok(chunk.lines.length === 1 || bytes <= 1024, `chunk of ${bytes} bytes`);
    assert.equal(chunk.idempotencyKey, chunk.lines[0]?.idempotencyKey);
  }
  const lines = big.flatMap((chunk) => chunk.lines);
  assert.deepEqual(
    lines.map((l) => l.message),
    Array.from({ length: 500 }, (_, i) => message(i)),
  );
  assert.deepEqual(
    lines.map((l) => [l.idempotencyKey, l.metadata, l.type, l.level]),
    Array.from({ length: 500 }, (_, i) => [
      `${run.id}/big/1/log/${i}`,
      { line: i },
      "log.stdout",
      "info",
    ]),
  );
  assert.ok(lines.every((l) => !Number.isNaN(Date.parse(l.time))));
  // Another step's lines never share a chunk.
  assert.deepEqual(
    rows.filter((chunk) => chunk.stepId === "small").map((chunk) => chunk.lines.length),
    [1],
  );
  await writer.close();
});
