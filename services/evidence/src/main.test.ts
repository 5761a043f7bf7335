import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import { useTestDatabase } from "@packrun/testing";
import { describe, test } from "vitest";
import { loadEvidenceConfig, objectStoreOptions } from "./evidence-config.ts";

const mainPath = fileURLToPath(new URL("./main.ts", import.meta.url));

describe("evidence process", () => {
  const db = useTestDatabase("evidence_main");

  test("starts from the environment with a generated dev key, serves, and stops on SIGTERM", async () => {
    const dir = await mkdtemp(join(tmpdir(), "packrun-evidence-main-"));
    const child = spawn(process.execPath, [mainPath], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        PACKRUN_EVIDENCE_PORT: "0",
        PACKRUN_EVIDENCE_ARTIFACT_ROOT: join(dir, "artifacts"),
        PACKRUN_EVIDENCE_DEV_KEY_PATH: join(dir, "dev-key.pem"),
        PACKRUN_RPC_INSECURE_NO_AUTH: "true",
        PACKRUN_LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const ready = new Promise<string>((resolve, reject) => {
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        output += chunk;
        const match = /"url":"(http:\/\/[^"]+)","msg":"evidence ready"/.exec(output);
        if (match) resolve(match[1] as string);
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
    });
    const url = await ready;
    const client = createClient(EvidenceService, createGrpcTransport({ baseUrl: url }));
    const { keys } = await client.listVerificationKeys({});
    assert.equal(keys.length, 1);
    assert.equal(keys[0]?.algorithm, "ed25519");
    assert.match(output, /signing with a development key/);
    // The development-only opt-out is said loudly, as an error line, at every start.
    assert.match(
      output,
      /"level":"error".*"setting":"PACKRUN_RPC_INSECURE_NO_AUTH".*INSECURE: internal gRPC is cleartext and unauthenticated/,
    );
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
  });

  test("configuration errors name the variables", () => {
    assert.throws(
      () => loadEvidenceConfig({ DATABASE_URL: "mysql://x", PACKRUN_EVIDENCE_PORT: "nope" }),
      (error: Error) => {
        assert.match(error.message, /DATABASE_URL \(databaseUrl\): expected a postgres:\/\//);
        assert.match(error.message, /PACKRUN_EVIDENCE_PORT \(port\)/);
        return true;
      },
    );
    assert.throws(
      () =>
        loadEvidenceConfig({
          DATABASE_URL: "postgres://x",
          PACKRUN_EVIDENCE_SIGNING_KEY: "/etc/packrun/signing.pem",
        }),
      /artifactRoot: is required: set PACKRUN_EVIDENCE_ARTIFACT_ROOT, or PACKRUN_EVIDENCE_S3_BUCKET/,
    );
    const config = loadEvidenceConfig({
      DATABASE_URL: "postgres://shared",
      PACKRUN_EVIDENCE_DATABASE_URL: "postgres://evidence",
      PACKRUN_EVIDENCE_ARTIFACT_ROOT: "/var/lib/packrun/artifacts",
      PACKRUN_EVIDENCE_SIGNING_KEY: "/etc/packrun/signing.pem",
      PACKRUN_EVIDENCE_VERIFICATION_KEYS: "/etc/packrun/old-1.pem, /etc/packrun/old-2.pem",
      PACKRUN_RPC_INSECURE_NO_AUTH: "true",
    });
    assert.equal(config.databaseUrl, "postgres://evidence");
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.port, 7003);
    assert.deepEqual(config.verificationKeyPaths, [
      "/etc/packrun/old-1.pem",
      "/etc/packrun/old-2.pem",
    ]);
    assert.throws(
      () =>
        loadEvidenceConfig({
          DATABASE_URL: "postgres://x",
          PACKRUN_EVIDENCE_ARTIFACT_ROOT: "/a",
          PACKRUN_RPC_INSECURE_NO_AUTH: "true",
        }),
      /no signing key: set PACKRUN_EVIDENCE_SIGNING_KEY/,
    );
  });

  test("an S3 bucket replaces the artifact root; credentials come in pairs or not at all", () => {
    const base = {
      DATABASE_URL: "postgres://x",
      PACKRUN_EVIDENCE_SIGNING_KEY: "/etc/packrun/signing.pem",
      PACKRUN_EVIDENCE_S3_BUCKET: "packrun-artifacts",
      PACKRUN_RPC_INSECURE_NO_AUTH: "true",
    };
    const config = loadEvidenceConfig({
      ...base,
      PACKRUN_EVIDENCE_S3_ENDPOINT: "https://s3.example.internal",
      PACKRUN_EVIDENCE_S3_FORCE_PATH_STYLE: "true",
      PACKRUN_EVIDENCE_S3_PREFIX: "packrun/",
      PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID: "AKID",
      PACKRUN_EVIDENCE_S3_SECRET_ACCESS_KEY: "SECRET",
    });
    assert.deepEqual(objectStoreOptions(config), {
      bucket: "packrun-artifacts",
      region: "us-east-1",
      prefix: "packrun/",
      forcePathStyle: true,
      partSizeBytes: 8 * 1024 * 1024,
      uploadConcurrency: 2,
      endpoint: "https://s3.example.internal",
      credentials: { accessKeyId: "AKID", secretAccessKey: "SECRET" },
    });
    // Without a key pair the AWS SDK's default credential chain applies.
    assert.equal(objectStoreOptions(loadEvidenceConfig(base))?.credentials, undefined);
    assert.equal(
      objectStoreOptions(
        loadEvidenceConfig({
          ...base,
          PACKRUN_EVIDENCE_S3_BUCKET: undefined,
          PACKRUN_EVIDENCE_ARTIFACT_ROOT: "/a",
        }),
      ),
      undefined,
    );
    assert.throws(
      () => loadEvidenceConfig({ ...base, PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID: "AKID" }),
      /set both PACKRUN_EVIDENCE_S3_ACCESS_KEY_ID and PACKRUN_EVIDENCE_S3_SECRET_ACCESS_KEY/,
    );
    assert.throws(
      () => loadEvidenceConfig({ ...base, PACKRUN_EVIDENCE_S3_PART_SIZE_BYTES: "1024" }),
      /PACKRUN_EVIDENCE_S3_PART_SIZE_BYTES/,
    );
    assert.throws(
      () => loadEvidenceConfig({ ...base, PACKRUN_EVIDENCE_S3_ENDPOINT: "ftp://s3" }),
      /PACKRUN_EVIDENCE_S3_ENDPOINT/,
    );
  });
});
