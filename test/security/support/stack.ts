/**
 * The four services and the gateway on the test PostgreSQL and Redis, like
 * services/gateway/src/testing/gateway-stack.ts, but also exposing where the data lives (the
 * database URL and the Redis key prefix) so that tests can scan the stores themselves, and the
 * trusted key so that tests can craft tokens beside it. Plus the small helpers every security
 * and fault test of the gateway needs.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { mintToken } from "@packrun/auth";
import { createLogger } from "@packrun/logging";
import type { JSONWebKeySet, JWK } from "jose";
import { afterAll, beforeAll } from "vitest";
import type { RunEventJson, RunJson } from "../../../services/gateway/src/api-schemas.ts";
import {
  startGatewayStack,
  type TestTokenOptions,
} from "../../../services/gateway/src/testing/gateway-stack.ts";
import { type RestClient, restClient } from "../../../services/gateway/src/testing/rest-client.ts";
import {
  submitRun,
  terminalRunStates,
  waitForRun,
} from "../../../services/gateway/src/testing/run-helpers.ts";

export type { RunEventJson, RunJson };

/** A running stack and what a test needs to attack and inspect it. */
export interface SecurityStack {
  readonly url: string;
  readonly executorUrl: string;
  readonly evidenceUrl: string;
  readonly plannerUrl: string;
  readonly issuer: string;
  readonly audience: string;
  /** The private JWK the gateway trusts (ES256, with kid). */
  readonly privateJwk: JWK;
  /** The public JWK Set the gateway verifies with. */
  readonly jwks: JSONWebKeySet;
  /** Superuser URL of the stack's database (schemas planner, executor, evidence). */
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** Every Redis key of the stack starts with this. */
  readonly redisKeyPrefix: string;
  /** Where the embedded services keep keys, artifacts and work directories. */
  readonly home: string;
  /**
   * Warn-and-above log lines of every service (pino JSON, parsed), e.g. the gateway's
   * `request refused` audit lines. The newest 20,000 are kept.
   */
  logLines(): readonly Record<string, unknown>[];
  mintToken(options?: TestTokenOptions): Promise<string>;
  /** A REST client with a token of {@link mintToken} (default: tenant acme, every scope). */
  client(options?: TestTokenOptions): Promise<RestClient>;
  close(): Promise<void>;
}

/** Settings of {@link startSecurityStack}. */
export interface SecurityStackOptions {
  /** pino level of every service (default warn, or PACKRUN_LOG_LEVEL); lines go to logLines(). */
  readonly logLevel?: string;
}

export async function startSecurityStack(
  options: SecurityStackOptions = {},
): Promise<SecurityStack> {
  const logLines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line === "") continue;
        try {
          logLines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          logLines.push({ msg: line });
        }
      }
      if (logLines.length > 20_000) logLines.splice(0, logLines.length - 20_000);
      done();
    },
  });
  const logger = createLogger({
    service: "test",
    level: options.logLevel ?? process.env.PACKRUN_LOG_LEVEL ?? "warn",
    destination,
  });
  const stack = await startGatewayStack({ logger });
  const privateJwk = JSON.parse(await readFile(stack.signingKeyFile, "utf8")) as JWK;
  const jwks = JSON.parse(await readFile(stack.jwksFile, "utf8")) as JSONWebKeySet;
  let closed = false;
  return {
    url: stack.url,
    executorUrl: stack.executorUrl,
    evidenceUrl: stack.evidenceUrl,
    plannerUrl: stack.plannerUrl,
    issuer: stack.issuer,
    audience: stack.audience,
    privateJwk,
    jwks,
    databaseUrl: stack.databaseUrl,
    redisUrl: stack.redisUrl,
    redisKeyPrefix: stack.redisKeyPrefix,
    home: stack.home,
    logLines: () => logLines,
    mintToken: (token) => stack.mintToken(token),
    async client(token = {}) {
      return restClient(stack.url, await stack.mintToken(token));
    },
    async close() {
      if (closed) return;
      closed = true;
      await stack.close();
    },
  };
}

export { submitRun, terminalRunStates, waitForRun };

/** The run's whole event log through GET /api/runs/{id}/logs?format=ndjson&follow=false. */
export async function runEvents(
  baseUrl: string,
  token: string,
  runId: string,
): Promise<{ events: RunEventJson[]; raw: string }> {
  const response = await fetch(`${baseUrl}/api/runs/${runId}/logs?format=ndjson&follow=false`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const raw = await response.text();
  assert.equal(response.status, 200, raw);
  const lines = raw
    .trim()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as RunEventJson & { end?: boolean });
  return { events: lines.filter((line) => line.end !== true), raw };
}

/** A complete Task Pack manifest named `name` whose `spec:` body is `spec` (indented YAML). */
export function manifest(name: string, spec: string, version = "1.0.0"): string {
  return `apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: ${name}, version: ${version}}\nspec:\n${spec}`;
}

/**
 * A pack whose first step waits at approval gate `release` (`required` approvals, granted to
 * `grants` when given), then runs `after` (a noop unless said).
 */
export function gatedManifest(
  name: string,
  options: { required?: number; grants?: string[]; after?: string } = {},
): string {
  const required = options.required === undefined ? "" : `, required: ${options.required}`;
  const grants = options.grants === undefined ? "" : `, grants: [${options.grants.join(", ")}]`;
  return manifest(
    name,
    `  approvals: [{id: release${required}${grants}}]
  steps:
    - id: gate
      gate: {approval: {id: release}}
    - id: after
      run: ${options.after ?? "{uses: builtin:noop}"}
`,
  );
}

/** Submits `manifestText` as `client` and waits until the run's gate `gate` awaits approval. */
export async function runAwaitingGate(client: RestClient, manifestText: string): Promise<RunJson> {
  const run = await submitRun(client, { manifest: manifestText });
  return waitForRun(client, run.id, (r) =>
    r.gates.some((g) => g.stepId === "gate" && g.state === "awaiting-approval"),
  );
}

/** Wall time of `work`, in milliseconds, with its result. */
export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

/**
 * Polls the run's event log until `enough` holds for it (events reach the evidence log
 * asynchronously, through the executor's outbox), failing after `timeoutMs`.
 */
export async function eventsWhen(
  baseUrl: string,
  token: string,
  runId: string,
  enough: (events: RunEventJson[]) => boolean,
  timeoutMs = 15_000,
): Promise<RunEventJson[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { events } = await runEvents(baseUrl, token, runId);
    if (enough(events)) return events;
    if (Date.now() > deadline)
      assert.fail(
        `the event log of run ${runId} never became complete: ${events.map((e) => e.type).join(", ")}`,
      );
    await sleep(100);
  }
}

/** The stack of a test file and a client of tenant acme's user alice; see {@link useSecurityStack}. */
export interface SecurityStackHandle {
  /** The running stack; throws if read before the `beforeAll` hook ran. */
  readonly stack: SecurityStack;
  /** A REST client of the default tenant's user; throws if read before the `beforeAll` hook ran. */
  readonly alice: RestClient;
}

/**
 * Registers hooks in the calling file (or suite): a security stack started in `beforeAll` with a
 * client for the default user, closed in `afterAll`.
 */
export function useSecurityStack(options?: SecurityStackOptions): SecurityStackHandle {
  let started: { stack: SecurityStack; alice: RestClient } | undefined;
  const current = () => {
    if (!started) throw new Error("useSecurityStack(): the stack exists only once beforeAll ran");
    return started;
  };
  beforeAll(async () => {
    const stack = await startSecurityStack(options);
    started = { stack, alice: await stack.client() };
  });
  afterAll(() => started?.stack.close());
  return {
    get stack() {
      return current().stack;
    },
    get alice() {
      return current().alice;
    },
  };
}
