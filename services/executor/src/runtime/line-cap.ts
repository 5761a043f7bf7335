import { MASK, type Masker } from "./masking.ts";

/** Appended to a line that was cut at the per-line cap. */
export const LINE_TRUNCATED_SUFFIX = " [packrun] line truncated";

/**
 * Masks a line and cuts it to `maxBytes` UTF-8 bytes of the original text. Masking happens
 * before cutting, and the cut is made in positions of the original text, so a secret that starts
 * before the cap is always masked whole and nothing that starts after it is ever shown; cutting
 * first could leave a secret's prefix visible.
 */
export function maskAndCap(
  text: string,
  masker: Masker,
  maxBytes: number,
): { text: string; truncated: boolean } {
  let out = "";
  let budget = maxBytes;
  let from = 0;
  const pattern = masker.pattern;
  if (pattern) {
    pattern.lastIndex = 0;
    for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
      const plain = text.slice(from, match.index);
      const kept = utf8Prefix(plain, budget);
      out += kept;
      if (kept.length < plain.length || budget - Buffer.byteLength(kept) <= 0) {
        return { text: out, truncated: true };
      }
      budget -= Buffer.byteLength(kept);
      out += MASK;
      budget -= Buffer.byteLength(match[0]);
      from = match.index + match[0].length;
      if (budget <= 0) return { text: out, truncated: from < text.length };
    }
  }
  const rest = text.slice(from);
  const kept = utf8Prefix(rest, budget);
  return { text: out + kept, truncated: kept.length < rest.length };
}

/** The longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`, never splitting a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (maxBytes <= 0) return "";
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Step back over continuation bytes so the cut lands on a character boundary.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
