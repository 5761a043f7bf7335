import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPostgresDatabase } from "@packrun/db";
import { createTestDatabase, createTestRedis } from "@packrun/testing";
import { afterAll, test } from "vitest";

const main = join(import.meta.dirname, "main.ts");
const homes: string[] = [];
afterAll(() => Promise.all(homes.map((home) => rm(home, { recursive: true, force: true }))));

function runOnce(
  home: string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, "--once"], {
      env: { ...process.env, PACKRUN_HOME: home, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("the embedded default runs the quickstart end to end, and again on the persisted data", {
  timeout: 180_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), "packrun-embedded-"));
  homes.push(home);
  for (const round of [1, 2]) {
    const { code, stdout, stderr } = await runOnce(home);
    assert.equal(code, 0, `round ${round} failed:\n${stdout}\n${stderr}`);
    assert.match(stdout, /build +│ the token is \*\*\* \(masked in every log\)/);
    assert.match(stdout, /approving as embedded-demo/);
    // The web console's address, where the gateway serves it.
    assert.match(
      stdout,
      /^ {2}console +http:\/\/127\.0\.0\.1:\d+\/ +\(open it in a browser; dev mode/m,
    );
    assert.match(stdout, /✔ run succeeded/);
    assert.match(stdout, /evidence bundle verified offline/);
    // The terminal shows the run; the services' JSON log lines go to the file the banner names.
    assert.doesNotMatch(`${stdout}\n${stderr}`, /^\{"level"/m);
    assert.match(stdout, new RegExp(`^ {2}logs +${join(home, "logs", "services.log")} `, "m"));
    const serviceLog = await readFile(join(home, "logs", "services.log"), "utf8");
    assert.match(serviceLog, /^\{"level":"warn"/m);
    assert.ok(!serviceLog.includes("tok-3f9a-demo-secret"), "the secret is not in the log");
    assert.ok(
      !stdout.includes("tok-3f9a-demo-secret") && !stderr.includes("tok-3f9a-demo-secret"),
      "the secret never shows",
    );
  }
  // Both runs' bundles are there: the second start found the first run's data.
  assert.equal((await readdir(join(home, "bundles"))).length, 2);
  // One embedded database for every service (a schema each), not one per service.
  assert.deepEqual(await readdir(join(home, "data")), ["postgres"]);
});

test("the same command with DATABASE_URL and REDIS_URL runs on real PostgreSQL and Redis", {
  timeout: 180_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), "packrun-servers-"));
  homes.push(home);
  const database = await createTestDatabase("embedded");
  const redis = await createTestRedis("embedded");
  try {
    const { code, stdout, stderr } = await runOnce(home, {
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
    });
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /PostgreSQL at DATABASE_URL, Redis at REDIS_URL/);
    assert.match(stdout, /evidence bundle verified offline/);
    // The services' schemas are in that database, and nothing was written under home/data.
    const check = createPostgresDatabase({ url: database.url });
    const schemas = (
      await check.query<{ nspname: string }>(
        "SELECT nspname FROM pg_namespace WHERE nspname IN ('planner', 'executor', 'evidence') ORDER BY 1",
      )
    ).rows;
    const runs = (
      await check.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM executor.runs WHERE state = 'succeeded'",
      )
    ).rows;
    await check.close();
    assert.deepEqual(
      schemas.map((row) => row.nspname),
      ["evidence", "executor", "planner"],
    );
    assert.deepEqual(runs, [{ n: 1 }]);
    await assert.rejects(readdir(join(home, "data")));
  } finally {
    await redis.cleanup();
    await database.drop();
  }
});

test("a bad executor limit stops the embedded default at once, naming the variable", {
  timeout: 60_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), "packrun-embedded-limits-"));
  homes.push(home);
  const { code, stdout } = await runOnce(home, { PACKRUN_EXECUTOR_USER_CONCURRENCY: "lots" });
  assert.equal(code, 2, stdout);
  assert.match(stdout, /PACKRUN_EXECUTOR_USER_CONCURRENCY/);
  assert.doesNotMatch(stdout, /started in/, "nothing was started");
});

test("data of an older version, a database per service, is refused untouched with what to do", {
  timeout: 60_000,
}, async () => {
  const home = await mkdtemp(join(tmpdir(), "packrun-embedded-legacy-"));
  homes.push(home);
  const legacy = join(home, "data", "executor");
  await mkdir(legacy, { recursive: true });
  await writeFile(join(legacy, "PG_VERSION"), "17\n");
  const { code, stdout } = await runOnce(home);
  assert.equal(code, 2, stdout);
  assert.match(stdout, new RegExp(`packrun: ${legacy}: databases of an older packrun`));
  assert.match(stdout, /mv .*data .*data\.old/);
  assert.doesNotMatch(stdout, /started in/, "nothing was started");
  assert.deepEqual(await readdir(join(home, "data")), ["executor"], "no new database beside it");
  assert.equal(await readFile(join(legacy, "PG_VERSION"), "utf8"), "17\n");
});
