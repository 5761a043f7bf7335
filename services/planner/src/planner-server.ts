import { fileURLToPath } from "node:url";
import { type Database, migrate } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import { createPlanningPool, type PlanningPool } from "@packrun/planning";
import { PlannerService } from "@packrun/proto/planner/v1";
import { type ServiceSecurity, startRpcServer } from "@packrun/rpc-server";
import { createPackRegistry } from "./pack-registry.ts";
import { plannerAccessPolicy } from "./planner-access.ts";
import { createPlannerService } from "./planner-service.ts";

/** The Postgres schema the planner owns; no other service reads it. */
export const plannerSchema = "planner";

/** Directory of the planner's numbered SQL migrations. */
export const plannerMigrationsDir = fileURLToPath(new URL("../migrations", import.meta.url));

/** Options for {@link startPlannerServer}. */
export interface PlannerServerOptions {
  /** The planner's database; the caller keeps ownership and closes it after the server. */
  database: Database;
  logger: Logger;
  /** 0 (default) lets the OS pick. */
  port?: number;
  /** Loopback by default. */
  host?: string;
  /** Serve Prometheus metrics on this plain HTTP port at `/metrics` (default: none). */
  metrics?: { port: number; host?: string };
  /**
   * TLS with this service's certificate, callers authenticated by client certificate or bearer
   * token and authorised per RPC. Without it: cleartext and unchecked, for in-process tests.
   */
  security?: ServiceSecurity;
  /**
   * The planning threads to use; the caller keeps ownership. Default: a pool of the planner's
   * own at the machine's size, closed with the server.
   */
  planning?: PlanningPool;
}

/** A running planner. */
export interface PlannerServer {
  /** e.g. http://127.0.0.1:40123 */
  readonly url: string;
  readonly port: number;
  /** Where `/metrics` is served; undefined without the metrics option. */
  readonly metricsUrl: string | undefined;
  /** Stops accepting calls and closes open connections; leaves the database open. */
  close(): Promise<void>;
}

/**
 * Brings the planner schema up to date, then serves PlannerService (plus grpc.health.v1) over
 * Connect, gRPC and gRPC-Web.
 */
export async function startPlannerServer(options: PlannerServerOptions): Promise<PlannerServer> {
  const applied = await migrate(options.database, plannerSchema, plannerMigrationsDir);
  if (applied.length > 0) {
    options.logger.info({ schema: plannerSchema, migrations: applied }, "migrations applied");
  }
  const planning = options.planning ?? createPlanningPool();
  const service = createPlannerService(createPackRegistry(options.database, planning), planning);
  const server = await startRpcServer({
    routes: (router) => router.service(PlannerService, service),
    serviceNames: [PlannerService.typeName],
    logger: options.logger,
    ...(options.security === undefined
      ? {}
      : { security: { ...options.security, policy: plannerAccessPolicy } }),
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.metrics === undefined
      ? {}
      : { metrics: { service: "planner", ...options.metrics } }),
  });
  return {
    url: server.url,
    port: server.port,
    metricsUrl: server.metricsUrl,
    close: async () => {
      await server.close();
      if (options.planning === undefined) await planning.close();
    },
  };
}
