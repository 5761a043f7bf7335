import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  resourceFromAttributes,
} from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  InMemorySpanExporter,
  ParentBasedSampler,
  type ReadableSpan,
  type Sampler,
  SimpleSpanProcessor,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

/** The packrun release the services report as `service.version` unless told otherwise. */
export const packrunVersion = "0.1.0";

/** Where {@link initTelemetry} reports what it set up (a pino logger fits). */
export interface TelemetryLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** Options for {@link initTelemetry}. */
export interface TelemetryOptions {
  /** `service.name` of the resource, e.g. "packrun-planner"; OTEL_SERVICE_NAME overrides it. */
  serviceName: string;
  /** `service.version`; default {@link packrunVersion}. */
  serviceVersion?: string;
  /** Default `process.env`: the standard OTEL_* variables configure sampling and export. */
  env?: NodeJS.ProcessEnv;
  logger?: TelemetryLogger;
}

/** Flushes pending spans to the exporter (if any) and stops the tracer provider. */
export type ShutdownTelemetry = () => Promise<void>;

/**
 * Span processors can be attached after the provider is registered (tests attach an in-memory
 * exporter to whatever provider the process already has); with none attached a finished span
 * is simply dropped.
 */
class SpanProcessors implements SpanProcessor {
  readonly list: SpanProcessor[] = [];
  onStart(...args: Parameters<SpanProcessor["onStart"]>): void {
    for (const processor of this.list) processor.onStart(...args);
  }
  onEnd(span: ReadableSpan): void {
    for (const processor of this.list) processor.onEnd(span);
  }
  async forceFlush(): Promise<void> {
    await Promise.all(this.list.map((processor) => processor.forceFlush()));
  }
  async shutdown(): Promise<void> {
    await Promise.all(this.list.map((processor) => processor.shutdown()));
  }
}

interface Installed {
  readonly provider: TracerProvider;
  readonly processors: SpanProcessors;
  readonly shutdown: ShutdownTelemetry;
}

let installed: Installed | undefined;
const disabledShutdown: ShutdownTelemetry = async () => {};

function ratio(value: string | undefined): number {
  const parsed = value === undefined || value.trim() === "" ? 1 : Number(value);
  return Number.isFinite(parsed) && parsed >= 0 && parsed <= 1 ? parsed : 1;
}

/**
 * The sampler OTEL_TRACES_SAMPLER (and OTEL_TRACES_SAMPLER_ARG) ask for; default
 * `parentbased_always_on`: every trace is recorded, and an incoming `traceparent`'s sampled flag
 * is honoured.
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv = process.env): Sampler {
  const argument = env.OTEL_TRACES_SAMPLER_ARG;
  switch ((env.OTEL_TRACES_SAMPLER ?? "").trim().toLowerCase()) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio(argument));
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio(argument)) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/** What OTEL_TRACES_EXPORTER and the OTLP endpoint variables ask to export to. */
function exporterFromEnv(
  env: NodeJS.ProcessEnv,
  logger: TelemetryLogger | undefined,
): SpanProcessor | undefined {
  const endpoint =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const wanted = (env.OTEL_TRACES_EXPORTER ?? "")
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  if (wanted.includes("none")) return undefined;
  if (wanted.includes("console"))
    return new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() });
  // OTLP only when asked for: explicitly, or implicitly by giving an endpoint.
  if (!wanted.includes("otlp") && !endpoint) return undefined;
  const protocol = (
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ??
    env.OTEL_EXPORTER_OTLP_PROTOCOL ??
    "http/json"
  ).trim();
  if (protocol !== "http/json")
    logger?.warn(
      { protocol },
      "only the OTLP http/json protocol is built in; exporting traces with http/json",
    );
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const url = tracesEndpoint
    ? tracesEndpoint
    : `${(endpoint || "http://localhost:4318").replace(/\/+$/, "")}/v1/traces`;
  logger?.info({ url }, "exporting traces over OTLP");
  // Headers, timeout and compression come from the standard variables, read by the exporter.
  return new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }) });
}

function install(options: TelemetryOptions): Installed {
  const env = options.env ?? process.env;
  const processors = new SpanProcessors();
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: options.serviceName,
        [ATTR_SERVICE_VERSION]: options.serviceVersion ?? packrunVersion,
      }),
    )
    .merge(detectResources({ detectors: [hostDetector, envDetector] }));
  const provider = new TracerProvider({
    resource,
    sampler: samplerFromEnv(env),
    spanProcessors: [processors],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  const exporter = exporterFromEnv(env, options.logger);
  if (exporter !== undefined) processors.list.push(exporter);
  let stopped: Promise<void> | undefined;
  const shutdown: ShutdownTelemetry = () => {
    stopped ??= provider.shutdown().catch((error: unknown) => {
      options.logger?.warn({ err: error }, "flushing traces failed");
    });
    return stopped;
  };
  return { provider, processors, shutdown };
}

/**
 * Sets up tracing for this process, once: a tracer provider with W3C trace-context propagation
 * and an AsyncLocalStorage context manager, so spans started by the RPC and HTTP instrumentation
 * nest across `await`s and services. Spans are exported only when the standard variables ask
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_TRACES_EXPORTER=otlp
 * or console); otherwise trace ids still flow through calls and log lines and nothing leaves
 * the process. OTEL_SDK_DISABLED=true leaves tracing off entirely.
 *
 * Later calls return the first call's shutdown function.
 * @returns flushes pending spans and stops the provider (call it on shutdown)
 */
export function initTelemetry(options: TelemetryOptions): ShutdownTelemetry {
  if (installed !== undefined) return installed.shutdown;
  const env = options.env ?? process.env;
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return disabledShutdown;
  installed = install(options);
  return installed.shutdown;
}

/** Exports the spans finished so far, if an exporter is configured; tracing goes on. */
export async function flushTelemetry(): Promise<void> {
  await installed?.provider.forceFlush();
}

/** Spans recorded by {@link recordSpans}. */
export interface RecordedSpans {
  readonly exporter: InMemorySpanExporter;
  /** Finished spans so far. */
  spans(): ReadableSpan[];
  /** Forgets the spans recorded so far. */
  reset(): void;
  /** Detaches the exporter. */
  stop(): Promise<void>;
}

/**
 * Test helper: records every span finished in this process from now on in memory, installing
 * tracing first when the process has none (whatever OTEL_* says). Call it before starting the
 * servers under test.
 */
export function recordSpans(serviceName = "packrun-test"): RecordedSpans {
  installed ??= install({ serviceName, env: {} });
  const { processors } = installed;
  const exporter = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor({ exporter });
  processors.list.push(processor);
  return {
    exporter,
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
    async stop() {
      const index = processors.list.indexOf(processor);
      if (index >= 0) processors.list.splice(index, 1);
      await processor.shutdown();
    },
  };
}
