import { LineAssembler } from "./line-assembler.ts";
import { LINE_TRUNCATED_SUFFIX, maskAndCap } from "./line-cap.ts";
import type { Masker } from "./masking.ts";
import type { LogLine } from "./types.ts";

/** A byte stream of the step (stdout or stderr) feeding the sink. */
export interface StreamInput {
  write(chunk: Buffer): void;
  end(): void;
}

/** Settings of a sink: caps from the request and where lines go. */
export interface LogSinkOptions {
  masker: Masker;
  maxLogBytes: number;
  maxLineBytes: number;
  /** Most output lines delivered (default {@link defaultMaxLogLines}). */
  maxLogLines?: number;
  onLog: (line: LogLine) => void;
}

/** How many of the last stderr lines {@link LogSink.stderrTail} keeps. */
const stderrTailLines = 5;

/**
 * Default cap on the number of output lines of one step. The byte cap alone lets a step that
 * prints millions of one-character lines (`yes`) turn into millions of events: each costs far
 * more memory, database and evidence space than its two bytes, and they arrive faster than
 * they can be stored, so the worker's memory grows without bound.
 */
export const defaultMaxLogLines = 100_000;

/**
 * Turns the step's output streams into masked, capped lines for `onLog`. Each line costs its
 * UTF-8 length plus one (the newline) against `maxLogBytes`; the first line that does not fit
 * produces one `[packrun] output truncated after N bytes` system line (the same happens after
 * `maxLogLines` lines: `… after N lines`), and from then on input is discarded as it arrives (the caller keeps reading the pipes so the step never blocks).
 * System lines are masked too but do not count against the cap.
 */
export class LogSink {
  readonly #options: LogSinkOptions;
  #deliveredBytes = 0;
  #deliveredLines = 0;
  #truncated = false;
  #stderrTail: string[] = [];
  #callbackError: unknown = null;

  /** See LogSinkOptions. */
  constructor(options: LogSinkOptions) {
    this.#options = options;
  }

  /** True once the total cap was hit. */
  get truncated(): boolean {
    return this.#truncated;
  }

  /**
   * The last few stderr lines delivered (masked), for explaining a failure in the step's
   * reason, e.g. which command was not found.
   */
  get stderrTail(): readonly string[] {
    return this.#stderrTail;
  }

  /** The first error thrown by `onLog`, if any (delivery stops after it). */
  get callbackError(): unknown {
    return this.#callbackError;
  }

  /** An input for one output stream of the step. */
  stream(name: "stdout" | "stderr"): StreamInput {
    const { masker, maxLineBytes } = this.#options;
    // Keep enough past the cap to see a whole secret that starts just before it.
    const keepBytes = maxLineBytes + masker.maxFormBytes + 4;
    const assembler = new LineAssembler(keepBytes, (kept, dropped) => {
      if (this.#truncated) return;
      const capped = maskAndCap(kept.toString("utf8"), masker, maxLineBytes);
      const text =
        capped.truncated || dropped > 0 ? capped.text + LINE_TRUNCATED_SUFFIX : capped.text;
      this.#deliver(name, text);
    });
    return {
      write: (chunk) => {
        if (!this.#truncated) assembler.push(chunk);
      },
      end: () => {
        if (!this.#truncated) assembler.end();
      },
    };
  }

  /** Delivers a runtime note (masked, not counted against the output cap). */
  system(text: string): void {
    this.#emit({ stream: "system", text: this.#options.masker.mask(text) });
  }

  /** Delivers one line of module output (already complete) as if the step printed it. */
  line(stream: "stdout" | "stderr", text: string): void {
    for (const line of text.split("\n")) {
      if (this.#truncated) return;
      const capped = maskAndCap(line, this.#options.masker, this.#options.maxLineBytes);
      this.#deliver(stream, capped.truncated ? capped.text + LINE_TRUNCATED_SUFFIX : capped.text);
    }
  }

  #deliver(stream: "stdout" | "stderr", text: string): void {
    const cost = Buffer.byteLength(text) + 1;
    if (this.#deliveredBytes + cost > this.#options.maxLogBytes) {
      this.#truncated = true;
      this.#emit({
        stream: "system",
        text: `[packrun] output truncated after ${this.#deliveredBytes} bytes`,
      });
      return;
    }
    if (this.#deliveredLines >= (this.#options.maxLogLines ?? defaultMaxLogLines)) {
      this.#truncated = true;
      this.#emit({
        stream: "system",
        text: `[packrun] output truncated after ${this.#deliveredLines} lines`,
      });
      return;
    }
    this.#deliveredBytes += cost;
    this.#deliveredLines++;
    if (stream === "stderr")
      this.#stderrTail = [...this.#stderrTail.slice(-(stderrTailLines - 1)), text];
    this.#emit({ stream, text });
  }

  #emit(line: LogLine): void {
    if (this.#callbackError !== null) return;
    try {
      this.#options.onLog(line);
    } catch (error) {
      // A throwing callback must not crash the stream handlers mid-step; executeStep reports it.
      this.#callbackError = error;
    }
  }
}
