import fastJsonStringify from "fast-json-stringify";
import type { FastifySerializerCompiler } from "fastify/types/schema.js";

/**
 * Fastify's response serialisation (fast-json-stringify, as its default), compiled at a route's
 * first response of a status rather than for every route when the gateway starts: the embedded
 * default's start-up spent about half a second building serialisers most sessions never use.
 * The gateway's schemas are self-contained (no shared `$ref` schemas), so each compiles alone.
 */
export function createSerializerCompiler(): FastifySerializerCompiler<unknown> {
  return ({ schema }) => {
    let serialize: ((data: unknown) => string) | undefined;
    return (data: unknown) => {
      serialize ??= fastJsonStringify(schema as Parameters<typeof fastJsonStringify>[0]);
      return serialize(data);
    };
  };
}
