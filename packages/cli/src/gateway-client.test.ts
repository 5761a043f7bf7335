import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, test } from "vitest";
import { CliError } from "./cli-error.ts";
import { downloadToFile } from "./download-to-file.ts";
import { ExitCode } from "./exit-codes.ts";
import { apiPath, GatewayClient, queryString } from "./gateway-client.ts";
import {
  exitCodeForProblem,
  GatewayError,
  gatewayErrorFromResponse,
  networkError,
} from "./gateway-error.ts";
import { reportError } from "./report-error.ts";
import { sendJson, sendProblem, startFakeGateway } from "./testing/fake-gateway.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "packrun-client-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

test("problem codes map to the catalog's exit codes, unknown codes to the HTTP status", () => {
  assert.equal(exitCodeForProblem("PACK_SCHEMA", 400), ExitCode.invalidInput);
  assert.equal(exitCodeForProblem("UNAUTHENTICATED", 401), ExitCode.auth);
  assert.equal(exitCodeForProblem("PERMISSION_DENIED", 403), ExitCode.auth);
  assert.equal(exitCodeForProblem("APPROVAL_STALE", 403), ExitCode.auth);
  assert.equal(exitCodeForProblem("RUN_NOT_FOUND", 404), ExitCode.notFound);
  assert.equal(exitCodeForProblem("SEALED_MODE_VIOLATION", 409), ExitCode.sealedViolation);
  assert.equal(exitCodeForProblem("UNAVAILABLE", 503), ExitCode.retryable);
  assert.equal(exitCodeForProblem("PACK_VERSION_CONFLICT", 409), ExitCode.error);
  assert.equal(exitCodeForProblem("SOMETHING_NEW", 429), ExitCode.retryable);
  assert.equal(exitCodeForProblem("SOMETHING_NEW", 403), ExitCode.auth);
  assert.equal(exitCodeForProblem("SOMETHING_NEW", 404), ExitCode.notFound);
  assert.equal(exitCodeForProblem("SOMETHING_NEW", 422), ExitCode.invalidInput);
  assert.equal(exitCodeForProblem("SOMETHING_NEW", 500), ExitCode.error);
});

test("a problem document becomes an error with its code and one line per entry", () => {
  const error = gatewayErrorFromResponse(
    400,
    "Bad Request",
    "application/problem+json",
    JSON.stringify({
      type: "https://packrun.dev/errors/PACK_SCHEMA",
      title: "Manifest does not match the Task Pack schema",
      status: 400,
      // What the gateway sends: the first problem again, as the detail.
      detail: "spec.steps[0].id (line 7:11): must match the id pattern (and 1 more)",
      code: "PACK_SCHEMA",
      errors: [
        { path: "spec.steps[0].id", message: "must match the id pattern", line: 7, column: 11 },
        { path: "", message: "unknown field x" },
      ],
    }),
    "pack.yaml",
  );
  assert.ok(error instanceof GatewayError);
  assert.equal(error.code, "PACK_SCHEMA");
  assert.equal(error.status, 400);
  assert.equal(error.exitCode, ExitCode.invalidInput);
  assert.equal(error.message, "pack.yaml is invalid (2 problems) [PACK_SCHEMA]");
  assert.deepEqual(error.lines, [
    "error: pack.yaml is invalid (2 problems) [PACK_SCHEMA]",
    "pack.yaml: spec.steps[0].id (line 7:11): must match the id pattern",
    "pack.yaml: manifest: unknown field x",
  ]);
  let printed = "";
  assert.equal(
    reportError(error, (text) => {
      printed += text;
    }),
    2,
  );
  assert.match(printed, /^error: pack\.yaml is invalid/);

  const html = gatewayErrorFromResponse(502, "Bad Gateway", "text/html", "<h1>oops</h1>");
  assert.equal(html.code, "HTTP_502");
  assert.equal(html.exitCode, ExitCode.retryable);
  assert.equal(html.message, "the gateway answered HTTP 502 Bad Gateway [HTTP_502]");
});

test("network failures are retryable and say why", () => {
  const refused = new TypeError("fetch failed", {
    cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
  });
  const error = networkError("http://127.0.0.1:9", refused);
  assert.equal(error.exitCode, ExitCode.retryable);
  assert.equal(
    error.message,
    "cannot reach the gateway at http://127.0.0.1:9: connection refused (retryable)",
  );
});

test("paths and queries are encoded; arrays repeat their key", () => {
  assert.equal(apiPath("api", "packs", "a/b c", "versions"), "/api/packs/a%2Fb%20c/versions");
  assert.equal(
    queryString({ state: ["failed", "cancelled"], pack: undefined, pageSize: 5, follow: false }),
    "?state=failed&state=cancelled&pageSize=5&follow=false",
  );
  assert.equal(queryString({ pack: undefined }), "");
});

test("the client sends the token and JSON, and turns error answers into GatewayError", async () => {
  const gateway = await startFakeGateway({
    "POST /api/runs": (request, response) =>
      sendJson(response, 201, { created: true, run: { id: "r1", echo: JSON.parse(request.body) } }),
    "POST /api/runs/r1/approve": (_request, response) =>
      sendProblem(response, 403, "APPROVAL_STALE", "the token is bound to another plan"),
    "GET /api/runs/slow": () => {
      // Never answers.
    },
  });
  try {
    const client = new GatewayClient({ baseUrl: gateway.url, token: "tok", timeoutMs: 300 });
    const submitted = await client.submitRun({ pack: { name: "p" }, inputs: { a: 1 } });
    assert.deepEqual(submitted, {
      created: true,
      run: { id: "r1", echo: { pack: { name: "p" }, inputs: { a: 1 } } },
    } as unknown);
    const [first] = gateway.requests;
    assert.equal(first?.headers.authorization, "Bearer tok");
    assert.equal(first?.headers["content-type"], "application/json");
    assert.match(String(first?.headers["user-agent"]), /^packrun-cli\//);

    await assert.rejects(
      client.approve("r1", { gateId: "g" }, "approval-token"),
      (error: unknown) =>
        error instanceof GatewayError &&
        error.exitCode === ExitCode.auth &&
        error.code === "APPROVAL_STALE",
    );
    assert.equal(gateway.requests.at(-1)?.headers.authorization, "Bearer approval-token");

    await assert.rejects(
      client.getRun("nope"),
      (error: unknown) => error instanceof GatewayError && error.exitCode === ExitCode.notFound,
    );
    await assert.rejects(
      client.getRun("slow"),
      (error: unknown) =>
        error instanceof CliError &&
        error.exitCode === ExitCode.retryable &&
        /timed out/.test(error.message),
    );
  } finally {
    await gateway.close();
  }
});

test("downloads are atomic and kept only when they match their digest", async () => {
  const body = "hello artifact\n";
  const digest = "sha256:9b0a1dcd1e1f1d6d4a8ac6ad4c66a7b6c2f0a2f1ab7d2ae3c0b2c7d8e6f4a3b1";
  const good = path.join(dir, "good.txt");
  const download = await downloadToFile(new Response(body), good);
  assert.equal(download.bytes, body.length);
  assert.match(download.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(await readFile(good, "utf8"), body);
  await downloadToFile(new Response(body), good, { expectedDigest: download.digest });

  const bad = path.join(dir, "bad.txt");
  await assert.rejects(
    downloadToFile(new Response(body), bad, { expectedDigest: digest }),
    (error: unknown) =>
      error instanceof CliError &&
      error.exitCode === ExitCode.error &&
      /does not match its digest/.test(error.message),
  );
  // A transfer that breaks midway leaves nothing either.
  const broken = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("partial"));
      controller.error(new Error("socket hang up"));
    },
  });
  await assert.rejects(
    downloadToFile(new Response(broken), path.join(dir, "broken.txt")),
    (error: unknown) =>
      error instanceof CliError &&
      error.exitCode === ExitCode.retryable &&
      /download interrupted/.test(error.message),
  );
  assert.deepEqual((await readdir(dir)).sort(), ["good.txt"]);
  await assert.rejects(
    downloadToFile(new Response(body), path.join(dir, "missing-dir", "x")),
    (error: unknown) => error instanceof CliError && error.exitCode === ExitCode.invalidInput,
  );
});
