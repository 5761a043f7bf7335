/**
 * Planning cost against its floor, in one run: `npm run bench:planning`.
 *
 * For packs of 10, 100 and 1,000 steps it times the full planPack (parse, validate, plan,
 * canonical JSON, hash) and, as the floor, the YAML parse alone of the same text with the same
 * library (`yaml` parseDocument + toJS): planning cannot be faster than reading its input.
 * Then the time to refuse each hostile manifest. Medians of several runs after a warm-up;
 * numbers are for this machine only.
 */
import { cpus } from "node:os";
import { loadManifest, PackValidationError, planPack } from "@packrun/planning";
import { parseDocument } from "yaml";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function time(run: () => void, repeat: number): number {
  for (let i = 0; i < 3; i++) run();
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    run();
    samples.push(performance.now() - started);
  }
  return median(samples);
}

function pack(steps: number): string {
  let text =
    "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\nmetadata: {name: bench, version: 1.0.0}\nspec:\n  inputs:\n    - {name: image, type: string, default: alpine}\n  steps:\n";
  for (let i = 0; i < steps; i++) {
    text += `    - id: s${i}\n      timeout: 5m\n      run:\n        uses: builtin:shell\n        with:\n          argv: [scan, "{{ inputs.image }}", "--n=${i}"]\n`;
  }
  return text;
}

console.log(
  `planning benchmark: node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? "?"})\n`,
);
console.log("| steps | bytes | planPack ms (median) | YAML parse ms (floor) | ratio to floor |");
console.log("| ---: | ---: | ---: | ---: | ---: |");
for (const steps of [10, 100, 1000]) {
  const text = pack(steps);
  const repeat = steps === 1000 ? 15 : 50;
  const planned = time(() => planPack(text), repeat);
  const floor = time(() => parseDocument(text).toJS(), repeat);
  console.log(
    `| ${steps} | ${text.length} | ${planned.toFixed(2)} | ${floor.toFixed(2)} | ${(planned / floor).toFixed(2)} |`,
  );
}

const header = "apiVersion: stellaops.io/pack.v1\nkind: TaskPack\n";
const bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
for (const [name, prev] of [
  ["b", "a"],
  ["c", "b"],
  ["d", "c"],
  ["e", "d"],
  ["f", "e"],
  ["g", "f"],
  ["h", "g"],
]) {
  bomb.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(",")}]`);
}
let tenThousand = `${header}metadata: {name: big, version: 1.0.0}\nspec:\n  steps:\n`;
for (let i = 0; i < 10_000; i++) tenThousand += `    - {id: s${i}, run: {uses: builtin:noop}}\n`;
const hostile: [string, string][] = [
  ["alias bomb (9^8 expansions)", `${bomb.join("\n")}\n`],
  ["100,000-deep flow nesting", `a: ${"[".repeat(100_000)}${"]".repeat(100_000)}\n`],
  ["10 MB manifest", `${header}x: "${"a".repeat(10 * 1024 * 1024)}"\n`],
  ["10,000 steps", tenThousand],
  ["duplicate keys", `${header}kind: Other\n`],
  ["__proto__ key", `${header}metadata:\n  __proto__: {polluted: true}\n`],
  [
    "NUL in a step id",
    `${header}metadata: {name: x, version: 1.0.0}\nspec:\n  steps:\n    - id: "a\\0b"\n      run: {uses: builtin:noop}\n`,
  ],
];
console.log("\n| hostile input | bytes | refused in ms (median) | code |");
console.log("| --- | ---: | ---: | --- |");
for (const [name, text] of hostile) {
  let code = "accepted!";
  const ms = time(() => {
    try {
      loadManifest(text);
    } catch (error) {
      code =
        error instanceof PackValidationError ? (error.diagnostics[0]?.code ?? "?") : String(error);
    }
  }, 15);
  console.log(`| ${name} | ${text.length} | ${ms.toFixed(2)} | ${code} |`);
}
