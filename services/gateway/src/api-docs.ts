#!/usr/bin/env node
/**
 * `npm run docs:api`: rewrites the generated endpoint reference in docs/api.md (between the
 * markers) from the gateway's OpenAPI document. `--check` exits 1 when it is out of date.
 */
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { gatewayOpenApiDocument, renderOpenApiMarkdown } from "./openapi-markdown.ts";

/** Markers around the generated part of docs/api.md. */
export const generatedStart = "<!-- generated from the OpenAPI document: npm run docs:api -->";
export const generatedEnd = "<!-- end of generated reference -->";

/** docs/api.md with its generated part replaced by `reference`. */
export function withReference(markdown: string, reference: string): string {
  const start = markdown.indexOf(generatedStart);
  const end = markdown.indexOf(generatedEnd);
  if (start < 0 || end < start)
    throw new Error("docs/api.md lacks the generated-reference markers");
  return `${markdown.slice(0, start + generatedStart.length)}\n\n${reference}\n${markdown.slice(end)}`;
}

/** `markdown` as the repository's formatter (Biome) lays it out, so the check is stable. */
export function formatMarkdown(markdown: string): string {
  const biome = fileURLToPath(new URL("../../../node_modules/.bin/biome", import.meta.url));
  const result = spawnSync(biome, ["format", "--stdin-file-path=docs/api.md"], {
    input: markdown,
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`biome format failed: ${result.stderr}`);
  return result.stdout;
}

/** docs/api.md as it should be now. */
export async function expectedApiDocs(current: string): Promise<string> {
  return formatMarkdown(
    withReference(current, renderOpenApiMarkdown(await gatewayOpenApiDocument())),
  );
}

if (import.meta.main) {
  const file = new URL("../../../docs/api.md", import.meta.url);
  const current = await readFile(file, "utf8");
  const next = await expectedApiDocs(current);
  if (process.argv.includes("--check")) {
    if (next !== current) {
      process.stderr.write("docs/api.md is out of date: run npm run docs:api\n");
      process.exit(1);
    }
  } else {
    await writeFile(file, next);
  }
}
