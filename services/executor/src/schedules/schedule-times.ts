import { PackrunError } from "@packrun/errors";
import { CronExpressionParser } from "cron-parser";

/**
 * True when `zone` is an IANA time zone this runtime knows (Intl's own list, so exactly the
 * zones date arithmetic can use).
 */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return zone !== "";
  } catch {
    return false;
  }
}

function expression(cron: string, timeZone: string, currentDate: Date) {
  return CronExpressionParser.parse(cron, { tz: timeZone, currentDate, strict: false });
}

/**
 * Checks a cron expression (5 fields, or 6 with seconds first; @hourly and the like) and a time
 * zone, and that the expression has a next time at all.
 * @throws PackrunError REQUEST_INVALID naming the field that is wrong
 */
export function requireValidCron(cron: string, timeZone: string): void {
  if (!isTimeZone(timeZone))
    throw new PackrunError(
      "REQUEST_INVALID",
      `timeZone "${timeZone}" is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)`,
    );
  if (cron.trim() === "" || cron.length > 200)
    throw new PackrunError("REQUEST_INVALID", "cron must be a cron expression of 1-200 characters");
  try {
    expression(cron, timeZone, new Date()).next();
  } catch (error) {
    throw new PackrunError(
      "REQUEST_INVALID",
      `cron "${cron}" is not a valid cron expression: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** The first time of `cron` in `timeZone` strictly after `after`. */
export function nextDueTime(cron: string, timeZone: string, after: Date): Date {
  return expression(cron, timeZone, after).next().toDate();
}

/** The last time of `cron` in `timeZone` at or before `at` (undefined when there is none). */
export function latestDueTime(cron: string, timeZone: string, at: Date): Date | undefined {
  try {
    // prev() is strictly before its start: start 1 ms later to include `at` itself.
    return expression(cron, timeZone, new Date(at.getTime() + 1))
      .prev()
      .toDate();
  } catch {
    return undefined;
  }
}
