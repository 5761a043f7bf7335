import { isIP } from "node:net";

/**
 * One entry of `spec.sandbox.egressAllowlist`: where an open step may connect to.
 *
 * Forms: `host`, `host:port`, `a.b.c.d`, `a.b.c.d:port`, `a.b.c.d/len`, `a.b.c.d/len:port`
 * (IPv4 only: open steps get an IPv4-only network). Without a port every TCP/UDP port of the
 * destination is allowed. Host names are resolved by the worker when the step starts.
 */
export type EgressRule =
  | {
      readonly kind: "cidr";
      readonly address: string;
      readonly prefix: number;
      readonly port: number | null;
    }
  | { readonly kind: "host"; readonly host: string; readonly port: number | null };

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Why an allowlist entry was refused. */
export class EgressRuleError extends Error {}

/**
 * Parses one allowlist entry.
 * @throws EgressRuleError naming what is wrong with the entry
 */
export function parseEgressRule(entry: string): EgressRule {
  const text = entry.trim();
  let target = text;
  let port: number | null = null;
  const colon = text.lastIndexOf(":");
  if (colon !== -1) {
    target = text.slice(0, colon);
    const portText = text.slice(colon + 1);
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      throw new EgressRuleError(`"${entry}": the port must be a number from 1 to 65535`);
    port = Number(portText);
  }
  const slash = target.indexOf("/");
  if (slash !== -1 || isIP(target) !== 0) {
    const address = slash === -1 ? target : target.slice(0, slash);
    const prefixText = slash === -1 ? "32" : target.slice(slash + 1);
    if (isIP(address) !== 4)
      throw new EgressRuleError(`"${entry}": only IPv4 addresses and CIDR ranges are supported`);
    if (!/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32)
      throw new EgressRuleError(`"${entry}": the prefix length must be 0 to 32`);
    return { kind: "cidr", address, prefix: Number(prefixText), port };
  }
  if (!HOST_NAME.test(target))
    throw new EgressRuleError(
      `"${entry}": expected a host name, an IPv4 address or CIDR range, optionally with :port`,
    );
  return { kind: "host", host: target.toLowerCase(), port };
}
