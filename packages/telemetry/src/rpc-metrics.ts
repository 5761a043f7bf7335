import http from "node:http";
import type { AddressInfo } from "node:net";
import { Histogram, Registry } from "prom-client";
import { collectProcessMetrics } from "./process-metrics.ts";

/** Name of the per-RPC duration histogram every gRPC service exposes. */
export const rpcDurationMetric = "packrun_rpc_server_duration_seconds";

/** One gRPC service's Prometheus metrics. */
export interface RpcMetrics {
  readonly registry: Registry;
  /** Seconds from a call's arrival to its response (its stream's end for streaming RPCs). */
  readonly duration: Histogram<"procedure" | "code">;
}

/**
 * A registry of its own per service (several services share a process in the embedded default):
 * Node.js process metrics prefixed `packrun_<service>_`, and {@link rpcDurationMetric} by
 * procedure (`package.Service/Method`) and code (`ok`, `invalid_argument`, ...).
 */
export function createRpcMetrics(service: string): RpcMetrics {
  const registry = new Registry();
  collectProcessMetrics(registry, `packrun_${service.replace(/[^A-Za-z0-9_]/g, "_")}_`);
  return {
    registry,
    duration: new Histogram({
      name: rpcDurationMetric,
      help: "gRPC server call latency by procedure and code (whole stream for streaming RPCs).",
      labelNames: ["procedure", "code"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}

/** Options for {@link startMetricsServer}. */
export interface MetricsServerOptions {
  readonly registry: Registry;
  /** 0 lets the OS pick. */
  readonly port: number;
  /** Loopback by default. */
  readonly host?: string;
}

/** A plain HTTP listener serving `GET /metrics`. */
export interface MetricsServer {
  /** e.g. http://127.0.0.1:9464/metrics */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves a registry in the Prometheus text format on plain HTTP/1.1: the gRPC services listen on
 * cleartext HTTP/2 only, which Prometheus cannot scrape.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry } = options;
  const server = http.createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    registry.metrics().then(
      (text) => {
        response.writeHead(200, { "content-type": registry.contentType });
        response.end(request.method === "HEAD" ? undefined : text);
      },
      () => response.writeHead(500, { "content-type": "text/plain" }).end("metrics failed\n"),
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/metrics`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
