export * from "./api-schemas.ts";
export { buildGatewayApp, type GatewayAppOptions } from "./gateway-app.ts";
export {
  type AuthConfig,
  defaultGatewayPort,
  type GatewayConfig,
  loadGatewayConfig,
} from "./gateway-config.ts";
export { type Gateway, type GatewayOptions, startGateway } from "./gateway-server.ts";
export {
  assertLocalConsoleRequest,
  type ConsoleOptions,
  type DevTokenIssuer,
  type DevTokenRequest,
} from "./routes/console-routes.ts";
export { createTokenVerifier, type TokenVerifier } from "./token-verifier.ts";
