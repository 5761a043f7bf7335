import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { useTestDatabase } from "@packrun/testing";
import pg from "pg";
import { test } from "vitest";
import { createPostgresDatabase } from "./database.ts";

const db = useTestDatabase("db_pool");

test("a connection lost in the middle of a transaction fails the transaction and crashes nothing", async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on("uncaughtException", onUncaught);
  const database = createPostgresDatabase({ url: db.url });
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    await assert.rejects(
      database.transaction(async (tx) => {
        const { rows } = await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        // The server ends this connection (as a restart does) while the transaction waits.
        await admin.query("SELECT pg_terminate_backend($1)", [rows[0]?.pid]);
        await sleep(300);
      }),
    );
    assert.deepEqual(uncaught, [], "no unhandled 'error' event");
    // The pool recovers: the next statement gets a new connection.
    assert.deepEqual((await database.query<{ one: number }>("SELECT 1 AS one")).rows, [{ one: 1 }]);
  } finally {
    process.off("uncaughtException", onUncaught);
    await admin.end();
    await database.close();
  }
});
