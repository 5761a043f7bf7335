import type { RunEvent } from "./api-types.ts";
import { printable } from "./printable.ts";

/** True for a line a step printed (`log.stdout`, `log.stderr`, `log.system`, `step.log`). */
export function isOutputEvent(event: RunEvent): boolean {
  return event.type.startsWith("log.") || event.type === "step.log";
}

/**
 * Formats run events as log lines for people: `HH:MM:SS.mmm  step │ text` for a step's
 * output (`log.*` or `step.log`; stderr marked `!`), `HH:MM:SS.mmm  step   type: message` for everything
 * else (state changes, gates, artifacts). The step column widens as longer ids appear, so a
 * stream stays aligned without knowing every id in advance. Time is the event's, in UTC.
 */
export class EventLineFormatter {
  #width = 8;

  /** The line of one event (without a newline), safe to print on a terminal. */
  format(event: RunEvent): string {
    const time = event.time.length >= 23 ? event.time.slice(11, 23) : event.time;
    const step = printable(
      event.stepId === undefined || event.stepId === "" ? "run" : event.stepId,
    );
    this.#width = Math.max(this.#width, step.length);
    const column = step.padEnd(this.#width);
    if (isOutputEvent(event)) {
      const bar = event.type === "log.stderr" || event.metadata?.stream === "stderr" ? "!" : "│";
      return `${time}  ${column} ${bar} ${printable(event.message)}`;
    }
    const message = event.message === "" ? "" : `: ${printable(event.message)}`;
    return `${time}  ${column}   ${printable(event.type)}${message}`;
  }
}
