import { setTimeout as sleep } from "node:timers/promises";
import { finishedRunStates, type Run } from "./api-types.ts";
import { CliError } from "./cli-error.ts";
import { backoffDelayMs } from "./event-cursor.ts";
import { ExitCode } from "./exit-codes.ts";
import type { GatewayClient } from "./gateway-client.ts";
import { streamRunEvents } from "./run-event-stream.ts";

/** How to follow a run. */
export interface FollowRunOptions {
  /** Called with every fresh snapshot of the run (also the first and the final one). */
  onUpdate: (run: Run) => void;
  /** Called about once a second while waiting, e.g. to let durations tick. */
  onTick?: () => void;
  /** Fetch the run at least this often even without events (default 2 s). */
  pollIntervalMs?: number;
  /** Give up after this many failed fetches in a row (default 8, about 30 s). */
  maxConsecutiveFailures?: number;
  signal?: AbortSignal;
}

/**
 * A wake-up flag: `wait(ms)` resolves after `ms` or as soon as `wake()` is called, whichever
 * comes first; a `wake()` while nobody waits makes the next wait return at once.
 */
class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;

  wake(): void {
    if (this.#resolve === undefined) {
      this.#pending = true;
      return;
    }
    this.#resolve();
  }

  async wait(ms: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#resolve = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#resolve = undefined;
    this.#pending = false;
  }
}

/**
 * Follows a run until it finishes and returns its final state. The graph comes from
 * `GET /api/runs/{id}`, fetched every `pollIntervalMs` and, for liveness, shortly after each
 * event of the SSE log stream (which resumes by itself after a dropped connection). Polling
 * alone still works when the stream cannot be used. Transient fetch failures are retried with
 * backoff; errors that retrying cannot fix (auth, not found) are thrown at once.
 */
export async function followRun(
  client: GatewayClient,
  runId: string,
  options: FollowRunOptions,
): Promise<Run> {
  const pollIntervalMs = options.pollIntervalMs ?? 2_000;
  const maxFailures = options.maxConsecutiveFailures ?? 8;
  const wakeup = new Wakeup();
  const stop = new AbortController();
  const stopStream = () => stop.abort();
  options.signal?.addEventListener("abort", stopStream, { once: true });
  // Each event means the graph may have changed: fetch it soon (events come in bursts, so a
  // short pause lets one fetch cover many). The stream's own failures only cost liveness.
  let debounce: NodeJS.Timeout | undefined;
  const stream = streamRunEvents(client, {
    runId,
    follow: true,
    signal: stop.signal,
    onEvent: () => {
      if (debounce !== undefined) return;
      debounce = setTimeout(() => {
        debounce = undefined;
        wakeup.wake();
      }, 150);
    },
  })
    .then(() => wakeup.wake())
    .catch(() => undefined);
  const ticker =
    options.onTick === undefined ? undefined : setInterval(options.onTick, 1_000).unref();
  let failures = 0;
  try {
    for (;;) {
      let run: Run;
      try {
        run = await client.getRun(runId, stop.signal);
        failures = 0;
      } catch (error) {
        if (stop.signal.aborted) throw new CliError("stopped following", ExitCode.error);
        if (!(error instanceof CliError) || error.exitCode !== ExitCode.retryable) throw error;
        failures++;
        if (failures > maxFailures) throw error;
        await sleep(backoffDelayMs(failures, { baseMs: 500, maxMs: 5_000 }));
        continue;
      }
      options.onUpdate(run);
      if (finishedRunStates.has(run.state)) return run;
      await wakeup.wait(pollIntervalMs);
    }
  } finally {
    clearTimeout(debounce);
    if (ticker !== undefined) clearInterval(ticker);
    options.signal?.removeEventListener("abort", stopStream);
    stop.abort();
    await stream;
  }
}
