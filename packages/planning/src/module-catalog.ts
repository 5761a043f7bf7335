/**
 * The step modules packrun ships (`run.uses`), each with the JSON Schema of its `with`
 * parameters. String values may hold `{{ }}` templates unless noted.
 */

const envVars = {
  type: "object",
  propertyNames: { pattern: "^[A-Za-z_][A-Za-z0-9_]*$" },
  additionalProperties: { type: ["string", "number", "boolean"] },
} as const;

const stringList = { type: "array", items: { type: "string" } } as const;

export const moduleCatalog = {
  "builtin:shell": {
    description: "Runs a program (argv) or a /bin/sh script in the step's workdir.",
    schema: {
      type: "object",
      additionalProperties: false,
      properties: {
        argv: { ...stringList, minItems: 1 },
        script: { type: "string", minLength: 1 },
        env: envVars,
        workdir: { type: "string" },
      },
    },
  },
  "builtin:container": {
    description: "Runs a command in an OCI image (podman or docker).",
    schema: {
      type: "object",
      additionalProperties: false,
      required: ["image"],
      properties: {
        image: { type: "string", minLength: 1 },
        command: stringList,
        env: envVars,
        workdir: { type: "string" },
      },
    },
  },
  "builtin:bundle.ingest": {
    description:
      "Verifies a file's SHA-256, stages it to bundles/<sha256>/<filename> and writes metadata.json.",
    schema: {
      type: "object",
      additionalProperties: false,
      required: ["path", "sha256"],
      properties: {
        path: { type: "string", minLength: 1 },
        sha256: { type: "string", minLength: 1 },
        filename: { type: "string", minLength: 1 },
      },
    },
  },
  "builtin:noop": {
    description: "Does nothing and succeeds; useful for structure and tests.",
    schema: {
      type: "object",
      additionalProperties: false,
      properties: { message: { type: "string" } },
    },
  },
} as const;

/** A module name packrun knows. */
export type ModuleName = keyof typeof moduleCatalog;

/** True when `uses` names a shipped module. */
export function isKnownModule(uses: string): uses is ModuleName {
  return Object.hasOwn(moduleCatalog, uses);
}
