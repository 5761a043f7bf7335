/**
 * Control characters (C0, DEL, C1) in manifest-supplied text are escaped before they reach a
 * terminal: a hostile pack must not be able to move the cursor, rewrite earlier lines or fake
 * output through a step name, gate message or diagnostic. JSON output needs no such care
 * because JSON.stringify already escapes them.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const controlCharacters = /[\u0000-\u001f\u007f-\u009f]/g;

/** `text` with every control character shown as an escape such as `\n` or `\u001b`. */
export function printable(text: string): string {
  return text.replace(controlCharacters, (char) => {
    if (char === "\n") return "\\n";
    if (char === "\t") return "\\t";
    if (char === "\r") return "\\r";
    return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}
