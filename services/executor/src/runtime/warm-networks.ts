import { readlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { type LaunchedProcess, launch, runInBackground, spawnHelperEnabled } from "./launcher.ts";
import {
  attachStepNetwork,
  type EgressPolicy,
  type NetworkTools,
  type StepNetwork,
} from "./step-network.ts";

/** How long the namespace holder may take to start. */
const HOLDER_TIMEOUT_MS = 10_000;
/**
 * Most time a prepared namespace waits for its step: an allowlist's names were resolved when
 * its rules were loaded, so they must not grow stale; it is then replaced while steps of that
 * policy keep coming.
 */
const WARM_MAX_AGE_MS = 60_000;
/** A policy nobody used for this long gets no more replacements (its pool drains). */
const POLICY_IDLE_MS = 5 * 60_000;
/** Most distinct egress policies kept warm at once (oldest dropped first). */
const MAX_POLICIES = 8;

/**
 * A network namespace of its own, held open by a sleeping process, with slirp4netns attached and
 * the egress ruleset of one policy loaded: a step (or container) joins it instead of creating
 * one. Used by exactly one step, then closed: never reused (docs/security.md says why).
 */
export interface HeldNetwork extends StepNetwork {
  /** `/proc/<holder>/ns/net`, for `nsenter --net=` or `podman --network ns:`. */
  readonly namespacePath: string;
}

/**
 * Creates a held, configured network namespace for `policy` now: `unshare --net` holds a new,
 * empty namespace (slirp4netns brings up its loopback and tap0), then the egress rules are
 * loaded exactly as for a namespace made by bubblewrap (step-network.ts).
 * @throws Error saying which part failed (nothing is left running)
 */
export async function holdNetwork(tools: NetworkTools, policy: EgressPolicy): Promise<HeldNetwork> {
  // unshare(2), then exec sleep: one process, no shell.
  const holder = await launch(tools.unshare, ["--net", "--", tools.sleep ?? "sleep", "infinity"], {
    stdio: ["ignore", "ignore", "ignore"],
  });
  const stop = (): void => {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill("SIGKILL");
  };
  let network: StepNetwork | null = null;
  try {
    await holderReady(holder);
    network = await attachStepNetwork(holder.pid, tools, policy);
    const attached = network;
    runInBackground(holder);
    return {
      namespacePath: `/proc/${holder.pid}/ns/net`,
      close: () => {
        attached.close();
        stop();
      },
    };
  } catch (error) {
    network?.close();
    stop();
    throw error;
  }
}

/** The worker's own network namespace (it never changes): read once. */
let ownNetwork: Promise<string> | undefined;

/** Waits until the holder's network namespace is no longer ours: unshare(2) has happened. */
async function holderReady(holder: LaunchedProcess): Promise<void> {
  ownNetwork ??= readlink("/proc/self/ns/net");
  const ours = await ownNetwork;
  const deadline = Date.now() + HOLDER_TIMEOUT_MS;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    if (holder.exitCode !== null || holder.signalCode !== null)
      throw new Error("could not create the step's network namespace (its holder exited)");
    const theirs = await readlink(`/proc/${holder.pid}/ns/net`).catch(() => ours);
    if (theirs !== ours) return;
    if (Date.now() > deadline)
      throw new Error("could not create the step's network namespace (timeout)");
    await sleep(delay);
  }
}

interface Prepared {
  network: HeldNetwork;
  timer: NodeJS.Timeout;
}

interface Pool {
  ready: Prepared[];
  building: number;
  lastTaken: number;
}

const pools = new Map<string, Pool>();

/**
 * Namespaces kept ready per egress policy (PACKRUN_EXECUTOR_WARM_NETWORKS, default 8: as many
 * as a busy worker starts at once, so a burst of open steps finds one each; an idle prepared
 * namespace costs a sleeping holder and a slirp4netns, about 5 MB).
 */
export function warmNetworkTarget(): number {
  const configured = Number(process.env.PACKRUN_EXECUTOR_WARM_NETWORKS ?? "8");
  return Number.isInteger(configured) && configured >= 0 ? configured : 8;
}

/**
 * A configured namespace for one open step: a prepared one when the pool of its policy has one
 * (so the step's start costs no slirp4netns and no `nft`), else one made now. Either way the
 * pool is refilled in the background, off the step's critical path. Warm pools need the spawn
 * helper (their processes die with it) and may be turned off with
 * PACKRUN_EXECUTOR_WARM_NETWORKS=0.
 */
export async function takeNetwork(tools: NetworkTools, policy: EgressPolicy): Promise<HeldNetwork> {
  const target = spawnHelperEnabled() ? warmNetworkTarget() : 0;
  if (target === 0) return holdNetwork(tools, policy);
  const key = JSON.stringify([policy.allowlist, policy.deny]);
  const pool = poolFor(key);
  pool.lastTaken = Date.now();
  const prepared = pool.ready.shift();
  refill(key, pool, tools, policy, target);
  if (prepared) {
    clearTimeout(prepared.timer);
    return prepared.network;
  }
  return holdNetwork(tools, policy);
}

function poolFor(key: string): Pool {
  let pool = pools.get(key);
  if (pool) {
    // Most recently used last, so the first key is the one to drop.
    pools.delete(key);
    pools.set(key, pool);
    return pool;
  }
  pool = { ready: [], building: 0, lastTaken: Date.now() };
  pools.set(key, pool);
  if (pools.size > MAX_POLICIES) {
    const [oldestKey, oldest] = pools.entries().next().value as [string, Pool];
    pools.delete(oldestKey);
    for (const entry of oldest.ready.splice(0)) {
      clearTimeout(entry.timer);
      entry.network.close();
    }
  }
  return pool;
}

function refill(
  key: string,
  pool: Pool,
  tools: NetworkTools,
  policy: EgressPolicy,
  target: number,
): void {
  while (pool.ready.length + pool.building < target) {
    pool.building++;
    holdNetwork(tools, policy).then(
      (network) => {
        pool.building--;
        if (pools.get(key) !== pool) return network.close();
        const timer = setTimeout(() => expire(key, pool, tools, policy, target), WARM_MAX_AGE_MS);
        timer.unref();
        pool.ready.push({ network, timer });
      },
      () => {
        // A failed preparation costs nothing: the next step makes its namespace itself.
        pool.building--;
      },
    );
  }
}

function expire(
  key: string,
  pool: Pool,
  tools: NetworkTools,
  policy: EgressPolicy,
  target: number,
): void {
  const now = Date.now();
  for (const entry of pool.ready.splice(0)) {
    clearTimeout(entry.timer);
    entry.network.close();
  }
  if (now - pool.lastTaken < POLICY_IDLE_MS) refill(key, pool, tools, policy, target);
  else pools.delete(key);
}

/** Closes every prepared namespace (worker shutdown, tests). */
export function closeWarmNetworks(): void {
  for (const pool of pools.values()) {
    for (const entry of pool.ready.splice(0)) {
      clearTimeout(entry.timer);
      entry.network.close();
    }
  }
  pools.clear();
}
