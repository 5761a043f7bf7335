import { constants } from "node:os";

/** Marker of our line in GNU time's report (the step could print anything else there). */
const TAG = "packrun-time";

/**
 * GNU time format: exit status, user and system CPU seconds (10 ms resolution) and maximum
 * resident set size in KiB of the measured command and every descendant it waited for.
 */
export const TIME_FORMAT = `${TAG} exit=%x user=%U sys=%S maxrss_kib=%M`;

/** What GNU time reported about the command it ran. */
export interface TimeReport {
  exitCode: number | null;
  signal: string | null;
  cpuMicros: number;
  peakMemoryBytes: number;
}

/**
 * Parses GNU time's `-o` output. It writes `Command terminated by signal N` (then a meaningless
 * exit status) when the command died of a signal. Returns null when no report line is found,
 * e.g. when time itself was killed.
 */
export function parseTimeReport(text: string): TimeReport | null {
  let report: TimeReport | null = null;
  let signalNumber: number | null = null;
  for (const line of text.split("\n")) {
    const signalled = /^Command terminated by signal (\d+)$/.exec(line);
    if (signalled) signalNumber = Number(signalled[1]);
    const match = /^packrun-time exit=(\d+) user=([\d.]+) sys=([\d.]+) maxrss_kib=(\d+)$/.exec(
      line,
    );
    if (!match) continue;
    report = {
      exitCode: Number(match[1]),
      signal: null,
      cpuMicros: Math.round((Number(match[2]) + Number(match[3])) * 1e6),
      peakMemoryBytes: Number(match[4]) * 1024,
    };
  }
  if (report && signalNumber !== null) {
    report.exitCode = null;
    report.signal = signalName(signalNumber);
  }
  return report;
}

/** `SIGKILL` for 9; `SIG<n>` for numbers this platform has no name for. */
export function signalName(signalNumber: number): string {
  for (const [name, value] of Object.entries(constants.signals)) {
    if (value === signalNumber) return name;
  }
  return `SIG${signalNumber}`;
}
