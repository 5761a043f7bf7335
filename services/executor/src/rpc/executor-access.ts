import { scopes } from "@packrun/auth";
import { ExecutorService } from "@packrun/proto/executor/v1";
import { ScheduleService } from "@packrun/proto/executor/v1/schedules";
import type { RpcAccessPolicy } from "@packrun/rpc-server";

/**
 * Who may call the executor: the gateway by certificate, and bearer tokens of the
 * organisation's internal callers for submit, read, watch, cancel, approve, rerun, dead letters,
 * offline approvals and schedules, always within the
 * token's tenant and recorded under the token's subject. Cluster-wide statistics, worker health
 * and refusal records are the gateway's alone (DecideApproval records its own refusals). (Workers claim and report steps through the
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
    // Decided by run/approval-decision.ts from the token's claims: the gateway's verified
    // token's (DecideApprovalRequest.token), or a bearer caller's own (whatever the message says).
    DecideApproval: { services: ["gateway"], scope: scopes.approve },
    GetWorkerHealth: { services: ["gateway"] },
    GetRunStatistics: { services: ["gateway"] },
    RecordApprovalRefusal: { services: ["gateway"] },
    RerunRun: {
      services: ["gateway"],
      scope: scopes.run,
      bind: (message, principal) => {
        message.submittedBy = principal.subject;
      },
    },
    ListDeadLetters: { services: ["gateway"], scope: scopes.read },
    RetryDeadLetters: {
      services: ["gateway"],
      scope: scopes.run,
      bind: (message, principal) => {
        message.requestedBy = principal.subject;
      },
    },
    // Offline approvals: the authority is the approver's signature on the response, checked by
    // the service; the caller only carries the files.
    ExportApprovalRequest: {
      services: ["gateway"],
      scope: scopes.run,
      bind: (message, principal) => {
        message.requestedBy = principal.subject;
      },
    },
    ImportApprovalResponse: {
      services: ["gateway"],
      scope: scopes.run,
      bind: (message, principal) => {
        message.importedBy = principal.subject;
      },
    },
  },
  [ScheduleService.typeName]: {
    CreateSchedule: {
      services: ["gateway"],
      scope: scopes.run,
      bind: (message, principal) => {
        message.createdBy = principal.subject;
      },
    },
    ListSchedules: { services: ["gateway"], scope: scopes.read },
    GetSchedule: { services: ["gateway"], scope: scopes.read },
    PauseSchedule: { services: ["gateway"], scope: scopes.run },
    ResumeSchedule: { services: ["gateway"], scope: scopes.run },
    DeleteSchedule: { services: ["gateway"], scope: scopes.run },
  },
};
