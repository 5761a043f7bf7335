import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import * as ajvFormats from "ajv-formats";
import canonicalize from "canonicalize";
import { evaluateExpression, parseExpression } from "./expression.ts";

// ajv-formats is CommonJS: under Node's ESM interop its plugin is `default.default`.
type FormatsPlugin = (ajv: Ajv2020) => Ajv2020;
const formatsModule = ajvFormats as unknown as {
  default: FormatsPlugin | { default: FormatsPlugin };
};
const addFormats: FormatsPlugin =
  typeof formatsModule.default === "function"
    ? formatsModule.default
    : formatsModule.default.default;

const matches = parseExpression("value.matches(pattern)");

/**
 * Ajv's regular-expression engine for pack-supplied schemas: RE2 (linear time, through CEL's
 * `matches`, which uses RE2JS), not JavaScript's backtracking RegExp. A `pattern` such as
 * `^(a+)+$` against 40 characters would otherwise block the planner for hours (catastrophic
 * backtracking, "ReDoS"). RE2 syntax: no lookaround, no backreferences; such a pattern is
 * refused when the schema is compiled.
 */
const re2Engine = Object.assign(
  (pattern: string) => {
    try {
      evaluateExpression(matches, { value: "", pattern });
    } catch (error) {
      throw new Error(
        `pattern ${JSON.stringify(pattern)} is not a supported regular expression (RE2 syntax: no lookaround or backreferences): ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    return {
      test: (value: string) => evaluateExpression(matches, { value, pattern }) === true,
      toString: () => `re2:${pattern}`,
    };
  },
  { code: "re2" },
);

/**
 * Ajv configured for JSON Schema 2020-12 with formats, shared by manifest and input checks.
 * With `safeRegExp`, `pattern` and `patternProperties` run on RE2 (for schemas from packs).
 */
export function createAjv(options: { safeRegExp?: boolean } = {}): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: true,
    strict: false,
    verbose: true,
    ...(options.safeRegExp === true ? { code: { regExp: re2Engine } } : {}),
  });
  addFormats(ajv);
  return ajv;
}

const inputAjv = createAjv({ safeRegExp: true });
const compiled = new Map<string, ValidateFunction>();

/**
 * Compiles a pack-supplied input schema once per distinct schema. Throws with ajv's message
 * when the schema itself is invalid.
 */
export function compileInputSchema(schema: unknown): ValidateFunction {
  const key = canonicalize(schema) ?? "null";
  let validate = compiled.get(key);
  if (validate === undefined) {
    validate = inputAjv.compile(schema as object);
    if (compiled.size > 1000) compiled.clear();
    compiled.set(key, validate);
  }
  return validate;
}

/** One sentence per ajv error, e.g. `/port: must be <= 65535`. */
export function describeSchemaErrors(errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((error) =>
    `${error.instancePath || "value"} ${error.message ?? "is invalid"}`.trim(),
  );
}
