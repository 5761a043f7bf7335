import type { Logger } from "@packrun/logging";

/** Options for {@link stopOnSignals}. */
export interface StopOnSignalsOptions {
  readonly logger: Logger;
  /** Service name for the log lines, e.g. `planner`. */
  readonly service: string;
  /** Stops the service and releases what it holds; the process exits 0 after it, 1 if it throws. */
  readonly close: () => Promise<void>;
  /** Extra fields of the `shutting down` line. */
  readonly context?: Record<string, unknown>;
}

/**
 * The graceful stop every service process shares: the first SIGINT or SIGTERM runs `close`
 * once (later signals are ignored while it runs), then exits 0, or 1 when closing failed.
 */
export function stopOnSignals(options: StopOnSignalsOptions): void {
  const { logger, service } = options;
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, ...options.context }, `${service} shutting down`);
    try {
      await options.close();
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, `${service} shutdown failed`);
      process.exit(1);
    }
  };
  process.on("SIGINT", (signal) => void stop(signal));
  process.on("SIGTERM", (signal) => void stop(signal));
}
