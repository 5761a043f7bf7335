#!/usr/bin/env node
/**
 * A grpc.health.v1 Check for container health checks (compose `healthcheck`, or by hand):
 *
 *   node deploy/grpc-health-check.ts [--service NAME] [--timeout MS] PORT|URL
 *
 * PORT means 127.0.0.1:PORT. With PACKRUN_TLS_CA set (as in every packrun container) it speaks TLS,
 * trusting that CA only (health needs no client certificate); without, cleartext. Exits 0 when the server (or the named service) is SERVING,
 * 1 otherwise (not serving, unreachable, timed out), 2 on bad arguments. Kubernetes does not
 * need it: its `grpc:` probes speak the same protocol.
 */
import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@packrun/proto/health/v1";

/** What a health check found. */
export interface HealthCheckResult {
  serving: boolean;
  /** SERVING, NOT_SERVING, … or the error that prevented an answer. */
  detail: string;
}

/** Asks the grpc.health.v1 service at `url` about `service` ("" = the server as a whole). */
export async function checkHealth(
  target: string,
  options: { service?: string; timeoutMs?: number; ca?: string } = {},
): Promise<HealthCheckResult> {
  const url = options.ca === undefined ? target : target.replace(/^http:\/\//, "https://");
  const sessions = new Http2SessionManager(
    url,
    undefined,
    options.ca === undefined ? undefined : { ca: options.ca },
  );
  try {
    const client = createClient(
      Health,
      createGrpcTransport({ baseUrl: url, sessionManager: sessions }),
    );
    const response = await client.check(
      { service: options.service ?? "" },
      { timeoutMs: options.timeoutMs ?? 3000 },
    );
    return {
      serving: response.status === HealthCheckResponse_ServingStatus.SERVING,
      detail: HealthCheckResponse_ServingStatus[response.status] ?? String(response.status),
    };
  } catch (error) {
    return { serving: false, detail: error instanceof Error ? error.message : String(error) };
  } finally {
    sessions.abort();
  }
}

/** Parses the command line; a string is a usage error. */
export function parseHealthCheckArgs(
  args: readonly string[],
): { url: string; service: string; timeoutMs: number } | string {
  let service = "";
  let timeoutMs = 3000;
  let target: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    if (arg === "--service" || arg === "--timeout") {
      const value = args[++index];
      if (value === undefined) return `${arg} needs a value`;
      if (arg === "--service") service = value;
      else if (/^\d+$/.test(value)) timeoutMs = Number(value);
      else return `--timeout: expected milliseconds, got ${value}`;
    } else if (target === undefined && !arg.startsWith("-")) {
      target = arg;
    } else {
      return `unexpected argument ${arg}`;
    }
  }
  if (target === undefined) return "expected a PORT or a URL";
  if (/^\d{1,5}$/.test(target)) return { url: `http://127.0.0.1:${target}`, service, timeoutMs };
  if (/^https?:\/\/[^\s/]+/.test(target)) return { url: target, service, timeoutMs };
  return `expected a PORT or an http:// URL, got ${target}`;
}

if (import.meta.main) {
  const parsed = parseHealthCheckArgs(process.argv.slice(2));
  if (typeof parsed === "string") {
    process.stderr.write(
      `grpc-health-check: ${parsed}\nusage: grpc-health-check [--service NAME] [--timeout MS] PORT|URL\n`,
    );
    process.exit(2);
  }
  const caFile = process.env.PACKRUN_TLS_CA;
  const result = await checkHealth(parsed.url, {
    ...parsed,
    ...(caFile === undefined || caFile === "" ? {} : { ca: readFileSync(caFile, "utf8") }),
  });
  process.stdout.write(`${parsed.url} ${parsed.service || "(server)"}: ${result.detail}\n`);
  process.exit(result.serving ? 0 : 1);
}
