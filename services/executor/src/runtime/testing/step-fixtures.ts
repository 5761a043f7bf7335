/**
 * Helpers for the runtime's tests: a complete request with small defaults, a log collector and
 * a way to wait until processes carrying a marker are gone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { LogLine, StepExecutionRequest } from "../types.ts";

/** A temporary attempt workdir and staging root, removed by `cleanup`. */
export interface TestDirs {
  root: string;
  workdir: string;
  stagingRoot: string;
  cleanup(): Promise<void>;
}

/** Creates fresh directories for one test. */
export async function makeDirs(): Promise<TestDirs> {
  const root = await mkdtemp(path.join(tmpdir(), "packrun-runtime-test-"));
  return {
    root,
    workdir: path.join(root, "work"),
    stagingRoot: path.join(root, "staging"),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** Log lines as the step produced them, plus the request hook that appends to them. */
export interface LogCollector {
  lines: LogLine[];
  onLog: (line: LogLine) => void;
  /** The texts of one stream. */
  texts(stream?: LogLine["stream"]): string[];
}

/** Collects every onLog line. */
export function collectLogs(): LogCollector {
  const lines: LogLine[] = [];
  return {
    lines,
    onLog: (line) => lines.push(line),
    texts: (stream) => lines.filter((line) => !stream || line.stream === stream).map((l) => l.text),
  };
}

/** A complete request (process runtime, open mode, 60 s timeout) with overrides applied. */
export function stepRequest(
  dirs: TestDirs,
  overrides: Partial<StepExecutionRequest> = {},
): StepExecutionRequest {
  return {
    runId: "run-1",
    stepId: "step-1",
    attempt: 1,
    uses: "builtin:shell",
    with: { argv: ["true"] },
    secrets: {},
    workdir: dirs.workdir,
    stagingRoot: dirs.stagingRoot,
    sandbox: { mode: "open", egressAllowlist: [] },
    runtime: "process",
    timeoutMs: 60_000,
    killGraceMs: 2_000,
    limits: { maxLogBytes: 1024 * 1024, maxLineBytes: 4096 },
    artifacts: [],
    signal: new AbortController().signal,
    onLog: () => {},
    ...overrides,
  };
}

/** A marker unique to one test, to find its processes by command line. */
export function uniqueMarker(): string {
  return `packrun-marker-${randomUUID()}`;
}

/** PIDs of live (non-zombie) processes whose command line contains the marker. */
export async function processesWithMarker(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8");
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(marker) && state !== "Z") found.push(Number(entry));
    } catch {
      // exited while reading
    }
  }
  return found;
}

/**
 * Polls until `check` returns true or the deadline passes; returns the last result. Polling
 * with a generous deadline, not a fixed sleep, so a loaded machine only makes it slower.
 */
export async function waitFor(
  check: () => Promise<boolean>,
  deadlineMs = 15_000,
): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const CHILD = path.join(import.meta.dirname, "crash-child.ts");

/**
 * Starts a worker-like child process running the step and resolves once the step said
 * "ready"; returns the child so the test can SIGKILL it.
 */
export async function startCrashChild(
  partial: Partial<StepExecutionRequest>,
): Promise<ChildProcess> {
  // Through the environment: the request must not show up in the child's command line.
  const child = spawn(process.execPath, [CHILD], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, PACKRUN_CRASH_REQUEST: JSON.stringify(partial) },
  });
  await new Promise<void>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`child never got ready: ${seen}`)), 60_000);
    child.stdout.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes("READY")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited early (${code}): ${seen}`));
    });
  }).catch((error: unknown) => {
    child.kill("SIGKILL");
    throw error;
  });
  return child;
}
