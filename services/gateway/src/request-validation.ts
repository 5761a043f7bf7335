import { Ajv, type Options, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";
import type { FastifySchemaCompiler } from "fastify";
import type { FastifyValidationResult } from "fastify/types/schema.js";

function createAjv(options: Options): Ajv {
  // strict: false because TypeBox schemas carry annotation keys Ajv does not know.
  const ajv = new Ajv({ strict: false, allErrors: false, useDefaults: true, ...options });
  addFormats.default(ajv);
  return ajv;
}

/**
 * Request validation with two Ajv instances: query strings and path parameters arrive as text,
 * so they are coerced (`?pageSize=5` is a number, a single `?state=` is a one-element array);
 * JSON bodies are not, so `{"priority": "5"}` or `{"manifest": 5}` is an error that names the
 * field instead of being silently converted. Unknown fields are errors, never dropped.
 */
export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = createAjv({ coerceTypes: false, removeAdditional: false });
  const coercing = createAjv({ coerceTypes: "array", removeAdditional: false });
  return ({ schema, httpPart }) => {
    const ajv = httpPart === "body" ? strict : coercing;
    // Compiled at a route's first request, not for every route when the gateway starts: the
    // embedded default's start-up spent about a second compiling schemas most sessions never use.
    let compiled: ValidateFunction | undefined;
    const validate: FastifyValidationResult = (data: unknown): boolean => {
      compiled ??= ajv.compile(schema as object);
      const valid = compiled(data) as boolean;
      // Fastify reads a failed validation's errors from the function, as Ajv leaves them.
      validate.errors = compiled.errors ?? null;
      return valid;
    };
    validate.errors = null;
    return validate;
  };
}
