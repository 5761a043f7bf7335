import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState } from "@packrun/proto/executor/v1";
import { readTestEnv } from "@packrun/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, test } from "vitest";
import { createRedisSecretVault } from "../secrets/secret-vault.ts";
import { type ExecutorStack, startExecutorStack } from "../testing/executor-stack.ts";
import { startTcpProxy, type TcpProxy } from "../testing/tcp-proxy.ts";
import { createBullmqWorkQueue } from "./bullmq-work-queue.ts";

const pack = (secrets: boolean) => `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: outage, version: 1.0.0}
spec:
${secrets ? "  secrets: [{name: token}]\n" : ""}  steps:
    - id: a
      run: {uses: builtin:shell, with: {argv: ["true"]}}
`;

let proxy: TcpProxy;
let stack: ExecutorStack;
let vaultRedis: Redis;
let queue: ReturnType<typeof createBullmqWorkQueue>;

beforeAll(async () => {
  const redisUrl = new URL(readTestEnv().redisUrl);
  proxy = await startTcpProxy({ host: redisUrl.hostname, port: Number(redisUrl.port) });
  const viaProxy = `redis://127.0.0.1:${proxy.port}`;
  const prefix = `outage${process.pid}${Date.now()}`;
  vaultRedis = new Redis(viaProxy);
  // A lost connection is expected here; the queue and vault report failures through their calls.
  vaultRedis.on("error", () => {});
  queue = createBullmqWorkQueue({ redisUrl: viaProxy, name: `${prefix}-steps`, prefix });
  stack = await startExecutorStack({
    queue,
    vault: createRedisSecretVault({
      redis: vaultRedis,
      key: Buffer.alloc(32, 3),
      keyPrefix: `${prefix}:secrets:`,
    }),
  });
});

afterAll(async () => {
  await proxy.up().catch(() => {});
  await stack.close();
  await queue.close();
  vaultRedis.disconnect();
  await proxy.close();
});

test("with Redis down a submission is stored and runs once Redis is back; one with secrets is refused as retryable", async () => {
  await stack.waitFor(await stack.submit(pack(false)));
  await proxy.down();

  const started = Date.now();
  const stored = await stack.submit(pack(false));
  assert.ok(Date.now() - started < 8000, "the submission did not wait for Redis");
  const row = await stack.database.query<{ state: string }>(
    "SELECT state FROM runs WHERE id = $1",
    [stored],
  );
  assert.deepEqual(row.rows, [{ state: "running" }], "stored and started in Postgres");

  const before = (await stack.database.query<{ n: number }>("SELECT count(*)::int AS n FROM runs"))
    .rows[0]?.n;
  await assert.rejects(
    stack.submit(pack(true), { secrets: { token: "t0ps3cret" } }),
    (error: unknown) => {
      const connectError = ConnectError.from(error);
      assert.equal(connectError.code, Code.Unavailable);
      assert.match(
        connectError.rawMessage,
        /secret store is unavailable; nothing was stored, retry later/,
      );
      return true;
    },
  );
  assert.equal(
    (await stack.database.query<{ n: number }>("SELECT count(*)::int AS n FROM runs")).rows[0]?.n,
    before,
    "nothing stored",
  );

  await proxy.up();
  const run = await stack.waitFor(stored, undefined, { timeoutMs: 60_000 });
  assert.equal(run.state, RunState.SUCCEEDED, run.reason);
});
