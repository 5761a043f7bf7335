import assert from "node:assert/strict";
import { test } from "vitest";
import { LINE_TRUNCATED_SUFFIX } from "./line-cap.ts";
import { LogSink } from "./log-sink.ts";
import { createMasker } from "./masking.ts";
import type { LogLine } from "./types.ts";

function sink(
  options: {
    maxLogBytes?: number;
    maxLineBytes?: number;
    maxLogLines?: number;
    secrets?: Record<string, string>;
  } = {},
) {
  const lines: LogLine[] = [];
  const logSink = new LogSink({
    masker: createMasker(options.secrets ?? {}),
    maxLogBytes: options.maxLogBytes ?? 1 << 20,
    maxLineBytes: options.maxLineBytes ?? 1 << 16,
    ...(options.maxLogLines === undefined ? {} : { maxLogLines: options.maxLogLines }),
    onLog: (line) => lines.push(line),
  });
  return { logSink, lines };
}

test("output is split on newlines, CRLF is trimmed and a final partial line is flushed", () => {
  const { logSink, lines } = sink();
  const out = logSink.stream("stdout");
  out.write(Buffer.from("one\r\ntw"));
  out.write(Buffer.from("o\n\nthree"));
  out.end();
  assert.deepEqual(
    lines.map((line) => line.text),
    ["one", "two", "", "three"],
  );
  assert.ok(lines.every((line) => line.stream === "stdout"));
});

test("a long line is cut at maxLineBytes without splitting a UTF-8 character", () => {
  const { logSink, lines } = sink({ maxLineBytes: 10 });
  const out = logSink.stream("stderr");
  out.write(Buffer.from(`${"é".repeat(20)}\nshort\n`));
  out.end();
  assert.deepEqual(
    lines.map((line) => line.text),
    [`${"é".repeat(5)}${LINE_TRUNCATED_SUFFIX}`, "short"],
  );
});

test("a secret straddling the line cap is masked, never shown in part", () => {
  const secret = "ABCDEFGHIJ";
  for (let offset = 0; offset < 30; offset++) {
    const { logSink, lines } = sink({ maxLineBytes: 20, secrets: { secret } });
    const out = logSink.stream("stdout");
    out.write(Buffer.from(`${"x".repeat(offset)}${secret}${"y".repeat(40)}${secret}\n`));
    out.end();
    const text = lines[0]?.text ?? "";
    assert.ok(!/[A-J]{2,}/.test(text), `offset ${offset}: ${text}`);
  }
});

test("the total cap produces exactly one marker and drops the rest", () => {
  const { logSink, lines } = sink({ maxLogBytes: 100 });
  const out = logSink.stream("stdout");
  const err = logSink.stream("stderr");
  for (let i = 0; i < 100; i++) {
    out.write(Buffer.from(`line ${i}\n`));
    err.write(Buffer.from(`err ${i}\n`));
  }
  out.end();
  err.end();
  const markers = lines.filter((line) => line.stream === "system");
  assert.equal(markers.length, 1);
  assert.match(markers[0]?.text ?? "", /^\[packrun\] output truncated after \d+ bytes$/);
  assert.equal(lines.at(-1)?.stream, "system");
  const delivered = lines
    .filter((line) => line.stream !== "system")
    .reduce((sum, line) => sum + Buffer.byteLength(line.text) + 1, 0);
  assert.ok(delivered <= 100);
  assert.ok(logSink.truncated);
});

test("a flood of tiny lines is capped by count, with one marker", () => {
  const { logSink, lines } = sink({ maxLogBytes: 1 << 30, maxLogLines: 1000 });
  const out = logSink.stream("stdout");
  for (let i = 0; i < 100; i++) out.write(Buffer.from("y\n".repeat(1000)));
  out.end();
  assert.equal(lines.filter((line) => line.stream === "stdout").length, 1000);
  const markers = lines.filter((line) => line.stream === "system");
  assert.deepEqual(
    markers.map((line) => line.text),
    ["[packrun] output truncated after 1000 lines"],
  );
  assert.ok(logSink.truncated);
});

test("an endless line without newline keeps only the capped prefix in memory", () => {
  const { logSink, lines } = sink({ maxLineBytes: 16 });
  const out = logSink.stream("stdout");
  const chunk = Buffer.alloc(64 * 1024, "a");
  for (let i = 0; i < 200; i++) out.write(chunk);
  out.end();
  assert.deepEqual(
    lines.map((line) => line.text),
    [`${"a".repeat(16)}${LINE_TRUNCATED_SUFFIX}`],
  );
});

test("an onLog callback that throws does not escape the stream handlers", () => {
  const logSink = new LogSink({
    masker: createMasker({}),
    maxLogBytes: 1000,
    maxLineBytes: 100,
    onLog: () => {
      throw new Error("boom");
    },
  });
  const out = logSink.stream("stdout");
  out.write(Buffer.from("a\nb\n"));
  out.end();
  assert.match(String(logSink.callbackError), /boom/);
});
