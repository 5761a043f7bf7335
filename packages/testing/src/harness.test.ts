import assert from "node:assert/strict";
import { Redis } from "ioredis";
import pg from "pg";
import { describe, test } from "vitest";
import { createTestDatabase, useTestDatabase } from "./test-database.ts";
import { readTestEnv } from "./test-env.ts";
import { createTestRedis } from "./test-redis.ts";
import { uniqueName } from "./unique-name.ts";

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("test env", () => {
  test("names the missing variable and the command to use", () => {
    assert.throws(() => readTestEnv({}), {
      message: "run tests with `npm test`; PACKRUN_TEST_DATABASE_URL is not set",
    });
  });

  test("is set by the harness", () => {
    const env = readTestEnv();
    assert.match(env.databaseUrl, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    assert.match(env.redisUrl, /^redis:\/\/127\.0\.0\.1:\d+$/);
  });
});

describe("unique names", () => {
  test("are distinct, safe and fit a PostgreSQL identifier", () => {
    const names = new Set(
      Array.from({ length: 100 }, () => uniqueName(`Weird "Prefix"; DROP ${"x".repeat(80)}`)),
    );
    assert.equal(names.size, 100);
    for (const name of names) {
      assert.match(name, /^[a-z0-9_]+$/);
      assert.ok(name.length <= 63, name);
    }
  });
});

describe("postgres", () => {
  test("is version 15", async () => {
    const [row] = await query<{ server_version_num: string }>(
      readTestEnv().databaseUrl,
      "SHOW server_version_num",
    );
    const version = Number(row?.server_version_num);
    assert.ok(version >= 150000 && version < 160000, `server_version_num ${version}`);
  });

  test("test databases are isolated from each other", async () => {
    const a = await createTestDatabase("iso_a");
    const b = await createTestDatabase("iso_b");
    try {
      assert.notEqual(a.name, b.name);
      await query(a.url, "CREATE TABLE only_in_a (id int)");
      const inA = await query<{ t: string | null }>(
        a.url,
        "SELECT to_regclass('public.only_in_a')::text AS t",
      );
      const inB = await query<{ t: string | null }>(
        b.url,
        "SELECT to_regclass('public.only_in_a')::text AS t",
      );
      assert.equal(inA[0]?.t, "only_in_a");
      assert.equal(inB[0]?.t, null);
    } finally {
      await a.drop();
      await b.drop();
    }
  });

  test("drop() removes the database even with open connections, and is idempotent", async () => {
    const db = await createTestDatabase("drop");
    const open = new pg.Client({ connectionString: db.url });
    open.on("error", () => {}); // terminated by the drop
    await open.connect();
    await db.drop();
    await db.drop();
    const rows = await query(
      readTestEnv().databaseUrl,
      `SELECT 1 FROM pg_database WHERE datname = '${db.name}'`,
    );
    assert.equal(rows.length, 0);
    await assert.rejects(query(db.url, "SELECT 1"), { code: "3D000" }); // invalid_catalog_name
    await open.end().catch(() => {});
  });

  describe("useTestDatabase", () => {
    const db = useTestDatabase("use");

    test("provides a connectable database after `before`", async () => {
      const [row] = await query<{ db: string }>(db.url, "SELECT current_database() AS db");
      assert.equal(row?.db, db.name);
    });
  });
});

describe("redis", () => {
  test("answers PING", async () => {
    const redis = await createTestRedis();
    try {
      assert.equal(await redis.client.ping(), "PONG");
    } finally {
      await redis.cleanup();
    }
  });

  test("prefixes isolate tests and cleanup deletes only its own keys", async () => {
    const one = await createTestRedis("one");
    const two = await createTestRedis("two");
    const raw = new Redis(one.url);
    try {
      assert.notEqual(one.keyPrefix, two.keyPrefix);
      await one.client.set("shared", "1");
      await one.client.hset("hash", { a: "1" });
      await two.client.set("shared", "2");
      assert.equal(await two.client.get("shared"), "2");
      assert.equal(await one.client.get("shared"), "1");
      assert.equal(await raw.get(`${one.keyPrefix}shared`), "1");

      await one.cleanup();
      assert.equal(one.client.status, "end");
      assert.equal(await raw.exists(`${one.keyPrefix}shared`, `${one.keyPrefix}hash`), 0);
      assert.equal(await raw.get(`${two.keyPrefix}shared`), "2");
      await one.cleanup(); // idempotent

      await two.cleanup();
      assert.equal(await raw.exists(`${two.keyPrefix}shared`), 0);
    } finally {
      await one.cleanup();
      await two.cleanup();
      raw.disconnect();
    }
  });

  test("cleanup handles more keys than one SCAN page", async () => {
    const redis = await createTestRedis("many");
    const raw = new Redis(redis.url);
    try {
      const pipeline = redis.client.pipeline();
      for (let i = 0; i < 2500; i++) pipeline.set(`k${i}`, "v");
      await pipeline.exec();
      await redis.cleanup();
      const [, keys] = await raw.scan("0", "MATCH", `${redis.keyPrefix}*`, "COUNT", 10000);
      assert.equal(keys.length, 0);
    } finally {
      await redis.cleanup();
      raw.disconnect();
    }
  });
});
