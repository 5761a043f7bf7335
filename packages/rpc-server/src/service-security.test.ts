import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "@packrun/logging";
import { afterAll, beforeAll, test } from "vitest";
import { type DevCertificates, ensureDevCertificates } from "./dev-certificates.ts";
import { serviceSecurityFromConfig } from "./service-security.ts";
import { serviceBaseUrl } from "./service-tls.ts";

let dir: string;
let certificates: DevCertificates;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "packrun-service-security-"));
  certificates = await ensureDevCertificates(join(dir, "tls"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n"))
        if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ service: "test", level: "info", destination }) };
}

test("the configured files become the service's TLS identity; a token verifier only with auth settings", async () => {
  const { logger } = capturedLogger();
  const files = {
    tlsCa: certificates.caFile,
    tlsCert: join(certificates.dir, "planner.pem"),
    tlsKey: join(certificates.dir, "planner-key.pem"),
    insecureNoAuth: false,
  };
  const security = await serviceSecurityFromConfig(files, undefined, logger);
  assert.equal(security?.tls.cert, certificates.services.planner.cert);
  assert.equal(security?.tls.key, certificates.services.planner.key);
  assert.equal(security?.tls.ca, certificates.services.planner.ca);
  assert.equal(security?.tokens, undefined, "no PACKRUN_AUTH_*: no bearer tokens");
  await assert.rejects(
    serviceSecurityFromConfig({ ...files, tlsKey: join(dir, "missing.pem") }, undefined, logger),
    /PACKRUN_TLS_KEY: cannot read .*missing\.pem/,
  );
});

test("the development opt-out serves without TLS and says so as an error line", async () => {
  const { lines, logger } = capturedLogger();
  assert.equal(
    await serviceSecurityFromConfig({ insecureNoAuth: true }, undefined, logger),
    undefined,
  );
  const line = lines.find((entry) => entry.setting === "PACKRUN_RPC_INSECURE_NO_AUTH");
  assert.equal(line?.level, "error");
  assert.match(String(line?.msg), /^INSECURE: internal gRPC is cleartext and unauthenticated/);
});

test("with TLS a configured http:// URL is called over TLS, never in cleartext", () => {
  const tls = certificates.services.gateway;
  assert.equal(serviceBaseUrl("http://planner:7001", tls), "https://planner:7001");
  assert.equal(serviceBaseUrl("HTTP://planner:7001", tls), "https://planner:7001");
  assert.equal(serviceBaseUrl("https://planner:7001", tls), "https://planner:7001");
  assert.equal(serviceBaseUrl("http://planner:7001", undefined), "http://planner:7001");
});

test("the development CA is kept across calls; service certificates are issued anew and chain to it", async () => {
  const again = await ensureDevCertificates(join(dir, "tls"));
  assert.equal(again.services.planner.ca, certificates.services.planner.ca);
  assert.notEqual(again.services.planner.cert, certificates.services.planner.cert);
  const { X509Certificate } = await import("node:crypto");
  const ca = new X509Certificate(again.services.planner.ca);
  const cert = new X509Certificate(again.services.executor.cert);
  assert.ok(cert.verify(ca.publicKey), "signed by the CA");
  assert.match(cert.subject, /CN=executor/);
  assert.match(String(cert.subjectAltName), /IP Address:127\.0\.0\.1/);
  assert.equal(ca.ca, true);
});
