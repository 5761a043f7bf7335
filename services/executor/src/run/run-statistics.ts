import { type RunState, runStates, type StepState, stepStates } from "@packrun/contract";
import type { Queryable } from "@packrun/db";

/** Upper bounds (seconds) of the step attempt duration histogram, ascending. */
export const attemptDurationBuckets: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
]);

/** Upper bounds (seconds) of the step attempt CPU time histogram, ascending. */
export const attemptCpuBuckets: readonly number[] = Object.freeze([
  0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200,
]);

const mebibyte = 1024 * 1024;
/** Upper bounds (bytes) of the step attempt peak memory histogram, ascending: 1 MiB .. 16 GiB. */
export const attemptMemoryBuckets: readonly number[] = Object.freeze(
  [1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384].map((mib) => mib * mebibyte),
);

/** A cumulative histogram (Prometheus style). */
export interface CumulativeHistogram {
  buckets: { upperBound: number; cumulativeCount: number }[];
  count: number;
  sum: number;
}

/** Cluster-wide counts over the executor's tables (every tenant). */
export interface RunStatistics {
  /** Every run state, 0 when none. */
  runsByState: Record<RunState, number>;
  /** Every step state (steps of every kind), 0 when none. */
  stepsByState: Record<StepState, number>;
  /** Finished attempts of run steps: cumulative counts per bucket of {@link attemptDurationBuckets}. */
  attemptDurations: {
    buckets: { upperBound: number; cumulativeCount: number }[];
    count: number;
    sumSeconds: number;
  };
  /** Attempts of run steps beyond each step's first. */
  retriesTotal: number;
  /**
   * CPU time (seconds) of finished, measured attempts of run steps, by {@link attemptCpuBuckets}.
   * An attempt is measured when its peak memory is known (not 0): the runtime sampled it.
   */
  cpuSeconds: CumulativeHistogram;
  /** Peak memory (bytes) of the same attempts, by {@link attemptMemoryBuckets}. */
  peakMemoryBytes: CumulativeHistogram;
}

const count = (value: unknown): number => Number(value ?? 0);

// One pass over the attempts of run steps: a FILTER per bucket gives its cumulative count
// (observations <= the bound, as Prometheus buckets count them). The bounds are parameters:
// durations $1.., then CPU, then memory.
const bucketColumns = (column: string, prefix: string, bounds: readonly number[], first: number) =>
  bounds
    .map(
      (_, index) =>
        `count(*) FILTER (WHERE d.${column} <= $${first + index}::float8) AS ${prefix}${index}`,
    )
    .join(",\n    ");
const attemptsQuery = `
  SELECT
    count(*) FILTER (WHERE a.attempt > 1) AS retries,
    count(d.seconds) AS finished,
    coalesce(sum(d.seconds), 0)::float8 AS sum_seconds,
    count(d.cpu) AS measured,
    coalesce(sum(d.cpu), 0)::float8 AS sum_cpu,
    coalesce(sum(d.memory), 0)::float8 AS sum_memory,
    ${bucketColumns("seconds", "b", attemptDurationBuckets, 1)},
    ${bucketColumns("cpu", "c", attemptCpuBuckets, 1 + attemptDurationBuckets.length)},
    ${bucketColumns("memory", "m", attemptMemoryBuckets, 1 + attemptDurationBuckets.length + attemptCpuBuckets.length)}
  FROM step_attempts a
  JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id AND s.kind = 'run'
  CROSS JOIN LATERAL (
    SELECT CASE WHEN a.finished_at IS NULL THEN NULL
                ELSE greatest(extract(epoch FROM a.finished_at - a.started_at), 0)::float8 END AS seconds,
           CASE WHEN a.finished_at IS NULL OR coalesce(a.peak_memory_bytes, 0) = 0 THEN NULL
                ELSE coalesce(a.cpu_micros, 0) / 1e6 END::float8 AS cpu,
           CASE WHEN a.finished_at IS NULL OR coalesce(a.peak_memory_bytes, 0) = 0 THEN NULL
                ELSE a.peak_memory_bytes END::float8 AS memory
  ) AS d`;

const statesQuery = `
  SELECT 'run' AS entity, state, count(*) AS n FROM runs GROUP BY state
  UNION ALL
  SELECT 'step' AS entity, state, count(*) AS n FROM steps GROUP BY state`;

/**
 * Computes {@link RunStatistics} in two queries. Both scan whole tables: every run and step
 * row, and every attempt of a run step (finished ones for the histogram). That is acceptable
 * for now (a scrape every few seconds over a retained history of moderate size); a large
 * history would want counters maintained with the transitions, or a retention policy.
 */
export async function computeRunStatistics(database: Queryable): Promise<RunStatistics> {
  const [states, attempts] = await Promise.all([
    database.query<{ entity: "run" | "step"; state: string; n: unknown }>(statesQuery),
    database.query<Record<string, unknown>>(attemptsQuery, [
      ...attemptDurationBuckets,
      ...attemptCpuBuckets,
      ...attemptMemoryBuckets,
    ]),
  ]);
  const runsByState = Object.fromEntries(runStates.map((state) => [state, 0])) as Record<
    RunState,
    number
  >;
  const stepsByState = Object.fromEntries(stepStates.map((state) => [state, 0])) as Record<
    StepState,
    number
  >;
  for (const row of states.rows) {
    if (row.entity === "run" && Object.hasOwn(runsByState, row.state))
      runsByState[row.state as RunState] = count(row.n);
    else if (row.entity === "step" && Object.hasOwn(stepsByState, row.state))
      stepsByState[row.state as StepState] = count(row.n);
  }
  const row = attempts.rows[0] ?? {};
  return {
    runsByState,
    stepsByState,
    attemptDurations: {
      buckets: attemptDurationBuckets.map((upperBound, index) => ({
        upperBound,
        cumulativeCount: count(row[`b${index}`]),
      })),
      count: count(row.finished),
      sumSeconds: Number(row.sum_seconds ?? 0),
    },
    retriesTotal: count(row.retries),
    cpuSeconds: cumulative(row, "c", attemptCpuBuckets, row.sum_cpu),
    peakMemoryBytes: cumulative(row, "m", attemptMemoryBuckets, row.sum_memory),
  };
}

function cumulative(
  row: Record<string, unknown>,
  prefix: string,
  bounds: readonly number[],
  sum: unknown,
): CumulativeHistogram {
  return {
    buckets: bounds.map((upperBound, index) => ({
      upperBound,
      cumulativeCount: count(row[`${prefix}${index}`]),
    })),
    count: count(row.measured),
    sum: Number(sum ?? 0),
  };
}
