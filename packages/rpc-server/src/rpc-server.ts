import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { TokenVerifier } from "@packrun/auth";
import type { Logger } from "@packrun/logging";
import { Health } from "@packrun/proto/health/v1";
import {
  createRpcMetrics,
  type MetricsServer,
  rpcServerTracing,
  startMetricsServer,
} from "@packrun/telemetry";
import {
  callerAccessInterceptor,
  peerContextValues,
  type RpcAccessPolicy,
} from "./caller-access.ts";
import { deadlineInterceptor } from "./deadlines.ts";
import { errorMappingInterceptor } from "./error-mapping.ts";
import { withSpecGrpcMessages } from "./grpc-message.ts";
import { HealthRegistry, ServingStatus } from "./health-service.ts";
import { registerReflection } from "./reflection-service.ts";
import type { ServiceTls } from "./service-tls.ts";

/** Options for {@link startRpcServer}. */
export interface RpcServerOptions {
  /** Registers the service implementations. */
  routes: (router: ConnectRouter) => void;
  /** Fully-qualified names of the services registered, reported by grpc.health.v1. */
  serviceNames: readonly string[];
  logger: Logger;
  /** Loopback by default. */
  host?: string;
  /** 0 (default) lets the OS pick. */
  port?: number;
  /**
   * Serve Prometheus metrics (process metrics and per-RPC durations) on a plain HTTP port at
   * `/metrics`; without it no metrics are collected.
   */
  metrics?: RpcMetricsOptions;
  /**
   * Authenticated service: TLS with the service's certificate, client certificates of the
   * internal CA identifying packrun's services, bearer tokens on public methods, and every call
   * checked against `policy`. Without it the server speaks cleartext and checks no caller:
   * only for tests that run a service in process; the services' entry points refuse to start
   * that way unless told loudly (PACKRUN_RPC_INSECURE_NO_AUTH).
   */
  security?: RpcSecurity;
}

/** How a server authenticates and authorises its callers. */
export interface RpcSecurity {
  readonly tls: ServiceTls;
  readonly policy: RpcAccessPolicy;
  /** Verifies bearer tokens of public methods; without it no token is accepted. */
  readonly tokens?: TokenVerifier | undefined;
}

/** A service's own TLS material and token verifier; the service adds its access policy. */
export type ServiceSecurity = Omit<RpcSecurity, "policy">;

/** Where and under which name a server's metrics are served. */
export interface RpcMetricsOptions {
  /** Short service name, e.g. "planner": process metrics are named `packrun_<service>_...`. */
  service: string;
  /** 0 lets the OS pick. */
  port: number;
  /** Loopback by default. */
  host?: string;
}

/** A running Connect/gRPC server. */
export interface RpcServer {
  /** e.g. https://127.0.0.1:40123 (http:// without TLS) */
  readonly url: string;
  readonly port: number;
  readonly health: HealthRegistry;
  /** e.g. http://127.0.0.1:9464/metrics; undefined without {@link RpcServerOptions.metrics}. */
  readonly metricsUrl: string | undefined;
  /** Reports NOT_SERVING, stops accepting, and closes open HTTP/2 sessions. */
  close(): Promise<void>;
}

/**
 * Serves Connect, gRPC and gRPC-Web on one HTTP/2 port (TLS with `security`), plus grpc.health.v1 and
 * server reflection (grpc.reflection.v1 and v1alpha), with every thrown error mapped through
 * the packrun error catalog, calls past their deadline ending DEADLINE_EXCEEDED, and every
 * call traced (a SERVER span continuing the caller's trace context) and, with `metrics`, timed.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const health = new HealthRegistry(options.serviceNames);
  const security = options.security;
  const metrics =
    options.metrics === undefined ? undefined : createRpcMetrics(options.metrics.service);
  const handler = connectNodeAdapter({
    routes: (router) => {
      const services: DescService[] = [];
      // Records what the caller registers, so reflection describes exactly what is served.
      const recording: ConnectRouter = {
        handlers: router.handlers,
        service: (service, implementation, serviceOptions) => {
          services.push(service);
          router.service(service, implementation, serviceOptions);
          return recording;
        },
        rpc: (method, implementation, rpcOptions) => {
          services.push(method.parent);
          router.rpc(method, implementation, rpcOptions);
          return recording;
        },
      };
      options.routes(recording);
      recording.service(Health, health.service());
      registerReflection(router, services);
    },
    // Outermost first: the span and the duration see the codes the error mapping and the
    // deadline check produce.
    interceptors: [
      rpcServerTracing(metrics),
      errorMappingInterceptor(options.logger),
      ...(security === undefined
        ? []
        : [callerAccessInterceptor(security.policy, security.tokens)]),
      deadlineInterceptor(),
    ],
    ...(security === undefined ? {} : { contextValues: peerContextValues }),
  });
  const server =
    security === undefined
      ? http2.createServer(withSpecGrpcMessages(handler))
      : http2.createSecureServer(
          {
            ca: security.tls.ca,
            cert: security.tls.cert,
            key: security.tls.key,
            // A client certificate is asked for but not required: callers of the public
            // methods present a bearer token instead. The access check decides per call.
            requestCert: true,
            rejectUnauthorized: false,
            minVersion: "TLSv1.2",
          },
          withSpecGrpcMessages(handler),
        );
  const sessions = new Set<http2.Http2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `${security === undefined ? "http" : "https"}://${host}:${address.port}`;
  let metricsServer: MetricsServer | undefined;
  if (metrics !== undefined && options.metrics !== undefined) {
    try {
      metricsServer = await startMetricsServer({
        registry: metrics.registry,
        port: options.metrics.port,
        ...(options.metrics.host === undefined ? {} : { host: options.metrics.host }),
      });
    } catch (error) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw error;
    }
  }
  options.logger.info(
    { url, services: options.serviceNames, metricsUrl: metricsServer?.url },
    "rpc server listening",
  );
  return {
    url,
    port: address.port,
    health,
    metricsUrl: metricsServer?.url,
    async close() {
      health.set(ServingStatus.NOT_SERVING);
      await metricsServer?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close();
      // Streams still open after a grace period (e.g. idle subscriptions) are cut.
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
      }, 2000);
      await closed;
      clearTimeout(timer);
    },
  };
}
