import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createLogger } from "@packrun/logging";
import { useTestDatabase } from "@packrun/testing";
import pg from "pg";
import { test } from "vitest";
import {
  createDatabaseChannelListener,
  createPostgresChannelListener,
  type ListeningDatabase,
} from "./channel-listener.ts";
import { createPgliteDatabase } from "./pglite-database.ts";

const db = useTestDatabase("db_listen");
const logger = createLogger({
  service: "db-test",
  level: process.env.PACKRUN_TEST_LOG ?? "silent",
});

/** Resolves with the first value `register` hands its callback, or rejects after `ms`. */
function first<T>(register: (callback: (value: T) => void) => void, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

async function withAdmin<T>(work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

test("keys are the payload up to the first space; watchAll hears every notification", async () => {
  const listener = await createPostgresChannelListener({
    url: db.url,
    channels: ["test_a", "test_b"],
    logger,
  });
  try {
    const heard: string[] = [];
    const unwatch = listener.watch("test_a", "run-1", (detail) => heard.push(`run-1:${detail}`));
    listener.watch("test_a", "run-2", (detail) => heard.push(`run-2:${detail}`));
    listener.watchAll("test_b", (payload) => heard.push(`b:${payload}`));
    const done = first<void>((callback) =>
      listener.watchAll("test_a", (p) => p === "end" && callback()),
    );
    await withAdmin(async (admin) => {
      await admin.query("SELECT pg_notify('test_a', 'run-1 17 more')");
      await admin.query("SELECT pg_notify('test_a', 'run-1')");
      await admin.query("SELECT pg_notify('test_a', 'run-10 1')");
      await admin.query("SELECT pg_notify('test_b', '')");
      await admin.query("SELECT pg_notify('test_c', 'run-2 1')");
      await admin.query("SELECT pg_notify('test_a', 'end')");
    });
    await done;
    assert.deepEqual(heard, ["run-1:17 more", "run-1:undefined", "b:"]);
    unwatch();
    const second = first<string | undefined>((callback) =>
      listener.watch("test_a", "run-2", callback),
    );
    await withAdmin((admin) =>
      admin.query("SELECT pg_notify('test_a', 'run-1 1'), pg_notify('test_a', 'run-2 2')"),
    );
    await second;
    assert.deepEqual(heard.slice(3), ["run-2:2"], "run-1 unsubscribed, run-2 still heard");
    assert.throws(() => listener.watch("test_c", "x", () => {}), /not listening on channel test_c/);
  } finally {
    await listener.close();
  }
});

test("a dropped connection is re-established and every listener is woken, as hints were lost", async () => {
  const applicationName = `listen-test-${randomBytes(4).toString("hex")}`;
  const listener = await createPostgresChannelListener({
    url: db.url,
    channels: ["test_a", "test_b"],
    logger,
    applicationName,
  });
  try {
    const keyed: (string | undefined)[] = [];
    const whole: (string | undefined)[] = [];
    listener.watch("test_a", "run-1", (detail) => keyed.push(detail));
    const woken = first<string | undefined>((callback) =>
      listener.watchAll("test_b", (payload) => {
        whole.push(payload);
        callback(payload);
      }),
    );
    const terminated = await withAdmin(async (admin) => {
      const { rows } = await admin.query<{ done: boolean }>(
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1",
        [applicationName],
      );
      return rows;
    });
    assert.deepEqual(terminated, [{ done: true }], "exactly the listening backend was ended");
    // Nobody notified anything: the wake-up comes from the reconnect alone.
    assert.equal(await woken, undefined);
    assert.deepEqual(keyed, [undefined]);
    assert.deepEqual(whole, [undefined]);
    // And the new connection listens again.
    const heard = first<string | undefined>((callback) =>
      listener.watch("test_a", "run-1", callback),
    );
    await withAdmin((admin) => admin.query("SELECT pg_notify('test_a', 'run-1 5')"));
    assert.equal(await heard, "5");
  } finally {
    await listener.close();
  }
  // Closed: the connection is gone and stays gone.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const left = await withAdmin(
    async (admin) =>
      (
        await admin.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1", [
          applicationName,
        ])
      ).rowCount,
  );
  assert.equal(left, 0);
});

test("a listener that throws does not keep the others from hearing", async () => {
  const listener = await createPostgresChannelListener({
    url: db.url,
    channels: ["test_a"],
    logger,
  });
  try {
    listener.watch("test_a", "k", () => {
      throw new Error("boom");
    });
    const heard = first<string | undefined>((callback) => listener.watch("test_a", "k", callback));
    await withAdmin((admin) => admin.query("SELECT pg_notify('test_a', 'k v')"));
    assert.equal(await heard, "v");
  } finally {
    await listener.close();
  }
});

test("over a database's own listen (PGlite), with the same payload convention", async () => {
  const database = await createPgliteDatabase();
  try {
    const listener = await createDatabaseChannelListener(database, ["test_a"]);
    const keyed = first<string | undefined>((callback) => listener.watch("test_a", "r", callback));
    const whole = first<string | undefined>((callback) => listener.watchAll("test_a", callback));
    await database.transaction(async (tx) => {
      await tx.query("SELECT pg_notify('test_a', 'r 3')");
    });
    assert.equal(await keyed, "3");
    assert.equal(await whole, "r 3");
    await listener.close();
    await listener.close();
  } finally {
    await database.close();
  }
});

test("a failed LISTEN leaves no channel subscribed", async () => {
  const unlistened: string[] = [];
  const database: ListeningDatabase = {
    async listen(channel) {
      if (channel === "test_b") throw new Error("no");
      return async () => {
        unlistened.push(channel);
      };
    },
  };
  await assert.rejects(createDatabaseChannelListener(database, ["test_a", "test_b"]), /no/);
  assert.deepEqual(unlistened, ["test_a"]);
  await assert.rejects(
    createDatabaseChannelListener(database, ["Bad-Name"]),
    /bad notification channel name/,
  );
});
