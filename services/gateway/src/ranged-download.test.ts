import assert from "node:assert/strict";
import { test } from "vitest";
import { MeasurementCache } from "./measurement-cache.ts";
import { measure, noneMatch, parseByteRange, verifiedReplay } from "./ranged-download.ts";

test("parseByteRange reads the three single-range forms and ignores the rest", () => {
  assert.deepEqual(parseByteRange("bytes=0-9", 100), { start: 0, end: 9 });
  assert.deepEqual(parseByteRange("bytes=90-", 100), { start: 90, end: 99 });
  assert.deepEqual(parseByteRange("bytes=-10", 100), { start: 90, end: 99 });
  assert.deepEqual(parseByteRange("bytes=-500", 100), { start: 0, end: 99 });
  assert.deepEqual(parseByteRange("bytes=50-5000", 100), { start: 50, end: 99 });
  assert.equal(parseByteRange("bytes=100-", 100), "unsatisfiable");
  assert.equal(parseByteRange("bytes=-0", 100), "unsatisfiable");
  for (const ignored of [undefined, "", "bytes=5-1", "bytes=0-1,5-9", "items=0-1", "bytes=-"])
    assert.equal(parseByteRange(ignored, 100), undefined, String(ignored));
});

test("noneMatch compares entity tags weakly, lists and * included", () => {
  assert.ok(noneMatch('"a"', '"a"'));
  assert.ok(noneMatch('W/"a"', '"a"'));
  assert.ok(noneMatch('"x", "a"', '"a"'));
  assert.ok(noneMatch("*", '"a"'));
  assert.ok(!noneMatch('"b"', '"a"'));
  assert.ok(!noneMatch(undefined, '"a"'));
});

test("a replay that differs from its measurement fails and reports it", async () => {
  const bytes = async function* (text: string) {
    yield Buffer.from(text);
  };
  const measured = await measure(bytes("same bytes"));
  const read: Uint8Array[] = [];
  for await (const chunk of verifiedReplay(bytes("same bytes"), measured)) read.push(chunk);
  assert.equal(Buffer.concat(read).toString(), "same bytes");
  let mismatches = 0;
  await assert.rejects(async () => {
    for await (const _ of verifiedReplay(bytes("other bytes"), measured, () => mismatches++));
  }, /changed between two reads/);
  assert.equal(mismatches, 1);
});

test("the measurement cache evicts the least recently used entry", () => {
  const cache = new MeasurementCache(2);
  cache.set("a", { sha256: "1", size: 1 });
  cache.set("b", { sha256: "2", size: 2 });
  assert.ok(cache.get("a"));
  cache.set("c", { sha256: "3", size: 3 });
  assert.equal(cache.get("b"), undefined);
  assert.ok(cache.get("a") && cache.get("c"));
  cache.delete("a");
  assert.equal(cache.get("a"), undefined);
});
