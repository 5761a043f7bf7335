import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type PutArtifactRequest, PutArtifactRequestSchema } from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { createS3ArtifactStore } from "./s3-artifact-store.ts";
import { startTestEvidence, type TestEvidence } from "./test-helpers.ts";
import { startTestS3, type TestS3 } from "./testing/s3-test-server.ts";

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
const keyOf = (digest: string) => `sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;

function upload(evidence: TestEvidence, runId: string, name: string, content: Uint8Array) {
  async function* requests(): AsyncGenerator<PutArtifactRequest> {
    yield create(PutArtifactRequestSchema, {
      part: {
        case: "header",
        value: { tenant: "acme", runId, stepId: "build", name, type: "file", sourcePath: name },
      },
    });
    for (let offset = 0; offset < content.length; offset += 64 * 1024) {
      yield create(PutArtifactRequestSchema, {
        part: { case: "chunk", value: content.subarray(offset, offset + 64 * 1024) },
      });
    }
  }
  return evidence.client.putArtifact(requests());
}

async function download(evidence: TestEvidence, runId: string, digest: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const part of evidence.client.getArtifact({ tenant: "acme", runId, digest })) {
    chunks.push(part.chunk);
  }
  return Buffer.concat(chunks);
}

function failsWith(code: Code, packrunCode: string, message: RegExp) {
  return (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, code, connectError.message);
    assert.equal(connectError.metadata.get(errorCodeHeader), packrunCode);
    assert.match(connectError.rawMessage, message);
    return true;
  };
}

async function keysUnder(s3: TestS3, prefix: string): Promise<string[]> {
  const page = await s3.client.send(
    new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }),
  );
  return (page.Contents ?? []).map((object) => object.Key ?? "");
}

const isPart = (partNumber: number) => (request: { method: string; url: string }) =>
  request.method === "PUT" && request.url.includes(`partNumber=${partNumber}&`);

describe("artifacts in an S3-compatible object store", () => {
  let database: TestDatabase;
  let s3: TestS3;
  let evidence: TestEvidence;
  beforeAll(async () => {
    database = await createTestDatabase("evidence_s3");
    s3 = await startTestS3();
    evidence = await startTestEvidence(database.url, {
      objectStore: s3.storeOptions({ maxAttempts: 2 }),
    });
  });
  afterAll(async () => {
    await evidence?.close();
    await s3?.close();
    await database?.drop();
  });

  test("a multipart upload and a small one round-trip byte-exact, addressed by digest, nothing left in tmp/", async () => {
    const large = randomBytes(12 * 1024 * 1024 + 12_345);
    const small = Buffer.from("a small report\n");
    const seenBefore = s3.requests.length;
    const { artifact } = await upload(evidence, "run-s3", "large.bin", large);
    await upload(evidence, "run-s3", "small.txt", small);
    assert.equal(artifact?.digest, sha256(large));
    assert.equal(artifact?.sizeBytes, BigInt(large.length));

    const seen = s3.requests.slice(seenBefore);
    assert.ok(
      seen.some((request) => request.method === "POST" && request.url.includes("?uploads")),
      "a multipart upload was started",
    );
    assert.equal(seen.filter((request) => request.url.includes("partNumber=")).length, 3);

    // The bucket holds exactly the bytes under the digest's key.
    const stored = await s3.client.send(
      new GetObjectCommand({ Bucket: s3.bucket, Key: keyOf(sha256(large)) }),
    );
    assert.ok(Buffer.from(await (stored.Body?.transformToByteArray() ?? [])).equals(large));
    assert.deepEqual(await keysUnder(s3, "tmp/"), []);

    assert.ok((await download(evidence, "run-s3", sha256(large))).equals(large));
    assert.ok((await download(evidence, "run-s3", sha256(small))).equals(small));
  });

  test("a 500 in the middle of a multipart upload fails the upload, aborts it and records nothing", async () => {
    const content = randomBytes(11 * 1024 * 1024);
    s3.failWhen(isPart(2));
    const seenBefore = s3.requests.length;
    try {
      await assert.rejects(
        upload(evidence, "run-s3-500", "flaky.bin", content),
        failsWith(Code.Unavailable, "ARTIFACT_STORE_FAILED", /InternalError, HTTP 500.*not stored/),
      );
    } finally {
      s3.failWhen(undefined);
    }
    const seen = s3.requests.slice(seenBefore);
    assert.ok(
      seen.some((request) => request.method === "DELETE" && request.url.includes("uploadId=")),
      "the multipart upload was aborted",
    );
    const { artifacts } = await evidence.client.listArtifacts({
      tenant: "acme",
      runId: "run-s3-500",
    });
    assert.deepEqual(artifacts, []);
    assert.deepEqual(await keysUnder(s3, "tmp/"), []);
    assert.deepEqual(await keysUnder(s3, keyOf(sha256(content))), []);
  });

  test("one 500 on a part is retried and the upload still lands byte-exact", async () => {
    const content = randomBytes(11 * 1024 * 1024);
    let failures = 0;
    s3.failWhen((request) => isPart(2)(request) && failures++ === 0);
    try {
      await upload(evidence, "run-s3-retry", "retried.bin", content);
    } finally {
      s3.failWhen(undefined);
    }
    assert.equal(failures > 1, true, "part 2 was sent again after the 500");
    assert.ok((await download(evidence, "run-s3-retry", sha256(content))).equals(content));
  });

  test("a store that is down fails uploads and downloads with errors naming what was not stored or read", async () => {
    const content = Buffer.from("stored while the store was up");
    await upload(evidence, "run-s3-down", "up.txt", content);
    await s3.setDown(true);
    try {
      await assert.rejects(
        upload(evidence, "run-s3-down", "down.txt", Buffer.from("never stored")),
        failsWith(Code.Unavailable, "ARTIFACT_STORE_FAILED", /ECONNREFUSED.*not stored/),
      );
      await assert.rejects(
        download(evidence, "run-s3-down", sha256(content)),
        failsWith(
          Code.Unavailable,
          "ARTIFACT_STORE_UNAVAILABLE",
          new RegExp(`${sha256(content)} could not be read.*ECONNREFUSED`),
        ),
      );
    } finally {
      await s3.setDown(false);
    }
    const { artifacts } = await evidence.client.listArtifacts({
      tenant: "acme",
      runId: "run-s3-down",
    });
    assert.deepEqual(
      artifacts.map((artifact) => artifact.name),
      ["up.txt"],
    );
    assert.ok((await download(evidence, "run-s3-down", sha256(content))).equals(content));
  });

  test("temporary objects left by a crash are swept; finished ones and younger ones stay", async () => {
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: "tmp/crashed.part", Body: "partial" }),
    );
    const store = createS3ArtifactStore(s3.storeOptions());
    assert.equal(await store.sweepTemporaryFiles(60 * 60_000), 0, "younger than an hour");
    const kept = await keysUnder(s3, "sha256/");
    assert.equal(await store.sweepTemporaryFiles(0), 1);
    assert.deepEqual(await keysUnder(s3, "tmp/"), []);
    assert.deepEqual(await keysUnder(s3, "sha256/"), kept);
  });

  test("a corrupted object is an error naming the digest; a missing one is not found, never empty", async () => {
    const content = randomBytes(300_000);
    const digest = sha256(content);
    await upload(evidence, "run-s3-bad", "victim.bin", content);
    const tampered = Buffer.from(content);
    tampered[123_456] = (tampered[123_456] ?? 0) ^ 0xff;
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: keyOf(digest), Body: tampered }),
    );
    await assert.rejects(
      download(evidence, "run-s3-bad", digest),
      failsWith(Code.DataLoss, "ARTIFACT_CORRUPTED", new RegExp(`${digest} is corrupted`)),
    );
    // Truncated content is corrupted too.
    await s3.client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: keyOf(digest), Body: content.subarray(1) }),
    );
    await assert.rejects(
      download(evidence, "run-s3-bad", digest),
      failsWith(Code.DataLoss, "ARTIFACT_CORRUPTED", new RegExp(`${digest} is corrupted`)),
    );
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: keyOf(digest) }));
    await assert.rejects(
      download(evidence, "run-s3-bad", digest),
      failsWith(
        Code.NotFound,
        "ARTIFACT_NOT_FOUND",
        new RegExp(`${digest} is missing from the object store`),
      ),
    );
  });
});
