import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createPgliteDatabase, type PgliteDatabase } from "@packrun/db";
import {
  type EventNotifier,
  eventsChannel,
  loadKeyRing,
  startEvidenceServer,
} from "@packrun/evidence";
import {
  createMemorySecretVault,
  createMemoryWorkQueue,
  executeStep,
  startExecutor,
} from "@packrun/executor";
import type { Logger } from "@packrun/logging";
import { startPlannerServer } from "@packrun/planner";

/** Options for {@link startEmbedded}. */
export interface EmbeddedOptions {
  /** Where data persists across restarts (databases, keys, artifacts, work directories). */
  home: string;
  logger: Logger;
  /** Ports of planner, executor and evidence; 0 lets the OS pick. */
  ports?: { planner?: number; executor?: number; evidence?: number };
}

/** The running embedded services. */
export interface Embedded {
  readonly plannerUrl: string;
  readonly executorUrl: string;
  readonly evidenceUrl: string;
  /** Graceful stop of every service, then the databases. */
  close(): Promise<void>;
}

/** Live notifications of the evidence service through the embedded database's LISTEN. */
async function pgliteNotifier(database: PgliteDatabase): Promise<EventNotifier> {
  const listeners = new Map<string, Set<(lastSequence?: number) => void>>();
  // Payload format of the evidence service's NOTIFY: "<runId> <lastSequence>".
  const unlisten = await database.listen(eventsChannel, (payload) => {
    const [runId = "", sequence] = payload.split(" ");
    for (const listener of listeners.get(runId) ?? [])
      listener(sequence === undefined ? undefined : Number(sequence));
  });
  return {
    watch(runId, listener) {
      const set = listeners.get(runId) ?? new Set();
      set.add(listener);
      listeners.set(runId, set);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(runId);
      };
    },
    close: unlisten,
  };
}

/**
 * Starts planner, evidence and executor in this process, each on its own embedded Postgres
 * (PGlite) and talking gRPC over loopback exactly as in production; the executor uses the
 * in-process queue and secret vault. Same code paths, different adapters.
 */
export async function startEmbedded(options: EmbeddedOptions): Promise<Embedded> {
  const { home, logger } = options;
  await mkdir(home, { recursive: true });
  const [plannerDb, executorDb, evidenceDb] = await Promise.all([
    createPgliteDatabase({ dataDir: join(home, "data", "planner"), schema: "planner" }),
    createPgliteDatabase({ dataDir: join(home, "data", "executor"), schema: "executor" }),
    createPgliteDatabase({ dataDir: join(home, "data", "evidence"), schema: "evidence" }),
  ]);
  const planner = await startPlannerServer({
    database: plannerDb,
    logger: logger.child({ service: "planner" }),
    port: options.ports?.planner ?? 0,
  });
  const keys = await loadKeyRing(
    { devKeyPath: join(home, "keys", "dev-signing-key.pem") },
    logger.child({ service: "evidence" }),
  );
  const evidence = await startEvidenceServer({
    database: evidenceDb,
    notifier: await pgliteNotifier(evidenceDb),
    logger: logger.child({ service: "evidence" }),
    artifactRoot: join(home, "artifacts"),
    signingKey: keys.signing,
    verificationKeys: keys.verification,
    port: options.ports?.evidence ?? 0,
  });
  const executor = await startExecutor({
    database: executorDb,
    queue: createMemoryWorkQueue(),
    vault: createMemorySecretVault(),
    logger: logger.child({ service: "executor" }),
    plannerUrl: planner.url,
    evidenceUrl: evidence.url,
    executorId: "executor@embedded",
    runStep: executeStep,
    workRoot: join(home, "work"),
    port: options.ports?.executor ?? 0,
    worker: { concurrency: 4 },
  });
  return {
    plannerUrl: planner.url,
    executorUrl: executor.url,
    evidenceUrl: evidence.url,
    async close() {
      await executor.close(10_000);
      await evidence.close();
      await planner.close();
      await Promise.all([plannerDb.close(), executorDb.close(), evidenceDb.close()]);
    },
  };
}
