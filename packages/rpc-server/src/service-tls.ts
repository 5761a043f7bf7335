import { readFile } from "node:fs/promises";
import type http2 from "node:http2";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { PackrunError } from "@packrun/errors";

/**
 * One service's TLS material, PEM: the internal CA every peer certificate must chain to, and
 * this service's own certificate and private key (its identity, as server and as client).
 */
export interface ServiceTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/** Paths of the PEM files of {@link ServiceTls} (PACKRUN_TLS_CA, _CERT, _KEY). */
export interface ServiceTlsFiles {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * Reads the three PEM files.
 * @throws PackrunError CONFIG_INVALID naming the variable whose file cannot be read
 */
export async function loadServiceTls(files: ServiceTlsFiles): Promise<ServiceTls> {
  const read = async (variable: string, path: string) => {
    try {
      return await readFile(path, "utf8");
    } catch (cause) {
      throw new PackrunError("CONFIG_INVALID", `${variable}: cannot read ${path}`, { cause });
    }
  };
  return {
    ca: await read("PACKRUN_TLS_CA", files.ca),
    cert: await read("PACKRUN_TLS_CERT", files.cert),
    key: await read("PACKRUN_TLS_KEY", files.key),
  };
}

/**
 * With TLS, every internal call goes over TLS whatever scheme the configured URL names, so an
 * `http://planner:7001` left in a configuration cannot quietly downgrade to cleartext.
 */
export function serviceBaseUrl(url: string, tls: ServiceTls | undefined): string {
  return tls === undefined ? url : url.replace(/^http:\/\//i, "https://");
}

/** Client-side TLS options of an HTTP/2 session: trust only the internal CA, present our cert. */
export function clientSessionOptions(tls: ServiceTls): http2.SecureClientSessionOptions {
  return { ca: tls.ca, cert: tls.cert, key: tls.key };
}

/** A gRPC transport to another packrun service, with its own HTTP/2 session manager. */
export interface ServiceTransport {
  readonly transport: Transport;
  readonly sessions: Http2SessionManager;
}

/**
 * A gRPC transport to a packrun service at `url`: mutual TLS with this service's identity
 * when `tls` is given, cleartext (in-process tests only) when not.
 */
export function serviceTransport(
  url: string,
  tls: ServiceTls | undefined,
  options: { interceptors?: Interceptor[]; idleConnectionTimeoutMs?: number } = {},
): ServiceTransport {
  const baseUrl = serviceBaseUrl(url, tls);
  const sessions = new Http2SessionManager(
    baseUrl,
    options.idleConnectionTimeoutMs === undefined
      ? undefined
      : { idleConnectionTimeoutMs: options.idleConnectionTimeoutMs },
    tls === undefined ? undefined : clientSessionOptions(tls),
  );
  return {
    sessions,
    transport: createGrpcTransport({
      baseUrl,
      sessionManager: sessions,
      interceptors: options.interceptors ?? [],
      // Between packrun's own services nothing is compressed: by default a client accepts gzip
      // and the server then compresses every message over 1 KiB, which under a log flood cost
      // the evidence service and the gateway each about a tenth of their CPU (a profile of
      // bench workload 6) to save bytes on loopback or a data-centre link.
      acceptCompression: [],
    }),
  };
}
