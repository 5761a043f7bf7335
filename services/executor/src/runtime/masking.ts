/** What a masked secret is replaced by. */
export const MASK = "***";

/**
 * Replaces secret values in text. Built once per step from the secret values; `mask` works on
 * complete lines, which is how secrets split across pipe reads are still caught.
 */
export interface Masker {
  /** The text with every known form of every secret replaced by `***`. */
  mask(text: string): string;
  /**
   * The global pattern matching every form (null when there is nothing to mask), for callers
   * that need match positions (line capping).
   */
  readonly pattern: RegExp | null;
  /** UTF-8 length of the longest form, so line buffers can keep enough to match across a cap. */
  readonly maxFormBytes: number;
}

/**
 * Minimum length of a base64 fragment masked for a secret sitting at an unknown offset inside a
 * longer base64 stream: shorter fragments would mask innocent text far too often.
 */
const MIN_OFFSET_FRAGMENT = 8;

/**
 * Builds a masker for these secret values. Every non-empty value is masked, however short: a
 * one- or two-character secret will also hide innocent text that happens to contain it (the
 * false-positive risk is accepted over leaking it).
 */
export function createMasker(secrets: Readonly<Record<string, string>>): Masker {
  // Each alternative with the length used to order it: a literal form's own length, or for an
  // encoded-characters pattern the length of the value it decodes to (its shortest match).
  const alternatives = new Map<string, { length: number; maxBytes: number }>();
  for (const value of Object.values(secrets)) {
    for (const form of secretForms(value)) {
      alternatives.set(escapeRegExp(form), {
        length: form.length,
        maxBytes: Buffer.byteLength(form),
      });
    }
    for (const text of valueLines(value)) {
      const encoded = encodedCharactersPattern(text);
      if (encoded !== undefined)
        alternatives.set(encoded.source, { length: text.length, maxBytes: encoded.maxBytes });
    }
  }
  if (alternatives.size === 0) {
    return { mask: (text) => text, pattern: null, maxFormBytes: 0 };
  }
  // Longest first: at any position the alternation takes the first alternative that matches,
  // so a longer form (the base64 of value+"\n") wins over its own prefix (the base64 of value).
  const ordered = [...alternatives].sort(
    ([a, x], [b, y]) => y.length - x.length || (a < b ? -1 : a > b ? 1 : 0),
  );
  const pattern = new RegExp(ordered.map(([source]) => source).join("|"), "g");
  const maxFormBytes = Math.max(...ordered.map(([, form]) => form.maxBytes));
  return {
    mask: (text) => text.replace(pattern, MASK),
    pattern,
    maxFormBytes,
  };
}

/**
 * Every literal textual form of a secret value that gets masked: the raw value; base64
 * (standard and URL-safe alphabets, padded and unpadded) of the value and of the value followed
 * by a newline (`echo $SECRET | base64`), also as the lines `base64` (76 columns) and `openssl
 * base64` (64 columns) wrap it into; the base64 fragments that stay the same wherever the value
 * sits inside a longer base64 stream. A value containing newlines is also masked line by line,
 * because output is masked one line at a time. URL-encoded and JSON-escaped forms are matched by
 * {@link encodedCharactersPattern} instead, whichever characters the encoder chose to escape.
 */
export function secretForms(value: string): string[] {
  if (value === "") return [];
  const forms = new Set<string>();
  for (const text of valueLines(value)) {
    forms.add(text);
    for (const encoded of base64Forms(text)) forms.add(encoded);
  }
  forms.delete("");
  return [...forms];
}

/** The value, and each of its non-empty lines when it has several. */
function valueLines(value: string): string[] {
  if (value === "") return [];
  const pieces = value.includes("\n") ? value.split(/\r?\n/).filter((piece) => piece !== "") : [];
  return [value, ...pieces];
}

/** Longest value for which a per-character pattern is built (bounds the regular expression). */
const MAX_PATTERN_VALUE_LENGTH = 4096;

/**
 * A pattern matching `text` with any of its characters written as an encoder may write it:
 * itself, percent-encoded UTF-8 (`%C3%BC`, either hex case; `+` or `%20` for a space), a JSON
 * `\uXXXX` escape (either case; surrogate pairs beyond the BMP) or a JSON short escape (`\"`,
 * `\\`, `\/`, `\t`, …). That covers every URL encoder (JavaScript's `encodeURIComponent`,
 * Python's `quote`/`quote_plus`, RFC 3986-strict ones escaping `!'()*`, ones keeping `/`) and
 * every JSON encoder (plain, ASCII-only, HTML-safe, escaped slashes), without listing them.
 * Undefined for values too long to build a pattern for (their literal forms are still masked).
 */
export function encodedCharactersPattern(
  text: string,
): { source: string; maxBytes: number } | undefined {
  if (text === "" || text.length > MAX_PATTERN_VALUE_LENGTH) return undefined;
  let source = "";
  let maxBytes = 0;
  for (const char of text) {
    const codePoint = char.codePointAt(0) ?? 0;
    const percent = [...Buffer.from(char, "utf8")].map((byte) => `%${hexPattern(byte, 2)}`);
    const units = codePoint > 0xffff ? [char.charCodeAt(0), char.charCodeAt(1)] : [codePoint];
    const unicode = units.map((unit) => `\\\\u${hexPattern(unit, 4)}`).join("");
    // Encoded forms before the character itself: `%` must not match the start of `%25`, nor
    // `\` the start of `\\`, when the longer form is what is there.
    const options = [percent.join(""), unicode];
    const short = jsonShortEscapes[char];
    if (short !== undefined) options.push(escapeRegExp(short));
    if (char === " ") options.push("\\+");
    options.push(escapeRegExp(char));
    source += `(?:${options.join("|")})`;
    maxBytes += Math.max(Buffer.byteLength(char), percent.length * 3, units.length * 6, 2);
  }
  return { source, maxBytes };
}

const jsonShortEscapes: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "/": "\\/",
  "\b": "\\b",
  "\f": "\\f",
  "\t": "\\t",
  "\r": "\\r",
};

/** A pattern for `value` in `digits` hex digits, matching upper- and lower-case letters. */
function hexPattern(value: number, digits: number): string {
  return [...value.toString(16).padStart(digits, "0")]
    .map((digit) => (/[a-f]/.test(digit) ? `[${digit.toUpperCase()}${digit}]` : digit))
    .join("");
}

function base64Forms(text: string): string[] {
  const bytes = Buffer.from(text, "utf8");
  const forms: string[] = [];
  for (const data of [bytes, Buffer.concat([bytes, Buffer.from("\n")])]) {
    const standard = data.toString("base64");
    forms.push(standard, standard.replace(/=+$/, ""));
    // The lines of wrapped base64: coreutils `base64` (76 columns), `openssl base64` and PEM (64).
    for (const width of [76, 64]) {
      if (standard.length <= width) continue;
      for (let at = 0; at < standard.length; at += width) {
        const line = standard.slice(at, at + width);
        if (line.replace(/=+$/, "").length >= MIN_OFFSET_FRAGMENT)
          forms.push(line, line.replace(/=+$/, ""));
      }
    }
  }
  // A value inside a longer base64 stream is encoded differently depending on its offset modulo
  // 3; the characters that depend only on the value's own bits are the same for every stream.
  for (let offset = 0; offset < 3; offset++) {
    const fragment = offsetFragment(bytes, offset);
    if (fragment.length >= MIN_OFFSET_FRAGMENT) forms.push(fragment);
  }
  return [...forms, ...forms.map(toUrlSafe)];
}

/** The base64 characters fully determined by `bytes` when preceded by `offset` unknown bytes. */
function offsetFragment(bytes: Buffer, offset: number): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), bytes])
    .toString("base64")
    .replace(/=+$/, "");
  // Leading characters mix in bits of the unknown prefix: 0, 2 or 3 characters for offset 0/1/2.
  const lead = [0, 2, 3][offset] ?? 0;
  // The last character mixes in bits of whatever follows unless the data ends on a 3-byte group.
  const trail = (offset + bytes.length) % 3 === 0 ? 0 : 1;
  return encoded.slice(lead, encoded.length - trail);
}

function toUrlSafe(base64: string): string {
  return base64.replaceAll("+", "-").replaceAll("/", "_");
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}
