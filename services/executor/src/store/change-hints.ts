/**
 * NOTIFY channel announcing that something WatchRun shows may have changed; the payload is the
 * run id (see migrations/002-change-notifications.sql).
 */
export const runChangedChannel = "packrun_run_changed";

/** NOTIFY channel announcing new outbox rows (empty payload). */
export const outboxChannel = "packrun_outbox";

/** The channels an executor's listener must LISTEN on. */
export const executorChannels: readonly string[] = [runChangedChannel, outboxChannel];

/** Options for {@link ReadPacer}. */
export interface ReadPacerOptions {
  /** Read anyway after this long without a hint (lost notifications, or no listener at all). */
  fallbackMs: number;
  /** Least time between the starts of two reads, however many hints arrive. */
  minGapMs: number;
  /**
   * Most of the time spent reading while hints keep coming (default 1/3): after a read that
   * took d ms, the next starts no sooner than d / maxReadShare after it started. Reads of a
   * huge run are slow (a view of 2,000 steps takes ~100 ms), so the gap grows with them.
   */
  maxReadShare?: number;
}

/**
 * Turns change hints into reads for one sequential reader: the first read is immediate, hints
 * arriving during a read cause exactly one more read after it, reads start at most once per
 * `minGapMs` (and take at most `maxReadShare` of the time), and without hints the reader still
 * reads every `fallbackMs`.
 */
export class ReadPacer {
  readonly #fallbackMs: number;
  readonly #minGapMs: number;
  readonly #maxReadShare: number;
  #pending = true;
  #closed = false;
  #lastStart = Number.NEGATIVE_INFINITY;
  #wake: (() => void) | undefined;
  #wakeOnHint = false;

  constructor(options: ReadPacerOptions) {
    this.#fallbackMs = options.fallbackMs;
    this.#minGapMs = options.minGapMs;
    this.#maxReadShare = options.maxReadShare ?? 1 / 3;
  }

  /** Something may have changed. */
  hint(): void {
    this.#pending = true;
    if (this.#wakeOnHint) this.#wake?.();
  }

  /** Ends the reader's wait now: {@link next} resolves false from then on. */
  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  /** Waits until the next read is due; false once closed. */
  async next(): Promise<boolean> {
    // The caller is done with the previous read (if any) now.
    const readMs = performance.now() - this.#lastStart;
    const spacing = Math.max(this.#minGapMs, readMs / this.#maxReadShare);
    if (!this.#pending) await this.#sleep(this.#fallbackMs, true);
    const gap = this.#lastStart + spacing - performance.now();
    // Hints during the gap are kept (pending) but do not shorten it.
    if (gap > 0) await this.#sleep(gap, false);
    if (this.#closed) return false;
    this.#pending = false;
    this.#lastStart = performance.now();
    return true;
  }

  #sleep(ms: number, wakeOnHint: boolean): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        this.#wakeOnHint = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
      this.#wakeOnHint = wakeOnHint;
    });
  }
}
