import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  type WatchRunRequest,
  type WatchRunResponse,
  WatchRunResponseSchema,
} from "@packrun/proto/executor/v1";
import { type RunState, terminalRunStates } from "../run/state-machine.ts";
import { ReadPacer, runChangedChannel } from "../store/change-hints.ts";
import type { ExecutorServiceOptions } from "./executor-service.ts";
import { requireTenant } from "./request-checks.ts";
import { runMessage } from "./run-messages.ts";
import type { RunService } from "./run-service.ts";

/**
 * Default least time between two reads of one WatchRun stream. A run's transitions come in
 * bursts (a map of 2,000 children commits many transactions a second), each read costs four
 * queries: 25 ms caps a small run's watcher at 40 reads a second while delaying a notice by at
 * most 25 ms, and only one that closely follows another change; the first read after a quiet
 * spell is immediate. Slow reads (a view of 2,000 steps takes ~100 ms) are spaced out further,
 * see {@link ReadPacer}.
 */
export const watchMinGapMs = 25;

/**
 * WatchRun: the run's view whenever it changed (woken by {@link runChangedChannel} hints, paced
 * by a {@link ReadPacer}), until the run ended and no step of it runs any more.
 */
export async function* watchRun(
  runs: RunService,
  options: Pick<ExecutorServiceOptions, "changes" | "watchIntervalMs" | "watchMinGapMs">,
  request: WatchRunRequest,
  context: HandlerContext,
): AsyncGenerator<WatchRunResponse> {
  const tenant = requireTenant(request.tenant);
  const { changes } = options;
  const pacer = new ReadPacer({
    fallbackMs: options.watchIntervalMs ?? (changes === undefined ? 200 : 2000),
    minGapMs: changes === undefined ? 0 : (options.watchMinGapMs ?? watchMinGapMs),
  });
  // Subscribed before the first read: a change committed after that read is always heard.
  const unwatch = changes?.watch(runChangedChannel, request.runId, () => pacer.hint());
  const stop = () => pacer.close();
  context.signal.addEventListener("abort", stop);
  if (context.signal.aborted) stop();
  try {
    let last = "";
    while (await pacer.next()) {
      const view = await runs.get(tenant, request.runId);
      const fingerprint = createHash("sha256")
        .update(
          JSON.stringify([
            view.run.state,
            view.steps.map((step) => [step.step_id, step.state, step.attempt]),
            view.decisions.length,
          ]),
        )
        .digest("hex");
      if (fingerprint !== last) {
        last = fingerprint;
        yield create(WatchRunResponseSchema, { run: runMessage(view) });
      }
      if (
        terminalRunStates.has(view.run.state as RunState) &&
        !view.steps.some((step) => step.state === "running")
      )
        return;
    }
  } finally {
    unwatch?.();
    context.signal.removeEventListener("abort", stop);
    pacer.close();
  }
}
