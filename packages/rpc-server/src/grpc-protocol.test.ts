/**
 * The gRPC wire details third-party clients depend on: status messages encoded per the gRPC
 * HTTP/2 spec (read by a stock @grpc/grpc-js client), calls past their deadline ending
 * DEADLINE_EXCEEDED (seen by grpc-js and on the raw HTTP/2 trailers), and server reflection
 * (used by `buf curl` to list and call methods without the .proto files).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { Health } from "@packrun/proto/health/v1";
import { PlannerService } from "@packrun/proto/planner/v1";
import { afterAll, beforeAll, describe, test } from "vitest";
import { encodeGrpcMessage } from "./grpc-message.ts";
import { type RpcServer, startRpcServer } from "./rpc-server.ts";

const run = promisify(execFile);
const logger = createLogger({ service: "test", level: "silent" });
const message = "pack nope@1.0.0: inputs.n: expected an integer, got 'x' (100%), naïve ✓";
let server: RpcServer;

beforeAll(async () => {
  server = await startRpcServer({
    logger,
    serviceNames: [PlannerService.typeName],
    routes: (router) =>
      router.service(PlannerService, {
        getPackVersion() {
          throw new PackrunError("PACK_NOT_FOUND", message);
        },
        listPacks() {
          throw new ConnectError(message, Code.FailedPrecondition);
        },
        // Ignores its abort signal and answers late: the deadline must still win.
        async listPackVersions() {
          await sleep(1_500);
          return { versions: [] };
        },
      }),
  });
});
afterAll(() => server.close());

const protoDir = fileURLToPath(new URL("../../../proto", import.meta.url));
function grpcClient(file: string, path: string[]): grpc.Client & Record<string, unknown> {
  let node: unknown = grpc.loadPackageDefinition(
    protoLoader.loadSync(file, { includeDirs: [protoDir], enums: String, defaults: true }),
  );
  for (const key of path) node = (node as Record<string, unknown>)[key];
  const Client = node as grpc.ServiceClientConstructor;
  return new Client(
    new URL(server.url).host,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & Record<string, unknown>;
}

function unaryError(
  client: grpc.Client & Record<string, unknown>,
  method: string,
  request: object,
  options: grpc.CallOptions = {},
): Promise<grpc.ServiceError | undefined> {
  return new Promise((resolve) => {
    (client[method] as (...args: unknown[]) => void).call(
      client,
      request,
      new grpc.Metadata(),
      options,
      (error: grpc.ServiceError | null) => resolve(error ?? undefined),
    );
  });
}

/** One raw gRPC call over HTTP/2: the response headers merged with the trailers. */
function rawCall(path: string, headers: http2.OutgoingHttpHeaders, body = Buffer.alloc(5)) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const session = http2.connect(server.url);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let seen: Record<string, unknown> = {};
    stream.on("response", (head) => {
      seen = { ...seen, ...head };
    });
    stream.on("trailers", (trailers) => {
      seen = { ...seen, ...trailers };
    });
    stream.on("data", () => undefined);
    stream.on("close", () => {
      session.close();
      resolve(seen);
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

describe("grpc-message", () => {
  test("encodes only bytes outside 0x20-0x7E and '%'", () => {
    assert.equal(encodeGrpcMessage("a b:c,d@e%f"), "a b:c,d@e%25f");
    assert.equal(encodeGrpcMessage("naïve\n"), "na%C3%AFve%0A");
  });

  test("a stock grpc-js client reads the exact message of a PackrunError and a ConnectError", async () => {
    const planner = grpcClient("packrun/planner/v1/planner.proto", [
      "packrun",
      "planner",
      "v1",
      "PlannerService",
    ]);
    try {
      const notFound = await unaryError(planner, "getPackVersion", { name: "nope" });
      assert.equal(notFound?.code, grpc.status.NOT_FOUND);
      assert.equal(notFound?.details, message);
      const failed = await unaryError(planner, "listPacks", {});
      assert.equal(failed?.code, grpc.status.FAILED_PRECONDITION);
      assert.equal(failed?.details, message);
    } finally {
      planner.close();
    }
  });

  test("on the wire, ':', ',', '@' and spaces stay literal", async () => {
    const seen = await rawCall("/packrun.planner.v1.PlannerService/ListPacks", {});
    assert.equal(seen["grpc-message"], encodeGrpcMessage(message));
    assert.match(String(seen["grpc-message"]), /^pack nope@1\.0\.0: inputs\.n: /);
  });
});

describe("deadlines", () => {
  test("a unary call whose grpc-timeout already passed ends DEADLINE_EXCEEDED, not OK", async () => {
    const seen = await rawCall("/packrun.planner.v1.PlannerService/ListPackVersions", {
      "grpc-timeout": "0n",
    });
    assert.equal(seen["grpc-status"], String(Code.DeadlineExceeded));
  });

  test("a unary handler that ignores its deadline still ends DEADLINE_EXCEEDED on time", async () => {
    const started = Date.now();
    const seen = await rawCall("/packrun.planner.v1.PlannerService/ListPackVersions", {
      "grpc-timeout": "100m",
    });
    assert.equal(seen["grpc-status"], String(Code.DeadlineExceeded));
    assert.ok(Date.now() - started < 1_000, "answered before the handler finished");
  });

  test("a server stream cut at its grpc-timeout ends DEADLINE_EXCEEDED, not OK", async () => {
    const seen = await rawCall(`/${Health.typeName}/Watch`, { "grpc-timeout": "150m" });
    assert.equal(seen["grpc-status"], String(Code.DeadlineExceeded));
  });

  test("grpc-js: a deadline on a server stream and on a unary call surfaces as DEADLINE_EXCEEDED", async () => {
    const health = grpcClient("grpc/health/v1/health.proto", ["grpc", "health", "v1", "Health"]);
    const planner = grpcClient("packrun/planner/v1/planner.proto", [
      "packrun",
      "planner",
      "v1",
      "PlannerService",
    ]);
    try {
      const watch = (
        health.watch as (r: object, o: grpc.CallOptions) => grpc.ClientReadableStream<unknown>
      ).call(health, { service: "" }, { deadline: Date.now() + 150 });
      const outcome = await new Promise<string>((resolve) => {
        watch.on("data", () => undefined);
        watch.on("end", () => resolve("end"));
        watch.on("error", (error: grpc.ServiceError) => resolve(`error ${error.code}`));
      });
      assert.equal(outcome, `error ${grpc.status.DEADLINE_EXCEEDED}`);
      const expired = await unaryError(
        planner,
        "listPackVersions",
        {},
        { deadline: Date.now() - 1 },
      );
      assert.equal(expired?.code, grpc.status.DEADLINE_EXCEEDED);
      const late = await unaryError(
        planner,
        "listPackVersions",
        {},
        { deadline: Date.now() + 100 },
      );
      assert.equal(late?.code, grpc.status.DEADLINE_EXCEEDED);
    } finally {
      health.close();
      planner.close();
    }
  });
});

describe("server reflection", () => {
  const buf = (...args: string[]) =>
    run("buf", ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], {
      timeout: 30_000,
    });

  test("buf curl lists services and methods through grpc.reflection.v1 and v1alpha", async () => {
    for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
      const services = await buf("--reflect-protocol", protocol, "--list-services", server.url);
      assert.deepEqual(services.stdout.trim().split("\n").sort(), [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        PlannerService.typeName,
      ]);
      const methods = await buf("--reflect-protocol", protocol, "--list-methods", server.url);
      const lines = methods.stdout.trim().split("\n");
      for (const method of PlannerService.methods)
        assert.ok(lines.includes(`${PlannerService.typeName}/${method.name}`), method.name);
      assert.ok(lines.includes("grpc.health.v1.Health/Watch"));
    }
  });

  test("buf curl calls a method with only the schema reflection gives it", async () => {
    const { stdout } = await buf(
      "-d",
      '{"service":""}',
      `${server.url}/grpc.health.v1.Health/Check`,
    );
    assert.deepEqual(JSON.parse(stdout), { status: "SERVING" });
  });
});
