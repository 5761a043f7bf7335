/**
 * A preload (`node --import`) that moves this process's wall clock by PACKRUN_TEST_CLOCK_SKEW_MS
 * milliseconds: `Date.now()` and `new Date()` are skewed; timers and `performance.now()` are not
 * (they use the monotonic clock, as on a machine whose wall clock is wrong).
 */
const skewMs = Number(process.env.PACKRUN_TEST_CLOCK_SKEW_MS ?? "0");
const RealDate = Date;

class SkewedDate extends RealDate {
  constructor(...args: [] | [string | number | Date] | [number, number, ...number[]]) {
    if (args.length === 0) super(RealDate.now() + skewMs);
    else if (args.length === 1) super(args[0]);
    else super(...(args as [number, number, ...number[]]));
  }

  static override now(): number {
    return RealDate.now() + skewMs;
  }
}

globalThis.Date = SkewedDate as DateConstructor;
