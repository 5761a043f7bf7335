const unitSeconds: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
const part = /(\d+)(ms|s|m|h|d)/g;

/**
 * Seconds in a manifest duration: an integer number of seconds, or a string of number+unit
 * parts (`ms`, `s`, `m`, `h`, `d`) such as `90s`, `5m` or `1h30m`. The schema has already
 * checked the shape; this only adds it up.
 */
export function durationSeconds(value: string | number): number {
  if (typeof value === "number") return value;
  let total = 0;
  for (const match of value.matchAll(part)) {
    total += Number(match[1]) * (unitSeconds[match[2] as string] as number);
  }
  return Math.round(total * 1000) / 1000;
}
