/** The principal lives in @packrun/auth, shared with the services' public gRPC methods. */
export type { Principal } from "@packrun/auth";
