import { collectDefaultMetrics, type Registry } from "prom-client";

/**
 * prom-client's Node.js process metrics under `prefix`, minus the gauges it names `*_total`
 * (`nodejs_active_handles_total`, `…_requests_total`, `…_resources_total`): Prometheus
 * reserves `_total` for counters, and promtool flags those names. Each is the sum of the
 * labelled gauge of the same name without the suffix (`sum(…_nodejs_active_handles)`).
 */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type } = metric as unknown as { name: string; type: string };
    if (type === "gauge" && name.endsWith("_total")) registry.removeSingleMetric(name);
  }
}
