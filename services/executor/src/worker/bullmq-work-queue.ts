import { DelayedError, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { QueueDepth, WorkHandler, WorkItem, WorkQueue } from "./work-queue.ts";
import { workItemId } from "./work-queue.ts";

/** Options for {@link createBullmqWorkQueue}. */
export interface BullmqWorkQueueOptions {
  redisUrl: string;
  /** Queue name; tests use a unique one. */
  name?: string;
  /** Redis key prefix (BullMQ's own namespacing). */
  prefix?: string;
}

// BullMQ priorities run 1 (first) .. 2^21; packrun priorities are "higher first" around 0.
const priorityOffset = 1_000_000;
function bullPriority(priority: number): number {
  return Math.min(2 ** 21 - 1, Math.max(1, priorityOffset - priority));
}

/**
 * The work queue on Redis through BullMQ: priorities, delayed items and the blocking
 * pickup are BullMQ's; packrun adds only the dead-letter list and tenant-limit deferral
 * (a handler's "later" moves the job back to delayed instead of failing it).
 */
export function createBullmqWorkQueue(options: BullmqWorkQueueOptions): WorkQueue {
  const name = options.name ?? "packrun-steps";
  const prefix = options.prefix ?? "packrun";
  // Workers block on Redis, so their connection must not give up on a request.
  const connection = () => {
    const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    // ioredis reconnects by itself; what fails meanwhile surfaces as failed or late calls, which
    // callers log (and the reconciler repairs), so the connection's own error events are noise.
    redis.on("error", () => {});
    return redis;
  };
  const queueConnection = connection();
  const queue = new Queue<WorkItem>(name, { connection: queueConnection, prefix });
  const deadLetterKey = `${prefix}:${name}:dead-letter`;
  let worker: Worker<WorkItem> | undefined;
  let workerConnection: Redis | undefined;
  // BullMQ does not close connections it was given: stop the worker, then its connection.
  const stopWorker = async () => {
    await worker?.close();
    worker = undefined;
    await workerConnection?.quit().catch(() => workerConnection?.disconnect());
    workerConnection = undefined;
  };
  return {
    async enqueue(items) {
      if (items.length === 0) return;
      await queue.addBulk(
        items.map((item) => ({
          name: "step",
          data: {
            runId: item.runId,
            stepId: item.stepId,
            tenant: item.tenant,
            priority: item.priority,
            attempt: item.attempt,
          },
          opts: {
            jobId: workItemId(item),
            priority: bullPriority(item.priority),
            delay: Math.max(0, Math.round(item.delayMs)),
            removeOnComplete: true,
            // A failed job (its handler threw, e.g. the database was unreachable) must not stay:
            // its id would make the reconciler's re-queue of the same attempt a no-op.
            removeOnFail: true,
          },
        })),
      );
    },
    consume(handler: WorkHandler, concurrency: number) {
      workerConnection = connection();
      worker = new Worker<WorkItem>(
        name,
        async (job, token) => {
          const outcome = await handler(job.data);
          if (outcome.kind === "later") {
            await job.moveToDelayed(Date.now() + Math.max(10, outcome.delayMs), token);
            throw new DelayedError();
          }
        },
        {
          connection: workerConnection,
          prefix,
          concurrency,
          autorun: true,
          stalledInterval: 30_000,
        },
      );
      // Errors are reported per job by the handler's own logging; keep the worker alive.
      worker.on("error", () => {});
    },
    stopConsuming: stopWorker,
    async deadLetter(item, reason) {
      await queueConnection.rpush(
        deadLetterKey,
        JSON.stringify({ ...item, reason, at: new Date().toISOString() }),
      );
    },
    async removeDeadLetters(items) {
      const gone = new Set(items.map(workItemId));
      for (const entry of await queueConnection.lrange(deadLetterKey, 0, -1)) {
        let parsed: WorkItem | undefined;
        try {
          parsed = JSON.parse(entry) as WorkItem;
        } catch {
          continue;
        }
        if (gone.has(workItemId(parsed))) await queueConnection.lrem(deadLetterKey, 0, entry);
      }
    },
    async depth(): Promise<QueueDepth> {
      const counts = await queue.getJobCounts("waiting", "prioritized", "delayed", "active");
      return {
        waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
        delayed: counts.delayed ?? 0,
        active: counts.active ?? 0,
        deadLetter: await queueConnection.llen(deadLetterKey),
      };
    },
    async close() {
      await stopWorker();
      await queue.close();
      await queueConnection.quit().catch(() => {});
    },
  };
}
