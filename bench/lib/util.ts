/** Small helpers shared by the benchmark harness: clocks, statistics, logging. */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Wall-clock time in epoch milliseconds with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** Quantile by linear interpolation (q in [0, 1]); NaN for no values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const low = sorted[lower] ?? Number.NaN;
  const high = sorted[upper] ?? Number.NaN;
  return low + (high - low) * (position - lower);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Distribution of one sample set. */
export interface Distribution {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function distribution(values: readonly number[]): Distribution {
  return {
    n: values.length,
    p50: quantile(values, 0.5),
    p90: quantile(values, 0.9),
    p99: quantile(values, 0.99),
    min: values.length === 0 ? Number.NaN : Math.min(...values),
    max: values.length === 0 ? Number.NaN : Math.max(...values),
    mean: mean(values),
  };
}

/** One metric over the repetitions of a workload: the median and the spread around it. */
export interface Repeated {
  median: number;
  min: number;
  max: number;
  /** (max - min) / median; 0 with one repetition. */
  spread: number;
  values: number[];
}

export function repeated(values: readonly number[]): Repeated {
  const finite = values.filter((value) => Number.isFinite(value));
  const m = median(finite);
  const min = finite.length === 0 ? Number.NaN : Math.min(...finite);
  const max = finite.length === 0 ? Number.NaN : Math.max(...finite);
  return {
    median: m,
    min,
    max,
    spread: m === 0 || !Number.isFinite(m) ? 0 : (max - min) / m,
    values: [...values],
  };
}

/** Rounds for JSON/Markdown output: 3 significant decimals below 10, fewer above. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  const magnitude = Math.abs(value);
  const digits = magnitude >= 100 ? 1 : magnitude >= 10 ? 2 : 3;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  options: { timeoutMs: number; intervalMs?: number; describe?: () => Promise<string> | string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      const detail = options.describe ? `: ${await options.describe()}` : "";
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(options.intervalMs ?? 50);
  }
}

/** Runs `task` for each item with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const index = next++;
      if (index >= items.length) return;
      results[index] = await task(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
  return results;
}

/**
 * Formats committed result files with the repository's Biome, so that they pass `npm run lint`.
 * Best effort: without Biome the files stay as written.
 */
export function formatWithBiome(target: string): void {
  const biome = path.resolve(import.meta.dirname, "../../node_modules/.bin/biome");
  const result = spawnSync(biome, ["format", "--write", target], { stdio: "ignore" });
  if (result.status !== 0) log(`could not format ${target} with Biome; it stays as written`);
}
