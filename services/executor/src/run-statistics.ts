import { type RunState, runStates, type StepState, stepStates } from "@packrun/contract";
import type { Queryable } from "@packrun/db";

/** Upper bounds (seconds) of the step attempt duration histogram, ascending. */
export const attemptDurationBuckets: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
]);

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
}

const count = (value: unknown): number => Number(value ?? 0);

// One pass over the attempts of run steps: a FILTER per bucket gives its cumulative count
// (observations <= the bound, as Prometheus buckets count them). The bounds are parameters.
const attemptsQuery = `
  SELECT
    count(*) FILTER (WHERE a.attempt > 1) AS retries,
    count(d.seconds) AS finished,
    coalesce(sum(d.seconds), 0)::float8 AS sum_seconds,
    ${attemptDurationBuckets.map((_, index) => `count(*) FILTER (WHERE d.seconds <= $${index + 1}::float8) AS b${index}`).join(",\n    ")}
  FROM step_attempts a
  JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id AND s.kind = 'run'
  CROSS JOIN LATERAL (
    SELECT CASE WHEN a.finished_at IS NULL THEN NULL
                ELSE greatest(extract(epoch FROM a.finished_at - a.started_at), 0)::float8 END AS seconds
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
    database.query<Record<string, unknown>>(attemptsQuery, [...attemptDurationBuckets]),
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
  };
}
