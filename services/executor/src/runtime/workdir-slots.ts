import { randomUUID } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { limitWorkdir, type ReleaseWorkdir } from "./workdir-limit.ts";

/** An attempt's workdir, ready to use; `release()` gives it back once the worker is done with it. */
export interface WorkdirSlot {
  readonly workdir: string;
  /** Returns at once: unmounting and removing happen in the background. */
  release(): void;
}

/** Settings of a worker's workdir slots. */
export interface WorkdirSlotOptions {
  /** The directory holding the slots (`<workRoot>/slots`). */
  root: string;
  /** Size of each workdir (a tmpfs on a root worker; see limitWorkdir); 0 = unlimited. */
  bytes: number;
  /** Names the mounts, so that a dead worker's are found (reapOrphans). */
  workerId: string;
  /** Workdirs kept mounted ahead (default {@link warmWorkdirTarget}). */
  warm?: number;
}

/** Workdirs kept mounted ahead per worker (PACKRUN_EXECUTOR_WARM_WORKDIRS, default 4; 0 = none). */
export function warmWorkdirTarget(): number {
  const configured = Number(process.env.PACKRUN_EXECUTOR_WARM_WORKDIRS ?? "4");
  return Number.isInteger(configured) && configured >= 0 ? configured : 4;
}

/**
 * Attempt workdirs prepared off the step's critical path: each is a new directory with its own
 * tmpfs already mounted (limitWorkdir), so a step starts without waiting for `mount`. A slot
 * serves one attempt only: after it, its tmpfs is unmounted (lazily, so that nothing a step left
 * open pins it) and its directory removed in the background, and a fresh one is mounted for a
 * later step. Nothing a step wrote (files, hard links, extended attributes, a full disk, used
 * inodes) can reach another step, because no tmpfs is ever mounted twice.
 */
export class WorkdirSlots {
  readonly #options: WorkdirSlotOptions;
  readonly #ready: { workdir: string; unmount: ReleaseWorkdir }[] = [];
  readonly #pending = new Set<Promise<unknown>>();
  #preparing = 0;
  #closed = false;

  constructor(options: WorkdirSlotOptions) {
    this.#options = options;
  }

  /**
   * A prepared workdir, or one prepared now when none is ready; then refills in the background.
   * @throws Error when a root worker cannot mount the workdir's tmpfs (the step must not run)
   */
  async take(): Promise<WorkdirSlot> {
    const ready = this.#ready.shift();
    this.#refill();
    const slot = ready ?? (await this.#prepare());
    let released = false;
    return {
      workdir: slot.workdir,
      release: () => {
        if (released) return;
        released = true;
        this.#track(discard(slot.workdir, slot.unmount));
      },
    };
  }

  /** Unmounts the prepared slots and waits for those being released (worker shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const slot of this.#ready.splice(0)) this.#track(discard(slot.workdir, slot.unmount));
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  async #prepare(): Promise<{ workdir: string; unmount: ReleaseWorkdir }> {
    const workdir = path.join(this.#options.root, randomUUID());
    await mkdir(workdir, { recursive: true });
    try {
      return {
        workdir,
        unmount: await limitWorkdir(workdir, this.#options.bytes, this.#options.workerId),
      };
    } catch (error) {
      await rm(workdir, { recursive: true, force: true });
      throw error;
    }
  }

  #refill(): void {
    const target = this.#options.warm ?? warmWorkdirTarget();
    while (!this.#closed && this.#ready.length + this.#preparing < target) {
      this.#preparing++;
      this.#track(
        this.#prepare().then(
          (slot) => {
            this.#preparing--;
            if (this.#closed) return discard(slot.workdir, slot.unmount);
            this.#ready.push(slot);
            return undefined;
          },
          () => {
            // The step that finds none ready mounts its own and reports the failure.
            this.#preparing--;
          },
        ),
      );
    }
  }

  #track(work: Promise<unknown>): void {
    const tracked = work.catch(() => {}).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }
}

async function discard(workdir: string, unmount: ReleaseWorkdir): Promise<void> {
  await unmount();
  await rm(workdir, { recursive: true, force: true });
}
