import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { createLogger } from "@packrun/logging";
import { afterAll, beforeAll, describe, test } from "vitest";
import { createDatabaseChannelListener } from "./channel-listener.ts";
import {
  type EmbeddedPostgres,
  openEmbeddedPostgres,
  type PgliteDatabase,
} from "./pglite-database.ts";

/** A table of the same name in each service's schema, as two services' migrations would make. */
async function withItems(database: PgliteDatabase): Promise<PgliteDatabase> {
  await database.query("CREATE TABLE IF NOT EXISTS items (name text NOT NULL)");
  return database;
}

const names = async (database: PgliteDatabase) =>
  (await database.query<{ name: string }>("SELECT name FROM items ORDER BY name")).rows.map(
    (row) => row.name,
  );

describe("one embedded PostgreSQL shared by services, a schema each", () => {
  let postgres: EmbeddedPostgres;
  let planner: PgliteDatabase;
  let executor: PgliteDatabase;
  const warnings: string[] = [];
  beforeAll(async () => {
    const logger = createLogger({
      service: "test",
      level: "warn",
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          warnings.push(chunk.toString());
          done();
        },
      }),
    });
    postgres = await openEmbeddedPostgres({ logger, stallWarningMs: 300 });
    planner = await withItems(await postgres.database("planner"));
    executor = await withItems(await postgres.database("executor"));
  }, 60_000);
  afterAll(() => postgres.close());

  test("each handle's unqualified names are its own schema's, whoever ran before it", async () => {
    await Promise.all([
      planner.query("INSERT INTO items VALUES ($1)", ["plan"]),
      executor.query("INSERT INTO items VALUES ($1)", ["run"]),
      planner.transaction((tx) => tx.query("INSERT INTO items VALUES ($1)", ["pack"])),
    ]);
    assert.deepEqual(await names(planner), ["pack", "plan"]);
    assert.deepEqual(await names(executor), ["run"]);
    const schemas = await executor.query<{ schema: string }>(
      "SELECT table_schema AS schema FROM information_schema.tables WHERE table_name = 'items' ORDER BY 1",
    );
    assert.deepEqual(
      schemas.rows.map((row) => row.schema),
      ["executor", "planner"],
    );
    await Promise.all([planner.query("DELETE FROM items"), executor.query("DELETE FROM items")]);
  });

  test("another service's statement waits for a transaction to end and is not part of it", async () => {
    const order: string[] = [];
    const rolledBack = planner.transaction(async (tx) => {
      await tx.query("INSERT INTO items VALUES ($1)", ["doomed"]);
      order.push("planner wrote");
      // The executor asks for the session now; it must not run inside this transaction.
      const executorWrite = executor
        .query("INSERT INTO items VALUES ($1)", ["kept"])
        .then(() => order.push("executor wrote"));
      await sleep(100);
      order.push("planner fails");
      void executorWrite;
      throw new Error("planner gives up");
    });
    await assert.rejects(rolledBack, /planner gives up/);
    // The executor's write was queued behind the transaction, then ran on its own.
    await executor.query("SELECT 1 AS one");
    assert.deepEqual(order, ["planner wrote", "planner fails", "executor wrote"]);
    assert.deepEqual(await names(planner), [], "the planner's transaction was rolled back");
    assert.deepEqual(await names(executor), ["kept"], "the executor's write survived it");
    await executor.query("DELETE FROM items");
  });

  test("many concurrent transactions of several schemas all commit, none lost, no deadlock", async () => {
    const evidence = await withItems(await postgres.database("evidence"));
    const handles = [planner, executor, evidence];
    await Promise.all(
      Array.from({ length: 60 }, (_, index) => {
        const database = handles[index % 3] as PgliteDatabase;
        return index % 2 === 0
          ? database.transaction(async (tx) => {
              await tx.query("INSERT INTO items VALUES ($1)", [`t${index}`]);
              await sleep(1);
              await tx.query("UPDATE items SET name = name || '!' WHERE name = $1", [`t${index}`]);
            })
          : database.query("INSERT INTO items VALUES ($1)", [`q${index}`]);
      }),
    );
    for (const [offset, database] of handles.entries()) {
      const expected = Array.from({ length: 60 }, (_, index) => index)
        .filter((index) => index % 3 === offset)
        .map((index) => (index % 2 === 0 ? `t${index}!` : `q${index}`))
        .sort();
      assert.deepEqual(await names(database), expected);
      await database.query("DELETE FROM items");
    }
  });

  test("a service hears the notifications of its channels, sent at the sender's commit", async () => {
    const heard: string[] = [];
    const listener = await createDatabaseChannelListener(executor, ["packrun_test_changes"]);
    try {
      listener.watchAll("packrun_test_changes", (payload) => heard.push(payload ?? "(reconnect)"));
      await executor.transaction(async (tx) => {
        await tx.query("SELECT pg_notify('packrun_test_changes', $1)", ["run-1 7"]);
        assert.deepEqual(heard, [], "nothing before the commit");
      });
      await executor.query("SELECT pg_notify('packrun_test_changes', $1)", ["run-2"]);
      // Another service's channel is not this one's.
      await planner.query("SELECT pg_notify('packrun_test_other', $1)", ["plan-1"]);
      await planner.query("SELECT 1 AS one");
      assert.deepEqual(heard, ["run-1 7", "run-2"]);
    } finally {
      await listener.close();
    }
  });

  test("a transaction held while others wait is reported, and the others run after it", async () => {
    warnings.length = 0;
    const held = planner.transaction(async (tx) => {
      await tx.query("INSERT INTO items VALUES ($1)", ["slow"]);
      await sleep(700);
    });
    const waiting = executor.query<{ one: number }>("SELECT 1 AS one");
    await held;
    assert.deepEqual((await waiting).rows, [{ one: 1 }]);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0] ?? "", /"schema":"planner"/);
    assert.match(warnings[0] ?? "", /holds the embedded database's only session/);
    await planner.query("DELETE FROM items");
  });
});

test("the schemas and their data persist in the data directory across instances", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "packrun-pglite-"));
  try {
    const first = await openEmbeddedPostgres({ dataDir });
    await withItems(await first.database("evidence"));
    await (await first.database("evidence")).query("INSERT INTO items VALUES ($1)", ["event"]);
    await first.close();
    const second = await openEmbeddedPostgres({ dataDir });
    try {
      assert.deepEqual(await names(await second.database("evidence")), ["event"]);
      await assert.rejects(second.database("Bad-Name"), /bad schema name/);
    } finally {
      await second.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}, 60_000);
