/**
 * The eight workloads of issue 7. Each runs one system at a time: start it, warm up, run the
 * repetitions (each in a fresh namespace, measured by a {@link Meter}), stop it. Metrics come
 * from the timestamps the systems themselves recorded (submit time is the client's clock, taken
 * just before the submission call), never from the time the client noticed completion.
 */
import { chmod, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState } from "@packrun/proto/executor/v1";
import type { RunTimes } from "./durable.ts";
import {
  measureRuntimeAlone,
  measureSpawn,
  type SpawnLimit,
  spawnAt,
  type WalCounter,
  type WalWindow,
} from "./limits.ts";
import { Meter, rssMiB, type Usage } from "./meter.ts";
import type {
  FloorSystem,
  PackrunSystem,
  PeerSystem,
  RequestFor,
  RunRequest,
  StartOptions,
  System,
} from "./systems.ts";
import { log, mapLimit, median, nowMs, quantile, type Repeated, repeated } from "./util.ts";

/** Everything a workload needs. */
export interface BenchContext {
  quick: boolean;
  scratch: string;
  systems: {
    packrun: PackrunSystem;
    bullmq: PeerSystem;
    graphile: PeerSystem;
    floor: FloorSystem;
  };
  limits: Limits;
  /** Counts commit records and WAL bytes of a measured window. */
  wal: WalCounter;
  /** Only these systems (all when undefined): `--systems=packrun,bullmq`. */
  only?: readonly string[];
}

/** The systems of `names` that this run includes. */
function pick(context: BenchContext, names: readonly string[]): string[] {
  return names.filter((name) => !context.only || context.only.includes(name));
}

/** Physical limits measured at the start of the run. */
export interface Limits {
  /** RSS of an idle packrun worker process, which the spawn measurement process copies. */
  workerRssMiB: number;
  spawn: SpawnLimit;
  spawnPlainNode: SpawnLimit;
  commits: { concurrency: number; perSecond: number; latencyMs: { p50: number } }[];
  redisPingMs: { p50: number; p99: number };
}

/** One system's outcome in one workload. */
export interface SystemResult {
  metrics: Record<string, Repeated>;
  /** CPU milliseconds per run by component (median over repetitions); `total` included. */
  cpuMsPerRun: Record<string, number>;
  /** Peak RSS (MiB) per component, the largest over repetitions. */
  peakRssMiB: Record<string, number>;
  extra?: Record<string, unknown>;
  error?: string;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface WorkloadResult {
  id: string;
  title: string;
  measures: string;
  params: Record<string, unknown>;
  /** The metric the ratios are about, and whether higher is better. */
  headline: { metric: string; unit: string; higherIsBetter: boolean };
  systems: Record<string, SystemResult>;
  /** Per system: headline ratio to the physical limit / best peer / floor (as defined per workload). */
  ratios: Record<string, { toLimit?: number; toBestPeer?: number; toFloor?: number }>;
  limit?: { value: number; what: string };
  checks: Check[];
  notes: string[];
  durationSeconds: number;
}

type Metrics = Record<string, number>;

/** The 3-step run of workloads 2 and 3: `true` three times, retries configured. */
const TRUE_RUN: RunRequest = {
  steps: [["/bin/true"], ["/bin/true"], ["/bin/true"]],
  maxAttempts: 3,
};

const PEERS = ["bullmq", "graphile"] as const;

function system(context: BenchContext, name: string): System {
  const found = (context.systems as unknown as Record<string, System>)[name];
  if (!found) throw new Error(`unknown system ${name}`);
  return found;
}

/** What a measured window used: CPU and memory by process, WAL commits and bytes. */
type Measured = Usage & { wal?: WalWindow };

/** Measures `body` on `system`'s processes (and the WAL it wrote, when a counter is given). */
async function metered<T>(
  wal: WalCounter | undefined,
  target: System,
  body: () => Promise<T>,
): Promise<{ value: T; usage: Measured }> {
  const meter = new Meter(target.components(), target.memoryComponents());
  const start = await wal?.position();
  meter.start();
  const value = await body();
  const usage: Measured = meter.stop();
  if (wal && start !== undefined) usage.wal = await wal.between(start, await wal.position());
  return { value, usage };
}

/** Starts a system, runs `body`, always stops it; failures are recorded, not thrown. */
async function withSystem(
  target: System,
  options: StartOptions,
  body: () => Promise<SystemResult>,
): Promise<SystemResult> {
  log(
    `  ${target.name}: starting (${options.workers} worker process(es) × ${options.concurrency})`,
  );
  try {
    await target.start(options);
    return await body();
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(`  ${target.name}: FAILED: ${message}`);
    return { metrics: {}, cpuMsPerRun: {}, peakRssMiB: {}, error: message };
  } finally {
    await target
      .stop()
      .catch((error: unknown) => log(`  ${target.name}: stop failed: ${String(error)}`));
  }
}

/** Runs `reps` repetitions of `one` (fresh namespace each), aggregating metrics and usage. */
async function repetitions(
  target: System,
  reps: number,
  one: (rep: number) => Promise<{
    metrics: Metrics;
    runs: number;
    usage: Measured;
    extra?: Record<string, unknown>;
  }>,
): Promise<SystemResult> {
  const all: Metrics[] = [];
  const cpu: Record<string, number[]> = {};
  const peak: Record<string, number> = {};
  let extra: Record<string, unknown> | undefined;
  for (let rep = 0; rep < reps; rep++) {
    await target.reset();
    const result = await one(rep);
    const wal = result.usage.wal;
    all.push(
      wal
        ? {
            ...result.metrics,
            commitsPerRun: wal.commits / Math.max(1, result.runs),
            walKiBPerRun: wal.walBytes / 1024 / Math.max(1, result.runs),
          }
        : result.metrics,
    );
    for (const [name, seconds] of Object.entries(result.usage.cpuSeconds)) {
      const list = cpu[name] ?? [];
      list.push((seconds * 1000) / Math.max(1, result.runs));
      cpu[name] = list;
    }
    for (const [name, mib] of Object.entries(result.usage.peakRssMiB)) {
      peak[name] = Math.max(peak[name] ?? 0, mib);
    }
    extra = result.extra ?? extra;
    if (wal) {
      const runs = Math.max(1, result.runs);
      extra = {
        ...extra,
        walPerRunByRecordType: wal.top.map((entry) => ({
          type: entry.type,
          perRun: entry.count / runs,
          kibPerRun: entry.bytes / 1024 / runs,
        })),
      };
    }
    log(
      `  ${target.name} rep ${rep + 1}/${reps}: ${Object.entries(result.metrics)
        .slice(0, 4)
        .map(([k, v]) => `${k}=${v.toFixed(2)}`)
        .join(" ")}`,
    );
  }
  const metrics: Record<string, Repeated> = {};
  for (const key of Object.keys(all[0] ?? {}))
    metrics[key] = repeated(all.map((m) => m[key] ?? Number.NaN));
  const cpuMsPerRun: Record<string, number> = {};
  for (const [name, values] of Object.entries(cpu)) cpuMsPerRun[name] = median(values);
  return { metrics, cpuMsPerRun, peakRssMiB: peak, ...(extra ? { extra } : {}) };
}

function runLatencies(runs: RunTimes[]): number[] {
  return runs.map((run) => run.finishedMs - run.submittedMs);
}

function assertSucceeded(runs: RunTimes[], expected: number, what: string): void {
  const bad = runs.filter((run) => run.state !== "succeeded");
  if (runs.length !== expected || bad.length > 0)
    throw new Error(
      `${what}: ${runs.length}/${expected} runs read back, ${bad.length} not succeeded (${bad
        .slice(0, 3)
        .map((run) => `${run.id}: ${run.state}`)
        .join(", ")})`,
    );
}

/** Ratios of each system's headline to the limit, the best peer and the floor. */
function ratios(
  results: Record<string, SystemResult>,
  metric: string,
  higherIsBetter: boolean,
  limit: number | undefined,
): WorkloadResult["ratios"] {
  const value = (name: string) => results[name]?.metrics[metric]?.median ?? Number.NaN;
  const peerValues = PEERS.map(value).filter(Number.isFinite);
  const bestPeer =
    peerValues.length === 0
      ? Number.NaN
      : higherIsBetter
        ? Math.max(...peerValues)
        : Math.min(...peerValues);
  const floor = value("floor");
  const out: WorkloadResult["ratios"] = {};
  for (const name of Object.keys(results)) {
    const v = value(name);
    if (!Number.isFinite(v)) continue;
    // value ÷ reference, whichever way is better: read it with the headline's direction.
    const ratio = (reference: number) =>
      Number.isFinite(reference) && reference !== 0 ? v / reference : undefined;
    const entry: { toLimit?: number; toBestPeer?: number; toFloor?: number } = {};
    const toLimit = limit === undefined ? undefined : ratio(limit);
    const toBestPeer = ratio(bestPeer);
    const toFloor = ratio(floor);
    if (toLimit !== undefined) entry.toLimit = toLimit;
    if (toBestPeer !== undefined) entry.toBestPeer = toBestPeer;
    if (toFloor !== undefined) entry.toFloor = toFloor;
    out[name] = entry;
  }
  return out;
}

/** Sizes for the full and the quick run. */
function sizes(quick: boolean) {
  return quick
    ? {
        pickupReps: 1,
        headlineReps: 1,
        burstReps: 1,
        retryReps: 1,
        fanOutReps: 1,
        logReps: 1,
        sandboxReps: 1,
        pickupRuns: 15,
        headlineRuns: 40,
        burstRuns: 40,
        retryRuns: 16,
        fanOutItems: 60,
        fanOutWorkers: [1, 2],
        logRuns: 2,
        logLines: 1000,
        logSubscribers: 4,
        pausedRuns: 60,
        pausedIdleSeconds: 3,
        sandboxRuns: 6,
        containerRuns: 1,
        warmup: 5,
      }
    : {
        pickupReps: 2,
        headlineReps: 3,
        burstReps: 1,
        retryReps: 1,
        fanOutReps: 2,
        logReps: 2,
        sandboxReps: 2,
        pickupRuns: 200,
        headlineRuns: 1000,
        burstRuns: 1000,
        retryRuns: 200,
        fanOutItems: 500,
        fanOutWorkers: [1, 2, 4],
        logRuns: 20,
        logLines: 10_486,
        logSubscribers: 50,
        pausedRuns: 10_000,
        pausedIdleSeconds: 20,
        sandboxRuns: 200,
        containerRuns: 10,
        warmup: 30,
      };
}

export type Sizes = ReturnType<typeof sizes>;

export function benchSizes(quick: boolean): Sizes {
  return sizes(quick);
}

// ---------------------------------------------------------------------------------------------
// 1. pickup latency

export async function pickupLatency(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const request: RunRequest = { steps: [["/bin/true"]], maxAttempts: 3 };
  const results: Record<string, SystemResult> = {};
  for (const name of pick(context, ["packrun", ...PEERS])) {
    const target = system(context, name);
    results[name] = await withSystem(target, { workers: 1, concurrency: 8 }, async () => {
      await target.closedLoop(size.warmup, 1, request);
      return repetitions(target, size.pickupReps, async () => {
        const { value: ids, usage } = await metered(context.wal, target, async () => {
          const ids: string[] = [];
          for (let i = 0; i < size.pickupRuns; i++) {
            ids.push(...(await target.closedLoop(1, 1, request)));
            await sleep(5); // into an idle system: nothing of the previous run is in flight
          }
          return ids;
        });
        const runs = await target.results(ids);
        assertSucceeded(runs, size.pickupRuns, "pickup");
        const pickup = runs.map((run) => (run.steps[0]?.startedMs ?? Number.NaN) - run.submittedMs);
        return {
          runs: runs.length,
          usage,
          metrics: {
            pickupP50Ms: quantile(pickup, 0.5),
            pickupP99Ms: quantile(pickup, 0.99),
            // The submission call itself (store + queue), and from its return to the step start.
            submitCallP50Ms: quantile(
              runs.map((run) => (run.acceptedMs ?? run.submittedMs) - run.submittedMs),
              0.5,
            ),
            acceptedToStartP50Ms: quantile(
              runs.map(
                (run) =>
                  (run.steps[0]?.startedMs ?? Number.NaN) - (run.acceptedMs ?? run.submittedMs),
              ),
              0.5,
            ),
            runLatencyP50Ms: quantile(runLatencies(runs), 0.5),
          },
        };
      });
    });
  }
  return {
    id: "1-pickup",
    title: "Pickup latency",
    measures: `${size.pickupRuns} sequential single-step runs into an idle system: submit → step start (the step's recorded start), p50/p99`,
    params: { runs: size.pickupRuns, steps: 1 },
    headline: { metric: "pickupP50Ms", unit: "ms", higherIsBetter: false },
    systems: results,
    ratios: ratios(results, "pickupP50Ms", false, context.limits.redisPingMs.p50),
    limit: { value: context.limits.redisPingMs.p50, what: "Redis PING round trip p50 (ms)" },
    checks: [],
    notes: [],
    durationSeconds: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// 2. headline

export async function headline(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const spawn1 = spawnAt(context.limits.spawn, 1).latencyMs.p50;
  const spawn8 = spawnAt(context.limits.spawn, 8).perSecond;
  const results: Record<string, SystemResult> = {};
  for (const name of pick(context, ["floor", ...PEERS, "packrun"])) {
    const target = system(context, name);
    results[name] = await withSystem(target, { workers: 1, concurrency: 8 }, async () => {
      await target.closedLoop(size.warmup, 8, TRUE_RUN);
      return repetitions(target, size.headlineReps, async () => {
        const { value: ids, usage } = await metered(context.wal, target, () =>
          target.closedLoop(size.headlineRuns, 8, TRUE_RUN),
        );
        const runs = await target.results(ids);
        assertSucceeded(runs, size.headlineRuns, "headline");
        const first = Math.min(...runs.map((run) => run.submittedMs));
        const last = Math.max(...runs.map((run) => run.finishedMs));
        const latencies = runLatencies(runs);
        // Per step: the run's latency shared over its steps, minus one bare spawn.
        const overhead = latencies.map((latency) => latency / 3 - spawn1);
        const gaps = runs.flatMap((run) =>
          run.steps
            .slice(1)
            .map((step, i) => step.startedMs - (run.steps[i]?.finishedMs ?? Number.NaN)),
        );
        const inStep = runs.flatMap((run) =>
          run.steps.map((step) => step.finishedMs - step.startedMs - spawn1),
        );
        return {
          runs: runs.length,
          usage,
          metrics: {
            runsPerSecond: runs.length / ((last - first) / 1000),
            runLatencyP50Ms: quantile(latencies, 0.5),
            runLatencyP99Ms: quantile(latencies, 0.99),
            overheadPerStepP50Ms: quantile(overhead, 0.5),
            betweenStepsP50Ms: quantile(gaps, 0.5),
            inStepOverheadP50Ms: quantile(inStep, 0.5),
            // How long after the recorded finish the waiting client heard of it (floor: 0).
            noticeLagP50Ms: quantile(
              runs.map((run) => (run.noticedMs ?? run.finishedMs) - run.finishedMs),
              0.5,
            ),
          },
        };
      });
    });
  }
  const limit = spawn8 / 3;
  return {
    id: "2-headline",
    title: "Headline: 3 sequential `true` steps per run, concurrency 8",
    measures: `${size.headlineRuns} runs × 3 sequential /bin/true steps, retries configured (maxAttempts 3, not triggered), 8 runs in flight and 8 step slots per system: runs/s, run latency (submit → run finished as recorded), dispatch overhead per step (run latency / 3 − bare spawn p50 at concurrency 1), CPU per run`,
    params: { runs: size.headlineRuns, steps: 3, inFlight: 8, slots: 8, bareSpawnMs: spawn1 },
    headline: { metric: "runsPerSecond", unit: "runs/s", higherIsBetter: true },
    systems: results,
    ratios: ratios(results, "runsPerSecond", true, limit),
    limit: { value: limit, what: "bare spawns/s at concurrency 8 ÷ 3 steps (runs/s)" },
    checks: [],
    notes: [],
    durationSeconds: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// 3. burst

/** Spearman rank correlation of two equally long series. */
function spearman(a: number[], b: number[]): number {
  const rank = (values: number[]) => {
    const order = values.map((v, i) => [v, i] as const).sort((x, y) => x[0] - y[0]);
    const ranks = new Array<number>(values.length);
    order.forEach(([, i], r) => {
      ranks[i] = r;
    });
    return ranks;
  };
  const ra = rank(a);
  const rb = rank(b);
  const n = a.length;
  let d2 = 0;
  for (let i = 0; i < n; i++) d2 += ((ra[i] ?? 0) - (rb[i] ?? 0)) ** 2;
  return n < 2 ? 1 : 1 - (6 * d2) / (n * (n * n - 1));
}

export async function burst(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const spawn8 = spawnAt(context.limits.spawn, 8).perSecond;
  const results: Record<string, SystemResult> = {};
  const timeoutMs = size.burstRuns * 1000;
  for (const name of pick(context, ["floor", ...PEERS, "packrun"])) {
    const target = system(context, name);
    results[name] = await withSystem(target, { workers: 1, concurrency: 8 }, async () => {
      await target.burst(size.warmup, 32, TRUE_RUN, timeoutMs);
      return repetitions(target, size.burstReps, async () => {
        const { value: ids, usage } = await metered(context.wal, target, () =>
          target.burst(size.burstRuns, 32, TRUE_RUN, timeoutMs),
        );
        const runs = await target.results(ids);
        assertSucceeded(runs, size.burstRuns, "burst");
        const order = new Map(ids.map((id, i) => [id, i]));
        runs.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
        const first = Math.min(...runs.map((run) => run.submittedMs));
        const last = Math.max(...runs.map((run) => run.finishedMs));
        const makespan = (last - first) / 1000;
        const wait = runs.map((run) => (run.steps[0]?.startedMs ?? Number.NaN) - run.submittedMs);
        const span = runs.map((run) => run.finishedMs - (run.steps[0]?.startedMs ?? Number.NaN));
        return {
          runs: runs.length,
          usage,
          metrics: {
            makespanSeconds: makespan,
            runsPerSecond: runs.length / makespan,
            makespanVsSpawnIdeal: makespan / ((runs.length * 3) / spawn8),
            queueWaitP50Ms: quantile(wait, 0.5),
            queueWaitP99Ms: quantile(wait, 0.99),
            runSpanP50Ms: quantile(span, 0.5),
            runSpanP99Ms: quantile(span, 0.99),
            fifoCorrelation: spearman(
              runs.map((_, i) => i),
              runs.map((run) => run.finishedMs),
            ),
          },
        };
      });
    });
  }
  // The ideal makespan is the floor's: the same runs and commits with nothing in between.
  const floorMakespan = results.floor?.metrics.makespanSeconds?.median;
  for (const result of Object.values(results)) {
    const makespans = result.metrics.makespanSeconds?.values;
    if (floorMakespan !== undefined && makespans !== undefined)
      result.metrics.makespanVsIdeal = repeated(makespans.map((value) => value / floorMakespan));
  }
  const idealSpawn = (size.burstRuns * 3) / spawn8;
  return {
    id: "3-burst",
    title: "Burst: runs submitted at once",
    measures: `${size.burstRuns} runs × 3 /bin/true steps submitted at once (32 submissions in flight), 8 step slots: makespan (first submit → last run finished) against the ideal (the floor runner's makespan for the same burst) and against bare spawns; queue wait (submit → first step start) p50/p99; fairness: run span (first step start → run end) and the rank correlation of submission order with completion order (1 = FIFO)`,
    params: {
      runs: size.burstRuns,
      steps: 3,
      submitters: 32,
      slots: 8,
      spawnIdealSeconds: idealSpawn,
    },
    headline: { metric: "makespanSeconds", unit: "s", higherIsBetter: false },
    systems: results,
    ratios: ratios(results, "makespanSeconds", false, idealSpawn),
    limit: { value: idealSpawn, what: "runs × 3 ÷ bare spawns/s at concurrency 8 (s)" },
    checks: [],
    notes: [],
    durationSeconds: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// 4. retry storm

/** Deterministic pseudo-random numbers (mulberry32), the same for every system. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** $1 = 1: fail the first attempt (marker file $2.failed); every success appends to $2.ok. */
const FLAKY_SCRIPT =
  '[ "$1" = 1 ] && [ ! -e "$2.failed" ] && { : > "$2.failed"; exit 1; }; echo ok >> "$2.ok"';

export async function retryStorm(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const results: Record<string, SystemResult> = {};
  const checks: Check[] = [];
  const dir = path.join(context.scratch, "retry-storm");
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o1777); // written by packrun's unprivileged step user too
  for (const name of pick(context, ["packrun", ...PEERS])) {
    const target = system(context, name);
    results[name] = await withSystem(target, { workers: 1, concurrency: 8 }, async () => {
      const requests = (tag: string, share: number): RequestFor => {
        const next = random(7);
        const flags = Array.from({ length: size.retryRuns * 3 }, () =>
          next() < share ? "1" : "0",
        );
        return (i) => ({
          steps: [0, 1, 2].map((s) => [
            "/bin/sh",
            "-c",
            FLAKY_SCRIPT,
            "sh",
            flags[i * 3 + s] ?? "0",
            path.join(dir, `${name}-${tag}-${i}-${s}`),
          ]),
          maxAttempts: 3,
        });
      };
      await target.closedLoop(size.warmup, 8, requests("warm", 0));
      return repetitions(target, size.retryReps, async (rep) => {
        const baselineIds = await target.closedLoop(size.retryRuns, 8, requests(`base${rep}`, 0));
        const baseline = await target.results(baselineIds);
        assertSucceeded(baseline, size.retryRuns, "retry storm baseline");
        const tag = `storm${rep}`;
        const stormRequests = requests(tag, 0.3);
        const { value: ids, usage } = await metered(context.wal, target, () =>
          target.closedLoop(size.retryRuns, 8, stormRequests),
        );
        const runs = await target.results(ids);
        assertSucceeded(runs, size.retryRuns, "retry storm");
        // Hard check: every step succeeded exactly once, by its own record and by the system's.
        let duplicates = 0;
        let missing = 0;
        let recordedDuplicates = 0;
        const histogram: Record<string, number> = {};
        for (let i = 0; i < size.retryRuns; i++) {
          for (let s = 0; s < 3; s++) {
            const lines = await readFile(
              path.join(dir, `${name}-${tag}-${i}-${s}.ok`),
              "utf8",
            ).then(
              (text) => text.split("\n").filter(Boolean).length,
              () => 0,
            );
            if (lines > 1) duplicates++;
            if (lines === 0) missing++;
          }
        }
        for (const run of runs) {
          for (const step of run.steps) {
            histogram[step.attempts] = (histogram[step.attempts] ?? 0) + 1;
            if (step.successes > 1) recordedDuplicates++;
          }
        }
        checks.push({
          name: `${name} rep ${rep + 1}: zero duplicate successes`,
          ok: duplicates === 0 && recordedDuplicates === 0 && missing === 0,
          detail: `${duplicates} steps ran to success more than once, ${recordedDuplicates} recorded more than one successful attempt, ${missing} never succeeded`,
        });
        const base = quantile(runLatencies(baseline), 0.5);
        const storm = runLatencies(runs);
        return {
          runs: runs.length,
          usage,
          extra: { attemptsHistogram: histogram },
          metrics: {
            runLatencyP50Ms: quantile(storm, 0.5),
            runLatencyP99Ms: quantile(storm, 0.99),
            baselineP50Ms: base,
            extraLatencyP50Ms: quantile(storm, 0.5) - base,
            retriedSteps: Object.entries(histogram)
              .filter(([attempts]) => Number(attempts) > 1)
              .reduce((sum, [, n]) => sum + n, 0),
            duplicateSuccesses: duplicates + recordedDuplicates,
          },
        };
      });
    });
  }
  return {
    id: "4-retry-storm",
    title: "Retry storm: 30% of steps fail once",
    measures: `${size.retryRuns} runs × 3 steps (/bin/sh scripts), 8 in flight; a fixed pseudo-random 30% of steps fail their first attempt (maxAttempts 3, no backoff where configurable). Extra latency = run latency p50 minus that of the same runs with no failures; attempts histogram; hard check: no step succeeds twice (the step's own success log and the system's attempt records)`,
    params: { runs: size.retryRuns, failShare: 0.3, maxAttempts: 3 },
    headline: { metric: "runLatencyP50Ms", unit: "ms", higherIsBetter: false },
    systems: results,
    ratios: ratios(results, "runLatencyP50Ms", false, undefined),
    checks,
    notes: [
      "graphile-worker's retry delay is not configurable: a failed job runs again after exp(attempts) seconds (≈2.7 s after the first failure), which dominates its extra latency.",
    ],
    durationSeconds: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// 5. fan-out

export async function fanOut(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const results: Record<string, SystemResult> = {};
  const perProcess = 4;
  const timeoutMs = size.fanOutItems * 200 + 60_000;
  for (const name of pick(context, ["floor", ...PEERS, "packrun"])) {
    const target = system(context, name);
    for (const workers of size.fanOutWorkers) {
      // The floor has no workers to spread over: one process with as many slots.
      const key = `${name}×${workers}`;
      const options = {
        workers,
        concurrency: name === "floor" ? perProcess * workers : perProcess,
      };
      results[key] = await withSystem(target, options, async () => {
        await target.fanOut(
          {
            items: Math.min(50, size.fanOutItems),
            argv: ["/bin/true"],
            concurrency: options.concurrency,
          },
          timeoutMs,
        );
        return repetitions(target, size.fanOutReps, async () => {
          const { value: id, usage } = await metered(context.wal, target, () =>
            target.fanOut(
              { items: size.fanOutItems, argv: ["/bin/true"], concurrency: options.concurrency },
              timeoutMs,
            ),
          );
          const [run] = await target.results([id]);
          if (!run) throw new Error("fan-out run not found");
          assertSucceeded([run], 1, "fan-out");
          if (run.steps.length !== size.fanOutItems)
            throw new Error(
              `fan-out: ${run.steps.length} item steps read back, expected ${size.fanOutItems}`,
            );
          const makespan = (run.finishedMs - run.submittedMs) / 1000;
          const pickup = Math.min(...run.steps.map((step) => step.startedMs)) - run.submittedMs;
          return {
            runs: size.fanOutItems,
            usage,
            metrics: {
              itemsPerSecond: size.fanOutItems / makespan,
              makespanSeconds: makespan,
              firstItemStartMs: pickup,
            },
          };
        });
      });
    }
  }
  for (const name of ["floor", ...PEERS, "packrun"]) {
    const one = results[`${name}×1`]?.metrics.itemsPerSecond?.median;
    for (const workers of size.fanOutWorkers) {
      const result = results[`${name}×${workers}`];
      const rate = result?.metrics.itemsPerSecond;
      if (result && rate && one) result.metrics.scaling = repeated(rate.values.map((v) => v / one));
    }
  }
  const spawn8 = spawnAt(context.limits.spawn, 8).perSecond;
  const out: WorkloadResult = {
    id: "5-fan-out",
    title: `Fan-out: one run mapping ${size.fanOutItems} items`,
    measures: `one run whose map has ${size.fanOutItems} /bin/true items, over ${size.fanOutWorkers.join(", ")} worker processes of ${perProcess} slots each (the floor: one process with as many slots): items/s, makespan, scaling against one process; CPU per item`,
    params: {
      items: size.fanOutItems,
      workerProcesses: size.fanOutWorkers,
      slotsPerProcess: perProcess,
    },
    headline: { metric: "itemsPerSecond", unit: "items/s", higherIsBetter: true },
    systems: results,
    ratios: {},
    limit: { value: spawn8, what: "bare spawns/s at concurrency 8" },
    checks: [],
    notes: ["CPU and memory are per item (cpuMsPerRun counts items)."],
    durationSeconds: 0,
  };
  // Ratios within the same worker count.
  for (const workers of size.fanOutWorkers) {
    const subset: Record<string, SystemResult> = {};
    for (const name of ["floor", ...PEERS, "packrun"]) {
      const result = results[`${name}×${workers}`];
      if (result) subset[name] = result;
    }
    for (const [name, ratio] of Object.entries(ratios(subset, "itemsPerSecond", true, spawn8)))
      out.ratios[`${name}×${workers}`] = ratio;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 6. log streaming

const TERMINAL_EVENTS = new Set(["run.succeeded", "run.failed", "run.cancelled"]);

/** One event of a run's log stream, from either transport. */
interface StreamedEvent {
  sequence: number;
  timeMs: number;
  type: string;
  message: string;
}

/**
 * Follows a run's log through the gateway's SSE endpoint (`GET /api/runs/{id}/logs`) until
 * `handle` says the run ended (true) or the stream closed (false).
 */
async function followSse(
  url: string,
  token: string,
  handle: (event: StreamedEvent) => boolean,
): Promise<boolean> {
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    signal: AbortSignal.timeout(600_000),
  });
  if (!response.ok || !response.body)
    throw new Error(`GET ${url}: ${response.status} ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true }).replaceAll("\r\n", "\n");
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (name === "end") return false;
      if (name !== "run-event" || data.length === 0) continue;
      const event = JSON.parse(data.join("\n")) as {
        sequence: number;
        time: string;
        type: string;
        message?: string;
      };
      const done = handle({
        sequence: event.sequence,
        timeMs: Date.parse(event.time),
        type: event.type,
        message: event.message ?? "",
      });
      if (done) {
        await response.body.cancel().catch(() => {});
        return true;
      }
    }
  }
  return false;
}

/** Follows a run's log through the evidence service's SubscribeEvents stream. */
async function followGrpc(
  evidence: NonNullable<PackrunSystem["evidence"]>,
  tenant: string,
  runId: string,
  handle: (event: StreamedEvent) => boolean,
): Promise<boolean> {
  let after = 0n;
  const deadline = Date.now() + 600_000;
  // The evidence service knows a run once the executor shipped its first event.
  for (;;) {
    try {
      for await (const message of evidence.subscribeEvents(
        { tenant, runId, afterSequence: after },
        { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) },
      )) {
        const event = message.event;
        if (!event) continue;
        after = event.sequence;
        const done = handle({
          sequence: Number(event.sequence),
          timeMs: event.time ? timestampMs(event.time) : Number.NaN,
          type: event.type,
          message: event.message,
        });
        if (done) return true;
      }
      return false;
    } catch (error) {
      if (!(error instanceof ConnectError && error.code === Code.NotFound)) throw error;
      if (Date.now() > deadline) throw error;
      await sleep(20);
    }
  }
}

export async function logStreaming(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const packrun = context.systems.packrun;
  const checks: Check[] = [];
  const notes: string[] = [];
  const lineBytes = 100;
  const request = (): RunRequest => ({
    steps: [["/usr/bin/seq", "-f", `%0${lineBytes - 1}.0f`, "1", String(size.logLines)]],
    maxAttempts: 1,
  });
  const body = async () => {
    const evidence = packrun.evidence;
    if (!evidence) throw new Error("no evidence client");
    return repetitions(packrun, size.logReps, async (rep) => {
      const latencies: number[] = [];
      let drops = 0;
      let reorders = 0;
      let gaps = 0;
      let received = 0;
      const { value, usage } = await metered(context.wal, packrun, async () => {
        const ids = await mapLimit(Array.from({ length: size.logRuns }), 8, () =>
          packrun.submit(request(), "logs"),
        );
        const subscribers = Array.from({ length: size.logSubscribers }, async (_, n) => {
          const runId = ids[n % ids.length] ?? "";
          let expected = 1;
          let lastSequence = 0;
          /** Checks one event; true once the run's end arrived. */
          const handle = (event: StreamedEvent): boolean => {
            if (event.sequence !== lastSequence + 1) gaps++;
            lastSequence = event.sequence;
            if (event.type === "log.stdout") {
              received++;
              latencies.push(nowMs() - event.timeMs);
              const line = Number.parseInt(event.message, 10);
              if (line !== expected) {
                if (line > expected) drops += line - expected;
                else reorders++;
              }
              expected = Math.max(expected, line + 1);
            }
            if (!TERMINAL_EVENTS.has(event.type)) return false;
            if (expected !== size.logLines + 1) drops += size.logLines + 1 - expected;
            return true;
          };
          const ended = packrun.gatewayUrl
            ? await followSse(
                `${packrun.gatewayUrl}/api/runs/${runId}/logs`,
                packrun.gatewayToken,
                handle,
              )
            : await followGrpc(evidence, packrun.tenant, runId, handle);
          if (!ended) throw new Error(`the log stream of run ${runId} ended before the run did`);
        });
        const started = nowMs();
        await Promise.all(subscribers);
        return { ids, seconds: (nowMs() - started) / 1000 };
      });
      const runs = await packrun.results(value.ids);
      assertSucceeded(runs, size.logRuns, "log streaming");
      checks.push({
        name: `log streaming rep ${rep + 1}: zero drops, gaps or reorders`,
        ok: drops === 0 && reorders === 0 && gaps === 0,
        detail: `${drops} lines missing, ${reorders} out of order, ${gaps} sequence gaps over ${received} lines received by ${size.logSubscribers} subscribers`,
      });
      const first = Math.min(...runs.map((run) => run.submittedMs));
      const last = Math.max(...runs.map((run) => run.finishedMs));
      return {
        runs: runs.length,
        usage,
        metrics: {
          linesPerSecondProduced: (size.logRuns * size.logLines) / ((last - first) / 1000),
          linesPerSecondDelivered: received / value.seconds,
          lineLatencyP50Ms: quantile(latencies, 0.5),
          lineLatencyP99Ms: quantile(latencies, 0.99),
          drops,
          reorders,
        },
      };
    });
  };
  // Subscribers read the gateway's SSE endpoint, as a REST client would; should the gateway not
  // start, the evidence service's SubscribeEvents stream (what the gateway serves) stands in.
  packrun.withGateway = true;
  let result: SystemResult;
  try {
    result = await withSystem(packrun, { workers: 1, concurrency: 8 }, body);
  } finally {
    packrun.withGateway = false;
  }
  if (result.error?.includes("gateway")) {
    notes.push(
      `the gateway did not start (${result.error.split("\n")[0]}); subscribers used the evidence service's SubscribeEvents gRPC stream instead`,
    );
    result = await withSystem(packrun, { workers: 1, concurrency: 8 }, body);
  } else {
    notes.push(
      "subscribers: SSE from the gateway (`GET /api/runs/{id}/logs`, bearer token), which reads the evidence service's SubscribeEvents stream",
    );
  }
  return {
    id: "6-log-streaming",
    title: "Log streaming with live subscribers",
    measures: `${size.logRuns} runs, one step printing ${size.logLines} lines of ${lineBytes} bytes (${((size.logLines * lineBytes) / 1e6).toFixed(2)} MB), ${size.logSubscribers} live subscribers spread over the runs from submission on: lines/s, line latency (event time → received), zero drops or reorders, memory of the services`,
    params: {
      runs: size.logRuns,
      linesPerStep: size.logLines,
      lineBytes,
      subscribers: size.logSubscribers,
    },
    headline: { metric: "lineLatencyP99Ms", unit: "ms", higherIsBetter: false },
    systems: { packrun: result },
    ratios: {},
    checks,
    notes: [
      ...notes,
      "Peers: BullMQ and graphile-worker have no live log streaming to compare with.",
    ],
    durationSeconds: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// 7. paused runs

export async function pausedRuns(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const packrun = context.systems.packrun;
  const manifest = `apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: paused, version: 1.0.0}\nspec:\n  approvals: [{id: go}]\n  steps:\n    - id: gate\n      gate: {approval: {id: go, message: wait}}\n    - id: after\n      run: {uses: builtin:shell, with: {argv: ["/bin/true"]}}\n`;
  const idle = async () => {
    const meter = new Meter(packrun.components(), packrun.memoryComponents());
    meter.start();
    await sleep(size.pausedIdleSeconds * 1000);
    return meter.stop();
  };
  const rss = () => {
    const components = packrun.components();
    const out: Record<string, number> = {};
    for (const name of packrun.memoryComponents())
      out[name] = (components[name] ?? []).reduce((sum, pid) => sum + rssMiB(pid), 0);
    return out;
  };
  const result = await withSystem(packrun, { workers: 1, concurrency: 8 }, async () => {
    await packrun.reset();
    await packrun.closedLoop(size.warmup, 8, TRUE_RUN);
    const before = await idle();
    const rssBefore = rss();
    const submitStarted = nowMs();
    const { value: ids, usage: submitUsage } = await metered(context.wal, packrun, () =>
      mapLimit(Array.from({ length: size.pausedRuns }), 16, () =>
        packrun.submit({ steps: [], maxAttempts: 1, manifest }),
      ),
    );
    const submitSeconds = (nowMs() - submitStarted) / 1000;
    await packrun.waitIdle(600_000);
    const sample = await packrun.getRun(ids[ids.length - 1] ?? "");
    if (sample.state !== RunState.AWAITING_APPROVAL)
      throw new Error(`paused run is ${RunState[sample.state]}, expected AWAITING_APPROVAL`);
    await sleep(1000);
    const after = await idle();
    const rssAfter = rss();
    const cpuPercent = (usage: Usage) => {
      const out: Record<string, number> = {};
      for (const [name, seconds] of Object.entries(usage.cpuSeconds))
        out[name] = (100 * seconds) / usage.wallSeconds;
      return out;
    };
    const metrics: Record<string, Repeated> = {
      workerRssDeltaMiB: repeated([(rssAfter.worker ?? 0) - (rssBefore.worker ?? 0)]),
      workerCpuPercentIdle: repeated([cpuPercent(after).worker ?? 0]),
      workerCpuPercentBefore: repeated([cpuPercent(before).worker ?? 0]),
      totalCpuPercentIdle: repeated([cpuPercent(after).total ?? 0]),
      totalCpuPercentBefore: repeated([cpuPercent(before).total ?? 0]),
      submitsPerSecond: repeated([size.pausedRuns / submitSeconds]),
    };
    return {
      metrics,
      cpuMsPerRun: Object.fromEntries(
        Object.entries(submitUsage.cpuSeconds).map(([name, s]) => [
          name,
          (s * 1000) / size.pausedRuns,
        ]),
      ),
      peakRssMiB: submitUsage.peakRssMiB,
      extra: {
        rssBeforeMiB: rssBefore,
        rssAfterMiB: rssAfter,
        cpuPercentIdleBefore: cpuPercent(before),
        cpuPercentIdleAfter: cpuPercent(after),
      },
    };
  });
  return {
    id: "7-paused-runs",
    title: "Paused runs at an approval gate",
    measures: `${size.pausedRuns} runs waiting at an approval gate: RSS of each service before and after, CPU while idle (${size.pausedIdleSeconds} s windows) before and after; CPU per run is the cost of submitting one`,
    params: { runs: size.pausedRuns, idleSeconds: size.pausedIdleSeconds },
    headline: { metric: "workerRssDeltaMiB", unit: "MiB", higherIsBetter: false },
    systems: { packrun: result },
    ratios: {},
    checks: [],
    notes: [
      "Peers have no approval gates; a BullMQ or graphile-worker user would keep a paused run as a row (or a delayed job) and hold nothing in workers either.",
    ],
    durationSeconds: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// 8. sandbox cost

/** podman's default rlimits exceed a worker's hard limits; ask for what the executor asks for. */
async function podmanUlimits(): Promise<string[]> {
  const text = await readFile("/proc/self/limits", "utf8").catch(() => "");
  const hard = (label: string, cap: number) => {
    const value = text
      .split("\n")
      .find((line) => line.startsWith(label))
      ?.slice(label.length)
      .trim()
      .split(/\s+/)[1];
    return value === undefined || value === "unlimited" ? cap : Math.min(Number(value), cap);
  };
  const nofile = hard("Max open files", 65_536);
  const nproc = hard("Max processes", 4_096);
  return ["--ulimit", `nofile=${nofile}:${nofile}`, "--ulimit", `nproc=${nproc}:${nproc}`];
}

/** `podman run` of the busybox image, spawned bare: the container runtime's own floor. */
function bareContainer(image: string, ulimits: string[]): string[] {
  return [
    "podman",
    "--runtime",
    "runc",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "file",
    "run",
    "--rm",
    "--network",
    "none",
    ...ulimits,
    "--log-driver",
    "none",
    "--pull",
    "never",
    image,
    "/bin/true",
  ];
}

/** The sandbox mode a runtime of workload 8 stands for (process = an open step). */
const ISOLATION: Record<string, "open" | "sealed"> = { process: "open", sandbox: "sealed" };

/** The floors of workload 8 per runtime: what one step costs with nothing of packrun around it. */
interface StepFloor {
  /** Steps per second at concurrency 8. */
  perSecond: number;
  /** Latency of one step at concurrency 1 (ms). */
  p50: number;
  /** CPU of the whole process tree per step, at concurrency 1 and 8 (ms). */
  cpuMsPerStep: number;
  cpuMsPerStepAt8: number;
  what: string;
}

async function stepFloors(
  context: BenchContext,
  size: Sizes,
  image: string | undefined,
  notes: string[],
): Promise<Record<string, StepFloor>> {
  const floors: Record<string, StepFloor> = {};
  const count = Math.max(30, size.sandboxRuns);
  for (const [runtime, mode] of Object.entries(ISOLATION)) {
    try {
      const root = path.join(context.scratch, `runtime-alone-${mode}`);
      const at1 = await measureRuntimeAlone(mode, Math.ceil(count / 2), 1, `${root}-1`);
      const at8 = await measureRuntimeAlone(mode, count, 8, `${root}-8`);
      floors[runtime] = {
        perSecond: at8.stepsPerSecond,
        p50: at1.latencyMs.p50,
        cpuMsPerStep: at1.cpuMsPerStep,
        cpuMsPerStepAt8: at8.cpuMsPerStep,
        what: `the executor's step runtime alone (${mode} step)`,
      };
    } catch (error) {
      notes.push(`${runtime}: the runtime alone failed (${String(error).split("\n")[0]})`);
    }
  }
  if (image) {
    try {
      const argv = bareContainer(image, await podmanUlimits());
      const measured = await measureSpawn(
        context.limits.workerRssMiB,
        [1, 8],
        Math.max(2, size.containerRuns * 3),
        argv,
      );
      floors.container = {
        perSecond: spawnAt(measured, 8).perSecond,
        p50: spawnAt(measured, 1).latencyMs.p50,
        cpuMsPerStep: spawnAt(measured, 1).cpuMsPerSpawn,
        cpuMsPerStepAt8: spawnAt(measured, 8).cpuMsPerSpawn,
        what: "podman run spawned bare",
      };
    } catch (error) {
      notes.push(`container: the bare podman run failed (${String(error).split("\n")[0]})`);
    }
  }
  return floors;
}

const SANDBOX_MANIFESTS = (image: string | undefined): Record<string, string> => {
  const steps = (run: string) =>
    [0, 1, 2].map((i) => `    - id: s${i}\n      run: ${run}\n`).join("");
  const shell = `{uses: builtin:shell, with: {argv: ["/bin/true"]}}`;
  const head = (name: string, sandbox: string) =>
    `apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: ${name}, version: 1.0.0}\nspec:\n${sandbox}  failure: {retries: {maxAttempts: 3}}\n  steps:\n`;
  return {
    process: `${head("rt-process", "")}${steps(shell)}`,
    sandbox: `${head("rt-sandbox", "  sandbox: {mode: sealed}\n")}${steps(shell)}`,
    container: `${head("rt-container", "  sandbox: {mode: sealed}\n")}${steps(`{uses: builtin:container, with: {image: "${image ?? ""}", command: ["/bin/true"]}}`)}`,
  };
};

/** Closed-loop runs of `request` on `target`, as in workload 2, with step wall times. */
async function sandboxRuns(
  context: BenchContext,
  target: System,
  options: StartOptions,
  request: RunRequest,
  count: number,
  reps: number,
  floor: StepFloor | undefined,
  label: string,
): Promise<SystemResult> {
  return withSystem(target, options, async () => {
    await target.closedLoop(Math.min(8, count), 8, request);
    return repetitions(target, reps, async () => {
      const { value: ids, usage } = await metered(context.wal, target, () =>
        target.closedLoop(count, 8, request),
      );
      const runs = await target.results(ids);
      assertSucceeded(runs, count, label);
      const first = Math.min(...runs.map((run) => run.submittedMs));
      const last = Math.max(...runs.map((run) => run.finishedMs));
      const stepWall = runs.flatMap((run) =>
        run.steps.map((step) => step.finishedMs - step.startedMs),
      );
      const stepsPerSecond = (runs.length * 3) / ((last - first) / 1000);
      return {
        runs: runs.length,
        usage,
        metrics: {
          runsPerSecond: runs.length / ((last - first) / 1000),
          stepsPerSecond,
          stepWallP50Ms: quantile(stepWall, 0.5),
          floorStepP50Ms: floor?.p50 ?? Number.NaN,
          floorCpuMsPerRun: 3 * (floor?.cpuMsPerStepAt8 ?? Number.NaN),
          throughputVsFloor: stepsPerSecond / (floor?.perSecond ?? Number.NaN),
        },
      };
    });
  });
}

/**
 * Workload 8: workload 2 per runtime, against the floor of each runtime measured in the same
 * run (the executor's step runtime alone for process and sandbox steps, a bare `podman run` for
 * containers) and against BullMQ running its steps through that same runtime, so that both
 * sides pay the same isolation and the ratio is what packrun's orchestration costs.
 */
export async function sandboxCost(context: BenchContext, size: Sizes): Promise<WorkloadResult> {
  const packrun = context.systems.packrun;
  const notes: string[] = [];
  let image: string | undefined;
  try {
    const { ensureBusyboxImage } = await import("../../test/fixtures/images/busybox-image.ts");
    image = await ensureBusyboxImage();
  } catch (error) {
    notes.push(
      `container runtime not measured: the local test image could not be built (${String(error).split("\n")[0]})`,
    );
  }
  const floors = await stepFloors(context, size, image, notes);
  const manifests = SANDBOX_MANIFESTS(image);
  const results: Record<string, SystemResult> = {};
  const out: WorkloadResult["ratios"] = {};
  const peerWanted = pick(context, ["bullmq"]).length > 0;
  for (const runtime of Object.keys(floors)) {
    const count = runtime === "container" ? size.containerRuns : size.sandboxRuns;
    const floor = floors[runtime];
    const mode = ISOLATION[runtime];
    if (mode !== undefined && peerWanted)
      results[`bullmq/${runtime}`] = await sandboxRuns(
        context,
        context.systems.bullmq,
        { workers: 1, concurrency: 8, isolation: mode },
        TRUE_RUN,
        count,
        size.sandboxReps,
        floor,
        `sandbox cost (bullmq, ${runtime})`,
      );
    results[`packrun/${runtime}`] = await sandboxRuns(
      context,
      packrun,
      { workers: 1, concurrency: 8 },
      { steps: [], maxAttempts: 3, manifest: manifests[runtime] ?? "" },
      count,
      size.sandboxReps,
      floor,
      `sandbox cost (${runtime})`,
    );
    const ours = results[`packrun/${runtime}`]?.metrics.runsPerSecond?.median;
    const peer = results[`bullmq/${runtime}`]?.metrics.runsPerSecond?.median;
    const toFloor = results[`packrun/${runtime}`]?.metrics.throughputVsFloor?.median;
    out[`packrun/${runtime}`] = {
      ...(toFloor === undefined ? {} : { toLimit: toFloor }),
      ...(ours === undefined || peer === undefined ? {} : { toBestPeer: ours / peer }),
    };
    const peerToFloor = results[`bullmq/${runtime}`]?.metrics.throughputVsFloor?.median;
    if (peerToFloor !== undefined) out[`bullmq/${runtime}`] = { toLimit: peerToFloor };
  }
  return {
    id: "8-sandbox-cost",
    title: "Sandbox cost: workload 2 per runtime, with BullMQ paying the same isolation",
    measures:
      "workload 2 (3 × /bin/true per run, 8 in flight) with the process runtime (an open step: bubblewrap, cgroup, network namespace with slirp4netns and egress rules), the sandbox runtime (a sealed step: no network) and the container runtime (podman, busybox image, --network none); BullMQ with its steps run through the same step runtime (process and sandbox); the floor of each runtime: the executor's step runtime alone (executeStep of /bin/true from a small process, no queue, database or evidence) for process and sandbox, a bare podman run for containers",
    params: { runs: size.sandboxRuns, containerRuns: size.containerRuns, floors },
    headline: { metric: "throughputVsFloor", unit: "× floor", higherIsBetter: true },
    systems: results,
    ratios: out,
    checks: [],
    notes: [
      ...notes,
      ...Object.entries(floors).map(
        ([runtime, floor]) =>
          `floor of ${runtime} (${floor.what}): ${floor.perSecond.toFixed(1)} steps/s at concurrency 8, one step ${floor.p50.toFixed(1)} ms p50 alone, ${floor.cpuMsPerStep.toFixed(1)} CPU ms per step alone and ${floor.cpuMsPerStepAt8.toFixed(1)} at concurrency 8 (${(3 * floor.cpuMsPerStepAt8).toFixed(0)} per 3-step run)`,
      ),
      "ratios: ÷ limit = steps/s ÷ the runtime's floor at concurrency 8; ÷ best peer = packrun's runs/s ÷ BullMQ's with the same isolation.",
    ],
    durationSeconds: 0,
  };
}

/**
 * The workloads in the order they run: the paused runs (7) last, because the runs it leaves
 * waiting at a gate stay in packrun's database.
 */
export const WORKLOADS: readonly (readonly [
  string,
  (context: BenchContext, size: Sizes) => Promise<WorkloadResult>,
])[] = [
  ["1", pickupLatency],
  ["2", headline],
  ["3", burst],
  ["4", retryStorm],
  ["5", fanOut],
  ["6", logStreaming],
  ["8", sandboxCost],
  ["7", pausedRuns],
];
