import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allScopes, generateLocalSigningKey, mintToken, type Scope } from "@packrun/auth";
import { createLogger } from "@packrun/logging";
import { buildGatewayApp, type GatewayAppOptions } from "../gateway-app.ts";
import type { GatewayApp } from "../gateway-context.ts";
import { createGatewayMetrics } from "../gateway-metrics.ts";
import type { DevTokenRequest } from "../routes/console-routes.ts";
import { createServiceClients } from "../service-clients.ts";
import { createTokenVerifier } from "../token-verifier.ts";

/** Who a token minted by {@link StandaloneGateway.token} speaks for (default alice of acme). */
export interface TestCaller {
  readonly tenant?: string;
  readonly subject?: string;
  readonly scopes?: readonly Scope[];
}

/** A gateway app with no services behind it, and a minter of tokens it accepts. */
export interface StandaloneGateway {
  readonly app: GatewayApp;
  token(caller?: TestCaller): Promise<string>;
  close(): Promise<void>;
}

/**
 * The gateway alone: its services deliberately unreachable, for tests of what the gateway itself
 * decides (validation, errors, auth, limits, documents), not of runs. Call `app.ready()` (or
 * `inject`) once routes and hooks the test adds are in place.
 */
export async function buildStandaloneGateway(
  overrides: Partial<Pick<GatewayAppOptions, "rateLimits" | "bodyLimitBytes">> & {
    /** The web console: its built assets, and the dev sign-in (as operator of `default`). */
    console?: { assetsDir?: string; devSignIn?: boolean };
  } = {},
): Promise<StandaloneGateway> {
  const { console: consoleSettings, ...appOverrides } = overrides;
  const key = await generateLocalSigningKey();
  const dir = await mkdtemp(join(tmpdir(), "packrun-gateway-app-"));
  await writeFile(join(dir, "jwks.json"), JSON.stringify(key.jwks));
  const auth = {
    jwksFile: join(dir, "jwks.json"),
    issuer: "packrun-test",
    audience: "packrun",
    algorithms: ["ES256" as const],
    clockToleranceSeconds: 30,
    tenantClaim: "tenant",
    groupsClaim: "groups",
  };
  const nowhere = "http://127.0.0.1:9";
  const clients = createServiceClients({
    plannerUrl: nowhere,
    executorUrl: nowhere,
    evidenceUrl: nowhere,
  });
  const app = await buildGatewayApp({
    clients,
    verifier: await createTokenVerifier(auth),
    metrics: createGatewayMetrics(),
    logger: createLogger({ service: "gateway-test", level: "silent" }),
    bodyLimitBytes: 64 * 1024,
    heartbeatMs: 15_000,
    ...appOverrides,
    ...(consoleSettings === undefined
      ? {}
      : {
          console: {
            ...(consoleSettings.assetsDir === undefined
              ? {}
              : { assetsDir: consoleSettings.assetsDir }),
            ...(consoleSettings.devSignIn === true
              ? {
                  devTokens: {
                    operator: { tenant: "default", subject: "operator" },
                    mint: (request: DevTokenRequest) =>
                      mintToken({
                        key: key.privateJwk,
                        issuer: auth.issuer,
                        audience: auth.audience,
                        ...request,
                      }),
                  },
                }
              : {}),
          },
        }),
  });
  return {
    app,
    token: (caller = {}) =>
      mintToken({
        key: key.privateJwk,
        issuer: auth.issuer,
        audience: auth.audience,
        subject: caller.subject ?? "alice",
        tenant: caller.tenant ?? "acme",
        scopes: caller.scopes ?? allScopes,
      }),
    async close() {
      await app.close();
      clients.close();
    },
  };
}
