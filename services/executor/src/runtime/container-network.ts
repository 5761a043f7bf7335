import { spawn } from "node:child_process";
import { once } from "node:events";
import type { Readable } from "node:stream";
import { slirpResolvConf } from "./launch-plan.ts";
import {
  attachStepNetwork,
  type EgressPolicy,
  type NetworkTools,
  type StepNetwork,
} from "./step-network.ts";

/** How long the namespace holder may take to start. */
const HOLDER_TIMEOUT_MS = 10_000;

/** A network namespace made for one open container step. */
export interface ContainerNetwork {
  /** For `podman create --network ns:<path>`. */
  readonly namespacePath: string;
  /** A resolv.conf naming slirp's DNS forwarder, to mount at /etc/resolv.conf. */
  readonly resolvConf: string;
  /** Stops slirp4netns and the holder; the namespace goes with them. */
  close(): void;
}

/**
 * The network of an open container step, made the way a process step's is (step-network.ts):
 * a new, empty network namespace, held open by a sleeping process, given outbound connectivity
 * by slirp4netns with the host's loopback disabled and the egress ruleset loaded (host
 * addresses, loopback, link-local and operator-denied networks refused; `egressAllowlist`
 * enforced). podman then joins the container to that namespace instead of its own bridge, from
 * which a service listening on the host's bridge address or on 0.0.0.0 would be reachable.
 */
export async function openContainerNetwork(
  tools: NetworkTools,
  policy: EgressPolicy,
): Promise<ContainerNetwork> {
  const holder = spawn(
    tools.unshare,
    ["--net", "--", "/bin/sh", "-c", "echo ready; exec sleep infinity"],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  holder.on("error", () => {});
  const stop = (): void => {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill("SIGKILL");
  };
  let network: StepNetwork | null = null;
  try {
    // "ready" is printed after unshare(2): the holder's namespace is the new one from then on.
    const started = await Promise.race([
      once(holder.stdout as Readable, "data").then(() => "ready" as const),
      once(holder, "exit").then(() => "exited" as const),
      once(holder, "error").then(() => "failed" as const),
      new Promise<"timeout">((resolve) =>
        setTimeout(() => resolve("timeout"), HOLDER_TIMEOUT_MS).unref(),
      ),
    ]);
    (holder.stdout as Readable).destroy();
    if (started !== "ready" || holder.pid === undefined)
      throw new Error(`could not create the container step's network namespace (${started})`);
    network = await attachStepNetwork(holder.pid, tools, policy);
    const attached = network;
    return {
      namespacePath: `/proc/${holder.pid}/ns/net`,
      resolvConf: await slirpResolvConf(),
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
