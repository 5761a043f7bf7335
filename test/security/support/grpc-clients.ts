/**
 * A stock gRPC client (@grpc/grpc-js with @grpc/proto-loader reading the .proto sources, no
 * generated code) of a security stack's executor, with or without a service's certificate.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { stockLoaderOptions } from "@packrun/testing";
import type { SecurityStack } from "./stack.ts";

type Callback = (error: grpc.ServiceError | null, response: unknown) => void;
type Unary = (request: object, metadata: grpc.Metadata, callback: Callback) => void;

/** A grpc-js client whose methods are looked up by name. */
export type AnyClient = grpc.Client & Record<string, unknown>;

const executorPackage = grpc.loadPackageDefinition(
  protoLoader.loadSync("packrun/executor/v1/executor.proto", stockLoaderOptions),
) as unknown as {
  packrun: { executor: { v1: { ExecutorService: grpc.ServiceClientConstructor } } };
};

/**
 * A client of the stack's executor: mutual TLS as one of packrun's services (`identity`, with
 * its certificate from the stack's CA), or server-authenticated TLS only.
 */
export function executorClient(stack: SecurityStack, identity?: string): AnyClient {
  const file = (name: string) => readFileSync(join(stack.home, "tls", name));
  const credentials =
    identity === undefined
      ? grpc.credentials.createSsl(file("ca.pem"))
      : grpc.credentials.createSsl(
          file("ca.pem"),
          file(`${identity}-key.pem`),
          file(`${identity}.pem`),
        );
  // grpc-js would send the IP address as TLS server name, which Node refuses.
  return new executorPackage.packrun.executor.v1.ExecutorService(
    new URL(stack.executorUrl).host,
    credentials,
    { "grpc.ssl_target_name_override": "localhost" },
  ) as unknown as AnyClient;
}

/** A unary call: its response, or the status it failed with. */
export function unaryCall(
  target: AnyClient,
  method: string,
  request: object,
  metadata = new grpc.Metadata(),
): Promise<{ response?: Record<string, unknown>; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    (target[method] as Unary).call(target, request, metadata, (error, response) =>
      resolve(error === null ? { response: response as Record<string, unknown> } : { error }),
    );
  });
}
