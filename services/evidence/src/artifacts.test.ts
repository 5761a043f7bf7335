import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PackrunError } from "@packrun/errors";
import { type PutArtifactRequest, PutArtifactRequestSchema } from "@packrun/proto/evidence/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { beforeAll, describe, test } from "vitest";
import {
  type ArtifactFileSystem,
  createArtifactStore,
  nodeArtifactFileSystem,
} from "./artifact-store.ts";
import { ingestAll, type TestEvidence, testEvent, useEvidence } from "./test-helpers.ts";

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

function upload(
  evidence: TestEvidence,
  header: {
    runId: string;
    name: string;
    stepId?: string;
    tenant?: string;
    expectedDigest?: string;
    type?: string;
  },
  content: Uint8Array,
  chunkBytes = 16 * 1024,
) {
  const requests: PutArtifactRequest[] = [
    create(PutArtifactRequestSchema, {
      part: {
        case: "header",
        value: {
          tenant: header.tenant ?? "acme",
          runId: header.runId,
          stepId: header.stepId ?? "build",
          name: header.name,
          type: header.type ?? "file",
          sourcePath: `out/${header.name}`,
          expectedDigest: header.expectedDigest ?? "",
        },
      },
    }),
  ];
  for (let offset = 0; offset < content.length; offset += chunkBytes) {
    requests.push(
      create(PutArtifactRequestSchema, {
        part: { case: "chunk", value: content.subarray(offset, offset + chunkBytes) },
      }),
    );
  }
  return evidence.client.putArtifact(
    (async function* () {
      yield* requests;
    })(),
  );
}

function failsWith(code: Code, packrunCode: string, message?: RegExp) {
  return (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, code, connectError.message);
    assert.equal(connectError.metadata.get(errorCodeHeader), packrunCode);
    if (message) assert.match(connectError.rawMessage, message);
    return true;
  };
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name));
  } catch {
    return [];
  }
}

/** A filesystem that runs out of space after `limit` bytes, like a full disk. */
function fullDisk(limit: number): ArtifactFileSystem {
  return {
    ...nodeArtifactFileSystem,
    async create(path) {
      const file = await nodeArtifactFileSystem.create(path);
      let written = 0;
      return {
        ...file,
        async write(chunk) {
          written += chunk.length;
          if (written > limit) {
            throw Object.assign(new Error("ENOSPC: no space left on device, write"), {
              code: "ENOSPC",
              errno: -28,
            });
          }
          await file.write(chunk);
        },
      };
    },
  };
}

describe("artifacts", () => {
  const fixture = useEvidence("evidence_artifacts", { limits: { maxArtifactBytes: 1024 * 1024 } });
  let evidence: TestEvidence;
  beforeAll(() => {
    evidence = fixture.evidence;
  });

  test("upload, list and download in chunks; stored content-addressed with nothing left behind", async () => {
    const content = Buffer.alloc(200_000, "packrun artifact ");
    const { artifact } = await upload(evidence, { runId: "run-a", name: "report.txt" }, content);
    assert.equal(artifact?.digest, sha256(content));
    assert.equal(artifact?.sizeBytes, 200_000n);
    assert.equal(artifact?.status, "stored");
    assert.equal(artifact?.sourcePath, "out/report.txt");
    const hex = sha256(content).slice(7);
    const blob = join(evidence.artifactRoot, "sha256", hex.slice(0, 2), hex);
    assert.ok((await readFile(blob)).equals(content));
    assert.deepEqual(await filesUnder(join(evidence.artifactRoot, "tmp")), []);

    // Same content under another name: one blob, two records.
    await upload(evidence, { runId: "run-a", name: "copy.txt", stepId: "" }, content);
    const { artifacts } = await evidence.client.listArtifacts({ tenant: "acme", runId: "run-a" });
    assert.deepEqual(
      artifacts.map((a) => [a.stepId, a.name]),
      [
        ["", "copy.txt"],
        ["build", "report.txt"],
      ],
    );
    assert.equal((await filesUnder(join(evidence.artifactRoot, "sha256"))).length, 1);

    const chunks: Uint8Array[] = [];
    for await (const part of evidence.client.getArtifact({
      tenant: "acme",
      runId: "run-a",
      digest: sha256(content),
    })) {
      chunks.push(part.chunk);
    }
    assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
    assert.ok(Buffer.concat(chunks).equals(content));
  });

  test("each stored artifact is an artifact.stored event in the run's log, live to subscribers, once", async () => {
    const runId = "run-events";
    await ingestAll(evidence.client, [testEvent(runId, "first", { type: "step.running" })]);
    const controller = new AbortController();
    const live = (async () => {
      const seen: { type: string; metadata: unknown; message: string; stepId: string }[] = [];
      for await (const { event } of evidence.client.subscribeEvents(
        { tenant: "acme", runId },
        { signal: controller.signal },
      )) {
        if (event === undefined) continue;
        seen.push({
          type: event.type,
          metadata: event.metadata,
          message: event.message,
          stepId: event.stepId,
        });
        if (event.type === "artifact.stored") return seen;
      }
      return seen;
    })();
    const content = Buffer.from("report body\n");
    await upload(evidence, { runId, name: "report.txt" }, content);
    const seen = await live;
    controller.abort();
    const expected = {
      type: "artifact.stored",
      stepId: "build",
      message: `report.txt (12 bytes, ${sha256(content)})`,
      metadata: {
        name: "report.txt",
        digest: sha256(content),
        sizeBytes: 12,
        type: "file",
        sourcePath: "out/report.txt",
      },
    };
    assert.deepEqual(seen.at(-1), expected);
    // The same upload again (a lost response, resent) is not a second event; other content is.
    await upload(evidence, { runId, name: "report.txt" }, content);
    await upload(evidence, { runId, name: "report.txt" }, Buffer.from("attempt 2"));
    const { events } = await evidence.client.listEvents({ tenant: "acme", runId });
    assert.deepEqual(
      events.map((event) => [Number(event.sequence), event.type, event.metadata?.digest]),
      [
        [1, "step.running", undefined],
        [2, "artifact.stored", sha256(content)],
        [3, "artifact.stored", sha256(Buffer.from("attempt 2"))],
      ],
    );
  });

  test("content corrupted on disk is refused with ARTIFACT_CORRUPTED naming the digest", async () => {
    const content = Buffer.alloc(100_000, "intact ");
    const digest = sha256(content);
    await upload(evidence, { runId: "run-rot", name: "rotting.bin" }, content);
    const hex = digest.slice(7);
    const blob = join(evidence.artifactRoot, "sha256", hex.slice(0, 2), hex);
    await chmod(blob, 0o644);
    await writeFile(blob, Buffer.alloc(100_000, "rotten "));
    await assert.rejects(
      (async () => {
        for await (const _ of evidence.client.getArtifact({
          tenant: "acme",
          runId: "run-rot",
          digest,
        })) {
          // the bytes before the check fails
        }
      })(),
      failsWith(Code.DataLoss, "ARTIFACT_CORRUPTED", new RegExp(`${digest} is corrupted`)),
    );
  });

  test("a retried attempt replaces the step's artifact of the same name", async () => {
    await upload(evidence, { runId: "run-retry", name: "out.bin" }, Buffer.from("attempt 1"));
    await upload(evidence, { runId: "run-retry", name: "out.bin" }, Buffer.from("attempt 2"));
    const { artifacts } = await evidence.client.listArtifacts({
      tenant: "acme",
      runId: "run-retry",
    });
    assert.deepEqual(
      artifacts.map((a) => a.digest),
      [sha256(Buffer.from("attempt 2"))],
    );
  });

  test("an expected digest mismatch, an oversized or a malformed upload fails and records nothing", async () => {
    await assert.rejects(
      upload(
        evidence,
        { runId: "run-bad", name: "x", expectedDigest: sha256(Buffer.from("other")) },
        Buffer.from("actual"),
      ),
      failsWith(Code.InvalidArgument, "ARTIFACT_DIGEST_MISMATCH", /content has digest sha256:/),
    );
    await assert.rejects(
      upload(evidence, { runId: "run-bad", name: "big" }, Buffer.alloc(1024 * 1024 + 1)),
      failsWith(Code.InvalidArgument, "ARTIFACT_TOO_LARGE"),
    );
    await assert.rejects(
      upload(evidence, { runId: "run-bad", name: "t", type: "directory" }, Buffer.from("x")),
      failsWith(Code.InvalidArgument, "REQUEST_INVALID"),
    );
    const { artifacts } = await evidence.client.listArtifacts({ tenant: "acme", runId: "run-bad" });
    assert.equal(artifacts.length, 0);
    assert.deepEqual(await filesUnder(join(evidence.artifactRoot, "tmp")), []);
  });

  test("other tenants see nothing; an unknown digest is not found", async () => {
    const content = Buffer.from("private");
    await upload(evidence, { runId: "run-private", name: "p" }, content);
    await assert.rejects(
      evidence.client.listArtifacts({ tenant: "umbrella", runId: "run-private" }),
      failsWith(Code.NotFound, "RUN_NOT_FOUND"),
    );
    await assert.rejects(
      (async () => {
        for await (const _ of evidence.client.getArtifact({
          tenant: "umbrella",
          runId: "run-private",
          digest: sha256(content),
        })) {
          // unreachable
        }
      })(),
      failsWith(Code.NotFound, "RUN_NOT_FOUND"),
    );
    await assert.rejects(
      upload(evidence, { runId: "run-private", name: "q", tenant: "umbrella" }, content),
      failsWith(Code.NotFound, "RUN_NOT_FOUND"),
    );
    await assert.rejects(
      (async () => {
        for await (const _ of evidence.client.getArtifact({
          tenant: "acme",
          runId: "run-private",
          digest: sha256(Buffer.from("nope")),
        })) {
          // unreachable
        }
      })(),
      failsWith(Code.NotFound, "ARTIFACT_NOT_FOUND"),
    );
  });
});

describe("artifact store failures", () => {
  const fixture = useEvidence("evidence_full", { artifactFileSystem: fullDisk(64 * 1024) });
  let evidence: TestEvidence;
  beforeAll(() => {
    evidence = fixture.evidence;
  });

  test("a full disk fails the upload with ARTIFACT_STORE_FULL and leaves no record and no partial file", async () => {
    const small = Buffer.from("fits");
    await upload(evidence, { runId: "run-full", name: "small" }, small);
    await assert.rejects(
      upload(evidence, { runId: "run-full", name: "large" }, Buffer.alloc(200_000, 1)),
      failsWith(
        Code.ResourceExhausted,
        "ARTIFACT_STORE_FULL",
        /out of space \(ENOSPC\); the artifact was not stored/,
      ),
    );
    const { artifacts } = await evidence.client.listArtifacts({
      tenant: "acme",
      runId: "run-full",
    });
    assert.deepEqual(
      artifacts.map((a) => a.name),
      ["small"],
    );
    assert.deepEqual(await filesUnder(join(evidence.artifactRoot, "tmp")), []);
    assert.equal((await filesUnder(join(evidence.artifactRoot, "sha256"))).length, 1);
    // The event log is unaffected.
    // Only the stored artifact got its event: the failed one left none.
    const { events } = await evidence.client.listEvents({ tenant: "acme", runId: "run-full" });
    assert.deepEqual(
      events.map((event) => [event.type, event.metadata?.name]),
      [["artifact.stored", "small"]],
    );
    const [ack] = await ingestAll(evidence.client, [testEvent("run-full", "after-enospc")]);
    assert.equal(ack?.sequence, 2n);
  });

  test("a real write error (store directory unusable) fails with ARTIFACT_STORE_FAILED and records nothing", async () => {
    // The content directory is a regular file: mkdir fails for real (ENOTDIR/EEXIST).
    await rm(join(evidence.artifactRoot, "sha256"), { recursive: true, force: true });
    await writeFile(join(evidence.artifactRoot, "sha256"), "not a directory");
    try {
      await assert.rejects(
        upload(evidence, { runId: "run-broken", name: "x" }, Buffer.from("content")),
        failsWith(
          Code.Unavailable,
          "ARTIFACT_STORE_FAILED",
          /could not write \((ENOTDIR|EEXIST)\)/,
        ),
      );
      const { artifacts } = await evidence.client.listArtifacts({
        tenant: "acme",
        runId: "run-broken",
      });
      assert.equal(artifacts.length, 0);
      assert.deepEqual(await filesUnder(join(evidence.artifactRoot, "tmp")), []);
    } finally {
      await rm(join(evidence.artifactRoot, "sha256"), { force: true });
    }
  });
});

describe("artifact store", () => {
  test("content appears under its digest only once complete; a failing source leaves nothing", async () => {
    const root = await mkdtemp(join(tmpdir(), "packrun-store-"));
    const store = createArtifactStore({ root });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const content = Buffer.from("complete content");
    const putting = store.put(
      (async function* () {
        yield content.subarray(0, 5);
        await gate;
        yield content.subarray(5);
      })(),
      { maxBytes: 1000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await filesUnder(join(root, "sha256")), [], "nothing visible mid-write");
    assert.equal((await filesUnder(join(root, "tmp"))).length, 1);
    release();
    const stored = await putting;
    assert.equal(stored.digest, sha256(content));
    assert.deepEqual(await filesUnder(join(root, "tmp")), []);

    await assert.rejects(
      store.put(
        (async function* () {
          yield Buffer.from("partial");
          throw new Error("producer died");
        })(),
        { maxBytes: 1000 },
      ),
      /producer died/,
    );
    assert.deepEqual(await filesUnder(join(root, "tmp")), []);
    assert.equal((await filesUnder(join(root, "sha256"))).length, 1);
    await rm(root, { recursive: true });
  });

  test("a read-only store directory fails with ARTIFACT_STORE_FAILED (EACCES) and leaves nothing", async () => {
    const root = await mkdtemp(join(tmpdir(), "packrun-readonly-"));
    await mkdir(join(root, "tmp"));
    await chmod(join(root, "tmp"), 0o555);
    await chmod(root, 0o555);
    try {
      if (process.getuid?.() === 0) {
        // Root ignores permission bits: write as an unprivileged user instead.
        const script = `
          import { createArtifactStore } from ${JSON.stringify(new URL("./artifact-store.ts", import.meta.url).href)};
          const store = createArtifactStore({ root: ${JSON.stringify(root)} });
          try {
            await store.put((async function* () { yield Buffer.from("x"); })(), { maxBytes: 10 });
            console.log("stored");
          } catch (error) {
            console.log(error.code + " " + error.message);
          }`;
        const { stdout } = await promisify(execFile)("runuser", [
          "-u",
          "nobody",
          "--",
          process.execPath,
          "--input-type=module",
          "-e",
          script,
        ]);
        assert.match(stdout, /^ARTIFACT_STORE_FAILED artifact store could not write \(EACCES\)/);
      } else {
        const store = createArtifactStore({ root });
        await assert.rejects(
          store.put(
            (async function* () {
              yield Buffer.from("x");
            })(),
            { maxBytes: 10 },
          ),
          (error: unknown) =>
            error instanceof PackrunError &&
            error.code === "ARTIFACT_STORE_FAILED" &&
            /EACCES/.test(error.message),
        );
      }
      assert.deepEqual(await filesUnder(root), []);
      assert.ok((await stat(root)).isDirectory());
    } finally {
      await chmod(root, 0o755);
      await rm(root, { recursive: true, force: true });
    }
  });
});
