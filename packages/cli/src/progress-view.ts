import type { Run } from "./api-types.ts";
import { pendingGateLines, renderProgress, stateChangeLines } from "./run-progress.ts";

/** Where the view writes, and whether it is an interactive terminal. */
export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean | undefined;
  columns?: number | undefined;
  rows?: number | undefined;
}

/** Cuts a line to `width` characters so it never wraps (a wrapped line breaks the redraw). */
export function fitLine(line: string, width: number): string {
  const chars = [...line];
  if (chars.length <= width) return line;
  return `${chars.slice(0, Math.max(0, width - 1)).join("")}…`;
}

/**
 * The live progress of a followed run. On a terminal the whole view (headline, one line per
 * step, pending gates) is redrawn in place on every update, the table cut to the terminal's
 * width and height so nothing scrolls (gate lines stay whole: they hold commands to copy). Elsewhere (a pipe, a CI log) only
 * what changed is appended, one line per change, so the output reads as a log.
 */
export class ProgressView {
  readonly #out: ProgressOutput;
  readonly #tty: boolean;
  /** Terminal rows the last drawing took (wrapped lines count once per row). */
  #drawnRows = 0;
  #previous: Run | undefined;

  constructor(out: ProgressOutput) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  /** True when the view redraws in place. */
  get interactive(): boolean {
    return this.#tty;
  }

  /** Shows `run` as of `now`. */
  update(run: Run, now: number = Date.now()): void {
    if (!this.#tty) {
      const lines = stateChangeLines(this.#previous, run, now);
      if (lines.length > 0) this.#out.write(`${lines.join("\n")}\n`);
      this.#previous = run;
      return;
    }
    this.#previous = run;
    this.redraw(now);
  }

  /** Redraws the last run shown (on a terminal: durations keep ticking). */
  redraw(now: number = Date.now()): void {
    const run = this.#previous;
    if (!this.#tty || run === undefined) return;
    // A pseudo-terminal may report 0 columns: assume the classic 80x24 then.
    const columns =
      this.#out.columns !== undefined && this.#out.columns > 0 ? this.#out.columns : 80;
    const rows = this.#out.rows !== undefined && this.#out.rows > 0 ? this.#out.rows : 24;
    const width = Math.max(20, columns - 1);
    const all = renderProgress(run, now, Math.max(5, rows - 1));
    // The table is cut to the width; the gate lines (the commands to copy) are kept whole and
    // their wrapped rows counted instead.
    const gateCount = pendingGateLines(run).length;
    const table = all.slice(0, all.length - gateCount).map((line) => fitLine(line, width));
    const gates = all.slice(all.length - gateCount);
    const lines = [...table, ...gates];
    const height = lines.reduce(
      (sum, line) => sum + Math.max(1, Math.ceil([...line].length / columns)),
      0,
    );
    // Up to the first line drawn, then clear everything below before drawing again.
    const up = this.#drawnRows > 0 ? `\u001b[${this.#drawnRows}F` : "";
    this.#out.write(`${up}\u001b[J${lines.join("\n")}\n`);
    this.#drawnRows = height;
  }
}
