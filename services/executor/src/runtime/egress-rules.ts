import { lookup } from "node:dns/promises";
import { readFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { type EgressRule, parseEgressRule } from "@packrun/planning";
import { envList } from "./env-list.ts";

/** slirp4netns's fixed addresses inside a step's network namespace. */
export const SLIRP = {
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
  resolvConf: "nameserver 10.0.2.3\n",
} as const;

/**
 * Destinations no open step may reach, whatever its allowlist says: the worker host's own
 * addresses (where PostgreSQL, Redis, the gRPC services and the gateway listen), slirp's gateway
 * to the host, link-local (cloud metadata services) and the operator's list of control-plane
 * networks (`PACKRUN_EXECUTOR_EGRESS_DENY`).
 */
export async function deniedDestinations(operatorDeny: readonly string[]): Promise<string[]> {
  return [
    ...new Set([
      "127.0.0.0/8",
      "0.0.0.0/8",
      "169.254.0.0/16",
      `${SLIRP.gateway}/32`,
      ...(await hostAddresses()).map((address) => `${address}/32`),
      ...operatorDeny,
    ]),
  ];
}

/**
 * Every IPv4 address of the host. `networkInterfaces()` lists only interfaces that are up, yet
 * the kernel answers on the addresses of down ones too (podman's bridge `cni-podman0` with no
 * container on it is such a case: a step reached the host through 10.88.0.1). The kernel's
 * routing table lists them all: the `/32 host LOCAL` entries of /proc/net/fib_trie.
 */
export async function hostAddresses(): Promise<string[]> {
  const addresses = new Set(
    Object.values(networkInterfaces())
      .flatMap((list) => list ?? [])
      .filter((address) => address.family === "IPv4")
      .map((address) => address.address),
  );
  const trie = await readFile("/proc/net/fib_trie", "utf8").catch(() => "");
  let candidate: string | null = null;
  for (const line of trie.split("\n")) {
    const leaf = /\|-- (\d+\.\d+\.\d+\.\d+)$/.exec(line);
    if (leaf) candidate = leaf[1] ?? null;
    else if (candidate !== null && line.trim() === "/32 host LOCAL") addresses.add(candidate);
  }
  return [...addresses];
}

/** One allowed destination after host names were resolved. */
export interface ResolvedEgress {
  cidr: string;
  port: number | null;
}

/**
 * Resolves the allowlist's host names (every IPv4 address a name has when the step starts).
 * @throws Error naming the entry whose host name does not resolve
 */
export async function resolveAllowlist(entries: readonly string[]): Promise<ResolvedEgress[]> {
  const resolved: ResolvedEgress[] = [];
  for (const entry of entries) {
    const rule: EgressRule = parseEgressRule(entry);
    if (rule.kind === "cidr") {
      resolved.push({ cidr: `${rule.address}/${rule.prefix}`, port: rule.port });
      continue;
    }
    let addresses: { address: string }[];
    try {
      addresses = await lookup(rule.host, { all: true, family: 4 });
    } catch (error) {
      throw new Error(
        `egress allowlist entry "${entry}": ${rule.host} does not resolve (${(error as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
    for (const { address } of addresses) resolved.push({ cidr: `${address}/32`, port: rule.port });
  }
  return resolved;
}

/**
 * The nftables ruleset loaded into an open step's own network namespace before the step starts.
 * Output is dropped by default; the step may talk to itself, to slirp's DNS forwarder, and to
 * the allowlist (everywhere but the denied destinations when the allowlist is empty). Denied
 * destinations come first, so no allowlist entry can reopen the control plane. Rejections (not
 * silent drops) make a refused connection fail at once with "connection refused / no route".
 */
export function egressRuleset(
  allow: readonly ResolvedEgress[] | "any",
  deny: readonly string[],
): string {
  const lines = [
    "table inet packrun_egress {",
    "  chain output {",
    "    type filter hook output priority 0; policy drop;",
    '    oif "lo" accept',
    "    ct state established,related accept",
    `    ip daddr ${SLIRP.dns} udp dport 53 accept`,
    `    ip daddr ${SLIRP.dns} tcp dport 53 accept`,
    // One rule per entry: an anonymous set refuses overlapping ranges (127.0.0.1 in 127/8).
    ...deny.map((cidr) => `    ip daddr ${cidr} reject with icmpx type admin-prohibited`),
  ];
  if (allow === "any") lines.push("    meta nfproto ipv4 accept");
  else {
    for (const { cidr, port } of allow) {
      lines.push(
        port === null
          ? `    ip daddr ${cidr} accept`
          : `    ip daddr ${cidr} meta l4proto { tcp, udp } th dport ${port} accept`,
      );
    }
  }
  lines.push("    reject with icmpx type admin-prohibited", "  }", "}", "");
  return lines.join("\n");
}

/**
 * The operator's denied networks, PACKRUN_EXECUTOR_EGRESS_DENY: comma-separated IPv4 CIDRs of
 * the control plane (database, Redis, service and gateway networks) when they are not on the
 * worker host itself.
 * @throws Error naming the variable and the entry that is not an IPv4 address or CIDR range
 */
export function operatorDeny(env: NodeJS.ProcessEnv = process.env): string[] {
  return envList(env, "PACKRUN_EXECUTOR_EGRESS_DENY").map((entry) => {
    const rule = parseEgressRule(entry);
    if (rule.kind !== "cidr" || rule.port !== null)
      throw new Error(
        `PACKRUN_EXECUTOR_EGRESS_DENY: "${entry}" is not an IPv4 address or CIDR range`,
      );
    return `${rule.address}/${rule.prefix}`;
  });
}
