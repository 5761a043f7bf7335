/**
 * The physical limits, measured in the same run as the systems: bare spawns per second from a
 * Node process as large as a worker, bare single-row PostgreSQL commits per second, the Redis
 * round trip.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { Redis } from "ioredis";
import pg from "pg";
import { Meter } from "./meter.ts";
import { type Distribution, distribution, nowMs } from "./util.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

export interface SpawnLimit {
  /** RSS the measuring process was inflated to (MiB). */
  rssMiB: number;
  argv: string[];
  results: {
    concurrency: number;
    perSecond: number;
    /** CPU of the spawning process and the spawned ones, per spawn. */
    cpuMsPerSpawn: number;
    latencyMs: { p50: number; p99: number };
  }[];
}

/** Spawns of `argv` per second at each concurrency, from a Node process of `rssMiB`. */
export function measureSpawn(
  rssMiB: number,
  concurrency: number[],
  count: number,
  argv: string[] = ["/bin/true"],
): Promise<SpawnLimit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bench/spawn-limit.ts")], {
      env: { ...process.env, BENCH_SPAWN: JSON.stringify({ rssMiB, concurrency, count, argv }) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    let result: SpawnLimit | undefined;
    createInterface({ input: child.stdout }).on("line", (line) => {
      const parsed = JSON.parse(line) as Omit<SpawnLimit, "argv">;
      result = { ...parsed, argv };
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0 && result) resolve(result);
      else reject(new Error(`spawn limit measurement failed (${code}): ${stderr}`));
    });
  });
}

/** The executor's step runtime alone (bench/runtime-alone.ts): the isolation floor of a step. */
export interface RuntimeAlone {
  mode: "open" | "sealed";
  concurrency: number;
  stepsPerSecond: number;
  latencyMs: { p50: number; p99: number };
  /** CPU of the whole runtime process tree (helper, sandbox, network, step) per step. */
  cpuMsPerStep: number;
}

/**
 * Runs `count` isolated `/bin/true` steps through the executor's runtime alone, `concurrency`
 * at a time, metering the child's whole process tree during the measured window only.
 */
export function measureRuntimeAlone(
  mode: "open" | "sealed",
  count: number,
  concurrency: number,
  workRoot: string,
): Promise<RuntimeAlone> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bench/runtime-alone.ts")], {
      env: {
        ...process.env,
        BENCH_RUNTIME: JSON.stringify({ mode, count, concurrency, workRoot }),
        PACKRUN_LOG_LEVEL: "warn",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const meter = new Meter({ runtime: [child.pid ?? 0] }, []);
    let result: RuntimeAlone | undefined;
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line === "ready") {
        meter.start();
        child.stdin.write("go\n");
        return;
      }
      const usage = meter.stop();
      const parsed = JSON.parse(line) as { seconds: number; latencyMs: RuntimeAlone["latencyMs"] };
      result = {
        mode,
        concurrency,
        stepsPerSecond: count / parsed.seconds,
        latencyMs: parsed.latencyMs,
        cpuMsPerStep: ((usage.cpuSeconds.runtime ?? 0) * 1000) / count,
      };
      child.stdin.end("done\n");
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0 && result) resolve(result);
      else reject(new Error(`runtime measurement (${mode}) failed (${code}): ${stderr}`));
    });
  });
}

export function spawnAt(limit: SpawnLimit, concurrency: number) {
  const found = limit.results.find((r) => r.concurrency === concurrency);
  if (!found) throw new Error(`no spawn measurement at concurrency ${concurrency}`);
  return found;
}

export interface CommitLimit {
  concurrency: number;
  perSecond: number;
  latencyMs: Distribution;
}

/** Single-row INSERT commits per second (autocommit), `concurrency` connections, `seconds` long. */
export async function measureCommits(
  databaseUrl: string,
  concurrency: number,
  seconds: number,
): Promise<CommitLimit> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: concurrency });
  try {
    await pool.query("CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, v int)");
    const latencies: number[] = [];
    const end = nowMs() + seconds * 1000;
    const started = nowMs();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (nowMs() < end) {
          const t0 = nowMs();
          await pool.query("INSERT INTO bench_commit (v) VALUES (1)");
          latencies.push(nowMs() - t0);
        }
      }),
    );
    return {
      concurrency,
      perSecond: latencies.length / ((nowMs() - started) / 1000),
      latencyMs: distribution(latencies),
    };
  } finally {
    await pool.end();
  }
}

/** Redis PING round trips, one at a time. */
export async function measureRedis(url: string, count: number): Promise<Distribution> {
  const redis = new Redis(url);
  try {
    for (let i = 0; i < 100; i++) await redis.ping();
    const latencies: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = nowMs();
      await redis.ping();
      latencies.push(nowMs() - t0);
    }
    return distribution(latencies);
  } finally {
    redis.disconnect();
  }
}

/** Durable writes between two WAL positions: commit records and WAL bytes (pg_walinspect). */
export interface WalWindow {
  commits: number;
  walBytes: number;
  /** The record types that wrote the most WAL (bytes include full-page images). */
  top: { type: string; count: number; bytes: number }[];
}

/** Reads WAL positions and counts the commit records between them (one system at a time). */
export class WalCounter {
  readonly #pool: pg.Pool;
  #ready: Promise<unknown> | undefined;

  constructor(adminUrl: string) {
    this.#pool = new pg.Pool({ connectionString: adminUrl, max: 1 });
  }

  async position(): Promise<string> {
    this.#ready ??= this.#pool.query("CREATE EXTENSION IF NOT EXISTS pg_walinspect");
    await this.#ready;
    const row = (
      await this.#pool.query<{ lsn: string }>("SELECT pg_current_wal_flush_lsn()::text AS lsn")
    ).rows[0];
    return row?.lsn ?? "0/0";
  }

  async between(start: string, end: string): Promise<WalWindow> {
    const rows = (
      await this.#pool.query<{ record_type: string; count: string; bytes: string }>(
        `SELECT "resource_manager/record_type" AS record_type, count::text, combined_size::text AS bytes
           FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn, true) WHERE count > 0`,
        [start, end],
      )
    ).rows;
    const walBytes = Number(
      (
        await this.#pool.query<{ bytes: string }>(
          "SELECT ($2::pg_lsn - $1::pg_lsn)::text AS bytes",
          [start, end],
        )
      ).rows[0]?.bytes ?? 0,
    );
    const top = rows
      .map((row) => ({ type: row.record_type, count: Number(row.count), bytes: Number(row.bytes) }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 6);
    return {
      commits: rows
        .filter((row) => row.record_type.startsWith("Transaction/COMMIT"))
        .reduce((sum, row) => sum + Number(row.count), 0),
      walBytes,
      top,
    };
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}
