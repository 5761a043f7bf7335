import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import { ExecutorService } from "@packrun/proto/executor/v1";
import { ScheduleService } from "@packrun/proto/executor/v1/schedules";
import { Health } from "@packrun/proto/health/v1";
import { PlannerService } from "@packrun/proto/planner/v1";
import { type ServiceTls, serviceTransport } from "@packrun/rpc-server";

/** Where the gateway finds the internal services. */
export interface ServiceUrls {
  readonly plannerUrl: string;
  readonly executorUrl: string;
  readonly evidenceUrl: string;
}

/** gRPC clients of the three internal services; the gateway holds no run state itself. */
export interface ServiceClients {
  readonly planner: Client<typeof PlannerService>;
  readonly executor: Client<typeof ExecutorService>;
  /** Schedules, served by the executor. */
  readonly schedules: Client<typeof ScheduleService>;
  readonly evidence: Client<typeof EvidenceService>;
  /** grpc.health.v1 clients by service name, for `/readyz`. */
  readonly health: Readonly<Record<"planner" | "executor" | "evidence", Client<typeof Health>>>;
  /** Closes the HTTP/2 sessions. */
  close(): void;
}

/**
 * Connect clients over gRPC (HTTP/2, one multiplexed session per service), with mutual TLS as
 * the `gateway` identity when `tls` is given.
 */
export function createServiceClients(
  urls: ServiceUrls,
  interceptors: Interceptor[] = [],
  tls?: ServiceTls,
): ServiceClients {
  const sessions: Http2SessionManager[] = [];
  const transport = (baseUrl: string) => {
    const made = serviceTransport(baseUrl, tls, { interceptors, idleConnectionTimeoutMs: 60_000 });
    sessions.push(made.sessions);
    return made.transport;
  };
  const planner = transport(urls.plannerUrl);
  const executor = transport(urls.executorUrl);
  const evidence = transport(urls.evidenceUrl);
  return {
    planner: createClient(PlannerService, planner),
    executor: createClient(ExecutorService, executor),
    schedules: createClient(ScheduleService, executor),
    evidence: createClient(EvidenceService, evidence),
    health: {
      planner: createClient(Health, planner),
      executor: createClient(Health, executor),
      evidence: createClient(Health, evidence),
    },
    close() {
      for (const session of sessions) session.abort();
    },
  };
}
