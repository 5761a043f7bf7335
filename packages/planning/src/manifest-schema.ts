/**
 * JSON Schema (2020-12) of the Task Pack manifest: the structural rules. Rules that need more
 * than structure (unique ids, references, expressions, module parameters) live in
 * validate-manifest.ts. Published as docs/task-pack.schema.json.
 */

const name = { type: "string", pattern: "^[A-Za-z][A-Za-z0-9_-]{0,63}$" } as const;
const duration = {
  oneOf: [
    { type: "integer", minimum: 1 },
    { type: "string", pattern: "^(?=\\d)(\\d+d)?(\\d+h)?(\\d+m)?(\\d+s)?(\\d+ms)?$" },
  ],
} as const;

const retryPolicy = {
  type: "object",
  additionalProperties: false,
  properties: {
    maxAttempts: { type: "integer", minimum: 1, maximum: 100 },
    backoffSeconds: { type: "number", minimum: 0, maximum: 86400 },
    backoff: { enum: ["fixed", "exponential"] },
    maxBackoffSeconds: { type: "number", minimum: 0, maximum: 86400 },
    jitter: { oneOf: [{ type: "boolean" }, { type: "number", minimum: 0, maximum: 1 }] },
  },
} as const;

export const manifestSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  $id: "https://packrun.dev/schemas/task-pack.v1.json",
  title: "Task Pack manifest (stellaops.io/pack.v1)",
  type: "object",
  additionalProperties: false,
  required: ["apiVersion", "kind", "metadata", "spec"],
  properties: {
    apiVersion: { const: "stellaops.io/pack.v1" },
    kind: { const: "TaskPack" },
    metadata: {
      type: "object",
      additionalProperties: false,
      required: ["name", "version"],
      properties: {
        name: { type: "string", pattern: "^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$" },
        version: { type: "string", maxLength: 64 },
        description: { type: "string", maxLength: 4096 },
        tags: {
          type: "array",
          maxItems: 32,
          items: { type: "string", pattern: "^[a-z0-9][a-z0-9._-]{0,63}$" },
        },
      },
    },
    spec: {
      type: "object",
      additionalProperties: false,
      required: ["steps"],
      properties: {
        inputs: {
          type: "array",
          maxItems: 256,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["name"],
            properties: {
              name,
              type: { enum: ["string", "number", "integer", "boolean", "object", "array"] },
              required: { type: "boolean" },
              default: true,
              description: { type: "string" },
              schema: { type: ["object", "boolean"] },
            },
          },
        },
        secrets: {
          type: "array",
          maxItems: 64,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["name"],
            properties: { name, description: { type: "string" } },
          },
        },
        approvals: {
          type: "array",
          maxItems: 64,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["id"],
            properties: {
              id: name,
              grants: { type: "array", items: { type: "string", minLength: 1 } },
              required: { type: "integer", minimum: 1, maximum: 100 },
              expiresAfter: duration,
              reason: { type: "string" },
            },
          },
        },
        policies: {
          type: "array",
          maxItems: 64,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["name", "expression"],
            properties: {
              name,
              expression: { type: "string", minLength: 1 },
              description: { type: "string" },
            },
          },
        },
        failure: {
          type: "object",
          additionalProperties: false,
          properties: { retries: retryPolicy },
        },
        timeout: duration,
        sandbox: {
          type: "object",
          additionalProperties: false,
          properties: {
            mode: { enum: ["open", "sealed"] },
            egressAllowlist: { type: "array", items: { type: "string", minLength: 1 } },
          },
        },
        steps: { type: "array", minItems: 1, items: { $ref: "#/$defs/step" } },
        outputs: {
          type: "array",
          items: {
            type: "object",
            additionalProperties: false,
            required: ["name", "type"],
            properties: {
              name,
              type: { enum: ["file", "object"] },
              path: { type: "string", minLength: 1 },
              expression: { type: "string", minLength: 1 },
            },
          },
        },
      },
    },
  },
  $defs: {
    step: {
      type: "object",
      additionalProperties: false,
      required: ["id"],
      properties: {
        id: { type: "string" },
        name: { type: "string", maxLength: 256 },
        when: { type: ["string", "boolean"] },
        timeout: duration,
        retries: retryPolicy,
        run: {
          type: "object",
          additionalProperties: false,
          required: ["uses"],
          properties: {
            uses: { type: "string", minLength: 1 },
            with: { type: "object" },
            artifacts: {
              type: "array",
              items: {
                type: "object",
                additionalProperties: false,
                required: ["name", "path"],
                properties: { name, path: { type: "string", minLength: 1 } },
              },
            },
            outputs: {
              type: "object",
              maxProperties: 64,
              propertyNames: name,
              additionalProperties: {
                type: "object",
                additionalProperties: false,
                properties: {
                  type: { enum: ["string", "json"] },
                  schema: { type: ["object", "boolean"] },
                  description: { type: "string" },
                },
              },
            },
          },
        },
        parallel: {
          type: "object",
          additionalProperties: false,
          required: ["steps"],
          properties: {
            steps: { type: "array", minItems: 1, items: { $ref: "#/$defs/step" } },
            maxParallel: { type: "integer", minimum: 0 },
            continueOnError: { type: "boolean" },
          },
        },
        map: {
          type: "object",
          additionalProperties: false,
          required: ["items", "step"],
          properties: {
            items: { type: ["array", "string"] },
            step: { $ref: "#/$defs/step" },
            maxParallel: { type: "integer", minimum: 0 },
            continueOnError: { type: "boolean" },
          },
        },
        gate: {
          type: "object",
          additionalProperties: false,
          minProperties: 1,
          maxProperties: 1,
          properties: {
            approval: {
              type: "object",
              additionalProperties: false,
              required: ["id"],
              properties: { id: { type: "string" }, message: { type: "string" } },
            },
            policy: {
              type: "object",
              additionalProperties: false,
              required: ["policy"],
              properties: {
                policy: { type: "string" },
                parameters: { type: "object" },
                failAction: { enum: ["fail", "warn"] },
              },
            },
          },
        },
      },
    },
  },
} as const;
