import type { Scope } from "@packrun/auth";
import type { Principal } from "./principal.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The verified caller; set on routes that declare `config.scope`. */
    principal: Principal | undefined;
  }
  interface FastifyContextConfig {
    /** Scope the caller's token must carry; routes without one are public. */
    scope?: Scope;
  }
}
