import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@packrun/logging";
import { type Browser, launch } from "puppeteer-core";
import { buildConsole } from "../build-console.ts";

/** Debian's chromium (`.ci/run` installs it); PACKRUN_CHROMIUM names another binary. */
export const chromiumPath = process.env.PACKRUN_CHROMIUM || "/usr/bin/chromium";

/** Headless chromium driven over the DevTools protocol. */
export function launchChromium(): Promise<Browser> {
  return launch({
    executablePath: chromiumPath,
    headless: true,
    // As root (CI) chromium's own sandbox cannot start; the pages are our own console.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    defaultViewport: { width: 1400, height: 1000 },
  });
}

/** The embedded default with the console built, and an operator token for REST calls. */
export interface ConsoleStack {
  readonly services: import("@packrun/embedded").Embedded;
  readonly consoleUrl: string;
  readonly token: string;
  /** A REST call as the operator; throws on a non-2xx answer. */
  rest<T>(path: string, body?: unknown): Promise<T>;
  close(): Promise<void>;
}

/**
 * Builds the console (when its sources changed) and starts the embedded default on a fresh
 * home in this process: dev mode, so the console signs in as the local operator. The REST
 * token comes from the same dev sign-in a browser uses.
 */
export async function startConsoleStack(): Promise<ConsoleStack> {
  await buildConsole();
  const { startEmbedded } = await import("@packrun/embedded");
  const home = await mkdtemp(join(tmpdir(), "packrun-console-"));
  const logger = createLogger({
    service: "test",
    level: process.env.PACKRUN_LOG_LEVEL ?? "silent",
  });
  const services = await startEmbedded({ home, logger });
  const session = await fetch(`${services.gatewayUrl}/console/dev-session`, { method: "POST" });
  if (!session.ok) throw new Error(`dev sign-in failed: ${session.status} ${await session.text()}`);
  const { token } = (await session.json()) as { token: string };
  return {
    services,
    consoleUrl: services.consoleUrl,
    token,
    async rest<T>(path: string, body?: unknown): Promise<T> {
      const response = await fetch(`${services.gatewayUrl}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    },
    async close() {
      await services.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** A pack with a step that logs slowly, a parallel block and an approval gate. */
export const tourPack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: { name: console-tour, version: 1.0.0, description: The console's browser test. }
spec:
  inputs:
    - { name: lines, type: integer, default: 30 }
  approvals:
    - { id: release, required: 1, expiresAfter: 1h, reason: A person confirms the release. }
  steps:
    - id: count
      run:
        uses: builtin:shell
        with:
          argv: [sh, -c, 'i=1; while [ $i -le "$1" ]; do echo "tick-$i"; i=$((i+1)); sleep 0.1; done', sh, "{{ inputs.lines }}"]
    - id: checks
      parallel:
        steps:
          - { id: unit, run: { uses: builtin:shell, with: { argv: [sh, -c, "echo unit ok"] } } }
          - { id: lint, run: { uses: builtin:shell, with: { argv: [sh, -c, "echo lint ok"] } } }
    - id: approve
      gate:
        approval: { id: release, message: Ship console-tour? }
    - id: release
      run:
        uses: builtin:shell
        with: { argv: [sh, -c, "echo released; echo release notes > notes.txt"] }
        artifacts:
          - { name: notes, path: notes.txt }
`;

/** A pack held at a gate before a map of `inputs.items` children that never start. */
export const wideMapPack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: { name: wide-map, version: 1.0.0 }
spec:
  inputs:
    - { name: items, type: array }
  approvals:
    - { id: go, required: 1 }
  steps:
    - id: hold
      gate:
        approval: { id: go, message: Fan out? }
    - id: fan
      map:
        items: "{{ inputs.items }}"
        step: { id: leaf, run: { uses: builtin:noop } }
`;

/** A pack whose one step prints `inputs.lines` numbered lines. */
export const bigLogPack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: { name: big-log, version: 1.0.0 }
spec:
  inputs:
    - { name: lines, type: integer, default: 3 }
  steps:
    - id: flood
      run:
        uses: builtin:shell
        with:
          argv: [sh, -c, 'seq -f "row-%g" 1 "$1"', sh, "{{ inputs.lines }}"]
`;
