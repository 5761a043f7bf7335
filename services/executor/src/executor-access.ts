import { scopes } from "@packrun/auth";
import { ExecutorService } from "@packrun/proto/executor/v1";
import type { RpcAccessPolicy } from "@packrun/rpc-server";

/**
 * Who may call the executor: the gateway by certificate, and bearer tokens of the
 * organisation's internal callers for submit, read, watch, cancel and approve, always within the
 * token's tenant and recorded under the token's subject. Cluster-wide statistics, worker health
 * and refusal records are the gateway's alone. (Workers claim and report steps through the
 * executor's database with fencing tokens, not through RPCs.)
 */
export const executorAccessPolicy: RpcAccessPolicy = {
  [ExecutorService.typeName]: {
    SubmitRun: {
      services: ["gateway"],
      scope: scopes.run,
      bind: (message, principal) => {
        message.submittedBy = principal.subject;
      },
    },
    GetRun: { services: ["gateway"], scope: scopes.read },
    ListRuns: { services: ["gateway"], scope: scopes.read },
    WatchRun: { services: ["gateway"], scope: scopes.read },
    CancelRun: {
      services: ["gateway"],
      scope: scopes.run,
      bind: (message, principal) => {
        message.requestedBy = principal.subject;
      },
    },
    // The approval token's binding, grants and single use are checked by the service itself
    // (executor-service.ts), as the gateway does for REST.
    DecideApproval: { services: ["gateway"], scope: scopes.approve },
    GetWorkerHealth: { services: ["gateway"] },
    GetRunStatistics: { services: ["gateway"] },
    RecordApprovalRefusal: { services: ["gateway"] },
  },
};
