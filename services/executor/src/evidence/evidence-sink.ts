import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { ChannelListener, Database, Queryable } from "@packrun/db";
import type { Logger } from "@packrun/logging";
import {
  EventLevel,
  EvidenceService,
  type IngestEventsRequest,
  IngestEventsRequestSchema,
} from "@packrun/proto/evidence/v1";
import { errorCodeHeader, type ServiceTls, serviceTransport } from "@packrun/rpc-server";
import { rpcClientTracing } from "@packrun/telemetry";
import { outboxChannel, ReadPacer } from "../store/change-hints.ts";
import { type EventBatchRow, eventBatchType, type RunEvent } from "../store/run-events.ts";
import { type LogChunkEvent, logChunkType } from "../worker/log-writer.ts";
import { buildRunRecord, runRecordStruct } from "./run-record.ts";

/** Options for {@link createEvidenceSink}. */
export interface EvidenceSinkOptions {
  database: Database;
  logger: Logger;
  evidenceUrl: string;
  /** The executor's TLS identity: the evidence service accepts events from it alone. */
  tls?: ServiceTls;
  /** Stable identity of this executor deployment, recorded in attestations. */
  executorId: string;
  batchSize?: number;
  /**
   * Wakes the shipper when events are written (channel {@link outboxChannel}). Without it, the
   * shipper polls every `intervalMs`.
   */
  changes?: ChannelListener;
  /**
   * A round starts at least this often even without a notification (lost notifications; runs
   * that settled without a new event). Default 1000 ms with `changes`, 200 ms without.
   */
  intervalMs?: number;
}

/**
 * Least time between the starts of two rounds when notifications keep coming: every commit of
 * a busy executor writes events, and a round per commit would trade the batching of events into
 * one IngestEvents stream (and every executor's try for the lock) for a few milliseconds of
 * latency. 100 ms: at most 10 rounds a second per process under load, where polling did 5; an
 * idle shipper still starts at once.
 */
export const shipMinGapMs = 100;

/** Forwards the outbox to the evidence service and finalises settled runs. */
export interface EvidenceSink {
  /** Ships one batch and finalises what can be; returns what it did (tests, shutdown). */
  runOnce(): Promise<{ shipped: number; dropped: number; finalized: number }>;
  start(): void;
  /** Stops the loop after one last round. */
  stop(): Promise<void>;
}

const levels: Record<string, EventLevel> = {
  trace: EventLevel.TRACE,
  debug: EventLevel.DEBUG,
  info: EventLevel.INFO,
  warn: EventLevel.WARN,
  error: EventLevel.ERROR,
};

/** What one shipping round did, and whether rows are left for another. */
type Shipped = { shipped: number; dropped: number; more: boolean };

type StoredEvent =
  | (RunEvent & { runId: string; tenant: string; time: string })
  | LogChunkEvent
  | EventBatchRow;

const isChunk = (event: StoredEvent): event is LogChunkEvent => event.type === logChunkType;
const isBatch = (event: StoredEvent): event is EventBatchRow => event.type === eventBatchType;

/** The fields an event and a log chunk's line share, in the proto's form. */
function lineMessage(event: RunEvent & { time: string }) {
  return {
    idempotencyKey: event.idempotencyKey,
    time: timestampFromDate(new Date(event.time)),
    level: levels[event.level] ?? EventLevel.INFO,
    type: event.type,
    message: event.message,
    metadata: (event.metadata ?? {}) as never,
  };
}

/** A run's event in the proto's form (its tenant and run id, when in a batch, are the batch's). */
function eventMessage(event: RunEvent & { time: string }, tenant = "", runId = "") {
  return { ...lineMessage(event), tenant, runId, stepId: event.stepId ?? "" };
}

/** An outbox row as one IngestEvents request: an event, a chunk of log lines, or a batch. */
function request(event: StoredEvent): IngestEventsRequest {
  if (isBatch(event)) {
    return create(IngestEventsRequestSchema, {
      batch: {
        tenant: event.tenant,
        runId: event.runId,
        idempotencyKey: event.idempotencyKey,
        events: event.events.map((each) => eventMessage(each)),
      },
    });
  }
  if (isChunk(event)) {
    return create(IngestEventsRequestSchema, {
      chunk: {
        tenant: event.tenant,
        runId: event.runId,
        stepId: event.stepId,
        idempotencyKey: event.idempotencyKey,
        lines: event.lines.map(lineMessage),
      },
    });
  }
  return create(IngestEventsRequestSchema, {
    event: eventMessage(event, event.tenant, event.runId),
  });
}

/**
 * The oldest outbox rows, at most $1 of them and about $2 bytes (stored size) together: with
 * chunks of 64 KiB a count alone would let one round hold tens of megabytes.
 */
const oldestRowsSql = `SELECT id, event, candidates FROM (
  SELECT id, event, sum(pg_column_size(event)) OVER (ORDER BY id) - pg_column_size(event) AS before,
         count(*) OVER () AS candidates
    FROM (SELECT id, event FROM outbox ORDER BY id LIMIT $1) AS oldest
) AS sized WHERE before < $2 ORDER BY id`;

/** About the most bytes of outbox rows one round ships (see {@link oldestRowsSql}). */
const roundBytes = 4 * 1024 * 1024;

// Refusals that resending cannot fix: the event is logged and dropped so it does not block the rest.
const permanentRefusals = new Set(["RUN_FINISHED", "REQUEST_INVALID"]);

/**
 * The transactional outbox's shipper: reads the oldest events, streams them to the evidence
 * service over IngestEvents, and deletes exactly the acknowledged ones, in one transaction
 * holding an advisory lock, so several executors ship one at a time and in order. Unacknowledged
 * events stay and are resent later; the evidence service deduplicates them by idempotency key.
 * Runs that settled and whose events are all shipped are then finalised (FinalizeRun).
 */
export function createEvidenceSink(options: EvidenceSinkOptions): EvidenceSink {
  const { database, logger } = options;
  const { transport, sessions } = serviceTransport(options.evidenceUrl, options.tls, {
    interceptors: [rpcClientTracing()],
  });
  const client = createClient(EvidenceService, transport);
  const batchSize = options.batchSize ?? 500;
  let pacer: ReadPacer | undefined;
  let running: Promise<unknown> = Promise.resolve();

  // On a shared single session (the embedded PGlite) a transaction held across IngestEvents would
  // keep the evidence service's own statements waiting behind it for ever: there the only
  // executor ships with plain statements, one round at a time in this process.
  let shipping: Promise<unknown> = Promise.resolve();
  const shipment = (work: (tx: Queryable) => Promise<Shipped>): Promise<Shipped> => {
    if (database.singleSession === true) {
      const round = shipping.then(() => work(database));
      shipping = round.catch(() => {});
      return round;
    }
    return database.transaction(async (tx) => {
      const locked = (
        await tx.query<{ locked: boolean }>(
          "SELECT pg_try_advisory_xact_lock(hashtext('packrun.executor.outbox')) AS locked",
        )
      ).rows[0];
      return locked?.locked === true ? work(tx) : { shipped: 0, dropped: 0, more: false };
    });
  };

  const ship = () =>
    shipment(async (tx) => {
      const rows = (
        await tx.query<{ id: number; event: StoredEvent; candidates: number }>(oldestRowsSql, [
          batchSize,
          roundBytes,
        ])
      ).rows;
      if (rows.length === 0) return { shipped: 0, dropped: 0, more: false };
      let acked = 0;
      let dropped: number | undefined;
      try {
        for await (const ack of client.ingestEvents(
          (async function* () {
            for (const row of rows) yield request(row.event);
          })(),
          { timeoutMs: 30_000 },
        )) {
          if (ack.idempotencyKey !== rows[acked]?.event.idempotencyKey)
            throw new Error(`evidence acknowledged ${ack.idempotencyKey} out of order`);
          acked++;
        }
      } catch (error) {
        const connectError = ConnectError.from(error);
        const code = connectError.metadata.get(errorCodeHeader) ?? "";
        const refused = rows[acked];
        if (
          refused !== undefined &&
          (permanentRefusals.has(code) || connectError.code === Code.InvalidArgument)
        ) {
          logger.error(
            {
              runId: refused.event.runId,
              event: refused.event.type,
              key: refused.event.idempotencyKey,
              code,
              err: connectError.rawMessage,
            },
            "evidence refused an event permanently; dropping it",
          );
          dropped = refused.id;
        } else {
          logger.warn(
            { err: connectError.rawMessage, acked, pending: rows.length },
            "shipping events to evidence failed; will resend",
          );
        }
      }
      const done = rows.slice(0, acked).map((row) => row.id);
      if (dropped !== undefined) done.push(dropped);
      if (done.length > 0) await tx.query("DELETE FROM outbox WHERE id = ANY($1)", [done]);
      // More rows wait when the round was full: by count, or cut by bytes.
      const candidates = Number(rows[0]?.candidates ?? 0);
      const more = candidates === batchSize || rows.length < candidates;
      return {
        shipped: acked,
        dropped: dropped === undefined ? 0 : 1,
        more: more && acked + (dropped === undefined ? 0 : 1) === rows.length,
      };
    });

  const finalize = async (): Promise<number> => {
    const runs = (
      await database.query<{ id: string }>(
        "SELECT id FROM runs r WHERE settled_at IS NOT NULL AND finalized_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.run_id = r.id) ORDER BY settled_at LIMIT 20",
      )
    ).rows;
    let finalized = 0;
    for (const { id } of runs) {
      try {
        const { tenant, record, planJson, packSource } = await buildRunRecord(
          database,
          id,
          options.executorId,
        );
        const response = await client.finalizeRun({
          tenant,
          runId: id,
          runRecord: runRecordStruct(record),
          planJson,
          packSource,
        });
        await database.query(
          "UPDATE runs SET finalized_at = now() WHERE id = $1 AND finalized_at IS NULL",
          [id],
        );
        finalized++;
        logger.info(
          { runId: id, keyId: response.attestation?.keyId, created: response.created },
          "run finalised: attestation signed",
        );
      } catch (error) {
        logger.warn(
          { runId: id, err: ConnectError.from(error).rawMessage },
          "finalising the run failed; will retry",
        );
      }
    }
    return finalized;
  };

  /** Ships until the outbox has no full round left (or a round fails to ship everything). */
  const shipAll = async () => {
    let shipped = 0;
    let dropped = 0;
    for (;;) {
      const batch = await ship();
      shipped += batch.shipped;
      dropped += batch.dropped;
      if (!batch.more) break;
    }
    return { shipped, dropped };
  };

  const runOnce = async () => ({ ...(await shipAll()), finalized: await finalize() });

  // Finalising reads and hashes a run's whole transcript on the evidence service: it runs beside
  // shipping, not in its loop, so that other runs' lines do not wait for it (one at a time).
  let finalizing: Promise<unknown> | undefined;
  const finalizeBeside = () => {
    finalizing ??= finalize()
      .catch((error) => logger.warn({ err: error }, "finalising runs failed"))
      .finally(() => {
        finalizing = undefined;
      });
  };

  return {
    runOnce,
    start() {
      const { changes } = options;
      const rounds = new ReadPacer({
        fallbackMs: options.intervalMs ?? (changes === undefined ? 200 : 1000),
        minGapMs: changes === undefined ? 0 : shipMinGapMs,
      });
      pacer = rounds;
      const unwatch = changes?.watchAll(outboxChannel, () => rounds.hint());
      running = (async () => {
        while (await rounds.next()) {
          await shipAll().catch((error) =>
            logger.warn({ err: error }, "evidence sink round failed"),
          );
          finalizeBeside();
        }
      })().finally(() => unwatch?.());
    },
    async stop() {
      pacer?.close();
      pacer = undefined;
      await running;
      await finalizing;
      // One last round so what a draining worker recorded still reaches the evidence service.
      await runOnce().catch((error) => logger.warn({ err: error }, "final evidence round failed"));
      sessions.abort();
    },
  };
}
