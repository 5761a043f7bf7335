/**
 * Issue 19, break 6: a step declared a 64 GiB sparse file (`truncate -s 64G`) as an artifact.
 * The worker hashed all 64 GiB of zeros before any size check and held the slot for minutes.
 *
 * Now the size (fstat of the opened file) is checked against the artifact size cap before a
 * byte is read: the step fails at once, naming the artifact, its size and the cap.
 */
import assert from "node:assert/strict";
import { test } from "vitest";
import { manifest, submitRun, timed, useSecurityStack, waitForRun } from "./support/stack.ts";

const pack = manifest(
  "sparse-artifact",
  `  steps:
    - id: huge
      run:
        uses: builtin:shell
        with: {script: "truncate -s 64G big.bin"}
        artifacts: [{name: big, path: big.bin}]
`,
);

const ctx = useSecurityStack();

test("a 64 GiB sparse artifact fails the step at once, naming its size and the cap", async () => {
  const { ms, value: run } = await timed(async () => {
    const submitted = await submitRun(ctx.alice, { manifest: pack });
    return waitForRun(ctx.alice, submitted.id, undefined, 30_000);
  });
  const step = run.steps.find((s) => s.id === "huge");
  assert.equal(step?.state, "failed", JSON.stringify(step));
  const reason = step?.reason ?? "";
  assert.match(reason, /artifact "big" \(big\.bin\) is 68719476736 bytes/, reason);
  assert.match(reason, /over the artifact size cap of 4294967296 bytes/, reason);
  assert.match(reason, /PACKRUN_EXECUTOR_MAX_ARTIFACT_BYTES/, reason);
  assert.ok(ms < 10_000, `the run took ${Math.round(ms)} ms`);
});
