import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { PackrunError } from "@packrun/errors";
import type { Event } from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { isRunUnknownToEvidence as isUnknownRun } from "./downstream-errors.ts";
import type { ServiceClients } from "./service-clients.ts";

/** What part of a run's event log to read. */
export interface RunEventQuery {
  readonly tenant: string;
  readonly runId: string;
  /** Events with a greater sequence are returned. */
  readonly afterSequence: number;
  /** Only this step's events; empty for all. */
  readonly stepId: string;
  /** Follow live until the run's terminal event, or stop at what is stored now. */
  readonly follow: boolean;
  /** How long to wait for the first event of a run that has none stored yet. */
  readonly firstEventWaitMs: number;
  readonly signal: AbortSignal;
}

/** The evidence service cut the subscription off because it fell too far behind. */
function isCutOffAsTooSlow(error: unknown): boolean {
  return (
    error instanceof ConnectError &&
    error.code === Code.ResourceExhausted &&
    error.metadata.get(errorCodeHeader) === "SUBSCRIBER_TOO_SLOW"
  );
}

/**
 * A run's events in sequence order from the evidence service, in the batches they arrive in
 * (a page of stored events, or one SubscribeEvents message): stored ones, then (when following)
 * live ones until the terminal event. Batches let the caller write a flood to its client in one
 * system call per message instead of one per line. The caller has already checked, through the
 * executor, that the run exists for the tenant.
 *
 * The gateway follows as fast as its client reads. When the evidence service cuts it off as too
 * slow (a flood outran the client), it subscribes again after the last event it passed on:
 * the client sees a delay, never a gap or an early end. A client that stops reading altogether
 * is dropped by the caller's own stall limit.
 */
export async function* readRunEventBatches(
  clients: ServiceClients,
  query: RunEventQuery,
): AsyncGenerator<readonly Event[]> {
  const { tenant, runId, stepId, signal } = query;
  let after = BigInt(query.afterSequence);
  const giveUpAt = Date.now() + query.firstEventWaitMs;
  if (!query.follow) {
    for (;;) {
      let page: Awaited<ReturnType<typeof clients.evidence.listEvents>>;
      try {
        page = await clients.evidence.listEvents(
          { tenant, runId, afterSequence: after, pageSize: 500, stepId },
          { signal },
        );
      } catch (error) {
        if (isUnknownRun(error)) return;
        throw error;
      }
      if (page.events.length > 0) yield page.events;
      if (page.nextAfterSequence === 0n || page.events.length === 0) return;
      after = page.nextAfterSequence;
    }
  }
  for (;;) {
    try {
      // Batched: a flood arrives as a message per page of events, not one per event.
      for await (const response of clients.evidence.subscribeEvents(
        { tenant, runId, afterSequence: after, stepId, batch: true },
        { signal },
      )) {
        const events = response.event === undefined ? response.events : [response.event];
        const last = events.at(-1);
        if (last === undefined) continue;
        after = last.sequence;
        yield events;
      }
      return;
    } catch (error) {
      if (isCutOffAsTooSlow(error) && !signal.aborted) continue;
      if (isUnknownRun(error) && after === 0n && Date.now() < giveUpAt && !signal.aborted) {
        await sleep(100, undefined, { signal }).catch(() => {});
        continue;
      }
      if (isUnknownRun(error))
        throw new PackrunError("UNAVAILABLE", `run ${runId} has no events yet; retry shortly`);
      throw error;
    }
  }
}
