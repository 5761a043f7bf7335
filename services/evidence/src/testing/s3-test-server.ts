/**
 * A real S3-protocol server for tests (s3rver on loopback, files in a temporary directory) and a
 * small HTTP proxy in front of it that can answer 500 to chosen requests or go down, the way a
 * flaky object store would.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";
import type { S3ArtifactStoreOptions } from "../s3-artifact-store.ts";

/** A request the proxy saw. */
export interface SeenRequest {
  method: string;
  /** Path and query, e.g. `/bucket/tmp/x.part?partNumber=2&uploadId=...` */
  url: string;
}

/** A running S3 test server with its fault-injecting proxy. */
export interface TestS3 {
  readonly bucket: string;
  /** The proxy's URL: what the store under test talks to. */
  readonly endpoint: string;
  /** The real server's URL, for checks and tampering behind the store's back. */
  readonly directEndpoint: string;
  /** An S3 client talking to the real server directly. */
  readonly client: S3Client;
  /** Every request the proxy received, in order. */
  readonly requests: SeenRequest[];
  /** Store options that talk to the proxy. */
  storeOptions(overrides?: Partial<S3ArtifactStoreOptions>): S3ArtifactStoreOptions;
  /** From now on the proxy answers 500 to the requests `predicate` picks (undefined: none). */
  failWhen(predicate: ((request: SeenRequest) => boolean) | undefined): void;
  /** Stops (true) or restarts (false) the proxy's listener on the same port: a server that is down. */
  setDown(down: boolean): Promise<void>;
  close(): Promise<void>;
}

const credentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

async function drain(request: IncomingMessage): Promise<void> {
  for await (const _ of request) {
    // Read the body so the client sees the answer rather than a reset.
  }
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts s3rver with `bucket` and the proxy, both on loopback ports the OS picks. */
export async function startTestS3(bucket = "packrun-artifacts"): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), "packrun-s3-"));
  const s3 = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const address = await s3.run();
  const target = { host: "127.0.0.1", port: address.port };
  const requests: SeenRequest[] = [];
  let failing: ((request: SeenRequest) => boolean) | undefined;

  const proxy = createServer(async (request, response) => {
    const seen = { method: request.method ?? "GET", url: request.url ?? "/" };
    requests.push(seen);
    if (failing?.(seen) === true) {
      await drain(request);
      response.writeHead(500, { "content-type": "application/xml" });
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>',
      );
      return;
    }
    // The Host header is passed on untouched: it is part of what SigV4 signed.
    const upstream = httpRequest(
      { ...target, method: seen.method, path: seen.url, headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on("error", () => response.destroy());
    request.pipe(upstream);
  });
  const proxyPort = await listen(proxy, 0);
  const directEndpoint = `http://127.0.0.1:${address.port}`;
  const client = new S3Client({
    endpoint: directEndpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials,
  });

  return {
    bucket,
    endpoint: `http://127.0.0.1:${proxyPort}`,
    directEndpoint,
    client,
    requests,
    storeOptions(overrides = {}) {
      return {
        bucket,
        endpoint: `http://127.0.0.1:${proxyPort}`,
        region: "us-east-1",
        forcePathStyle: true,
        credentials,
        partSizeBytes: 5 * 1024 * 1024,
        ...overrides,
      };
    },
    failWhen(predicate) {
      failing = predicate;
    },
    async setDown(down) {
      if (down) {
        await new Promise<void>((resolve) => {
          proxy.close(() => resolve());
          proxy.closeAllConnections();
        });
      } else {
        await listen(proxy, proxyPort);
      }
    },
    async close() {
      client.destroy();
      if (proxy.listening) {
        await new Promise<void>((resolve) => {
          proxy.close(() => resolve());
          proxy.closeAllConnections();
        });
      }
      await s3.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
