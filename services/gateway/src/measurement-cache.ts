/** The SHA-256 (hex) and length of a download's bytes. */
export interface Measurement {
  readonly sha256: string;
  readonly size: number;
}

/**
 * The measurements of the most recently served bundles, least recently used evicted first.
 * Bundles are rebuilt byte for byte on every read, so a measurement stays right; remembering
 * it spares a resumed or conditional download a full extra read of the bundle. A Map keeps
 * insertion order, which is all an LRU of a few hundred entries needs.
 */
export class MeasurementCache {
  readonly #entries = new Map<string, Measurement>();
  readonly #capacity: number;

  /** @param capacity how many measurements to keep */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** The measurement of `key`, now the most recently used; undefined when not kept. */
  get(key: string): Measurement | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** Keeps `measurement`, evicting the least recently used one beyond capacity. */
  set(key: string, measurement: Measurement): void {
    this.#entries.delete(key);
    this.#entries.set(key, measurement);
    if (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
  }

  /** Forgets `key` (its bytes turned out different). */
  delete(key: string): void {
    this.#entries.delete(key);
  }
}
