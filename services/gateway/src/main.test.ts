/**
 * The gateway process (`node services/gateway/src/main.ts`) as an orchestrator runs it: refused
 * configuration exits 2 naming the variable, a configured gateway serves /healthz at once and
 * /readyz according to the grpc.health.v1 status of planner, executor and evidence, and SIGTERM
 * stops it with exit 0.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttp2Server, type Http2Server } from "node:http2";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { generateLocalSigningKey, mintToken } from "@packrun/auth";
import { Health, HealthCheckResponse_ServingStatus } from "@packrun/proto/health/v1";
import { afterAll, beforeAll, describe, test } from "vitest";

const mainPath = fileURLToPath(new URL("./main.ts", import.meta.url));
const children = new Set<ChildProcess>();
const servers = new Set<Http2Server | Server>();
let scratch: string;
let jwksFile: string;
let signingKey: Awaited<ReturnType<typeof generateLocalSigningKey>>;

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), "packrun-gateway-main-"));
  signingKey = await generateLocalSigningKey();
  jwksFile = path.join(scratch, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify(signingKey.jwks));
});
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  for (const server of servers) server.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  server.close();
  await once(server, "close");
  return address.port;
}

/** A grpc.health.v1 server on `port` answering `status()` (throwing = an error answer). */
async function startHealthServer(port: number, status: () => HealthCheckResponse_ServingStatus) {
  const server = createHttp2Server(
    connectNodeAdapter({
      routes: (router) => {
        router.service(Health, { check: () => ({ status: status() }) });
      },
    }),
  );
  servers.add(server);
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  return server;
}

/** Starts the gateway process with exactly `env` (plus PATH), collecting its output. */
function startGateway(env: Record<string, string>) {
  const child = spawn(process.execPath, [mainPath], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let stderr = "";
  let stdout = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const lines: Record<string, unknown>[] = [];
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      stdout += `${line}\n`;
      const entry = JSON.parse(line) as Record<string, unknown>;
      lines.push(entry);
      if (entry.msg === "gateway ready") resolve(String(entry.url));
    });
    child.once("exit", (code) => reject(new Error(`gateway exited (${code}): ${stderr}`)));
  });
  ready.catch(() => {});
  return { child, ready, exited, lines, stderr: () => stderr, stdout: () => stdout };
}

/** A complete, valid configuration; `overrides` replace (or, as undefined, remove) variables. */
function gatewayEnv(overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = {
    PACKRUN_GATEWAY_PORT: "0",
    PACKRUN_AUTH_JWKS_FILE: jwksFile,
    PACKRUN_AUTH_ISSUER: "https://idp.example.test/",
    PACKRUN_AUTH_AUDIENCE: "packrun",
    // The stand-in services here are cleartext HTTP/2 servers.
    PACKRUN_RPC_INSECURE_NO_AUTH: "true",
    PACKRUN_LOG_LEVEL: "info",
    ...overrides,
  };
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

/** Runs the gateway with `env` and expects it to refuse to start: exit 2, nothing served. */
async function refused(env: Record<string, string>) {
  const gateway = startGateway(env);
  const [code] = await gateway.exited;
  assert.equal(code, 2, `exit code 2, got ${code}: ${gateway.stderr()}${gateway.stdout()}`);
  assert.ok(!gateway.lines.some((line) => line.msg === "gateway ready"), "it never served");
  return { stderr: gateway.stderr(), stdout: gateway.stdout() };
}

// Each case is a process of its own: run them side by side.
describe.concurrent("bad configuration exits 2 with a message naming the variable", () => {
  test("a missing issuer, then a missing audience", async () => {
    const { stderr } = await refused(gatewayEnv({ PACKRUN_AUTH_ISSUER: undefined }));
    assert.match(stderr, /^gateway: invalid configuration:/);
    assert.match(stderr, /auth\.issuer: is required: set PACKRUN_AUTH_ISSUER/);
    const both = await refused(
      gatewayEnv({ PACKRUN_AUTH_ISSUER: undefined, PACKRUN_AUTH_AUDIENCE: undefined }),
    );
    assert.match(both.stderr, /is required: set PACKRUN_AUTH_ISSUER/);
    assert.match(both.stderr, /is required: set PACKRUN_AUTH_AUDIENCE/);
  });

  test("both a JWKS file and a JWKS URL, or neither", async () => {
    const both = await refused(
      gatewayEnv({ PACKRUN_AUTH_JWKS_URL: "https://idp.example.test/jwks.json" }),
    );
    assert.match(
      both.stderr,
      /set exactly one of PACKRUN_AUTH_JWKS_FILE and PACKRUN_AUTH_JWKS_URL/,
    );
    const neither = await refused(gatewayEnv({ PACKRUN_AUTH_JWKS_FILE: undefined }));
    assert.match(
      neither.stderr,
      /set exactly one of PACKRUN_AUTH_JWKS_FILE and PACKRUN_AUTH_JWKS_URL/,
    );
  });

  test("a bad port and a bad log level are each named", async () => {
    const { stderr } = await refused(
      gatewayEnv({ PACKRUN_GATEWAY_PORT: "not-a-port", PACKRUN_LOG_LEVEL: "loud" }),
    );
    assert.match(stderr, /PACKRUN_GATEWAY_PORT \(port\)/);
    assert.match(stderr, /PACKRUN_LOG_LEVEL \(logLevel\)/);
  });

  test("HMAC (HS256) and `none` are refused as token algorithms", async () => {
    const cases = ["HS256", "ES256,HS256", "none"];
    const results = await Promise.all(
      cases.map((algorithms) => refused(gatewayEnv({ PACKRUN_AUTH_ALGORITHMS: algorithms }))),
    );
    results.forEach(({ stderr }, index) => {
      assert.match(stderr, /auth\.algorithms/, `${cases[index]}: ${stderr}`);
      assert.match(stderr, /expected one of "ES256"/, `${cases[index]}: ${stderr}`);
    });
  });

  test("HS256 is refused naming PACKRUN_AUTH_ALGORITHMS", async () => {
    const { stderr } = await refused(gatewayEnv({ PACKRUN_AUTH_ALGORITHMS: "HS256" }));
    assert.match(stderr, /PACKRUN_AUTH_ALGORITHMS/);
  });

  test("no authentication settings at all: the required variables are named", async () => {
    const { stderr } = await refused({ PACKRUN_GATEWAY_PORT: "0" });
    assert.match(stderr, /PACKRUN_AUTH_ISSUER/);
    assert.match(stderr, /PACKRUN_AUTH_JWKS_FILE/);
  });

  test("a JWKS file that cannot be read", async () => {
    const missing = path.join(scratch, "missing.json");
    const { stdout } = await refused(gatewayEnv({ PACKRUN_AUTH_JWKS_FILE: missing }));
    const fatal = stdout
      .trim()
      .split("\n")
      .map(
        (line) => JSON.parse(line) as { level?: string; msg?: string; err?: { message?: string } },
      )
      .find((entry) => entry.msg === "gateway failed to start");
    assert.ok(fatal, stdout);
    assert.match(String(fatal.err?.message), /PACKRUN_AUTH_JWKS_FILE: cannot read a JWK Set/);
    const notJson = path.join(scratch, "placeholder.json");
    writeFileSync(notJson, "CHANGE-ME: the JWK Set of your identity provider\n");
    const placeholder = await refused(gatewayEnv({ PACKRUN_AUTH_JWKS_FILE: notJson }));
    assert.match(placeholder.stdout, /PACKRUN_AUTH_JWKS_FILE: cannot read a JWK Set/);
  });
});

test("a configured gateway is live at once, ready only when all three services serve, and stops on SIGTERM", async () => {
  const ports = {
    planner: await freePort(),
    executor: await freePort(),
    evidence: await freePort(),
  };
  const gateway = startGateway(
    gatewayEnv({
      PACKRUN_PLANNER_URL: `http://127.0.0.1:${ports.planner}`,
      PACKRUN_EXECUTOR_URL: `http://127.0.0.1:${ports.executor}`,
      PACKRUN_EVIDENCE_URL: `http://127.0.0.1:${ports.evidence}`,
      PACKRUN_AUTH_ISSUER: "https://idp.example.test/",
    }),
  );
  const url = await gateway.ready;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);

  const live = await fetch(`${url}/healthz`);
  assert.equal(live.status, 200);
  assert.deepEqual(await live.json(), { status: "ok" });

  const readiness = async () => {
    const response = await fetch(`${url}/readyz`);
    return {
      status: response.status,
      body: (await response.json()) as { ready: boolean; services: Record<string, string> },
    };
  };
  /**
   * /readyz once it shows `expected` (a check allows 2 s per service, which a loaded machine can
   * exceed once, or a new connection may still be opening): at most 30 s.
   */
  const readinessOnce = async (expected: (services: Record<string, string>) => boolean) => {
    const deadline = Date.now() + 30_000;
    let answer = await readiness();
    while (!expected(answer.body.services) && Date.now() < deadline) {
      await sleep(200);
      answer = await readiness();
    }
    return answer;
  };

  // Nothing runs: not ready, and each service is named as unreachable.
  const none = await readiness();
  assert.equal(none.status, 503);
  assert.equal(none.body.ready, false);
  assert.deepEqual(Object.keys(none.body.services).sort(), ["evidence", "executor", "planner"]);
  for (const [name, status] of Object.entries(none.body.services)) {
    assert.match(status, /^unreachable: /, `${name}: ${status}`);
  }

  // The planner serves, the evidence service answers NOT_SERVING (draining), the executor is
  // still down: still not ready, and the answer says which is which.
  let evidenceStatus = HealthCheckResponse_ServingStatus.NOT_SERVING;
  await startHealthServer(ports.planner, () => HealthCheckResponse_ServingStatus.SERVING);
  await startHealthServer(ports.evidence, () => evidenceStatus);
  const partial = await readinessOnce(
    (services) => services.planner === "SERVING" && services.evidence === "NOT_SERVING",
  );
  assert.equal(partial.status, 503);
  assert.equal(partial.body.services.planner, "SERVING");
  assert.equal(partial.body.services.evidence, "NOT_SERVING");
  assert.match(String(partial.body.services.executor), /^unreachable: /);

  // All three serve: ready.
  let executorUp = true;
  await startHealthServer(ports.executor, () => {
    if (!executorUp) throw new ConnectError("shutting down", Code.Unavailable);
    return HealthCheckResponse_ServingStatus.SERVING;
  });
  evidenceStatus = HealthCheckResponse_ServingStatus.SERVING;
  const ready = await readinessOnce((services) =>
    Object.values(services).every((status) => status === "SERVING"),
  );
  assert.equal(ready.status, 200, JSON.stringify(ready.body));
  assert.deepEqual(ready.body, {
    ready: true,
    services: { planner: "SERVING", executor: "SERVING", evidence: "SERVING" },
  });

  // An executor that errors makes it unready again; liveness is unaffected.
  executorUp = false;
  const failing = await readinessOnce((services) => services.executor !== "SERVING");
  assert.equal(failing.status, 503);
  assert.match(String(failing.body.services.executor), /^unreachable: .*shutting down/);
  assert.equal((await fetch(`${url}/healthz`)).status, 200);

  // The API itself wants a token of the configured issuer.
  assert.equal((await fetch(`${url}/api/packs`)).status, 401);
  const wrongIssuer = await mintToken({
    key: signingKey.privateJwk,
    issuer: "https://someone-else.example.test/",
    audience: "packrun",
    subject: "main-test",
    tenant: "acme",
    scopes: ["packs.read"],
  });
  const refusedToken = await fetch(`${url}/api/packs`, {
    headers: { authorization: `Bearer ${wrongIssuer}` },
  });
  assert.equal(refusedToken.status, 401);

  gateway.child.kill("SIGTERM");
  const [code, signal] = await gateway.exited;
  assert.equal(signal, null, gateway.stderr());
  assert.equal(code, 0, gateway.stderr());
  assert.ok(gateway.lines.some((line) => line.msg === "gateway shutting down"));
  await assert.rejects(fetch(`${url}/healthz`), "nothing listens after the exit");
});
