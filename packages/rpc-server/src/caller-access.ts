import type http from "node:http";
import type http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import {
  type ContextValues,
  createContextKey,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import type { Principal, Scope, TokenVerifier } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { isServiceIdentity, type ServiceIdentity } from "./service-identity.ts";

/** Who is calling: one of packrun's services (by its certificate), or a bearer token's subject. */
export type RpcCaller =
  | { readonly kind: "service"; readonly identity: ServiceIdentity }
  | { readonly kind: "token"; readonly principal: Principal; readonly authorization: string };

/**
 * The authenticated caller of the current call, for handlers that must know more than the
 * access rule checked (e.g. an approval's binding); undefined on a cleartext test server.
 */
export const rpcCallerKey = createContextKey<RpcCaller | undefined>(undefined, {
  description: "packrun RPC caller",
});

const peerIdentityKey = createContextKey<ServiceIdentity | undefined>(undefined, {
  description: "packrun peer certificate identity",
});

/** Who may call one RPC. */
export interface RpcAccessRule {
  /** Service identities (client certificates of the internal CA) allowed to call it. */
  readonly services: readonly ServiceIdentity[];
  /**
   * Public methods only: the scope a bearer token must carry. Absent: internal, no token is
   * accepted whatever its scopes.
   */
  readonly scope?: Scope;
  /**
   * Public methods: overwrites the request's identity fields (submitter, canceller, …) with the
   * token's, so a token holder cannot speak for someone else.
   */
  readonly bind?: (message: Record<string, unknown>, principal: Principal) => void;
}

/** Access rules by fully-qualified service name, then method name. Unlisted methods are refused. */
export type RpcAccessPolicy = Readonly<Record<string, Readonly<Record<string, RpcAccessRule>>>>;

/** Services any caller may use: health checks and the schema (reflection), nothing else. */
const openServices = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/**
 * Context values of a call: the identity of the peer's client certificate, when it chains to the
 * internal CA (TLS verified it) and its common name is one of packrun's services.
 */
export function peerContextValues(
  request: http.IncomingMessage | http2.Http2ServerRequest,
): ContextValues {
  const values = createContextValues();
  const socket = ("stream" in request ? request.stream.session?.socket : undefined) as
    | TLSSocket
    | undefined;
  if (socket !== undefined && socket.authorized === true) {
    const identity = serviceIdentityOf(socket);
    if (identity !== undefined) values.set(peerIdentityKey, identity);
  }
  return values;
}

/** The service identity of each verified connection, read once per connection. */
const identities = new WeakMap<TLSSocket, string | null>();

/**
 * The packrun service a verified peer certificate names, if any. Read once per connection and
 * kept: a connection's certificate cannot change (Node's HTTP/2 disables TLS renegotiation on
 * its sockets, as RFC 9113 requires; TLS 1.3 has none), and decoding it on every call cost the
 * executor's API about 2 % of its CPU.
 */
function serviceIdentityOf(socket: TLSSocket): string | undefined {
  let identity = identities.get(socket);
  if (identity === undefined) {
    const name = socket.getPeerCertificate().subject?.CN;
    const commonName = Array.isArray(name) ? undefined : name;
    identity = commonName !== undefined && isServiceIdentity(commonName) ? commonName : null;
    identities.set(socket, identity);
  }
  return identity ?? undefined;
}

function bindTenant(message: unknown, principal: Principal, rule: RpcAccessRule, method: string) {
  if (typeof message !== "object" || message === null) return;
  const fields = message as Record<string, unknown>;
  if ("tenant" in fields) {
    if (fields.tenant === "") fields.tenant = principal.tenant;
    else if (fields.tenant !== principal.tenant)
      throw new PackrunError(
        "PERMISSION_DENIED",
        `${method}: the token is for tenant ${principal.tenant}, not ${String(fields.tenant)}`,
      );
  }
  rule.bind?.(fields, principal);
}

async function* boundStream(
  messages: AsyncIterable<unknown>,
  principal: Principal,
  rule: RpcAccessRule,
  method: string,
): AsyncGenerator<unknown> {
  for await (const message of messages) {
    bindTenant(message, principal, rule, method);
    yield message;
  }
}

/**
 * Authenticates and authorises every call by the rules of `policy`: a client certificate of the
 * internal CA names a packrun service, which must be among the rule's services; otherwise a
 * public method takes a bearer token (verified as the gateway does) with the rule's scope, bound
 * to the token's tenant. No credentials: UNAUTHENTICATED; the wrong ones: PERMISSION_DENIED.
 * Health and reflection stay open.
 */
export function callerAccessInterceptor(
  policy: RpcAccessPolicy,
  tokens: TokenVerifier | undefined,
): Interceptor {
  return (next) => async (request) => {
    const serviceName = request.service.typeName;
    if (openServices.has(serviceName)) return next(request);
    const method = `${serviceName}/${request.method.name}`;
    const rule = policy[serviceName]?.[request.method.name];
    const peer = request.contextValues.get(peerIdentityKey);
    if (peer !== undefined) {
      if (rule === undefined || !rule.services.includes(peer))
        throw new PackrunError(
          "PERMISSION_DENIED",
          `${method} does not accept calls from the ${peer} service`,
        );
      request.contextValues.set(rpcCallerKey, { kind: "service", identity: peer });
      return next(request);
    }
    const authorization = request.header.get("authorization") ?? undefined;
    if (authorization === undefined)
      throw new PackrunError(
        "UNAUTHENTICATED",
        rule?.scope === undefined
          ? `${method} needs the client certificate of a packrun service`
          : `${method} needs a bearer token (authorization: Bearer <token>) or the client certificate of a packrun service`,
      );
    if (tokens === undefined)
      throw new PackrunError(
        "UNAUTHENTICATED",
        "this service is not configured to accept bearer tokens",
      );
    const principal = await tokens.verify(authorization);
    if (rule?.scope === undefined)
      throw new PackrunError(
        "PERMISSION_DENIED",
        `${method} is internal: only packrun's own services may call it`,
      );
    if (!principal.scopes.has(rule.scope))
      throw new PackrunError("PERMISSION_DENIED", `${method} needs the ${rule.scope} scope`);
    request.contextValues.set(rpcCallerKey, { kind: "token", principal, authorization });
    if (request.stream)
      return next({
        ...request,
        message: boundStream(request.message, principal, rule, method),
      } as typeof request);
    bindTenant(request.message, principal, rule, method);
    return next(request);
  };
}
