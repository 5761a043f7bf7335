import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, test } from "vitest";
import { ensureStepTools } from "./step-tools.ts";

const before = process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS;
afterEach(() => {
  if (before === undefined) delete process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS;
  else process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS = before;
});

test("with every tool installed, steps stay isolated and nothing is said", async () => {
  delete process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS;
  const printed: string[] = [];
  assert.equal(await ensureStepTools((line) => printed.push(line), { mayInstall: false }), null);
  assert.deepEqual(printed, []);
  assert.equal(process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS, undefined);
});

test("a fresh machine without bubblewrap (and no right to install) runs unisolated, loudly", async () => {
  delete process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS;
  const empty = await mkdtemp(join(tmpdir(), "packrun-no-tools-"));
  try {
    const warning = await ensureStepTools(() => {}, { searchDirs: [empty], mayInstall: false });
    assert.match(warning ?? "", /^WARNING: bubblewrap is not installed, so steps run UNISOLATED/);
    assert.match(warning ?? "", /bubblewrap, slirp4netns, nftables, util-linux, time/);
    assert.equal(process.env.PACKRUN_EXECUTOR_UNISOLATED_STEPS, "1");
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});
