import { create } from "@bufbuild/protobuf";
import type { Scope } from "@packrun/auth";
import { PackrunError } from "@packrun/errors";
import { type PackSource, PackSourceSchema } from "@packrun/proto/pack/v1";
import type { TSchema } from "typebox";
import { ProblemSchema } from "./api-schemas.ts";

/** Errors leave as RFC 9457 problem documents, under their own media type. */
const problemResponse = {
  description: "An RFC 9457 problem document; `code` is listed in docs/errors.md.",
  content: { "application/problem+json": { schema: ProblemSchema } },
};

/**
 * Adds the problem document responses every route can give (`application/problem+json`,
 * which is what the error handler sends), for the OpenAPI document and the serializer.
 */
export function withProblems<Responses extends Record<number, unknown>>(responses: Responses) {
  return { ...responses, "4xx": problemResponse, "5xx": problemResponse };
}

/**
 * A response of one or more non-JSON media types (downloads, streams), so the OpenAPI
 * document lists exactly what the route sends for that status.
 */
export function mediaResponse(description: string, mediaTypes: readonly string[], schema: TSchema) {
  return {
    description,
    content: Object.fromEntries(mediaTypes.map((type) => [type, { schema }])),
  };
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

/** Deepest nesting of request JSON values forwarded to the services (protobuf Struct limit). */
export const maxValueDepth = 32;

/**
 * Refuses a JSON value nested deeper than {@link maxValueDepth}: the services receive values as
 * protobuf Structs, whose decoders stop at a recursion limit, so a deeper value would fail
 * inside packrun instead of as the caller's error.
 * @throws PackrunError REQUEST_INVALID naming `path`
 */
export function assertValueDepth(value: unknown, path: string): void {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (typeof node !== "object" || node === null) continue;
    if (depth > maxValueDepth)
      throw new PackrunError(
        "REQUEST_INVALID",
        `${path}: nested deeper than ${maxValueDepth} levels`,
      );
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
}

/** RFC 3339 with a time zone (Z or ±hh:mm), as `date-time` means. */
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * A `date-time` field as a Date.
 * @throws PackrunError REQUEST_INVALID naming the field when it is no RFC 3339 time
 */
export function requireTime(value: string, field: string): Date {
  const date = new Date(value);
  if (!rfc3339.test(value) || Number.isNaN(date.getTime()))
    throw new PackrunError(
      "REQUEST_INVALID",
      `${field} must be an RFC 3339 time such as 2026-01-31T12:00:00Z; got ${JSON.stringify(value)}`,
    );
  return date;
}
