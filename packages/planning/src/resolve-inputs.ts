import { DiagnosticList } from "./diagnostic.ts";
import { compileInputSchema, describeSchemaErrors } from "./json-schema.ts";
import type { InputDeclaration, InputType } from "./manifest-types.ts";
import type { ValidatedManifest } from "./validate-manifest.ts";

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function matchesType(type: InputType, value: unknown): boolean {
  switch (type) {
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return typeof value === "number" && Number.isSafeInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "array":
      return Array.isArray(value);
    case "object":
      return typeof value === "object" && value !== null && !Array.isArray(value);
  }
}

/** Why `value` is not acceptable for `input` (its type and JSON Schema), or undefined when it is. */
export function checkInputValue(input: InputDeclaration, value: unknown): string | undefined {
  if (input.type !== undefined && !matchesType(input.type, value)) {
    return `must be ${input.type === "integer" ? "an" : "a"} ${input.type}, got ${typeOf(value)}`;
  }
  if (input.schema !== undefined) {
    const validate = compileInputSchema(input.schema);
    if (!validate(value))
      return `does not match its schema: ${describeSchemaErrors(validate.errors).join("; ")}`;
  }
  return undefined;
}

/** True when `$runtime` is a key anywhere in `value`: plans use it to mark run-time values. */
function containsReservedKey(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(containsReservedKey);
  if (value !== null && typeof value === "object") {
    return Object.hasOwn(value, "$runtime") || Object.values(value).some(containsReservedKey);
  }
  return false;
}

/**
 * The input values a plan uses: supplied values checked against their declarations, defaults
 * filled in, optional inputs without a value set to null (so `inputs.x == null` is readable).
 * Unknown or missing inputs and bad values are reported all at once.
 */
export function resolveInputs(
  model: ValidatedManifest,
  supplied: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const diagnostics = new DiagnosticList();
  const declarations = model.manifest.spec.inputs ?? [];
  const none = { line: 0, column: 0 };
  for (const name of Object.keys(supplied)) {
    if (!declarations.some((input) => input.name === name)) {
      const known = declarations.map((input) => input.name).join(", ") || "none";
      diagnostics.add(
        "INPUT_UNKNOWN",
        ["inputs", name],
        none,
        `input "${name}" is not declared by the pack (declared: ${known})`,
      );
    }
  }
  const resolved: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(supplied)) {
    if (containsReservedKey(value)) {
      diagnostics.add(
        "INPUT_INVALID",
        ["inputs", name],
        none,
        `input "${name}" contains the reserved key "$runtime"`,
      );
    }
  }
  declarations.forEach((input, index) => {
    // A supplied null means "not given": the default applies, or the input is missing.
    const given =
      Object.hasOwn(supplied, input.name) && supplied[input.name] !== null
        ? supplied[input.name]
        : undefined;
    const value = given ?? input.default;
    if (value === undefined) {
      if (input.required === true) {
        const path = ["spec", "inputs", index];
        diagnostics.add(
          "INPUT_MISSING",
          ["inputs", input.name],
          model.source.locate(path),
          `required input "${input.name}" is missing`,
        );
      }
      resolved[input.name] = null;
      return;
    }
    if (given !== undefined) {
      const problem = checkInputValue(input, given);
      if (problem !== undefined)
        diagnostics.add(
          "INPUT_INVALID",
          ["inputs", input.name],
          none,
          `input "${input.name}" ${problem}`,
        );
    }
    resolved[input.name] = value;
  });
  diagnostics.throwIfAny();
  return resolved;
}
