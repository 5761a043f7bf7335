/**
 * The resume bookkeeping of a followed event stream: the last sequence delivered, so a
 * reconnection asks for what comes after it (`Last-Event-ID`) and an event the server sends
 * again after a reconnection is never delivered twice.
 */
export class EventCursor {
  #last: number;
  #delivered = 0;
  #duplicates = 0;

  /** `after`: resume point given by the user (0 = from the start). */
  constructor(after = 0) {
    this.#last = after;
  }

  /** The last sequence delivered (or the starting point): what to resume after. */
  get lastSequence(): number {
    return this.#last;
  }

  /** How many events were delivered. */
  get delivered(): number {
    return this.#delivered;
  }

  /** How many events were dropped because they were already delivered. */
  get duplicates(): number {
    return this.#duplicates;
  }

  /**
   * True when the event with `sequence` is new and must be delivered (and records it); false
   * for a sequence at or before the last delivered one.
   */
  accept(sequence: number): boolean {
    if (!Number.isSafeInteger(sequence) || sequence <= this.#last) {
      this.#duplicates++;
      return false;
    }
    this.#last = sequence;
    this.#delivered++;
    return true;
  }
}

/** Backoff bounds for reconnecting. */
export interface BackoffPolicy {
  /** Delay before the first retry. */
  baseMs: number;
  /** No delay exceeds this. */
  maxMs: number;
}

/** The default reconnection backoff: 250 ms doubling up to 5 s. */
export const defaultBackoff: BackoffPolicy = { baseMs: 250, maxMs: 5_000 };

/**
 * Delay before retry number `failures` (1-based): `baseMs * 2^(failures-1)` capped at `maxMs`,
 * then scaled by a jitter in [0.8, 1.0] (`random` in [0, 1)) so many clients dropped together
 * do not reconnect in lockstep.
 */
export function backoffDelayMs(
  failures: number,
  policy: BackoffPolicy = defaultBackoff,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  const capped = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  return Math.round(capped * (0.8 + 0.2 * random()));
}
