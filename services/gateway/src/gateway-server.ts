import type { AddressInfo } from "node:net";
import type { Logger } from "@packrun/logging";
import type { ServiceTls } from "@packrun/rpc-server";
import { rpcClientTracing } from "@packrun/telemetry";
import { buildGatewayApp } from "./gateway-app.ts";
import type { AuthConfig } from "./gateway-config.ts";
import type { GatewayApp } from "./gateway-context.ts";
import { createGatewayMetrics } from "./gateway-metrics.ts";
import type { RateLimitSettings } from "./rate-limits.ts";
import type { ConsoleOptions } from "./routes/console-routes.ts";
import { createServiceClients, type ServiceUrls } from "./service-clients.ts";
import { createTokenVerifier } from "./token-verifier.ts";

/** Options for {@link startGateway}. */
export interface GatewayOptions extends ServiceUrls {
  readonly logger: Logger;
  readonly auth: AuthConfig;
  /** 0 lets the OS pick. */
  readonly port: number;
  readonly host?: string;
  readonly bodyLimitBytes?: number;
  readonly sseHeartbeatSeconds?: number;
  /** How long a log stream waits for a just-submitted run's first event. */
  readonly firstEventWaitMs?: number;
  /** Requests per minute per token and per tenant. */
  readonly rateLimits?: RateLimitSettings;
  /** The gateway's TLS identity towards planner, executor and evidence (cleartext without). */
  readonly tls?: ServiceTls;
  /** The web console at `/` (default: none). */
  readonly console?: ConsoleOptions;
}

/** A listening gateway. */
export interface Gateway {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly app: GatewayApp;
  /** Stops accepting requests, ends open streams, closes the service sessions. */
  close(): Promise<void>;
}

/** Starts the REST + SSE gateway in front of planner, executor and evidence. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  // Downstream calls are CLIENT spans under the request's span, with its trace context sent on.
  const clients = createServiceClients(options, [rpcClientTracing()], options.tls);
  const app = await buildGatewayApp({
    clients,
    verifier: await createTokenVerifier(options.auth),
    metrics: createGatewayMetrics(),
    logger: options.logger,
    bodyLimitBytes: options.bodyLimitBytes ?? 4 * 1024 * 1024,
    heartbeatMs: (options.sseHeartbeatSeconds ?? 15) * 1000,
    ...(options.firstEventWaitMs === undefined
      ? {}
      : { firstEventWaitMs: options.firstEventWaitMs }),
    ...(options.rateLimits === undefined ? {} : { rateLimits: options.rateLimits }),
    ...(options.console === undefined ? {} : { console: options.console }),
  });
  // Long-lived log streams must not hold a graceful close forever.
  app.server.on("close", () => clients.close());
  await app.listen({ port: options.port, host: options.host ?? "127.0.0.1" });
  const address = app.server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    app,
    async close() {
      app.server.closeAllConnections();
      await app.close();
      clients.close();
    },
  };
}
