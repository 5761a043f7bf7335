import { durationSeconds } from "@packrun/planning";
import { InvalidArgumentError } from "commander";

const durationPattern = /^(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$/;
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Commander parser for a duration such as `90s`, `30m`, `1h30m` or a whole number of seconds;
 * the value is whole seconds (at least 1).
 */
export function durationOption(value: string): number {
  const text = value.trim();
  const seconds = /^\d+$/.test(text)
    ? Number(text)
    : durationPattern.test(text)
      ? durationSeconds(text)
      : Number.NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 1)
    throw new InvalidArgumentError("expected a duration such as 90s, 30m, 1h30m or 3600");
  return seconds;
}

/**
 * Commander parser for a point in time: RFC 3339 (`2026-01-31T22:00:00Z`, with an offset or Z)
 * or `+DURATION` from now (`+10m`). The value is an RFC 3339 UTC time.
 */
export function timeOption(value: string): string {
  const text = value.trim();
  if (text.startsWith("+")) {
    const seconds = durationOption(text.slice(1));
    return new Date(Date.now() + seconds * 1000).toISOString();
  }
  const date = new Date(text);
  if (!rfc3339.test(text) || Number.isNaN(date.getTime()))
    throw new InvalidArgumentError(
      "expected an RFC 3339 time such as 2026-01-31T22:00:00Z, or +DURATION such as +10m",
    );
  return date.toISOString();
}
