/** The verifier lives in @packrun/auth, shared with the services' public gRPC methods. */
export { createTokenVerifier, type TokenVerifier } from "@packrun/auth";
