export {
  generateLocalSigningKey,
  type LocalSigningKey,
  loadOrCreateLocalSigningKey,
  localSigningAlgorithm,
} from "./local-signing-key.ts";
export { mintToken, type TokenRequest } from "./mint-token.ts";
export { allScopes, isScope, type Scope, scopes } from "./scopes.ts";
export { type ApprovalBinding, claimNames } from "./token-claims.ts";
