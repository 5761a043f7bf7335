import type { GetRunStatisticsResponse } from "@packrun/proto/executor/v1";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { collectProcessMetrics } from "@packrun/telemetry";
import { Counter, Histogram, Registry } from "prom-client";
import { runStateName, stepStateName } from "./api-json.ts";

/** The gateway's own Prometheus metrics. */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly requestDuration: Histogram<"method" | "route" | "status_code">;
  readonly approvalsRefused: Counter<"code">;
}

/** A registry of its own per gateway, so several gateways in one process do not collide. */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, "packrun_gateway_");
  return {
    registry,
    requestDuration: new Histogram({
      name: "packrun_gateway_http_request_duration_seconds",
      help: "REST request latency by route template and status code.",
      labelNames: ["method", "route", "status_code"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    approvalsRefused: new Counter({
      name: "packrun_gateway_approvals_refused_total",
      help: "Approval attempts the gateway refused, by error code.",
      labelNames: ["code"],
      registers: [registry],
    }),
  };
}

function family(name: string, type: string, help: string, samples: string[]): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${samples.join("\n")}\n`;
}

/**
 * Cluster-wide run metrics in the Prometheus text format, from the executor's statistics.
 * They are rendered here rather than through prom-client because the executor already holds
 * them as totals (cumulative histogram buckets included) computed from its database, which is
 * the one place that sees every worker's steps.
 */
export function renderRunStatistics(stats: GetRunStatisticsResponse): string {
  const histogram = stats.stepAttemptDurations;
  const parts = [
    family(
      "packrun_runs",
      "gauge",
      "Runs by state.",
      stats.runsByState
        .filter((entry) => entry.state !== RunState.UNSPECIFIED)
        .map((entry) => `packrun_runs{state="${runStateName(entry.state)}"} ${entry.count}`),
    ),
    family(
      "packrun_steps",
      "gauge",
      "Steps of every kind by state.",
      stats.stepsByState
        .filter((entry) => entry.state !== StepState.UNSPECIFIED)
        .map((entry) => `packrun_steps{state="${stepStateName(entry.state)}"} ${entry.count}`),
    ),
    family("packrun_queue_jobs", "gauge", "Work items in the executor queue by status.", [
      `packrun_queue_jobs{status="waiting"} ${stats.queueWaiting}`,
      `packrun_queue_jobs{status="delayed"} ${stats.queueDelayed}`,
      `packrun_queue_jobs{status="active"} ${stats.queueActive}`,
      `packrun_queue_jobs{status="dead-letter"} ${stats.queueDeadLetter}`,
    ]),
    family("packrun_queue_available", "gauge", "1 when the executor queue answered.", [
      `packrun_queue_available ${stats.queueAvailable ? 1 : 0}`,
    ]),
    family(
      "packrun_step_retries_total",
      "counter",
      "Attempts of run steps beyond each step's first.",
      [`packrun_step_retries_total ${stats.retriesTotal}`],
    ),
  ];
  if (histogram !== undefined) {
    parts.push(
      histogramFamily(
        "packrun_step_attempt_duration_seconds",
        "Wall time of finished run step attempts.",
        histogram.buckets,
        histogram.count,
        histogram.sumSeconds,
      ),
    );
  }
  const cpu = stats.stepAttemptCpuSeconds;
  if (cpu !== undefined) {
    parts.push(
      histogramFamily(
        "packrun_step_attempt_cpu_seconds",
        "CPU time (user + system) of finished, measured run step attempts.",
        cpu.buckets,
        cpu.count,
        cpu.sumSeconds,
      ),
    );
  }
  const memory = stats.stepAttemptPeakMemoryBytes;
  if (memory !== undefined) {
    parts.push(
      histogramFamily(
        "packrun_step_attempt_peak_memory_bytes",
        "Peak memory of finished, measured run step attempts.",
        memory.buckets,
        memory.count,
        memory.sum,
      ),
    );
  }
  return parts.join("");
}

function histogramFamily(
  name: string,
  help: string,
  buckets: readonly { upperBound: number; cumulativeCount: bigint }[],
  count: bigint,
  sum: number,
): string {
  return family(name, "histogram", help, [
    ...buckets.map(
      (bucket) => `${name}_bucket{le="${bucket.upperBound}"} ${bucket.cumulativeCount}`,
    ),
    `${name}_bucket{le="+Inf"} ${count}`,
    `${name}_sum ${sum}`,
    `${name}_count ${count}`,
  ]);
}
