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
  const forms = new Set<string>();
  for (const value of Object.values(secrets)) {
    for (const form of secretForms(value)) forms.add(form);
  }
  if (forms.size === 0) {
    return { mask: (text) => text, pattern: null, maxFormBytes: 0 };
  }
  // Longest first: at any position the alternation takes the first alternative that matches,
  // so a longer form (the base64 of value+"\n") wins over its own prefix (the base64 of value).
  const ordered = [...forms].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  const pattern = new RegExp(ordered.map(escapeRegExp).join("|"), "g");
  const maxFormBytes = Math.max(...ordered.map((form) => Buffer.byteLength(form)));
  return {
    mask: (text) => text.replace(pattern, MASK),
    pattern,
    maxFormBytes,
  };
}

/**
 * Every textual form of a secret value that gets masked: the raw value; base64 (standard and
 * URL-safe alphabets, padded and unpadded) of the value and of the value followed by a newline
 * (`echo $SECRET | base64`); the base64 fragments that stay the same wherever the value sits
 * inside a longer base64 stream; URL-encoded (RFC 3986, form encoding, lower-case hex); JSON
 * string escaped (plain and ASCII-only). A value containing newlines is also masked line by
 * line, because output is masked one line at a time.
 */
export function secretForms(value: string): string[] {
  if (value === "") return [];
  const forms = new Set<string>();
  const pieces = value.includes("\n") ? value.split(/\r?\n/).filter((piece) => piece !== "") : [];
  for (const text of [value, ...pieces]) {
    forms.add(text);
    for (const encoded of base64Forms(text)) forms.add(encoded);
    for (const encoded of urlForms(text)) forms.add(encoded);
    for (const encoded of jsonForms(text)) forms.add(encoded);
  }
  forms.delete("");
  return [...forms];
}

function base64Forms(text: string): string[] {
  const bytes = Buffer.from(text, "utf8");
  const forms: string[] = [];
  for (const data of [bytes, Buffer.concat([bytes, Buffer.from("\n")])]) {
    const standard = data.toString("base64");
    forms.push(standard, standard.replace(/=+$/, ""));
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

function urlForms(text: string): string[] {
  const encoded = encodeURIComponent(text);
  return [
    encoded,
    encoded.replaceAll("%20", "+"),
    encoded.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()),
  ];
}

function jsonForms(text: string): string[] {
  const escaped = JSON.stringify(text).slice(1, -1);
  const asciiOnly = escaped.replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return [escaped, asciiOnly];
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}
