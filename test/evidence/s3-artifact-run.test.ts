/**
 * A run whose evidence keeps artifact content in an S3-compatible server (s3rver on loopback),
 * through the real services: the artifacts come back byte-exact over REST, the run's log shows
 * `artifact.stored` as it happens (REST SSE while the run is still going, NDJSON, and the CLI's
 * follow view).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { readTarGz } from "@packrun/attestation";
import { startTestS3, type TestS3 } from "@packrun/evidence/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { runCli } from "../../packages/cli/src/testing/run-cli.ts";
import type { RunEventJson, RunJson } from "../../services/gateway/src/api-schemas.ts";
import {
  type GatewayStack,
  startGatewayStack,
} from "../../services/gateway/src/testing/gateway-stack.ts";
import { type RestClient, restClient } from "../../services/gateway/src/testing/rest-client.ts";
import { submitRun, waitForRun } from "../../services/gateway/src/testing/run-helpers.ts";

// `numbers` is about 14 MB: a multipart upload with 5 MiB parts. The second step keeps the run
// going after the first step's artifacts are stored, so their events arrive while it runs.
const pack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: s3-artifacts, version: 1.0.0}
spec:
  steps:
    - id: produce
      run:
        uses: builtin:shell
        with: {script: 'seq 1 2000000 > numbers.txt; echo hello > note.txt'}
        artifacts: [{name: numbers, path: numbers.txt}, {name: note, path: note.txt}]
    - id: linger
      run: {uses: builtin:shell, with: {script: 'sleep 2'}}
`;

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

interface ArtifactJson {
  stepId: string;
  name: string;
  digest: string;
  sizeBytes: number;
}

describe("a run with artifacts in an S3-compatible store", () => {
  let s3: TestS3;
  let stack: GatewayStack;
  let client: RestClient;
  let token: string;
  let run: RunJson;
  let liveEvents: RunEventJson[];
  let stateWhenStored: string;

  beforeAll(async () => {
    s3 = await startTestS3();
    stack = await startGatewayStack({ objectStore: s3.storeOptions() });
    token = await stack.mintToken();
    client = restClient(stack.url, token);
    const submitted = await submitRun(client, { manifest: pack });
    const messages = await client.sse(`/api/runs/${submitted.id}/logs`, {
      until: (message) =>
        message.event === "run-event" &&
        (JSON.parse(message.data) as RunEventJson).type === "artifact.stored" &&
        (JSON.parse(message.data) as RunEventJson).metadata?.name === "note",
    });
    stateWhenStored = (await client.get<RunJson>(`/api/runs/${submitted.id}`)).body.state;
    liveEvents = messages
      .filter((message) => message.event === "run-event")
      .map((message) => JSON.parse(message.data) as RunEventJson);
    run = await waitForRun(client, submitted.id, undefined, 60_000);
    assert.equal(run.state, "succeeded", run.reason ?? "");
    // The attestation (and so the bundle) is written just after the run ends.
    for (let i = 0; i < 200; i++) {
      if ((await client.get(`/api/runs/${run.id}/attestation`)).status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 90_000);
  afterAll(async () => {
    await stack?.close();
    await s3?.close();
  });

  test("the SSE stream shows artifact.stored (name, digest, size) while the run is still running", () => {
    assert.equal(stateWhenStored, "running");
    const stored = liveEvents.filter((event) => event.type === "artifact.stored");
    assert.deepEqual(stored.map((event) => [event.stepId, event.metadata?.name]).sort(), [
      ["produce", "note"],
      ["produce", "numbers"],
    ]);
    for (const event of stored) {
      assert.match(String(event.metadata?.digest), /^sha256:[0-9a-f]{64}$/);
      assert.equal(typeof event.metadata?.sizeBytes, "number");
    }
  });

  test("artifacts come back byte-exact over REST, as the bucket holds them under their digest", async () => {
    const { body } = await client.get<{ artifacts: ArtifactJson[] }>(
      `/api/runs/${run.id}/artifacts`,
    );
    assert.deepEqual(body.artifacts.map((artifact) => artifact.name).sort(), ["note", "numbers"]);
    const expected = Buffer.from(
      `${Array.from({ length: 2_000_000 }, (_, i) => i + 1).join("\n")}\n`,
    );
    for (const artifact of body.artifacts) {
      const response = await fetch(`${stack.url}/api/runs/${run.id}/artifacts/${artifact.digest}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(response.status, 200);
      const bytes = Buffer.from(await response.arrayBuffer());
      assert.equal(sha256(bytes), artifact.digest);
      assert.equal(bytes.length, artifact.sizeBytes);
      if (artifact.name === "numbers") assert.ok(bytes.equals(expected));
      else assert.equal(bytes.toString(), "hello\n");
      const hex = artifact.digest.slice(7);
      const object = await s3.client.send(
        new GetObjectCommand({ Bucket: s3.bucket, Key: `sha256/${hex.slice(0, 2)}/${hex}` }),
      );
      assert.ok(Buffer.from((await object.Body?.transformToByteArray()) ?? []).equals(bytes));
    }
    assert.ok(
      s3.requests.some((request) => request.url.includes("partNumber=3&")),
      "numbers went up in parts",
    );
  });

  test("the log orders artifact.stored before its step's success; the CLI shows the events", async () => {
    const response = await fetch(`${stack.url}/api/runs/${run.id}/logs?format=ndjson`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const events = (await response.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as RunEventJson & { end?: boolean })
      .filter((event) => event.end !== true);
    const types = events.filter((event) => event.stepId === "produce").map((event) => event.type);
    assert.ok(
      types.lastIndexOf("artifact.stored") < types.indexOf("step.succeeded"),
      types.join(", "),
    );
    const cli = await runCli(["logs", run.id, "--follow"], {
      cwd: stack.home,
      env: { PACKRUN_URL: stack.url, PACKRUN_TOKEN: token },
    });
    assert.equal(cli.code, 0, cli.stderr);
    const { body } = await client.get<{ artifacts: ArtifactJson[] }>(
      `/api/runs/${run.id}/artifacts`,
    );
    for (const artifact of body.artifacts) {
      assert.ok(
        cli.stdout.includes(
          `artifact.stored: ${artifact.name} (${artifact.sizeBytes} bytes, ${artifact.digest})`,
        ),
        cli.stdout,
      );
    }
  });

  test("the bundle holds the artifacts from the bucket and SLSA provenance; packrun bundle and verify accept it", async () => {
    const bundle = join(stack.home, "run.tar.gz");
    const env = { PACKRUN_URL: stack.url, PACKRUN_TOKEN: token };
    // Downloads the bundle and verifies it against the keys the evidence service publishes.
    const downloaded = await runCli(["bundle", run.id, "-o", bundle], { cwd: stack.home, env });
    assert.equal(downloaded.code, 0, downloaded.stdout + downloaded.stderr);
    assert.match(
      downloaded.stdout,
      /✔ provenance provenance\.dsse\.json: SLSA Provenance v1 of 2 artifacts/,
    );
    const archive = await readTarGz(await readFile(bundle));
    assert.ok(archive.ok);
    const envelope = JSON.parse(archive.members.get("provenance.dsse.json")?.toString() ?? "{}");
    const statement = JSON.parse(Buffer.from(envelope.payload, "base64").toString());
    assert.equal(statement.predicateType, "https://slsa.dev/provenance/v1");
    assert.equal(statement.predicate.runDetails.metadata.invocationId, run.id);
    assert.deepEqual(
      statement.subject.map((subject: { name: string }) => subject.name),
      ["artifacts/produce/note", "artifacts/produce/numbers"],
    );
    // Offline, with the key given explicitly (no gateway involved).
    const { body } = await client.get<{ keys: { publicKeyPem: string }[] }>(
      "/api/verification-keys",
    );
    const keyFile = join(stack.home, "trusted.pem");
    await writeFile(keyFile, body.keys[0]?.publicKeyPem ?? "");
    const verified = await runCli(["verify", bundle, "--key", keyFile], { cwd: stack.home });
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /✔ provenance provenance\.dsse\.json/);
  });

  // Last: it damages the bucket.
  test("a corrupted or missing object is never served as the artifact over REST", async () => {
    const { body } = await client.get<{ artifacts: ArtifactJson[] }>(
      `/api/runs/${run.id}/artifacts`,
    );
    const get = (digest: string) =>
      fetch(`${stack.url}/api/runs/${run.id}/artifacts/${digest}`, {
        headers: { authorization: `Bearer ${token}` },
      });
    const keyOf = (digest: string) => `sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;
    const note = body.artifacts.find((artifact) => artifact.name === "note") as ArtifactJson;
    const numbers = body.artifacts.find((artifact) => artifact.name === "numbers") as ArtifactJson;
    // Same length, other bytes: refused before a byte is sent.
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: keyOf(note.digest), Body: "HELLO\n" }),
    );
    const corrupted = await get(note.digest);
    assert.equal(corrupted.status, 502);
    const problem = (await corrupted.json()) as { code: string; detail: string };
    assert.equal(problem.code, "ARTIFACT_CORRUPTED");
    assert.match(problem.detail, new RegExp(`${note.digest} is corrupted`));
    // A large one is cut short of its announced length: the client never gets it whole.
    const tampered = Buffer.from(
      `${Array.from({ length: 2_000_000 }, (_, i) => i + 1).join("\n")}\n`,
    );
    tampered[tampered.length - 2] = 0x39; // "…2000000\n" ends "…2000009\n"
    assert.notEqual(sha256(tampered), numbers.digest);
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: keyOf(numbers.digest), Body: tampered }),
    );
    const cut = await get(numbers.digest);
    assert.equal(cut.status, 200);
    assert.equal(cut.headers.get("content-length"), String(numbers.sizeBytes));
    await assert.rejects(cut.arrayBuffer());
    // Missing: a problem naming the digest, not an empty download.
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: keyOf(note.digest) }));
    const missing = await get(note.digest);
    assert.equal(missing.status, 404);
    const absent = (await missing.json()) as { code: string; detail: string };
    assert.equal(absent.code, "ARTIFACT_NOT_FOUND");
    assert.match(absent.detail, new RegExp(`${note.digest} is missing from the object store`));
  });
});
