import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { Health, HealthCheckResponse_ServingStatus } from "@packrun/proto/health/v1";
import { DiagnosticsSchema } from "@packrun/proto/pack/v1";
import { PlannerService } from "@packrun/proto/planner/v1";
import { afterAll, beforeAll, test } from "vitest";
import { errorCodeHeader } from "./error-mapping.ts";
import { type RpcServer, startRpcServer } from "./rpc-server.ts";

const logger = createLogger({ service: "test", level: "silent" });
let server: RpcServer;

beforeAll(async () => {
  server = await startRpcServer({
    logger,
    serviceNames: [PlannerService.typeName],
    routes: (router) =>
      router.service(PlannerService, {
        validateManifest() {
          throw new PackrunError("PACK_SCHEMA", "spec.steps[0].id (line 4:9): bad id", {
            details: {
              diagnostics: [
                {
                  code: "PACK_SCHEMA",
                  path: "spec.steps[0].id",
                  line: 4,
                  column: 9,
                  message: "bad id",
                },
              ],
            },
          });
        },
        listPacks() {
          throw new Error("connection string postgres://user:pw@db leaked?");
        },
      }),
  });
});
afterAll(() => server.close());

const transport = () => createGrpcTransport({ baseUrl: server.url });

test("grpc.health.v1 Check answers for the server and each registered service", async () => {
  const health = createClient(Health, transport());
  assert.equal((await health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
  const planner = await health.check({ service: PlannerService.typeName });
  assert.equal(planner.status, HealthCheckResponse_ServingStatus.SERVING);
  await assert.rejects(health.check({ service: "no.such.Service" }), (error: unknown) => {
    assert.equal(ConnectError.from(error).code, Code.NotFound);
    return true;
  });
});

test("grpc.health.v1 Watch streams status changes", async () => {
  const health = createClient(Health, transport());
  const abort = new AbortController();
  const seen: HealthCheckResponse_ServingStatus[] = [];
  const stream = health.watch({ service: PlannerService.typeName }, { signal: abort.signal });
  for await (const response of stream) {
    seen.push(response.status);
    if (seen.length === 1)
      server.health.set(HealthCheckResponse_ServingStatus.NOT_SERVING, PlannerService.typeName);
    if (seen.length === 2) break;
  }
  abort.abort();
  assert.deepEqual(seen, [
    HealthCheckResponse_ServingStatus.SERVING,
    HealthCheckResponse_ServingStatus.NOT_SERVING,
  ]);
  server.health.set(HealthCheckResponse_ServingStatus.SERVING, PlannerService.typeName);
});

test("a PackrunError crosses the boundary with its Connect code, stable code and diagnostics", async () => {
  const planner = createClient(PlannerService, transport());
  await assert.rejects(planner.validateManifest({ manifest: "x" }), (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, Code.InvalidArgument);
    assert.equal(connectError.rawMessage, "spec.steps[0].id (line 4:9): bad id");
    assert.equal(connectError.metadata.get(errorCodeHeader), "PACK_SCHEMA");
    const [details] = connectError.findDetails(DiagnosticsSchema);
    assert.equal(details?.diagnostics[0]?.path, "spec.steps[0].id");
    assert.equal(details?.diagnostics[0]?.line, 4);
    return true;
  });
});

test("an unexpected error becomes INTERNAL without leaking its message", async () => {
  const planner = createClient(PlannerService, transport());
  await assert.rejects(planner.listPacks({}), (error: unknown) => {
    const connectError = ConnectError.from(error);
    assert.equal(connectError.code, Code.Internal);
    assert.equal(connectError.rawMessage, "internal error");
    assert.ok(!connectError.message.includes("postgres://"));
    return true;
  });
});

test("a stock @grpc/grpc-js client can call the health service", async () => {
  const protoPath = fileURLToPath(
    new URL("../../../proto/grpc/health/v1/health.proto", import.meta.url),
  );
  const definition = protoLoader.loadSync(protoPath, { keepCase: false, enums: String });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const client = new loaded.grpc.health.v1.Health(
    server.url.replace("http://", ""),
    grpc.credentials.createInsecure(),
  );
  type Callback = (error: grpc.ServiceError | null, value: { status: string }) => void;
  const check = client.check as (request: object, callback: Callback) => void;
  const response = await new Promise<{ status: string }>((resolve, reject) =>
    check.call(client, { service: "" }, (error, value) => (error ? reject(error) : resolve(value))),
  );
  client.close();
  assert.equal(response.status, "SERVING");
});
