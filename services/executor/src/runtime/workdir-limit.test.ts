/**
 * Issue 19: "a disk filler ends only its own step". A step's workdir (with its `$TMPDIR`) is a
 * tmpfs of its own size on a root worker: writing past it fails inside the step with ENOSPC,
 * and nothing lands on the worker's disk.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunState } from "@packrun/proto/executor/v1";
import { afterAll, beforeAll, test } from "vitest";
import type { Executor } from "../rpc/executor-server.ts";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";
import { reapOrphans } from "./reap-orphans.ts";
import { WORKER_IS_ROOT } from "./step-user.ts";
import { limitWorkdir, workdirInodes } from "./workdir-limit.ts";

const MiB = 1024 * 1024;

async function mountedAt(dir: string): Promise<boolean> {
  return (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .some((line) => line.split(" ")[1] === dir);
}

test.runIf(WORKER_IS_ROOT)(
  "a limited workdir refuses writes past its size or file count and is gone after release",
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "packrun-workdir-limit-"));
    try {
      const release = await limitWorkdir(dir, 4 * MiB, "workdir-limit-test");
      assert.ok(await mountedAt(dir));
      await writeFile(join(dir, "fits"), Buffer.alloc(2 * MiB));
      await assert.rejects(writeFile(join(dir, "too-much"), Buffer.alloc(4 * MiB)), {
        code: "ENOSPC",
      });
      // 4 MiB: at most 1,024 files and directories, however small.
      let created = 0;
      const tooMany = (async () => {
        for (; created < 5_000; created++) await writeFile(join(dir, `f${created}`), "");
      })();
      await assert.rejects(tooMany, { code: "ENOSPC" });
      assert.ok(created <= workdirInodes(4 * MiB), `created ${created} files`);
      await release();
      assert.equal(await mountedAt(dir), false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test.runIf(WORKER_IS_ROOT)(
  "a dead worker's workdir mounts are released when its orphans are reaped",
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "packrun-workdir-orphan-"));
    const workerId = `dead-worker-${process.pid}`;
    try {
      await limitWorkdir(dir, 4 * MiB, workerId);
      const other = await mkdtemp(join(tmpdir(), "packrun-workdir-live-"));
      const releaseOther = await limitWorkdir(other, 4 * MiB, `live-worker-${process.pid}`);
      assert.ok(await mountedAt(dir));
      await reapOrphans(workerId);
      assert.equal(await mountedAt(dir), false);
      // Another worker's mount stays.
      assert.ok(await mountedAt(other));
      await releaseOther();
      await rm(other, { recursive: true, force: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

let stack: ExecutorStack;
let worker: Executor;
beforeAll(async () => {
  stack = await startExecutorStack({ work: false });
  worker = await stack.addExecutor({
    serve: false,
    worker: {
      concurrency: 2,
      limits: { maxLogBytes: MiB, maxLineBytes: 4096, diskBytes: 16 * MiB },
    },
  });
});
afterAll(async () => {
  await worker?.close();
  await stack?.close();
});

test.runIf(WORKER_IS_ROOT)(
  "a step filling its workdir gets ENOSPC at the limit; a step beside it runs on",
  async () => {
    const filler = await stack.submit(
      packManifest(
        "disk-filler",
        `  steps:
    - id: fill
      run:
        uses: builtin:shell
        with:
          script: |
            head -c 64M /dev/zero > big 2>/dev/null; status=$?
            written=$(stat -c %s big); rm -f big
            tmp=0; head -c 64M /dev/zero > "$TMPDIR/big" 2>/dev/null || tmp=$?; rm -f "$TMPDIR/big"
            size=$(df -B1 --output=size . | tail -1 | tr -d ' ')
            printf 'status=%s\\nwritten=%s\\ntmp=%s\\nsize=%s\\n' "$status" "$written" "$tmp" "$size" >> "$PACKRUN_OUTPUT"
`,
      ),
    );
    const neighbour = await stack.submit(
      packManifest(
        "disk-neighbour",
        `  steps:
    - id: small
      run:
        uses: builtin:shell
        with:
          script: head -c 8M /dev/zero > f && test "$(stat -c %s f)" = 8388608
`,
      ),
    );
    const filled = await stack.waitFor(filler, undefined, { timeoutMs: 60_000 });
    assert.equal(filled.state, RunState.SUCCEEDED, filled.reason);
    const outputs = filled.steps.find((step) => step.id === "fill")?.outputs as
      | Record<string, string>
      | undefined;
    assert.ok(
      outputs,
      JSON.stringify(filled.steps, (_, v) => (typeof v === "bigint" ? String(v) : v)),
    );
    assert.notEqual(outputs.status, "0", "writing 64 MiB into a 16 MiB workdir must fail");
    assert.notEqual(outputs.tmp, "0", "$TMPDIR lives inside the limited workdir");
    assert.ok(Number(outputs.written) <= 16 * MiB, `wrote ${outputs.written} bytes`);
    assert.equal(Number(outputs.size), 16 * MiB);
    const beside = await stack.waitFor(neighbour, undefined, { timeoutMs: 60_000 });
    assert.equal(beside.state, RunState.SUCCEEDED, beside.reason);
  },
);
