const standard = /^[A-Za-z0-9+/]*={0,2}$/;
const urlSafe = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * Decodes standard or URL-safe base64 (DSSE verifiers must accept both), strictly: undefined for
 * anything that is not canonical base64, instead of Node's silent skipping of bad characters.
 */
export function decodeBase64(text: string): Buffer | undefined {
  const isStandard = standard.test(text);
  if (!isStandard && !urlSafe.test(text)) return undefined;
  const bytes = Buffer.from(text, isStandard ? "base64" : "base64url");
  // Re-encoding catches truncated groups and non-zero padding bits.
  const again = bytes.toString(isStandard ? "base64" : "base64url").replace(/=+$/, "");
  return again === text.replace(/=+$/, "") ? bytes : undefined;
}
