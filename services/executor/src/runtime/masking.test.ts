import assert from "node:assert/strict";
import { test } from "vitest";
import { LogSink } from "./log-sink.ts";
import { createMasker, secretForms } from "./masking.ts";
import type { LogLine } from "./types.ts";

const SECRET = "s3cr3t-T0ken/with+special&chars";

/** Feeds text through a sink in chunks of `size` bytes and returns the delivered lines. */
function throughSink(secrets: Record<string, string>, text: string, size: number): string[] {
  const lines: LogLine[] = [];
  const sink = new LogSink({
    masker: createMasker(secrets),
    maxLogBytes: 1 << 20,
    maxLineBytes: 1 << 16,
    onLog: (line) => lines.push(line),
  });
  const stream = sink.stream("stdout");
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; at += size) stream.write(bytes.subarray(at, at + size));
  stream.end();
  return lines.map((line) => line.text);
}

test("the raw value is masked wherever it appears in a line", () => {
  const masker = createMasker({ token: SECRET });
  assert.equal(masker.mask(`a ${SECRET} b ${SECRET}`), "a *** b ***");
});

test("base64 forms are masked: standard, URL-safe, padded or not, with a trailing newline", () => {
  const masker = createMasker({ token: SECRET });
  const forms = [
    Buffer.from(SECRET).toString("base64"),
    Buffer.from(`${SECRET}\n`).toString("base64"),
    Buffer.from(SECRET).toString("base64url"),
    Buffer.from(`${SECRET}\n`).toString("base64url"),
    Buffer.from(SECRET).toString("base64").replace(/=+$/, ""),
  ];
  for (const form of forms) {
    assert.equal(masker.mask(`x ${form} y`), "x *** y", form);
  }
});

test("a secret base64-encoded inside a longer text is masked at every byte offset", () => {
  const masker = createMasker({ token: SECRET });
  for (const prefix of ["", "a", "ab", "user:", "Authorization: Bearer "]) {
    const encoded = Buffer.from(`${prefix}${SECRET}!`).toString("base64");
    const masked = masker.mask(encoded);
    assert.match(masked, /\*\*\*/, `prefix ${JSON.stringify(prefix)}`);
    // What stays visible decodes to at most the prefix, the suffix and a byte or two of the edges.
    assert.ok(masked.length < encoded.length - 20, masked);
  }
});

test("URL-encoded and JSON-escaped forms are masked", () => {
  const secret = 'p@ss word/"quoted"\\é';
  const masker = createMasker({ password: secret });
  const forms = [
    encodeURIComponent(secret),
    encodeURIComponent(secret).replaceAll("%20", "+"),
    encodeURIComponent(secret).toLowerCase(),
    JSON.stringify(secret).slice(1, -1),
    JSON.stringify(secret).slice(1, -1).replace("é", "\\u00e9"),
  ];
  for (const form of forms) {
    assert.equal(masker.mask(`[${form}]`), "[***]", form);
  }
  assert.equal(masker.mask(JSON.stringify({ password: secret })), '{"password":"***"}');
});

test("a multi-line secret is masked line by line", () => {
  const key = "-----BEGIN KEY-----\nAAAAbbbbCCCC\n-----END KEY-----";
  const lines = throughSink({ key }, `${key}\nafter\n`, 7);
  assert.deepEqual(lines, ["***", "***", "***", "after"]);
});

test("a secret split across writes is still masked (every chunk size)", () => {
  const text = `before ${SECRET} middle ${Buffer.from(SECRET).toString("base64")} end\n`;
  for (let size = 1; size <= text.length; size++) {
    assert.deepEqual(throughSink({ token: SECRET }, text, size), ["before *** middle *** end"]);
  }
});

test("short secrets are masked too (accepting false positives)", () => {
  const masker = createMasker({ pin: "42" });
  assert.equal(masker.mask("pin 42, not 4 2, but 1042"), "pin ***, not 4 2, but 10***");
});

test("empty secrets and no secrets leave text alone", () => {
  assert.equal(createMasker({}).mask("text"), "text");
  assert.equal(createMasker({ empty: "" }).mask("text"), "text");
  assert.deepEqual(secretForms(""), []);
});

test("regular-expression characters in secrets are literal", () => {
  const masker = createMasker({ odd: "a.b*c(d)[e]{f}|g^h$i?\\" });
  assert.equal(masker.mask("xa.b*c(d)[e]{f}|g^h$i?\\y axbbc"), "x***y axbbc");
});

test("when one secret contains another, the longer one is masked whole", () => {
  const masker = createMasker({ short: "abcd", long: "abcdefgh" });
  assert.equal(masker.mask("abcdefgh abcd"), "*** ***");
});

test("wrapped base64 is masked line by line: coreutils base64 (76 columns) and openssl (64)", () => {
  const secret = `${"k".repeat(20)}-a-long-api-token-of-more-than-57-bytes-${"z".repeat(30)}`;
  const masker = createMasker({ token: secret });
  for (const data of [secret, `${secret}\n`]) {
    const encoded = Buffer.from(data).toString("base64");
    for (const width of [76, 64]) {
      const lines = encoded.match(new RegExp(`.{1,${width}}`, "g")) ?? [];
      assert.ok(lines.length > 1);
      for (const line of lines) {
        assert.equal(masker.mask(line), "***", `${width}: ${line}`);
        assert.equal(masker.mask(line.replaceAll("+", "-").replaceAll("/", "_")), "***");
      }
    }
  }
});

test("any URL encoder's output is masked, whichever characters it escapes", () => {
  const secret = "p@ss w0rd/!*'()~ü+&=%";
  const masker = createMasker({ password: secret });
  const strict = encodeURIComponent(secret).replace(
    /[!'()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  const forms = [
    encodeURIComponent(secret),
    strict, // RFC 3986 strict, Python's quote(safe="")
    strict.replaceAll("%2F", "/"), // Python's quote() keeps "/"
    strict.replaceAll("%20", "+"), // Python's quote_plus
    strict.toLowerCase(),
    strict.replaceAll("%7E", "~").replaceAll("~", "%7e"), // "~" escaped, lower-case
  ];
  for (const form of forms) assert.equal(masker.mask(`[${form}]`), "[***]", form);
});

test("any JSON encoder's output is masked: ASCII-only either case, HTML-safe, escaped slashes", () => {
  const secret = 'a/b<c>&"d"\\e\tü😀';
  const masker = createMasker({ password: secret });
  const plain = JSON.stringify(secret).slice(1, -1);
  const ascii = plain.replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  const forms = [
    plain,
    ascii,
    ascii.replace(/\\u([0-9a-f]{4})/g, (_, hex: string) => `\\u${hex.toUpperCase()}`),
    plain.replaceAll("/", "\\/"), // PHP's json_encode
    plain.replace(/[<>&]/g, (char) => `\\u00${char.charCodeAt(0).toString(16)}`), // Go's HTML-safe
  ];
  for (const form of forms) assert.equal(masker.mask(`"${form}"`), '"***"', form);
});

test("the encoded-characters pattern stays literal for regular-expression characters", () => {
  const masker = createMasker({ odd: "a.c" });
  assert.equal(masker.mask("abc a.c a%2Ec"), "abc *** ***");
});
