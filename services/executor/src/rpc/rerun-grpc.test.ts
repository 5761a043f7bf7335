/**
 * RerunRun through a stock gRPC client (@grpc/grpc-js reading the .proto sources): a resume of
 * a run whose parallel block half succeeded keeps the succeeded steps (and the JSON output a
 * run-time map iterates over) and runs only what failed; refusals carry proper status codes.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { RunState, StepState } from "@packrun/proto/executor/v1";
import { stepSharedDir, stockLoaderOptions } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { type ExecutorStack, packManifest, startExecutorStack } from "../testing/executor-stack.ts";

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
type Reply = { response?: Record<string, unknown>; error?: grpc.ServiceError };

function call(client: AnyClient, method: string, request: object): Promise<Reply> {
  return new Promise((resolve) => {
    (
      client[method] as (
        request: object,
        callback: (error: grpc.ServiceError | null, response: Record<string, unknown>) => void,
      ) => void
    ).call(client, request, (error, response) => resolve(error ? { error } : { response }));
  });
}

const pack = (dir: string) =>
  packManifest(
    "resume-blocks",
    `  steps:
    - id: discover
      run:
        uses: builtin:shell
        with:
          script: 'echo x >> ${dir}/discover.count; echo targets=[\\"a\\",\\"b\\"] >> "$PACKRUN_OUTPUT"'
        outputs: {targets: {type: json, schema: {type: array, items: {type: string}}}}
    - id: block
      parallel:
        steps:
          - id: steady
            run: {uses: builtin:shell, with: {script: 'echo x >> ${dir}/steady.count'}}
          - id: shaky
            run: {uses: builtin:shell, with: {script: 'echo x >> ${dir}/shaky.count; test -f ${dir}/fixed'}}
    - id: scan
      map:
        items: "{{ steps.discover.outputs.targets }}"
        step:
          id: probe
          run: {uses: builtin:shell, with: {argv: [sh, -c, 'echo "seen=$1" >> "$PACKRUN_OUTPUT"', sh, "{{ item }}"]}}
`,
  );

let stack: ExecutorStack;
let client: AnyClient;

beforeAll(async () => {
  stack = await startExecutorStack();
  const definition = protoLoader.loadSync("packrun/executor/v1/executor.proto", stockLoaderOptions);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    packrun: { executor: { v1: { ExecutorService: grpc.ServiceClientConstructor } } };
  };
  client = new loaded.packrun.executor.v1.ExecutorService(
    new URL(stack.executor.url).host,
    grpc.credentials.createInsecure(),
  ) as unknown as AnyClient;
});
afterAll(async () => {
  client?.close();
  await stack.close();
});

/** A nested field of a loosely typed grpc-js message (undefined when absent). */
function field(value: unknown, ...path: string[]): unknown {
  let node = value;
  for (const key of path) node = (node as Record<string, unknown> | undefined)?.[key];
  return node;
}

async function count(file: string): Promise<number> {
  return (await readFile(file, "utf8").catch(() => "")).split("\n").filter(Boolean).length;
}

describe("RerunRun over plain gRPC", () => {
  test("resume keeps the succeeded steps of a half-failed block and the map's list", async () => {
    const dir = await stepSharedDir("resume-grpc-");
    const failedId = await stack.submit(pack(dir), { tenant: "acme" });
    const failed = await stack.waitFor(failedId, undefined, { tenant: "acme" });
    assert.equal(failed.state, RunState.FAILED);
    assert.deepEqual(
      failed.steps.map((step) => [step.id, step.state]),
      [
        ["discover", StepState.SUCCEEDED],
        ["block", StepState.FAILED],
        ["scan", StepState.SKIPPED],
        ["steady", StepState.SUCCEEDED],
        ["shaky", StepState.FAILED],
      ],
    );

    const foreign = await call(client, "rerunRun", {
      tenant: "globex",
      runId: failedId,
      mode: "RERUN_MODE_RESUME",
    });
    assert.equal(foreign.error?.code, grpc.status.NOT_FOUND);
    const noMode = await call(client, "rerunRun", { tenant: "acme", runId: failedId });
    assert.equal(noMode.error?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(noMode.error?.details ?? "", /mode must be/);

    await writeFile(join(dir, "fixed"), "");
    const resumed = await call(client, "rerunRun", {
      tenant: "acme",
      runId: failedId,
      mode: "RERUN_MODE_RESUME",
      submittedBy: "bob",
    });
    assert.equal(resumed.error, undefined, resumed.error?.details ?? "");
    const newRun = resumed.response?.run as Record<string, unknown>;
    assert.deepEqual(newRun.rerunOf, { runId: failedId, mode: "RERUN_MODE_RESUME" });
    assert.equal(newRun.submittedBy, "bob");
    const done = await stack.waitFor(newRun.id as string, undefined, { tenant: "acme" });
    assert.equal(done.state, RunState.SUCCEEDED, done.reason);
    assert.equal(done.planHash, failed.planHash);
    // discover and steady were kept, shaky ran again, the map expanded over discover's list.
    assert.deepEqual(
      [
        await count(join(dir, "discover.count")),
        await count(join(dir, "steady.count")),
        await count(join(dir, "shaky.count")),
      ],
      [1, 1, 2],
    );
    assert.deepEqual(
      done.steps.filter((step) => step.parentId === "scan").map((step) => [step.id, step.outputs]),
      [
        ["scan[0]::probe", { seen: "a" }],
        ["scan[1]::probe", { seen: "b" }],
      ],
    );

    const original = await call(client, "getRun", { tenant: "acme", runId: failedId });
    assert.deepEqual(field(original.response, "run", "reruns"), [
      { runId: newRun.id, mode: "RERUN_MODE_RESUME" },
    ]);

    const again = await call(client, "rerunRun", {
      tenant: "acme",
      runId: newRun.id,
      mode: "RERUN_MODE_RESUME",
    });
    assert.equal(again.error?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(again.error?.details ?? "", /succeeded: there is nothing to resume/);
  });
});
