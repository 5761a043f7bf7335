export { approvalTokenId } from "./approval-binding.ts";
export { type AuthConfig, authConfigSchema, authEnvMap, defaultAlgorithms } from "./auth-config.ts";
export {
  generateLocalSigningKey,
  type LocalSigningKey,
  loadOrCreateLocalSigningKey,
  localSigningAlgorithm,
} from "./local-signing-key.ts";
export { mintToken, type TokenRequest } from "./mint-token.ts";
export type { Principal } from "./principal.ts";
export { allScopes, isScope, type Scope, scopes } from "./scopes.ts";
export { type ApprovalBinding, claimNames } from "./token-claims.ts";
export { createTokenVerifier, type TokenVerifier } from "./token-verifier.ts";
