import assert from "node:assert/strict";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import {
  DiagnosticSeverity,
  DiagnosticsSchema,
  SimulationStatus,
  StepKind,
} from "@packrun/proto/pack/v1";
import { PlannerService } from "@packrun/proto/planner/v1";
import { errorCodeHeader } from "@packrun/rpc-server";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import { manifestDigest } from "./pack-registry.ts";
import { type PlannerServer, startPlannerServer } from "./planner-server.ts";

let testDatabase: TestDatabase | undefined;
let database: Database | undefined;
let server: PlannerServer | undefined;
let planner: Client<typeof PlannerService>;

// One beforeAll hook doing everything in order.
beforeAll(async () => {
  testDatabase = await createTestDatabase("planner_service");
  database = createPostgresDatabase({ url: testDatabase.url });
  server = await startPlannerServer({
    database,
    logger: createLogger({ service: "planner", level: "silent" }),
    port: 0,
  });
  planner = createClient(PlannerService, createGrpcTransport({ baseUrl: server.url }));
});
afterAll(async () => {
  await server?.close();
  await database?.close();
  await testDatabase?.drop();
});

const imageScan = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: image-scan
  version: 1.0.0
  description: Scan container images and hold the release for a security lead
  tags: [security]
spec:
  inputs:
    - name: images
      type: array
      required: true
    - name: strict
      type: boolean
      default: false
  approvals:
    - id: release
      grants: [security-lead]
      expiresAfter: 24h
  steps:
    - id: scan
      map:
        items: "{{ inputs.images }}"
        step:
          id: scan-one
          run:
            uses: builtin:noop
            with:
              message: "scan {{ item }}"
    - id: checks
      parallel:
        steps:
          - id: lint
            run:
              uses: builtin:noop
          - id: strict-check
            when: "{{ inputs.strict }}"
            run:
              uses: builtin:noop
    - id: approve
      gate:
        approval:
          id: release
          message: ship the scanned images
  outputs:
    - name: report
      type: file
      path: report.json
`;

function greeter(version: string, message = "hello"): string {
  return `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: greeter
  version: ${version}
spec:
  steps:
    - id: greet
      run:
        uses: builtin:noop
        with:
          message: ${message}
`;
}

/** Asserts a rejected call carries the Connect code and the stable packrun error code. */
function rpcError(code: Code, errorCode: string) {
  return (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, code, connectError.message);
    assert.equal(connectError.metadata.get(errorCodeHeader), errorCode);
    return true;
  };
}

test("RegisterPack publishes versions immutably and idempotently", async () => {
  const v1 = greeter("1.0.0");
  const first = await planner.registerPack({ tenant: "acme", manifest: v1, publishedBy: "alice" });
  assert.equal(first.created, true);
  assert.equal(first.version?.name, "greeter");
  assert.equal(first.version?.digest, manifestDigest(v1));
  assert.ok(first.version?.publishedAt);

  const second = await planner.registerPack({
    tenant: "acme",
    manifest: greeter("2.0.0", "bonjour"),
    publishedBy: "bob",
  });
  assert.equal(second.created, true);

  const old = await planner.getPackVersion({ tenant: "acme", name: "greeter", version: "1.0.0" });
  assert.equal(old.manifest, v1);
  assert.equal(old.version?.digest, first.version?.digest);
  assert.equal(old.version?.publishedBy, "alice");

  const again = await planner.registerPack({ tenant: "acme", manifest: v1, publishedBy: "carol" });
  assert.equal(again.created, false);
  assert.equal(again.version?.publishedBy, "alice");

  await assert.rejects(
    planner.registerPack({
      tenant: "acme",
      manifest: greeter("1.0.0", "changed"),
      publishedBy: "mallory",
    }),
    (error: unknown) => {
      rpcError(Code.AlreadyExists, "PACK_VERSION_CONFLICT")(error);
      const message = ConnectError.from(error).rawMessage;
      assert.match(message, /greeter@1\.0\.0/);
      assert.ok(message.includes(manifestDigest(v1)));
      assert.ok(message.includes(manifestDigest(greeter("1.0.0", "changed"))));
      return true;
    },
  );

  const latest = await planner.getPackVersion({ tenant: "acme", name: "greeter" });
  assert.equal(latest.version?.version, "2.0.0");
});

test("another tenant cannot see, plan or list a tenant's packs", async () => {
  await planner.registerPack({
    tenant: "tenant-a",
    manifest: greeter("1.0.0"),
    publishedBy: "alice",
  });
  const notFound = rpcError(Code.NotFound, "PACK_NOT_FOUND");
  await assert.rejects(
    planner.getPackVersion({ tenant: "tenant-b", name: "greeter", version: "1.0.0" }),
    notFound,
  );
  await assert.rejects(planner.listPackVersions({ tenant: "tenant-b", name: "greeter" }), notFound);
  await assert.rejects(
    planner.planPack({
      tenant: "tenant-b",
      pack: { source: { case: "ref", value: { name: "greeter", version: "1.0.0" } } },
    }),
    notFound,
  );
  assert.deepEqual((await planner.listPacks({ tenant: "tenant-b" })).packs, []);
  assert.equal((await planner.listPacks({ tenant: "tenant-a" })).packs.length, 1);
});

test("ListPacks and ListPackVersions paginate", async () => {
  const tenant = "paging";
  for (const version of ["1.0.0", "1.1.0", "1.10.0", "1.2.0"]) {
    await planner.registerPack({ tenant, manifest: greeter(version), publishedBy: "ci" });
  }
  for (const name of ["alpha", "bravo", "charlie"]) {
    await planner.registerPack({
      tenant,
      manifest: greeter("0.1.0").replace("name: greeter", `name: ${name}`),
      publishedBy: "ci",
    });
  }
  const names: string[] = [];
  let pageToken = "";
  do {
    const page = await planner.listPacks({ tenant, pageSize: 3, pageToken });
    names.push(...page.packs.map((pack) => pack.name));
    if (page.packs.some((pack) => pack.name === "greeter")) {
      const greeterSummary = page.packs.find((pack) => pack.name === "greeter");
      assert.equal(greeterSummary?.latest?.version, "1.10.0");
      assert.equal(greeterSummary?.versionCount, 4);
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  assert.deepEqual(names, ["alpha", "bravo", "charlie", "greeter"]);

  const first = await planner.listPackVersions({ tenant, name: "greeter", pageSize: 2 });
  assert.deepEqual(
    first.versions.map((version) => version.version),
    ["1.10.0", "1.2.0"],
  );
  const second = await planner.listPackVersions({
    tenant,
    name: "greeter",
    pageSize: 2,
    pageToken: first.nextPageToken,
  });
  assert.deepEqual(
    second.versions.map((version) => version.version),
    ["1.1.0", "1.0.0"],
  );
  assert.equal(second.nextPageToken, "");

  await assert.rejects(
    planner.listPacks({ tenant, pageToken: "not-a-token" }),
    rpcError(Code.InvalidArgument, "REQUEST_INVALID"),
  );
});

test("planning an inline manifest and its published ref give the same plan hash", async () => {
  const inputs = { images: ["registry.example/app:1.4", "registry.example/db:15"] };
  const inline = await planner.planPack({
    pack: { source: { case: "manifest", value: imageScan } },
    inputs,
  });
  assert.match(inline.planHash, /^sha256:[0-9a-f]{64}$/);
  assert.equal(inline.manifest, imageScan);
  assert.equal(inline.summary?.packName, "image-scan");
  assert.equal(inline.summary?.packDigest, manifestDigest(imageScan));
  assert.equal(inline.summary?.stepCount, 7);
  assert.equal(inline.summary?.approvals[0]?.id, "release");
  assert.equal(inline.summary?.approvals[0]?.expiresAfterSeconds, 86_400n);
  assert.equal(inline.summary?.outputs[0]?.path, "report.json");
  assert.equal(JSON.parse(inline.planJson).pack.name, "image-scan");

  await planner.registerPack({ tenant: "acme", manifest: imageScan, publishedBy: "alice" });
  const ref = { name: "image-scan", version: "1.0.0" };
  const byRef = await planner.planPack({
    tenant: "acme",
    pack: { source: { case: "ref", value: ref } },
    inputs,
  });
  assert.equal(byRef.planHash, inline.planHash);
  assert.equal(byRef.planJson, inline.planJson);
  assert.equal(byRef.manifest, imageScan);

  // Different inputs, different plan.
  const other = await planner.planPack({
    tenant: "acme",
    pack: { source: { case: "ref", value: ref } },
    inputs: { images: ["registry.example/app:1.5"] },
  });
  assert.notEqual(other.planHash, inline.planHash);
});

test("an invalid manifest fails PlanPack with INVALID_ARGUMENT and located diagnostics", async () => {
  const broken = imageScan.replace('when: "{{ inputs.strict }}"', 'when: "{{ inputs.strict "');
  await assert.rejects(
    planner.planPack({
      pack: { source: { case: "manifest", value: broken } },
      inputs: { images: [] },
    }),
    (error: unknown) => {
      rpcError(Code.InvalidArgument, "PACK_EXPRESSION")(error);
      const [details] = ConnectError.from(error).findDetails(DiagnosticsSchema);
      const diagnostic = details?.diagnostics[0];
      assert.equal(diagnostic?.path, "spec.steps[1].parallel.steps[1].when");
      assert.equal(diagnostic?.line, 37);
      assert.ok((diagnostic?.column ?? 0) > 0);
      return true;
    },
  );
  // A missing required input is an error of the request, located by name.
  await assert.rejects(
    planner.planPack({ pack: { source: { case: "manifest", value: imageScan } } }),
    (error: unknown) => {
      rpcError(Code.InvalidArgument, "INPUT_MISSING")(error);
      const [details] = ConnectError.from(error).findDetails(DiagnosticsSchema);
      assert.match(details?.diagnostics[0]?.path ?? "", /images/);
      return true;
    },
  );
  await assert.rejects(planner.planPack({}), rpcError(Code.InvalidArgument, "REQUEST_INVALID"));
});

test("ValidateManifest returns diagnostics as data", async () => {
  const ok = await planner.validateManifest({ manifest: imageScan });
  assert.equal(ok.valid, true);
  assert.deepEqual(ok.diagnostics, []);
  assert.equal(ok.packName, "image-scan");
  assert.equal(ok.packVersion, "1.0.0");

  const bad = await planner.validateManifest({
    manifest: imageScan.replace(
      "uses: builtin:noop\n            with:",
      "uses: builtin:nope\n            with:",
    ),
  });
  assert.equal(bad.valid, false);
  assert.equal(bad.packName, "");
  const [diagnostic] = bad.diagnostics;
  assert.equal(diagnostic?.code, "PACK_SCHEMA");
  assert.equal(diagnostic?.path, "spec.steps[0].map.step.run.uses");
  assert.equal(diagnostic?.line, 27);
  assert.equal(diagnostic?.severity, DiagnosticSeverity.ERROR);
  assert.match(diagnostic?.message ?? "", /builtin:nope/);

  // Versions must be canonical semver: one spelling per version in every registry.
  const prefixed = await planner.validateManifest({
    manifest: imageScan.replace("version: 1.0.0", "version: v1.0.0"),
  });
  assert.equal(prefixed.valid, false);
  assert.equal(prefixed.diagnostics[0]?.severity, DiagnosticSeverity.ERROR);
  assert.equal(prefixed.diagnostics[0]?.path, "metadata.version");
  assert.equal(prefixed.diagnostics[0]?.line, 5);

  const syntax = await planner.validateManifest({ manifest: "spec: [unclosed" });
  assert.equal(syntax.valid, false);
  assert.equal(syntax.diagnostics[0]?.code, "PACK_YAML_SYNTAX");
});

test("SimulatePack returns the step tree with map and parallel children", async () => {
  const simulation = await planner.simulatePack({
    pack: { source: { case: "manifest", value: imageScan } },
    inputs: { images: ["registry.example/app:1.4", "registry.example/db:15"] },
  });
  const planned = await planner.planPack({
    pack: { source: { case: "manifest", value: imageScan } },
    inputs: { images: ["registry.example/app:1.4", "registry.example/db:15"] },
  });
  assert.equal(simulation.planHash, planned.planHash);

  const [scan, checks, approve] = simulation.steps;
  assert.equal(simulation.steps.length, 3);
  assert.equal(scan?.kind, StepKind.MAP);
  assert.deepEqual(
    scan?.children.map((child) => [child.id, child.kind, child.status, child.uses]),
    [
      ["scan[0]::scan-one", StepKind.RUN, SimulationStatus.PENDING, "builtin:noop"],
      ["scan[1]::scan-one", StepKind.RUN, SimulationStatus.PENDING, "builtin:noop"],
    ],
  );
  assert.equal(checks?.kind, StepKind.PARALLEL);
  assert.deepEqual(
    checks?.children.map((child) => [child.id, child.status]),
    [
      ["lint", SimulationStatus.PENDING],
      ["strict-check", SimulationStatus.SKIPPED],
    ],
  );
  assert.notEqual(checks?.children[1]?.reason, "");
  assert.equal(approve?.kind, StepKind.APPROVAL_GATE);
  assert.equal(approve?.status, SimulationStatus.REQUIRES_APPROVAL);
  assert.equal(approve?.gateRef, "release");
  assert.match(approve?.reason ?? "", /security-lead/);

  assert.deepEqual(
    simulation.outputs.map((output) => [output.name, output.type, output.path]),
    [["report", "file", "report.json"]],
  );
  assert.equal(simulation.summary?.stepCount, 7);
});
