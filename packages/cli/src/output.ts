import { Option } from "commander";
import { printable } from "./printable.ts";
import { writeFileAtomic } from "./write-file-atomic.ts";

/** How `plan` and `simulate` render their result. */
export type OutputFormat = "table" | "json";

/** The formats `--format` accepts. */
export const outputFormats: readonly OutputFormat[] = ["table", "json"];

/**
 * The `--format table|json` option every command takes. Long only: `-f` means `--follow`
 * (`logs`), and one letter must not mean two things.
 */
export function formatOption(
  description = "output format: table for people, json for scripts",
): Option {
  return new Option("--format <format>", description).choices(outputFormats).default("table");
}

/** Pretty JSON with a trailing newline, the `--format json` rendering. */
export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * A plain-text table: a header row and left-aligned columns two spaces apart. Cells must
 * already be printable (see `printable`); the last column is not padded so lines carry no
 * trailing blanks. Returns one line per row, each ending in a newline.
 */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, column) =>
    Math.max(...all.map((row) => (row[column] ?? "").length)),
  );
  return all
    .map((row) =>
      headers
        .map((_, column) => {
          const cell = row[column] ?? "";
          return column === headers.length - 1 ? cell : cell.padEnd(widths[column] ?? 0);
        })
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** Aligned `label: value` lines, e.g. the header block of `packrun plan`. */
export function renderFields(fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(...fields.map(([label]) => label.length + 1));
  return fields
    .map(([label, value]) => `${`${label}:`.padEnd(width)}  ${value}`.trimEnd())
    .join("\n")
    .concat("\n");
}

/**
 * Delivers rendered output: to `outputPath` when given (atomically, so a reader never sees a
 * half-written file) and then nothing on stdout, else to stdout.
 */
export async function emitOutput(text: string, outputPath: string | undefined): Promise<void> {
  if (outputPath === undefined) {
    process.stdout.write(text);
    return;
  }
  await writeFileAtomic(outputPath, text);
}

/** The rows of a plan's declared outputs (name, type, path, expression), safe to print. */
export function declaredOutputRows(
  outputs: readonly { name: string; type: string; path: string; expression: string }[],
): string[][] {
  return outputs.map((output) => [
    printable(output.name),
    printable(output.type),
    printable(output.path),
    printable(output.expression),
  ]);
}
