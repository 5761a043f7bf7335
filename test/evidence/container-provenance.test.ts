/**
 * SLSA provenance of a run with a container step, through the real services: the image is a
 * resolved dependency by the digest podman ran it with, not by its tag.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readTarGz } from "@packrun/attestation";
import { afterAll, beforeAll, test } from "vitest";
import { podmanGlobalArgs } from "../../services/executor/src/runtime/podman.ts";
import { runtimeSupport } from "../../services/executor/src/runtime/support.ts";
import type { RunJson } from "../../services/gateway/src/api-schemas.ts";
import {
  type GatewayStack,
  startGatewayStack,
} from "../../services/gateway/src/testing/gateway-stack.ts";
import { type RestClient, restClient } from "../../services/gateway/src/testing/rest-client.ts";
import { submitRun, waitForRun } from "../../services/gateway/src/testing/run-helpers.ts";
import { ensureBusyboxImage } from "../fixtures/images/busybox-image.ts";

const run = promisify(execFile);
const support = await runtimeSupport();
const skip = support.container ? false : "podman cannot run containers here";

let stack: GatewayStack;
let client: RestClient;
let token: string;
beforeAll(async () => {
  if (skip !== false) return;
  stack = await startGatewayStack();
  token = await stack.mintToken();
  client = restClient(stack.url, token);
}, 60_000);
afterAll(() => stack?.close());

test("the provenance names the container image by the digest it ran with", {
  skip: skip !== false,
}, async () => {
  const image = await ensureBusyboxImage();
  const { stdout } = await run("podman", [
    ...podmanGlobalArgs(),
    "image",
    "inspect",
    "--format",
    "{{.Digest}}",
    image,
  ]);
  const digest = stdout.trim();
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  const pack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: contained, version: 1.0.0}
spec:
  steps:
    - id: report
      run:
        uses: builtin:container
        with: {image: "${image}", command: [/bin/sh, -c, "echo contained > report.txt"]}
        artifacts: [{name: report, path: report.txt}]
`;
  const submitted = await submitRun(client, { manifest: pack });
  const finished: RunJson = await waitForRun(client, submitted.id, undefined, 60_000);
  assert.equal(finished.state, "succeeded", finished.reason ?? "");
  let bundle: Buffer | undefined;
  for (let i = 0; i < 200 && bundle === undefined; i++) {
    const response = await fetch(`${stack.url}/api/runs/${finished.id}/bundle`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (response.status === 200) bundle = Buffer.from(await response.arrayBuffer());
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(bundle, "the bundle is served once the run is attested");
  const archive = await readTarGz(bundle);
  assert.ok(archive.ok);
  const envelope = JSON.parse(archive.members.get("provenance.dsse.json")?.toString() ?? "{}");
  const statement = JSON.parse(Buffer.from(envelope.payload, "base64").toString());
  const dependencies = statement.predicate.buildDefinition.resolvedDependencies as {
    uri: string;
    digest?: { sha256: string };
    name?: string;
  }[];
  assert.deepEqual(dependencies.slice(1), [
    { uri: `oci:${image}`, name: "image of report", digest: { sha256: digest.slice(7) } },
  ]);
  assert.equal(dependencies[0]?.uri, "pack:contained@1.0.0");
});
