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
