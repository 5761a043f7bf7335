import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import { deniedDestinations, egressRuleset, resolveAllowlist } from "./egress-rules.ts";
import { launch, runInBackground } from "./launcher.ts";

/** How long slirp4netns may take to configure the step's interface. */
const READY_TIMEOUT_MS = 10_000;
/** slirp4netns's `--ready-fd`: it writes "1" there once the tap device is configured. */
const READY_FD = 3;

/** The tools an open step's network needs (all from Debian: slirp4netns, nftables, util-linux). */
export interface NetworkTools {
  slirp4netns: string;
  nsenter: string;
  nft: string;
  /** util-linux unshare: holds a network namespace open for container steps. */
  unshare: string;
  /**
   * coreutils sleep, by absolute path: the namespace holder's program (found once, so that
   * each held namespace does not search the worker's PATH again).
   */
  sleep?: string;
}

/** What an open step may reach. */
export interface EgressPolicy {
  allowlist: readonly string[];
  /** Operator's extra denied CIDRs (control-plane networks). */
  deny: readonly string[];
}

/** A configured network namespace; `close()` stops its slirp4netns. */
export interface StepNetwork {
  close(): void;
}

/**
 * Gives the network namespace of process `pid` (bubblewrap's sandbox, still blocked before the
 * step runs) outbound connectivity through slirp4netns, a user-mode TCP/IP stack: the step's
 * packets leave as ordinary sockets of the worker, with slirp's route to the host's loopback
 * disabled. An nftables ruleset inside that namespace then decides what the step may reach
 * (see {@link egressRuleset}). Nothing is started when any part fails: the error says which.
 */
export async function attachStepNetwork(
  pid: number,
  tools: NetworkTools,
  policy: EgressPolicy,
): Promise<StepNetwork> {
  const allow = policy.allowlist.length === 0 ? "any" : await resolveAllowlist(policy.allowlist);
  const ruleset = egressRuleset(allow, await deniedDestinations(policy.deny));
  // Both at once: nothing in the namespace runs before bubblewrap is released, which happens
  // only once the rules are loaded and the interface is up.
  const slirp = await startSlirp(pid, tools);
  try {
    await Promise.all([loadRules(pid, tools, ruleset), slirp.ready]);
  } catch (error) {
    slirp.close();
    throw error;
  }
  return { close: slirp.close };
}

/** Loads the ruleset into the network namespace of `pid` (`nsenter … nft -f -`). */
async function loadRules(pid: number, tools: NetworkTools, ruleset: string): Promise<void> {
  const loaded = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    launch(tools.nsenter, [`--net=/proc/${pid}/ns/net`, "--", tools.nft, "-f", "-"], {
      stdio: ["write", "ignore", "read"],
    }).then(
      (nft) => {
        let stderr = "";
        (nft.stdio[2] as Readable).setEncoding("utf8").on("data", (chunk: string) => {
          stderr += chunk;
        });
        nft.on("close", (code: number | null) => resolve({ code, stderr }));
        (nft.stdio[0] as Writable).end(ruleset);
      },
      (error: Error) => resolve({ code: null, stderr: error.message }),
    );
  });
  if (loaded.code !== 0)
    throw new Error(`could not load the step's egress rules: ${loaded.stderr.trim()}`);
}

/** Starts slirp4netns for the namespace of `pid`; `ready` settles once tap0 is configured. */
async function startSlirp(
  pid: number,
  tools: NetworkTools,
): Promise<{ ready: Promise<void>; close(): void }> {
  const slirp = await launch(
    tools.slirp4netns,
    [
      "--configure",
      "--mtu=65520",
      "--disable-host-loopback",
      `--ready-fd=${READY_FD}`,
      String(pid),
      "tap0",
    ],
    { stdio: ["ignore", "ignore", "read", "read"] },
  );
  let slirpErr = "";
  (slirp.stdio[2] as Readable).setEncoding("utf8").on("data", (chunk: string) => {
    if (slirpErr.length < 4096) slirpErr += chunk;
  });
  const readyPipe = slirp.stdio[READY_FD] as Readable;
  const close = (): void => {
    if (slirp.exitCode === null && slirp.signalCode === null) slirp.kill("SIGKILL");
  };
  const ready = Promise.race([
    once(readyPipe, "data").then(() => "ready" as const),
    once(slirp, "exit").then(() => "exited" as const),
    new Promise<"timeout">((resolve) =>
      setTimeout(() => resolve("timeout"), READY_TIMEOUT_MS).unref(),
    ),
  ]).then((outcome) => {
    readyPipe.destroy();
    // It serves the namespace as long as its step runs (or while a prepared namespace waits).
    if (outcome === "ready") runInBackground(slirp);
    if (outcome !== "ready")
      throw new Error(
        `slirp4netns did not configure the step's network (${outcome}): ${slirpErr.trim().split("\n").at(-1) ?? ""}`,
      );
  });
  return { ready, close };
}
