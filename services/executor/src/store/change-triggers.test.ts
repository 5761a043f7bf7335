/**
 * The change-notification triggers (migrations/002) on both databases the executor runs on:
 * PostgreSQL, and PGlite for the embedded default.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import {
  type ChannelListener,
  createDatabaseChannelListener,
  createPgliteDatabase,
  createPostgresChannelListener,
  createPostgresDatabase,
  type Database,
  migrate,
} from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { createTestDatabase } from "@packrun/testing";
import { describe, test } from "vitest";
import { executorMigrationsDir, executorSchema } from "../rpc/executor-server.ts";
import { executorChannels, outboxChannel, runChangedChannel } from "./change-hints.ts";

const logger = createLogger({
  service: "trigger-test",
  level: process.env.PACKRUN_TEST_LOG ?? "silent",
});

/** Runs `work`, then a sentinel notification; resolves with what `runId` heard before it. */
async function heardDuring(
  database: Database,
  listener: ChannelListener,
  runId: string,
  work: () => Promise<unknown>,
): Promise<string[]> {
  const heard: string[] = [];
  const unwatchRun = listener.watch(runChangedChannel, runId, () => heard.push("run"));
  const unwatchOutbox = listener.watchAll(outboxChannel, () => heard.push("outbox"));
  const sentinel = `sentinel-${randomUUID()}`;
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no sentinel within 5 s")), 5000);
    const unwatch = listener.watch(runChangedChannel, sentinel, () => {
      clearTimeout(timer);
      unwatch();
      resolve();
    });
  });
  try {
    await work();
    // Notifications arrive in commit order: once the sentinel is here, the work's are too.
    await database.query("SELECT pg_notify($1, $2)", [runChangedChannel, sentinel]);
    await done;
    return heard;
  } finally {
    unwatchRun();
    unwatchOutbox();
  }
}

function triggerTests(open: () => Promise<{ database: Database; listener: ChannelListener }>) {
  let database: Database;
  let listener: ChannelListener;
  const runId = randomUUID();
  const during = (work: () => Promise<unknown>) => heardDuring(database, listener, runId, work);

  test("set up", async () => {
    ({ database, listener } = await open());
    await migrate(database, executorSchema, executorMigrationsDir);
    await database.query(
      "INSERT INTO runs (id, tenant, pack_name, pack_version, pack_digest, plan_hash, plan_json, manifest, inputs) VALUES ($1, 't', 'p', '1.0.0', 'd', 'h', '{}', 'm', '{}')",
      [runId],
    );
  });

  test("new steps, step transitions, attempts, decisions and run updates name the run", async () => {
    assert.deepEqual(
      await during(() =>
        database.query(
          "INSERT INTO steps (run_id, step_id, tenant, position, kind, planned) SELECT $1, 's' || i, 't', i, 'run', '{}' FROM generate_series(1, 600) AS i",
          [runId],
        ),
      ),
      ["run"],
    );
    assert.deepEqual(
      await during(() =>
        database.transaction(async (tx) => {
          await tx.query(
            "UPDATE steps SET state = 'running', attempt = 1 WHERE run_id = $1 AND step_id IN ('s1', 's2')",
            [runId],
          );
          await tx.query(
            "INSERT INTO step_attempts (run_id, step_id, attempt, state, worker_id, fence) VALUES ($1, 's1', 1, 'running', 'w', 1)",
            [runId],
          );
        }),
      ),
      ["run"],
      "one notification per transaction",
    );
    assert.deepEqual(
      await during(() =>
        database.query(
          "UPDATE step_attempts SET state = 'succeeded' WHERE run_id = $1 AND step_id = 's1'",
          [runId],
        ),
      ),
      ["run"],
    );
    assert.deepEqual(
      await during(() =>
        database.query(
          "INSERT INTO gate_decisions (run_id, step_id, approver, approved) VALUES ($1, 's3', 'alice', true)",
          [runId],
        ),
      ),
      ["run"],
    );
    assert.deepEqual(
      await during(() =>
        database.query("UPDATE runs SET started_at = now() WHERE id = $1", [runId]),
      ),
      ["run"],
    );
  });

  test("lease renewals and fence bumps stay silent", async () => {
    assert.deepEqual(
      await during(() =>
        database.query(
          "UPDATE steps SET lease_expires_at = now(), fence = fence + 1 WHERE run_id = $1 AND step_id = 's1'",
          [runId],
        ),
      ),
      [],
    );
  });

  test("outbox inserts are announced on their own channel", async () => {
    assert.deepEqual(
      await during(() =>
        database.query(
          "INSERT INTO outbox (run_id, idempotency_key, event) SELECT $1::uuid, $1::text || '/' || i, '{}' FROM generate_series(1, 3) AS i",
          [runId],
        ),
      ),
      ["outbox"],
    );
  });

  test("tear down", async () => {
    await listener.close();
    await database.close();
  });
}

describe("on PostgreSQL", () => {
  let drop: (() => Promise<void>) | undefined;
  triggerTests(async () => {
    const testDatabase = await createTestDatabase("executor_triggers");
    drop = testDatabase.drop;
    return {
      database: createPostgresDatabase({ url: testDatabase.url, schema: executorSchema }),
      listener: await createPostgresChannelListener({
        url: testDatabase.url,
        channels: executorChannels,
        logger,
      }),
    };
  });
  test("drop", async () => {
    await drop?.();
  });
});

describe("on PGlite", () => {
  triggerTests(async () => {
    const database = await createPgliteDatabase({ schema: executorSchema });
    return {
      database,
      listener: await createDatabaseChannelListener(database, executorChannels),
    };
  });
});
