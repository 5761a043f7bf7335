/**
 * A stock gRPC client (@grpc/grpc-js with @grpc/proto-loader reading the .proto sources, no
 * generated code) can call the planner: the contract is plain gRPC, not a Connect dialect.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import { createTestDatabase, stockLoaderOptions, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll, test } from "vitest";
import { type PlannerServer, startPlannerServer } from "./planner-server.ts";

type Callback<Response> = (error: grpc.ServiceError | null, response: Response) => void;
type Unary = (request: object, callback: Callback<unknown>) => void;

interface PlannerClient extends grpc.Client {
  registerPack: Unary;
  planPack: Unary;
  listPacks: Unary;
}

interface HealthClient extends grpc.Client {
  check: Unary;
}

let testDatabase: TestDatabase | undefined;
let database: Database | undefined;
let server: PlannerServer | undefined;
let planner: PlannerClient;
let health: HealthClient;

// One beforeAll hook doing everything in order.
beforeAll(async () => {
  testDatabase = await createTestDatabase("planner_grpc_js");
  database = createPostgresDatabase({ url: testDatabase.url });
  server = await startPlannerServer({
    database,
    logger: createLogger({ service: "planner", level: "silent" }),
    port: 0,
  });
  const address = new URL(server.url).host;
  const credentials = grpc.credentials.createInsecure();

  const plannerPackage = grpc.loadPackageDefinition(
    protoLoader.loadSync("packrun/planner/v1/planner.proto", stockLoaderOptions),
  ) as unknown as {
    packrun: { planner: { v1: { PlannerService: grpc.ServiceClientConstructor } } };
  };
  planner = new plannerPackage.packrun.planner.v1.PlannerService(
    address,
    credentials,
  ) as unknown as PlannerClient;

  const healthPackage = grpc.loadPackageDefinition(
    protoLoader.loadSync("grpc/health/v1/health.proto", stockLoaderOptions),
  ) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  health = new healthPackage.grpc.health.v1.Health(address, credentials) as unknown as HealthClient;
});
afterAll(async () => {
  planner?.close();
  health?.close();
  await server?.close();
  await database?.close();
  await testDatabase?.drop();
});

/** Calls a unary method of a grpc-js client as a promise. */
function call<Response>(client: grpc.Client, method: Unary, request: object): Promise<Response> {
  return new Promise((resolve, reject) => {
    method.call(client, request, (error, response) =>
      error ? reject(error) : resolve(response as Response),
    );
  });
}

const manifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: bundle-ingest
  version: 1.2.0
  description: Ingest an offline bundle
spec:
  inputs:
    - name: bundles
      type: array
      required: true
  steps:
    - id: ingest
      map:
        items: "{{ inputs.bundles }}"
        step:
          id: ingest-one
          run:
            uses: builtin:noop
            with:
              message: "ingest {{ item }}"
`;

// google.protobuf.Struct in its wire shape, as a stock client sends it.
const inputs = {
  fields: {
    bundles: {
      listValue: { values: [{ stringValue: "feeds-2024.tar" }, { stringValue: "db.tar" }] },
    },
  },
};

interface PlanPackResponse {
  planHash: string;
  planJson: string;
  manifest: string;
  summary: { packName: string; packVersion: string; stepCount: number };
}

test("grpc.health.v1 Check reports the planner as serving", async () => {
  const overall = await call<{ status: string }>(health, health.check, { service: "" });
  assert.equal(overall.status, "SERVING");
  const service = await call<{ status: string }>(health, health.check, {
    service: "packrun.planner.v1.PlannerService",
  });
  assert.equal(service.status, "SERVING");
});

test("a stock client can plan inline and by ref, and list packs", async () => {
  const inline = await call<PlanPackResponse>(planner, planner.planPack, {
    pack: { manifest },
    inputs,
  });
  assert.match(inline.planHash, /^sha256:[0-9a-f]{64}$/);
  assert.equal(inline.summary.packName, "bundle-ingest");
  assert.equal(inline.summary.stepCount, 3);

  const registered = await call<{ created: boolean; version: { version: string } }>(
    planner,
    planner.registerPack,
    { tenant: "acme", manifest, publishedBy: "grpc-js" },
  );
  assert.equal(registered.created, true);

  const byRef = await call<PlanPackResponse>(planner, planner.planPack, {
    tenant: "acme",
    pack: { ref: { name: "bundle-ingest", version: "1.2.0" } },
    inputs,
  });
  assert.equal(byRef.planHash, inline.planHash);
  assert.equal(byRef.manifest, manifest);

  const listed = await call<{
    packs: { name: string; versionCount: number; latest: { version: string; digest: string } }[];
    nextPageToken: string;
  }>(planner, planner.listPacks, { tenant: "acme" });
  assert.deepEqual(
    listed.packs.map((pack) => [pack.name, pack.latest.version, pack.versionCount]),
    [["bundle-ingest", "1.2.0", 1]],
  );
  assert.equal(listed.nextPageToken, "");
});

test("a stock client sees INVALID_ARGUMENT and the stable error code for a bad manifest", async () => {
  await assert.rejects(
    call(planner, planner.planPack, {
      pack: { manifest: manifest.replace("builtin:noop", "builtin:nope") },
      inputs,
    }),
    (error: unknown) => {
      const serviceError = error as grpc.ServiceError;
      assert.equal(serviceError.code, grpc.status.INVALID_ARGUMENT);
      assert.deepEqual(serviceError.metadata.get("packrun-error-code"), ["PACK_SCHEMA"]);
      // grpc-message is percent-encoded only as the gRPC spec asks, so grpc-js shows the text
      // as written: no "%3A" for ":", no "%2C" for ",".
      assert.match(serviceError.details, /spec\.steps\[0\]\.map\.step\.run\.uses \(line 19:/);
      assert.doesNotMatch(serviceError.details, /%[0-9A-F]{2}/);
      return true;
    },
  );
});
