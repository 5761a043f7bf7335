import { slirpResolvConf } from "./launch-plan.ts";
import type { EgressPolicy, NetworkTools } from "./step-network.ts";
import { takeNetwork } from "./warm-networks.ts";
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
 * a new, empty network namespace (prepared ahead, warm-networks.ts), held open by a sleeping
 * process, given outbound connectivity
 * by slirp4netns with the host's loopback disabled and the egress ruleset loaded (host
 * addresses, loopback, link-local and operator-denied networks refused; `egressAllowlist`
 * enforced). podman then joins the container to that namespace instead of its own bridge, from
 * which a service listening on the host's bridge address or on 0.0.0.0 would be reachable.
 */
export async function openContainerNetwork(
  tools: NetworkTools,
  policy: EgressPolicy,
): Promise<ContainerNetwork> {
  const resolvConf = await slirpResolvConf();
  const network = await takeNetwork(tools, policy);
  return { namespacePath: network.namespacePath, resolvConf, close: network.close };
}
