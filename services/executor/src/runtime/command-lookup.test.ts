import assert from "node:assert/strict";
import { test } from "vitest";
import { isRunnable, missingCommandIn } from "./command-lookup.ts";

test("isRunnable finds programs on PATH and by path, and nothing else", async () => {
  assert.equal(await isRunnable("sh", "/usr/bin:/bin", "/"), true);
  assert.equal(await isRunnable("/bin/sh", "", "/"), true);
  assert.equal(await isRunnable("packrun-no-such-tool", "/usr/bin:/bin", "/"), false);
  assert.equal(await isRunnable("./missing.sh", "/usr/bin", "/tmp"), false);
  // A directory is not a program.
  assert.equal(await isRunnable("/usr", "", "/"), false);
});

test("missingCommandIn reads what shells and wrappers print", () => {
  const cases: [string, string | undefined][] = [
    ["sh: 1: syft: not found", "syft"],
    ["/bin/sh: line 1: syft: command not found", "syft"],
    ["bash: ./release.sh: No such file or directory", "./release.sh"],
    ["/usr/bin/time: cannot run syft: No such file or directory", "syft"],
    ["prlimit: failed to execute syft: No such file or directory", "syft"],
    ["bwrap: execvp syft: No such file or directory", "syft"],
    ["cat: notes.txt: No such file or directory", undefined],
    ["everything fine", undefined],
  ];
  for (const [line, expected] of cases) assert.equal(missingCommandIn([line]), expected, line);
  assert.equal(missingCommandIn(["sh: 1: first: not found", "noise"]), "first");
});
