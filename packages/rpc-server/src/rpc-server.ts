import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "@packrun/logging";
import { Health } from "@packrun/proto/health/v1";
import { errorMappingInterceptor } from "./error-mapping.ts";
import { HealthRegistry, ServingStatus } from "./health-service.ts";

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
}

/** A running Connect/gRPC server. */
export interface RpcServer {
  /** e.g. http://127.0.0.1:40123 */
  readonly url: string;
  readonly port: number;
  readonly health: HealthRegistry;
  /** Reports NOT_SERVING, stops accepting, and closes open HTTP/2 sessions. */
  close(): Promise<void>;
}

/**
 * Serves Connect, gRPC and gRPC-Web on one cleartext HTTP/2 port, plus grpc.health.v1, with
 * every thrown error mapped through the packrun error catalog.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const health = new HealthRegistry(options.serviceNames);
  const handler = connectNodeAdapter({
    routes: (router) => {
      options.routes(router);
      router.service(Health, health.service());
    },
    interceptors: [errorMappingInterceptor(options.logger)],
  });
  const server = http2.createServer(handler);
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
  const url = `http://${host}:${address.port}`;
  options.logger.info({ url, services: options.serviceNames }, "rpc server listening");
  return {
    url,
    port: address.port,
    health,
    async close() {
      health.set(ServingStatus.NOT_SERVING);
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
