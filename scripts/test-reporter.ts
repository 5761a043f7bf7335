/**
 * node:test reporter for `npm test`: node's `spec` output, a header line whenever output moves to
 * another test file, and a final plain line `N passed, N failed` that tools and people can grep.
 *
 * Counts are node's own run summary (tests, not suites; a file that crashes on load is one failed
 * test). Cancelled tests (timeouts, interrupted runs) count as failed; skipped and todo tests are
 * not counted as passed and are mentioned on the line before the last when non-zero.
 */
import { once } from "node:events";
import path from "node:path";
import type { TestEvent } from "node:test/reporters";
import { spec } from "node:test/reporters";

type Counts = { passed: number; failed: number; cancelled: number; skipped: number; todo: number };

/** Events whose output spec prints, and that carry the test file they belong to. */
const FILE_EVENTS = new Set([
  "test:pass",
  "test:fail",
  "test:stdout",
  "test:stderr",
  "test:diagnostic",
]);

function eventFile(event: TestEvent): string | undefined {
  if (!FILE_EVENTS.has(event.type) || !event.data || !("file" in event.data)) return undefined;
  const file = event.data.file;
  if (typeof file !== "string" || file === "") return undefined;
  return path.relative(process.cwd(), path.resolve(file)).split(path.sep).join("/");
}

/** Own tally from pass/fail events, used only if node's final summary never arrives. */
function tally(counts: Counts, event: TestEvent): void {
  if (event.type !== "test:pass" && event.type !== "test:fail") return;
  if (event.data.details.type === "suite") return;
  if (event.data.skip !== undefined && event.data.skip !== false) counts.skipped++;
  else if (event.data.todo !== undefined && event.data.todo !== false) counts.todo++;
  else if (event.type === "test:pass") counts.passed++;
  else counts.failed++;
}

/** Drains whatever the spec transform has produced so far (it transforms synchronously). */
function drain(stream: InstanceType<typeof spec>): string {
  let out = "";
  for (let chunk = stream.read(); chunk !== null; chunk = stream.read()) out += String(chunk);
  return out;
}

/**
 * The reporter: `node --test --test-reporter=./scripts/test-reporter.ts`.
 * @param source the test runner's event stream
 */
export default async function* packrunReporter(
  source: AsyncIterable<TestEvent>,
): AsyncGenerator<string, void> {
  const specStream = new spec();
  const own: Counts = { passed: 0, failed: 0, cancelled: 0, skipped: 0, todo: 0 };
  let summary: Counts | undefined;
  let currentFile: string | undefined;
  let printed = false;

  for await (const event of source) {
    tally(own, event);
    if (event.type === "test:summary" && event.data.file === undefined) {
      const c = event.data.counts;
      // `failed` is emitted by node but missing from @types/node; derive it if ever absent.
      const failed =
        (c as { failed?: number }).failed ?? c.tests - c.passed - c.cancelled - c.skipped - c.todo;
      summary = {
        passed: c.passed,
        failed,
        cancelled: c.cancelled,
        skipped: c.skipped,
        todo: c.todo,
      };
    }
    const file = eventFile(event);
    if (file !== undefined && file !== currentFile) {
      yield `${currentFile === undefined ? "" : "\n"}▷ ${file}\n`;
      currentFile = file;
    } else if (
      event.type === "test:diagnostic" &&
      file === undefined &&
      currentFile !== undefined
    ) {
      yield "\n"; // the run's own summary lines follow
      currentFile = undefined;
    }
    specStream.write(event);
    const out = drain(specStream);
    if (out) yield out;
    if (event.type === "test:interrupted") {
      // SIGINT/SIGTERM: node exits right after this event, so the summary has to be printed now.
      yield finalLines(own, event.data.tests.length);
      printed = true;
    }
  }

  // spec prints its "failing tests" recap on flush.
  let rest = "";
  const ended = once(specStream, "end");
  specStream.on("data", (chunk: Buffer | string) => {
    rest += String(chunk);
  });
  specStream.end();
  await ended;
  if (rest) yield rest;

  if (!printed) yield finalLines(summary ?? own, 0);
}

/** The closing lines: skipped/todo/cancelled when non-zero, then `N passed, N failed`. */
function finalLines(counts: Counts, interrupted: number): string {
  const extras: string[] = [];
  if (counts.skipped > 0) extras.push(`${counts.skipped} skipped`);
  if (counts.todo > 0) extras.push(`${counts.todo} todo`);
  if (counts.cancelled > 0) extras.push(`${counts.cancelled} cancelled (counted as failed)`);
  if (interrupted > 0) extras.push(`${interrupted} interrupted (counted as failed)`);
  const failed = counts.failed + counts.cancelled + interrupted;
  return `${extras.length > 0 ? `\n${extras.join(", ")}\n` : ""}${counts.passed} passed, ${failed} failed\n`;
}
