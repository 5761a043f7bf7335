import type { RunState, StepState } from "./api-types.ts";

/**
 * How a state is shown: an icon and a word as well as a colour, never colour alone. The icons are
 * from blocks every common font has (no emoji font needed).
 */
export interface StateLook {
  readonly icon: string;
  readonly label: string;
  /** CSS class suffix: the colour. */
  readonly tone: "ok" | "bad" | "busy" | "wait" | "idle";
}

const looks: Record<RunState | StepState, StateLook> = {
  queued: { icon: "◷", label: "queued", tone: "idle" },
  pending: { icon: "○", label: "pending", tone: "idle" },
  running: { icon: "▶", label: "running", tone: "busy" },
  "awaiting-approval": { icon: "‖", label: "awaiting approval", tone: "wait" },
  succeeded: { icon: "✔", label: "succeeded", tone: "ok" },
  failed: { icon: "✖", label: "failed", tone: "bad" },
  timed_out: { icon: "◴", label: "timed out", tone: "bad" },
  cancelled: { icon: "⊘", label: "cancelled", tone: "bad" },
  skipped: { icon: "↷", label: "skipped", tone: "idle" },
  rejected: { icon: "⊗", label: "rejected", tone: "bad" },
  expired: { icon: "◌", label: "expired", tone: "bad" },
};

/** The look of a run or step state. */
export function stateLook(state: RunState | StepState): StateLook {
  return looks[state] ?? { icon: "?", label: state, tone: "idle" };
}

/** A duration as `1m 05s`, `850 ms`. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

/** Milliseconds between two RFC 3339 times (the end defaults to now). */
export function elapsed(start: string | undefined, end?: string): number | undefined {
  if (start === undefined) return undefined;
  return (end === undefined ? Date.now() : Date.parse(end)) - Date.parse(start);
}

/** A time as the reader's local date and time. */
export function formatTime(time: string | undefined): string {
  return time === undefined ? "—" : new Date(time).toLocaleString();
}

/** Bytes as `1.2 MB`. */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
