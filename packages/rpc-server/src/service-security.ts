import { type AuthConfig, createTokenVerifier } from "@packrun/auth";
import type { Logger } from "@packrun/logging";
import type { ServiceSecurity } from "./rpc-server.ts";
import { loadServiceTls } from "./service-tls.ts";

/** The `rpc` settings of a service (PACKRUN_TLS_*, PACKRUN_RPC_INSECURE_NO_AUTH). */
export interface RpcSecuritySettings {
  readonly tlsCa?: string | undefined;
  readonly tlsCert?: string | undefined;
  readonly tlsKey?: string | undefined;
  readonly insecureNoAuth: boolean;
}

/**
 * A service process's security from its configuration: its TLS identity and, when PACKRUN_AUTH_*
 * is set, the verifier of bearer tokens on its public methods. Undefined only with the explicit
 * PACKRUN_RPC_INSECURE_NO_AUTH, which is logged as an error at every start.
 * @throws PackrunError CONFIG_INVALID when a file cannot be read or the key set not loaded
 */
export async function serviceSecurityFromConfig(
  rpc: RpcSecuritySettings,
  auth: AuthConfig | undefined,
  logger: Logger,
): Promise<ServiceSecurity | undefined> {
  if (rpc.tlsCa === undefined || rpc.tlsCert === undefined || rpc.tlsKey === undefined) {
    logger.error(
      { setting: "PACKRUN_RPC_INSECURE_NO_AUTH" },
      "INSECURE: internal gRPC is cleartext and unauthenticated; anything that reaches this port can call every RPC. Development only.",
    );
    return undefined;
  }
  const tls = await loadServiceTls({ ca: rpc.tlsCa, cert: rpc.tlsCert, key: rpc.tlsKey });
  return { tls, tokens: auth === undefined ? undefined : await createTokenVerifier(auth) };
}
