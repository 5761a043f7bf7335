import assert from "node:assert/strict";
import { afterAll, beforeAll, describe, test } from "vitest";
import { type GatewayStack, startGatewayStack } from "./testing/gateway-stack.ts";
import { type RestClient, restClient } from "./testing/rest-client.ts";
import { submitRun, waitForRun } from "./testing/run-helpers.ts";

/** A one-step pack whose step prints which version ran. */
const versioned = (version: string) => `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: rolling, version: ${version}}
spec:
  steps:
    - id: say
      run: {uses: builtin:shell, with: {argv: [echo, "version ${version}"]}}
`;

let stack: GatewayStack;
let alice: RestClient;

beforeAll(async () => {
  stack = await startGatewayStack();
  alice = restClient(stack.url, await stack.mintToken());
});
afterAll(() => stack.close());

describe("runs of the latest version", () => {
  test("a run of 'latest' right after a new version is published runs the new version", async () => {
    assert.equal((await alice.post("/api/packs", versioned("1.0.0"))).status, 201);
    const first = await submitRun(alice, { pack: { name: "rolling" } });
    assert.equal(first.pack.version, "1.0.0");
    await waitForRun(alice, first.id);

    // No wait: the executor's plan cache (60 s) must not answer with 1.0.0's plan.
    assert.equal((await alice.post("/api/packs", versioned("2.0.0"))).status, 201);
    const second = await submitRun(alice, { pack: { name: "rolling" } });
    assert.equal(second.pack.version, "2.0.0");
    assert.notEqual(second.planHash, first.planHash);
    const done = await waitForRun(alice, second.id);
    assert.equal(done.state, "succeeded");

    // An exact version is still served (and cached) as before.
    const pinned = await submitRun(alice, { pack: { name: "rolling", version: "1.0.0" } });
    assert.equal(pinned.pack.version, "1.0.0");
    assert.equal(pinned.planHash, first.planHash);
  });
});
