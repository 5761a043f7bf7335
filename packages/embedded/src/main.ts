#!/usr/bin/env node
/**
 * `npm start`: the embedded default. Starts planner, executor and evidence in this process on
 * embedded storage, runs examples/quickstart end to end, then keeps serving until Ctrl-C
 * (`--once` exits after the quickstart with its result as the exit code).
 */
import { createWriteStream } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { allScopes, mintToken } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { type ExecutorLimits, loadExecutorLimits, startSpawnHelper } from "@packrun/executor";
import { createLogger } from "@packrun/logging";
import type { JWK } from "jose";
import { runQuickstart } from "./quickstart.ts";
import { devOperator, type Embedded, startEmbedded } from "./start-embedded.ts";
import { ensureStepTools } from "./step-tools.ts";

const once = process.argv.includes("--once");
const home = resolve(process.env.PACKRUN_HOME ?? ".packrun");
const repository = resolve(import.meta.dirname, "../../..");
// The terminal shows the run; the services' JSON log lines (warnings, failures with their
// stacks) go to a file, which the banner names.
const logFile = resolve(process.env.PACKRUN_LOG_FILE || join(home, "logs", "services.log"));
await mkdir(dirname(logFile), { recursive: true });
const logStream = createWriteStream(logFile, { flags: "a" });
const logger = createLogger({
  service: "packrun",
  level: process.env.PACKRUN_LOG_LEVEL ?? "info",
  destination: logStream,
});
const print = (line: string) => process.stdout.write(`${line}\n`);
/** A path as the user would type it from here: relative when under the current directory. */
const shown = (path: string) => {
  const fromHere = relative(process.cwd(), path);
  return fromHere.startsWith("..") ? path : fromHere;
};

// The same PACKRUN_EXECUTOR_* limits a separate executor reads (docs/operations.md).
let limits: ExecutorLimits;
try {
  limits = loadExecutorLimits();
} catch (error) {
  print(`packrun: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(2);
}
// Open steps get a prepared network namespace each (slirp4netns and a sleeping holder, about
// 5 MB) from a pool per egress policy. A separate executor keeps 8 ready for bursts; here one is
// kept per policy: a second open step starting at the same moment makes its own namespace as it
// starts (tens of ms), and the 400 MB memory budget of `npm start` has little room for more
// (docs/benchmarks.md, "npm start: ready time and memory").
process.env.PACKRUN_EXECUTOR_WARM_NETWORKS ??= "1";
// Steps and tools start through the spawn helper, a small process of its own; it is started by
// fork and exec, and a fork of this process shows all of its resident pages until the exec:
// now, before the database and the services grow it, rather than at the first step.
startSpawnHelper();
// Before the executor probes the machine: steps are isolated, or the banner says they are not.
const isolationWarning = await ensureStepTools(print);
const startedAt = performance.now();
const databaseUrl = process.env.DATABASE_URL || undefined;
const redisUrl = process.env.REDIS_URL || undefined;
let services: Embedded;
try {
  services = await startEmbedded({
    home,
    logger,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    ...(redisUrl === undefined ? {} : { redisUrl }),
    ...(process.env.PACKRUN_SECRETS_KEY ? { secretsKey: process.env.PACKRUN_SECRETS_KEY } : {}),
    limits,
    ...(process.env.PACKRUN_APPROVER_KEYS_FILE
      ? { approverKeysFile: resolve(process.env.PACKRUN_APPROVER_KEYS_FILE) }
      : {}),
  });
} catch (error) {
  // A refusal the user can act on (data of an older version, a bad setting) is the message alone.
  if (!(error instanceof PackrunError)) throw error;
  print(`packrun: ${error.message}`);
  await new Promise<void>((done) => logStream.end(done));
  process.exit(2);
}
const storage =
  databaseUrl === undefined ? `embedded PostgreSQL in ${home}` : "PostgreSQL at DATABASE_URL";
const queue = redisUrl === undefined ? "in-process queue" : "Redis at REDIS_URL";
print(`packrun: started in ${Math.round(performance.now() - startedAt)} ms (${storage}, ${queue})`);
print(`  planner   ${services.plannerUrl}`);
print(`  executor  ${services.executorUrl}`);
print(`  evidence  ${services.evidenceUrl}`);
print(`  API       ${services.gatewayUrl}   (REST + SSE; OpenAPI at /.well-known/openapi)`);
print(
  `  console   ${services.consoleUrl}   (open it in a browser${services.devAuth === undefined ? "" : "; dev mode signs you in as the local operator"})`,
);
print(`  logs      ${shown(logFile)} (the services' log; PACKRUN_LOG_LEVEL=debug for more)`);
print(
  `  gRPC CA   ${shown(services.tls.caFile)} (mutual TLS between the services; gRPC clients trust it and send a bearer token)`,
);
if (isolationWarning !== null) print(`  ${isolationWarning}`);

// Dev mode: a local token issuer, so the CLI and curl work without an identity provider.
const devAuth = services.devAuth;
if (devAuth !== undefined) {
  const operator = devOperator;
  const token = await mintToken({
    key: JSON.parse(await readFile(devAuth.signingKeyFile, "utf8")) as JWK,
    issuer: devAuth.issuer,
    audience: devAuth.audience,
    ...operator,
    scopes: allScopes,
    expiresInSeconds: 7 * 24 * 3600,
  });
  const cliConfig = join(home, "cli.json");
  await writeFile(
    cliConfig,
    `${JSON.stringify(
      {
        url: services.gatewayUrl,
        token,
        signingKeyFile: devAuth.signingKeyFile,
        issuer: devAuth.issuer,
        audience: devAuth.audience,
        ...operator,
      },
      null,
      2,
    )}\n`,
    { mode: 0o600 },
  );
  print(`  token     ${shown(cliConfig)} (dev mode: tenant "default", every scope, valid 7 days)`);
  print(
    `            npm run -s packrun -- runs list     uses it; so does  curl -H "Authorization: Bearer $(node -p 'require("${cliConfig}").token')" ${services.gatewayUrl}/api/runs`,
  );
}
print("");

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  await services.close();
  // The log file gets every line written so far before the process goes.
  await new Promise<void>((done) => logStream.end(done));
  process.exit(code);
};
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

let exitCode = 0;
try {
  const result = await runQuickstart(services, {
    packDir: resolve(repository, "examples/quickstart"),
    home,
    print,
  });
  exitCode = result.state === "succeeded" && result.bundleVerified ? 0 : 1;
} catch (error) {
  print(`✖ quickstart failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
}
if (once) await stop(exitCode);
else print("\nServices keep running; Ctrl-C stops them.");
