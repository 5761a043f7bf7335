import { existsSync } from "node:fs";
import { join } from "node:path";
import fastifyStatic from "@fastify/static";
import { type ApprovalBinding, allScopes, type Scope, scopes } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import type { FastifyRequest } from "fastify";
import { Type } from "typebox";
import { type GatewayApp, type GatewayContext, principalOf } from "../gateway-context.ts";

/** What a dev-mode token minted for the console says. */
export interface DevTokenRequest {
  readonly tenant: string;
  readonly subject: string;
  readonly scopes: readonly Scope[];
  readonly expiresInSeconds: number;
  readonly approval?: ApprovalBinding;
  readonly groups?: readonly string[];
}

/**
 * Mints tokens the gateway itself trusts: only the embedded default's dev mode has one (its
 * local signing key). Production gateways never get one, so the dev sign-in does not exist there.
 */
export interface DevTokenIssuer {
  /** Who the console signs in as (the embedded default's local operator). */
  readonly operator: { readonly tenant: string; readonly subject: string };
  mint(request: DevTokenRequest): Promise<string>;
}

/** How the gateway serves the web console. */
export interface ConsoleOptions {
  /** The built single-page app (index.html and hashed assets/); absent = no console. */
  readonly assetsDir?: string;
  /** Dev mode only: the console's sign-in as the local operator, from loopback only. */
  readonly devTokens?: DevTokenIssuer;
}

/** Lifetime of a dev-mode console session token. */
const devSessionSeconds = 12 * 3600;
/** Lifetime of a dev-mode approval token: long enough to press the button, no longer. */
const devApprovalSeconds = 120;

// Vite names every built asset by its content hash: a changed asset is a new URL.
const immutableAssets = "public, max-age=31536000, immutable";
const consoleSecurityHeaders = {
  // Only our own script, styles and API; the app is never framed.
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;

const loopbackAddresses = new Set(["127.0.0.1", "::1", "::ffff:127.0.0.1"]);
const loopbackHostNames = new Set(["127.0.0.1", "localhost", "[::1]"]);

/**
 * The dev sign-in answers only a browser on this machine talking to this gateway by a loopback
 * name: the peer address must be loopback (steps run in their own network namespace and cannot
 * reach the host's loopback), the Host header a loopback name (a DNS-rebound foreign site sends
 * its own host name), and an Origin, when sent, this very origin (no cross-site use).
 * @throws PackrunError PERMISSION_DENIED naming the failed condition
 */
export function assertLocalConsoleRequest(request: FastifyRequest): void {
  const peer = request.socket.remoteAddress ?? "";
  if (!loopbackAddresses.has(peer))
    throw new PackrunError(
      "PERMISSION_DENIED",
      "the dev-mode console sign-in answers only requests from this machine's loopback",
    );
  const host = request.headers.host ?? "";
  const hostName = host.replace(/:\d+$/, "").toLowerCase();
  if (!loopbackHostNames.has(hostName))
    throw new PackrunError(
      "PERMISSION_DENIED",
      `the dev-mode console sign-in answers only a loopback host name, not "${host}"`,
    );
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`)
    throw new PackrunError(
      "PERMISSION_DENIED",
      `the dev-mode console sign-in refuses requests from another origin (${origin})`,
    );
}

const DevSessionResponseSchema = Type.Object({
  token: Type.String(),
  tenant: Type.String(),
  subject: Type.String(),
  expiresAt: Type.String({ format: "date-time" }),
});

const DevApprovalBodySchema = Type.Object(
  {
    runId: Type.String({ minLength: 1, maxLength: 64 }),
    gateId: Type.String({ minLength: 1, maxLength: 512 }),
    planHash: Type.String({ minLength: 1, maxLength: 200 }),
    // What `packrun approve --group` does in dev mode: the key holder may claim any group.
    groups: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 32 }),
    ),
  },
  { additionalProperties: false },
);

function registerDevSignIn(app: GatewayApp, issuer: DevTokenIssuer, context: GatewayContext) {
  app.post(
    "/console/dev-session",
    { schema: { hide: true, response: { 200: DevSessionResponseSchema } } },
    async (request) => {
      assertLocalConsoleRequest(request);
      const { tenant, subject } = issuer.operator;
      const token = await issuer.mint({
        tenant,
        subject,
        scopes: allScopes,
        expiresInSeconds: devSessionSeconds,
      });
      context.logger.info({ tenant, subject }, "dev-mode console session issued");
      return {
        token,
        tenant,
        subject,
        expiresAt: new Date(Date.now() + devSessionSeconds * 1000).toISOString(),
      };
    },
  );

  // The approve endpoint takes only tokens bound to a run, gate and plan hash; in dev mode the
  // console asks for one for the gate and plan the operator is looking at, as `packrun approve`
  // mints one. The session token (packs.approve) is required, so the loopback check is not the
  // only barrier.
  app.post(
    "/console/dev-approval-token",
    {
      config: { scope: scopes.approve },
      schema: {
        hide: true,
        body: DevApprovalBodySchema,
        response: { 200: Type.Object({ token: Type.String() }) },
      },
    },
    async (request) => {
      assertLocalConsoleRequest(request);
      const principal = principalOf(request);
      const token = await issuer.mint({
        tenant: principal.tenant,
        subject: principal.subject,
        scopes: [scopes.approve],
        expiresInSeconds: devApprovalSeconds,
        ...(request.body.groups === undefined ? {} : { groups: request.body.groups }),
        approval: {
          runId: request.body.runId,
          gateId: request.body.gateId,
          planHash: request.body.planHash,
        },
      });
      return { token };
    },
  );
}

/**
 * The web console at `/`: index.html (never cached, so a new build is picked up at once) and the
 * content-hashed assets (cached for good), and in dev mode the console's local sign-in.
 */
export async function registerConsoleRoutes(
  app: GatewayApp,
  context: GatewayContext,
  options: ConsoleOptions,
): Promise<void> {
  const { assetsDir, devTokens } = options;
  if (devTokens !== undefined) registerDevSignIn(app, devTokens, context);
  if (assetsDir === undefined) return;
  if (!existsSync(join(assetsDir, "index.html"))) {
    context.logger.warn(
      { assetsDir },
      "the web console is not built (npm run build:console); GET / answers 404",
    );
    return;
  }
  await app.register(fastifyStatic, {
    root: assetsDir,
    prefix: "/",
    // One route per built file, so unknown paths stay the API's own 404 and 405 answers.
    wildcard: false,
    // `/` is the route below: @fastify/static's own index lookup misses with preCompressed.
    index: false,
    cacheControl: false,
    dotfiles: "deny",
    // The build writes gzip and brotli copies beside each file (build-console.ts).
    preCompressed: true,
    setHeaders(reply, path) {
      const hashed = path.includes("/assets/");
      reply.header("cache-control", hashed ? immutableAssets : "no-cache");
      reply.headers(consoleSecurityHeaders);
    },
  });
  app.get("/", { schema: { hide: true } }, (_request, reply) => reply.sendFile("index.html"));
}
