const NEWLINE = 0x0a;

/** Called once per complete line: its first bytes (at most `keepBytes`) and how many were dropped. */
export type LineHandler = (kept: Buffer, droppedBytes: number) => void;

/**
 * Splits a byte stream into lines on `\n`. A line longer than `keepBytes` keeps only its first
 * `keepBytes` bytes in memory and counts the rest, so one endless line cannot grow the worker.
 */
export class LineAssembler {
  readonly #keepBytes: number;
  readonly #onLine: LineHandler;
  #parts: Buffer[] = [];
  #keptLength = 0;
  #dropped = 0;

  /** `keepBytes`: how much of one line to keep; `onLine`: receives every complete line. */
  constructor(keepBytes: number, onLine: LineHandler) {
    this.#keepBytes = keepBytes;
    this.#onLine = onLine;
  }

  /** Feeds the next chunk of the stream. */
  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      this.#keep(chunk.subarray(start, end));
      if (newline === -1) return;
      this.#emit();
      start = newline + 1;
    }
  }

  /** Flushes a final line that had no trailing newline. */
  end(): void {
    if (this.#keptLength > 0 || this.#dropped > 0) this.#emit();
  }

  #keep(bytes: Buffer): void {
    const room = this.#keepBytes - this.#keptLength;
    if (room <= 0) {
      this.#dropped += bytes.length;
      return;
    }
    const kept = bytes.length <= room ? bytes : bytes.subarray(0, room);
    // Copy: the chunk belongs to the stream and slices would pin the whole chunk in memory.
    this.#parts.push(Buffer.from(kept));
    this.#keptLength += kept.length;
    this.#dropped += bytes.length - kept.length;
  }

  #emit(): void {
    let line = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts);
    if (this.#dropped === 0 && line.at(-1) === 0x0d) line = line.subarray(0, -1);
    const dropped = this.#dropped;
    this.#parts = [];
    this.#keptLength = 0;
    this.#dropped = 0;
    this.#onLine(line, dropped);
  }
}
