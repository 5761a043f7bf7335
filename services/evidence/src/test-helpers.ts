/**
 * Helpers for the evidence service's tests: a server on a real test database, a client, and
 * builders for events.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { generateSigningKeyPem, loadSigningKey, type SigningKey } from "@packrun/attestation";
import { createPostgresDatabase, type Database } from "@packrun/db";
import { createLogger } from "@packrun/logging";
import {
  type Event,
  EventLevel,
  EventSchema,
  EvidenceService,
  type IngestEventsRequest,
  type IngestEventsResponse,
} from "@packrun/proto/evidence/v1";
import { createTestDatabase, type TestDatabase } from "@packrun/testing";
import { afterAll, beforeAll } from "vitest";
import {
  type EvidenceServer,
  type EvidenceServerOptions,
  startEvidenceServer,
} from "./evidence-server.ts";

/** An async iterable fed by hand: the request side of a client or bidi stream. */
export class Pushable<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}

/** A silent logger (set PACKRUN_TEST_LOG=debug to see the service's lines). */
export const testLogger = createLogger({
  service: "evidence-test",
  level: process.env.PACKRUN_TEST_LOG ?? "silent",
});

/** A running evidence server for a test, with its own database pool and client. */
export interface TestEvidence {
  server: EvidenceServer;
  database: Database;
  client: Client<typeof EvidenceService>;
  artifactRoot: string;
  signingKey: SigningKey;
  /** Closes the server and its database pool. */
  close(): Promise<void>;
}

/** Starts an evidence server on `url` (a test database), with a fresh artifact root by default. */
export async function startTestEvidence(
  url: string,
  options: Partial<Omit<EvidenceServerOptions, "database" | "logger">> = {},
): Promise<TestEvidence> {
  const database = createPostgresDatabase({ url, maxConnections: 20 });
  const artifactRoot =
    options.artifactRoot ?? (await mkdtemp(join(tmpdir(), "packrun-artifacts-")));
  const signingKey = options.signingKey ?? loadSigningKey(generateSigningKeyPem("ed25519"));
  const server = await startEvidenceServer({
    databaseUrl: url,
    ...options,
    database,
    logger: testLogger,
    artifactRoot,
    signingKey,
  });
  const client = createClient(EvidenceService, createGrpcTransport({ baseUrl: server.url }));
  return {
    server,
    database,
    client,
    artifactRoot,
    signingKey,
    async close() {
      await server.close();
      await database.close();
    },
  };
}

/** An event to ingest. */
export function testEvent(
  runId: string,
  key: string,
  fields: {
    type?: string;
    stepId?: string;
    message?: string;
    level?: EventLevel;
    tenant?: string;
    metadata?: JsonObject;
  } = {},
): Event {
  return create(EventSchema, {
    tenant: fields.tenant ?? "acme",
    runId,
    idempotencyKey: key,
    time: timestampFromDate(new Date()),
    level: fields.level ?? EventLevel.INFO,
    type: fields.type ?? "log.stdout",
    stepId: fields.stepId ?? "build",
    message: fields.message ?? `line ${key}`,
    metadata: fields.metadata ?? { key },
  });
}

/** Sends `events` on one IngestEvents stream and returns the acknowledgements. */
export async function ingestAll(
  client: Client<typeof EvidenceService>,
  events: readonly Event[],
): Promise<IngestEventsResponse[]> {
  const requests = new Pushable<IngestEventsRequest>();
  for (const event of events) requests.push({ event } as IngestEventsRequest);
  requests.end();
  const acks: IngestEventsResponse[] = [];
  for await (const ack of client.ingestEvents(requests)) acks.push(ack);
  return acks;
}

/** The database and server of {@link useEvidence}, readable once the `before` hook ran. */
export interface EvidenceFixture {
  readonly database: TestDatabase;
  readonly evidence: TestEvidence;
}

/**
 * Registers hooks in the calling suite: a fresh test database and an evidence server on it
 * before, the server closed and then the database dropped after.
 */
export function useEvidence(
  prefix: string,
  options: Partial<Omit<EvidenceServerOptions, "database" | "logger">> = {},
): EvidenceFixture {
  let database: TestDatabase | undefined;
  let evidence: TestEvidence | undefined;
  beforeAll(async () => {
    database = await createTestDatabase(prefix);
    evidence = await startTestEvidence(database.url, options);
  });
  afterAll(async () => {
    await evidence?.close();
    await database?.drop();
  });
  return {
    get database() {
      if (database === undefined) throw new Error("useEvidence(): available once `before` ran");
      return database;
    },
    get evidence() {
      if (evidence === undefined) throw new Error("useEvidence(): available once `before` ran");
      return evidence;
    },
  };
}

/** An event's fields apart from its run and tenant: what storing it in a batch or chunk keeps. */
export const storedFields = (event: Event) => ({
  sequence: event.sequence,
  key: event.idempotencyKey,
  time: event.time,
  level: event.level,
  type: event.type,
  stepId: event.stepId,
  message: event.message,
  metadata: event.metadata,
});
