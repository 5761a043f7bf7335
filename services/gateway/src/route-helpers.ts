import { create } from "@bufbuild/protobuf";
import type { Scope } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { type PackSource, PackSourceSchema } from "@packrun/proto/pack/v1";
import type { TSchema } from "typebox";
import { ProblemSchema } from "./api-schemas.ts";

/** Adds the problem document responses every route can give, for the OpenAPI document. */
export function withProblems<Responses extends Record<number, TSchema>>(responses: Responses) {
  return { ...responses, "4xx": ProblemSchema, "5xx": ProblemSchema };
}

/**
 * The bearer-token requirement of an authenticated route in OpenAPI terms, naming the scope
 * the token must carry (OpenAPI 3.1 lets non-OAuth schemes list required roles).
 */
export function bearerSecurity(scope: Scope) {
  return [{ bearerAuth: [scope] }];
}

/**
 * The pack of a run or simulation request: an inline manifest or a registry reference,
 * exactly one of them.
 */
export function packSourceOf(body: {
  manifest?: string | undefined;
  pack?: { name: string; version?: string | undefined } | undefined;
}): PackSource {
  if ((body.manifest === undefined) === (body.pack === undefined))
    throw new PackrunError(
      "REQUEST_INVALID",
      "give exactly one of `manifest` (inline pack.yaml text) and `pack` ({name, version})",
    );
  if (body.manifest !== undefined)
    return create(PackSourceSchema, { source: { case: "manifest", value: body.manifest } });
  return create(PackSourceSchema, {
    source: {
      case: "ref",
      value: { name: body.pack?.name ?? "", version: body.pack?.version ?? "" },
    },
  });
}
