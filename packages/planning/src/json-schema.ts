import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import * as ajvFormats from "ajv-formats";
import canonicalize from "canonicalize";

// ajv-formats is CommonJS: under Node's ESM interop its plugin is `default.default`.
type FormatsPlugin = (ajv: Ajv2020) => Ajv2020;
const formatsModule = ajvFormats as unknown as {
  default: FormatsPlugin | { default: FormatsPlugin };
};
const addFormats: FormatsPlugin =
  typeof formatsModule.default === "function"
    ? formatsModule.default
    : formatsModule.default.default;

/** Ajv configured for JSON Schema 2020-12 with formats, shared by manifest and input checks. */
export function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true });
  addFormats(ajv);
  return ajv;
}

const inputAjv = createAjv();
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
