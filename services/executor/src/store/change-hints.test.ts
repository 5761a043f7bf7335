import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "vitest";
import { ReadPacer } from "./change-hints.ts";

/** Milliseconds `next()` took, and what it resolved to. */
async function timed(pacer: ReadPacer): Promise<{ ms: number; go: boolean }> {
  const start = performance.now();
  const go = await pacer.next();
  return { ms: performance.now() - start, go };
}

test("the first read is immediate; without hints the next one waits for the fallback", async () => {
  const pacer = new ReadPacer({ fallbackMs: 600, minGapMs: 100 });
  const first = await timed(pacer);
  assert.ok(first.go && first.ms < 50, `first read after ${first.ms} ms`);
  const second = await timed(pacer);
  assert.ok(second.go && second.ms >= 590, `fallback read after ${second.ms} ms`);
});

test("a burst of hints during a read causes exactly one more read, spaced by the least gap", async () => {
  const pacer = new ReadPacer({ fallbackMs: 1500, minGapMs: 150 });
  await pacer.next();
  const readStarted = performance.now();
  // The read: a thousand hints arrive while it runs.
  for (let i = 0; i < 1000; i++) pacer.hint();
  const go = await pacer.next();
  // Measured from the read's start, as the gap is (the hints themselves take time on a busy machine).
  const sinceRead = performance.now() - readStarted;
  assert.ok(go && sinceRead >= 145 && sinceRead < 400, `re-read ${sinceRead} ms after the read`);
  // The burst was consumed by that one read: the next waits for a new hint or the fallback.
  const hinted = setTimeout(() => pacer.hint(), 600);
  const third = await timed(pacer);
  clearTimeout(hinted);
  assert.ok(third.ms >= 590 && third.ms < 1000, `third read after ${third.ms} ms`);
});

test("slow reads are spaced out in proportion, so a reader is never busy reading all the time", async () => {
  const pacer = new ReadPacer({ fallbackMs: 5000, minGapMs: 10, maxReadShare: 1 / 3 });
  await pacer.next();
  await sleep(100); // a read of 100 ms: the next starts no sooner than 300 ms after it started
  pacer.hint();
  const again = await timed(pacer);
  assert.ok(again.go && again.ms >= 190 && again.ms < 400, `re-read after ${again.ms} ms`);
});

test("a hint after a quiet spell starts a read at once", async () => {
  const pacer = new ReadPacer({ fallbackMs: 5000, minGapMs: 200 });
  await pacer.next();
  // Quiet for longer than the least gap, then a change.
  setTimeout(() => pacer.hint(), 300);
  const woken = await timed(pacer);
  assert.ok(woken.go && woken.ms >= 290 && woken.ms < 380, `read after ${woken.ms} ms`);
});

test("close ends a waiting reader at once, and every later wait", async () => {
  const pacer = new ReadPacer({ fallbackMs: 5000, minGapMs: 10 });
  await pacer.next();
  setTimeout(() => pacer.close(), 50);
  const closed = await timed(pacer);
  assert.ok(!closed.go && closed.ms < 200, `closed after ${closed.ms} ms`);
  pacer.hint();
  assert.equal(await pacer.next(), false);
});
