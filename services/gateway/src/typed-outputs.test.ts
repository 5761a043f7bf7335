import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, test } from "vitest";
import type { RunJson } from "./api-schemas.ts";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";
import { submitRun, waitForRun } from "./testing/run-helpers.ts";

/** A pack whose `discover` step writes `targets` as `line` and whose map iterates over it. */
function discoverAndScan(name: string, line: string, outputs: string): string {
  return `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: ${name}, version: 1.0.0}
spec:
  steps:
    - id: discover
      run:
        uses: builtin:shell
        with:
          argv: [sh, -c, 'printf "%s\\n" "$1" >> "$PACKRUN_OUTPUT"', sh, '${line}']
${outputs}
    - id: scan
      map:
        items: "{{ steps.discover.outputs.targets }}"
        step:
          id: probe
          run:
            uses: builtin:shell
            with:
              argv: [sh, -c, 'echo "seen=$1" >> "$PACKRUN_OUTPUT"', sh, "{{ item.host }}"]
`;
}

const typedTargets = `        outputs:
          targets:
            type: json
            schema: {type: array, items: {type: object, required: [host], properties: {host: {type: string}}}}`;

let stack: GatewayStack;
let alice: RestClient;

beforeAll(async () => {
  stack = await startGatewayStack();
  alice = restClient(stack.url, await stack.mintToken());
});
afterAll(() => stack.close());

function stepOf(run: RunJson, id: string): RunJson["steps"][number] {
  const step = run.steps.find((candidate) => candidate.id === id);
  assert.ok(step, `no step ${id} in ${JSON.stringify(run.steps.map((s) => s.id))}`);
  return step;
}

describe("JSON-typed step outputs", () => {
  test("a map iterates over the list a previous step produced", async () => {
    const submitted = await submitRun(alice, {
      manifest: discoverAndScan(
        "typed-map",
        'targets=[{"host":"a.internal"},{"host":"b.internal"},{"host":"c.internal"}]',
        typedTargets,
      ),
    });
    const run = await waitForRun(alice, submitted.id);
    assert.equal(run.state, "succeeded", run.reason ?? "");
    assert.deepEqual(stepOf(run, "discover").outputs, {
      targets: [{ host: "a.internal" }, { host: "b.internal" }, { host: "c.internal" }],
    });
    assert.deepEqual(
      [0, 1, 2].map((index) => stepOf(run, `scan[${index}]::probe`).outputs),
      [{ seen: "a.internal" }, { seen: "b.internal" }, { seen: "c.internal" }],
    );
  });

  test("without the declaration the output is a string and the map fails as before", async () => {
    const submitted = await submitRun(alice, {
      manifest: discoverAndScan("untyped-map", 'targets=[{"host":"a"}]', ""),
    });
    const run = await waitForRun(alice, submitted.id);
    assert.equal(run.state, "failed");
    assert.match(stepOf(run, "scan").reason ?? "", /map items must evaluate to a list; got string/);
  });

  test("a value that is not JSON fails the step, naming the output", async () => {
    const submitted = await submitRun(alice, {
      manifest: discoverAndScan("bad-json", "targets=[a.internal, b.internal", typedTargets),
    });
    const run = await waitForRun(alice, submitted.id);
    assert.equal(run.state, "failed");
    const discover = stepOf(run, "discover");
    assert.equal(discover.state, "failed");
    assert.match(
      discover.reason ?? "",
      /output "targets" is declared type json but is not valid JSON/,
    );
    assert.equal(stepOf(run, "scan").state, "skipped");
  });

  test("a value that does not match the schema fails the step with the schema's complaint", async () => {
    const submitted = await submitRun(alice, {
      manifest: discoverAndScan("bad-schema", 'targets=[{"name":"a"}]', typedTargets),
    });
    const run = await waitForRun(alice, submitted.id);
    assert.equal(run.state, "failed");
    assert.match(
      stepOf(run, "discover").reason ?? "",
      /output "targets" does not match its schema: \/0 must have required property 'host'/,
    );
  });

  test("a declared output the step did not write fails the step", async () => {
    const submitted = await submitRun(alice, {
      manifest: discoverAndScan("missing-output", "other=1", typedTargets),
    });
    const run = await waitForRun(alice, submitted.id);
    assert.equal(run.state, "failed");
    assert.match(
      stepOf(run, "discover").reason ?? "",
      /output "targets" is declared but the step did not write it/,
    );
  });

  test("a secret in a JSON output is masked before the value is parsed", async () => {
    const manifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: typed-secret, version: 1.0.0}
spec:
  secrets: [{name: token}]
  steps:
    - id: discover
      run:
        uses: builtin:shell
        with:
          env: {TOKEN: "{{ secrets.token }}"}
          script: 'echo "targets=[\\"$TOKEN\\", \\"b\\"]" >> "$PACKRUN_OUTPUT"'
        outputs: {targets: {type: json}}
`;
    const submitted = await submitRun(alice, {
      manifest,
      secrets: { token: "hunter2-secret" },
    });
    const run = await waitForRun(alice, submitted.id);
    assert.equal(run.state, "succeeded", run.reason ?? "");
    assert.deepEqual(stepOf(run, "discover").outputs, { targets: ["***", "b"] });
  });

  test("simulation shows the map as expanding at run time", async () => {
    const response = await alice.post<{
      steps: { id: string; runtimeDependent: boolean; reason: string; children: unknown[] }[];
    }>("/api/simulations", { manifest: discoverAndScan("typed-sim", "x", typedTargets) });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const scan = response.body.steps.find((step) => step.id === "scan");
    assert.equal(scan?.runtimeDependent, true);
    assert.equal(
      scan?.reason,
      "items are known at run time ({{ steps.discover.outputs.targets }})",
    );
    assert.deepEqual(scan?.children, []);
  });

  test("the planner refuses a schema on a string output and an invalid schema", async () => {
    const stringWithSchema = await alice.post<{ title: string; errors?: unknown }>(
      "/api/simulations",
      {
        manifest: discoverAndScan(
          "string-schema",
          "x",
          "        outputs: {targets: {type: string, schema: {type: array}}}",
        ),
      },
    );
    assert.equal(stringWithSchema.status, 400, JSON.stringify(stringWithSchema.body));
    assert.match(
      JSON.stringify(stringWithSchema.body),
      /spec.steps\[0\].run.outputs.targets.schema.*a schema needs type: json/,
    );
    const badSchema = await alice.post("/api/simulations", {
      manifest: discoverAndScan(
        "broken-schema",
        "x",
        "        outputs: {targets: {type: json, schema: {type: lists}}}",
      ),
    });
    assert.equal(badSchema.status, 400, JSON.stringify(badSchema.body));
    assert.match(JSON.stringify(badSchema.body), /invalid JSON Schema/);
    const badType = await alice.post("/api/simulations", {
      manifest: discoverAndScan("broken-type", "x", "        outputs: {targets: {type: list}}"),
    });
    assert.equal(badType.status, 400, JSON.stringify(badType.body));
  });
});
