const units = [
  ["d", 86_400],
  ["h", 3_600],
  ["m", 60],
  ["s", 1],
] as const;

/** Whole seconds as a compact duration (`90` → `1m30s`, `86400` → `1d`); null → `never`. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return "never";
  if (!Number.isFinite(seconds) || seconds <= 0) return `${seconds}s`;
  let rest = Math.round(seconds);
  let out = "";
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0) out += `${count}${unit}`;
    rest -= count * size;
  }
  return out;
}

/**
 * A step or run duration for progress lines: tenths of a second below a minute (`0.4s`,
 * `12.3s`), then whole seconds (`1m05s`, `2h03m`); undefined → "".
 */
export function formatElapsed(milliseconds: number | undefined): string {
  if (milliseconds === undefined || !Number.isFinite(milliseconds)) return "";
  const ms = Math.max(0, milliseconds);
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
