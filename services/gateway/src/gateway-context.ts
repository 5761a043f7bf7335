import type { IncomingMessage, ServerResponse } from "node:http";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { FastifyInstance, FastifyRequest, RawServerDefault } from "fastify";
import type { Principal } from "./principal.ts";
import type { ServiceClients } from "./service-clients.ts";

/** The Fastify instance routes are registered on, typed by the TypeBox schemas. */
export type GatewayApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  Logger,
  TypeBoxTypeProvider
>;

/** What route modules need besides the app itself. */
export interface GatewayContext {
  readonly clients: ServiceClients;
  readonly logger: Logger;
  /** Interval of SSE heartbeat comments. */
  readonly heartbeatMs: number;
  /** How long a log stream waits for a just-submitted run's first event before giving up. */
  readonly firstEventWaitMs: number;
}

/** The verified caller of an authenticated route (set by the auth hook). */
export function principalOf(request: FastifyRequest): Principal {
  const principal = request.principal;
  if (principal === undefined)
    // A route without `config.scope` asked for a principal: a programming error.
    throw new PackrunError("INTERNAL", "route has no authentication configured");
  return principal;
}
