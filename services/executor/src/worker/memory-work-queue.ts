import type { QueueDepth, WorkHandler, WorkItem, WorkQueue } from "./work-queue.ts";
import { workItemId } from "./work-queue.ts";

interface Entry {
  item: WorkItem;
  dueAt: number;
  seq: number;
}

/**
 * An in-process work queue with the same behaviour as the Redis one (priority order, delays,
 * dedup per step, dead letters), for the embedded default where there is no Redis. Its
 * contents live only as long as the process: the reconciler refills it from the database.
 */
export function createMemoryWorkQueue(): WorkQueue {
  const entries = new Map<string, Entry>();
  const deadLetters: { item: WorkItem; reason: string }[] = [];
  let seq = 0;
  let active = 0;
  let handler: WorkHandler | undefined;
  let concurrency = 1;
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();

  const next = (): Entry | undefined => {
    const now = Date.now();
    let best: Entry | undefined;
    for (const entry of entries.values()) {
      if (entry.dueAt > now) continue;
      if (
        best === undefined ||
        entry.item.priority > best.item.priority ||
        (entry.item.priority === best.item.priority && entry.seq < best.seq)
      )
        best = entry;
    }
    return best;
  };

  const pump = (): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (handler === undefined) return;
    while (active < concurrency) {
      const entry = next();
      if (entry === undefined) break;
      entries.delete(workItemId(entry.item));
      active++;
      const run = handler(entry.item)
        .then((outcome) => {
          if (outcome.kind === "later") add(entry.item, outcome.delayMs);
        })
        .catch(() => {})
        .finally(() => {
          active--;
          inFlight.delete(run);
          pump();
        });
      inFlight.add(run);
    }
    let soonest = Number.POSITIVE_INFINITY;
    for (const entry of entries.values()) soonest = Math.min(soonest, entry.dueAt);
    if (Number.isFinite(soonest) && active < concurrency) {
      timer = setTimeout(pump, Math.max(1, soonest - Date.now()));
      timer.unref();
    }
  };

  const add = (item: WorkItem, delayMs: number): void => {
    const id = workItemId(item);
    if (entries.has(id)) return;
    entries.set(id, { item, dueAt: Date.now() + Math.max(0, delayMs), seq: seq++ });
  };

  return {
    async enqueue(items) {
      for (const { delayMs, ...item } of items) add(item, delayMs);
      queueMicrotask(pump);
    },
    consume(newHandler, newConcurrency) {
      handler = newHandler;
      concurrency = newConcurrency;
      pump();
    },
    async stopConsuming() {
      handler = undefined;
      if (timer !== undefined) clearTimeout(timer);
      await Promise.all(inFlight);
    },
    async deadLetter(item, reason) {
      deadLetters.push({ item, reason });
    },
    async removeDeadLetters(items) {
      const gone = new Set(items.map(workItemId));
      for (let index = deadLetters.length - 1; index >= 0; index--)
        if (gone.has(workItemId((deadLetters[index] as { item: WorkItem }).item)))
          deadLetters.splice(index, 1);
    },
    async depth(): Promise<QueueDepth> {
      const now = Date.now();
      let waiting = 0;
      for (const entry of entries.values()) if (entry.dueAt <= now) waiting++;
      return { waiting, delayed: entries.size - waiting, active, deadLetter: deadLetters.length };
    },
    async close() {
      await this.stopConsuming();
      entries.clear();
    },
  };
}
