export type { ReadableSpan } from "@opentelemetry/sdk-trace";
export { type HttpTracingOptions, nameHttpSpan, traceHttpRequests } from "./http-tracing.ts";
export { collectProcessMetrics } from "./process-metrics.ts";
export {
  createRpcMetrics,
  type MetricsServer,
  type MetricsServerOptions,
  type RpcMetrics,
  rpcDurationMetric,
  startMetricsServer,
} from "./rpc-metrics.ts";
export {
  codeName,
  procedureName,
  rpcClientTracing,
  rpcServerTracing,
  tracerName,
} from "./rpc-tracing.ts";
export {
  flushTelemetry,
  initTelemetry,
  packrunVersion,
  type RecordedSpans,
  recordSpans,
  type ShutdownTelemetry,
  samplerFromEnv,
  type TelemetryLogger,
  type TelemetryOptions,
} from "./tracing.ts";
