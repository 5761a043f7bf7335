/**
 * Renders the gateway's OpenAPI document as the Markdown endpoint reference in docs/api.md, so
 * the reference is generated from the same schemas the routes validate with.
 */
import { PackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { buildGatewayApp } from "./gateway-app.ts";
import { createGatewayMetrics } from "./gateway-metrics.ts";
import { createServiceClients } from "./service-clients.ts";

interface SchemaObject {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, SchemaObject>;
  required?: string[];
  items?: SchemaObject;
  anyOf?: SchemaObject[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  default?: unknown;
  additionalProperties?: SchemaObject | boolean;
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: {
    name: string;
    in: string;
    required?: boolean;
    schema?: SchemaObject;
    description?: string;
  }[];
  requestBody?: { content: Record<string, { schema: SchemaObject }> };
  responses: Record<
    string,
    { description?: string; content?: Record<string, { schema: SchemaObject }> }
  >;
}

/** The parts of an OpenAPI 3.1 document the renderer reads. */
export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
}

function typeOf(schema: SchemaObject | undefined): string {
  if (schema === undefined) return "any";
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  if (schema.enum !== undefined)
    return schema.enum.map((v) => `\`${JSON.stringify(v)}\``).join(" | ");
  if (schema.anyOf !== undefined) return schema.anyOf.map(typeOf).join(" | ");
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (type === "array") {
    const item = typeOf(schema.items);
    return item.includes(" | ") ? `(${item})[]` : `${item}[]`;
  }
  if (
    type === "object" &&
    schema.properties === undefined &&
    typeof schema.additionalProperties === "object"
  )
    return `map of ${typeOf(schema.additionalProperties)}`;
  if (type === "object" && schema.title !== undefined) return schema.title;
  if (schema.format !== undefined && type === "string") return `string (${schema.format})`;
  return type ?? "any";
}

function cell(text: string | undefined): string {
  return (text ?? "").replaceAll("|", "\\|").replaceAll("\n", " ");
}

function fieldsTable(schema: SchemaObject): string[] {
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) return [];
  const required = new Set(schema.required ?? []);
  return [
    "| Field | Type | Required | Description |",
    "| ----- | ---- | -------- | ----------- |",
    ...properties.map(
      ([name, property]) =>
        `| \`${name}\` | ${cell(typeOf(property))} | ${required.has(name) ? "yes" : "no"} | ${cell(
          [
            property.description,
            property.default === undefined
              ? ""
              : `Default \`${JSON.stringify(property.default)}\`.`,
          ]
            .filter(Boolean)
            .join(" "),
        )} |`,
    ),
  ];
}

/** The Markdown reference of every operation, grouped by tag, in document order. */
export function renderOpenApiMarkdown(document: OpenApiDocument): string {
  const byTag = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const lines: string[] = [`### \`${method.toUpperCase()} ${path}\``, ""];
      if (operation.summary !== undefined) lines.push(`${operation.summary}.`, "");
      if (operation.description !== undefined) lines.push(operation.description, "");
      const scope = operation.security?.[0]?.bearerAuth?.[0];
      lines.push(scope === undefined ? "Public: no token needed." : `Scope: \`${scope}\`.`, "");
      const parameters = operation.parameters ?? [];
      if (parameters.length > 0) {
        lines.push(
          "| Parameter | In | Type | Required | Description |",
          "| --------- | -- | ---- | -------- | ----------- |",
          ...parameters.map(
            (p) =>
              `| \`${p.name}\` | ${p.in} | ${cell(typeOf(p.schema))} | ${p.required === true ? "yes" : "no"} | ${cell(
                p.description ?? p.schema?.description,
              )} |`,
          ),
          "",
        );
      }
      const body = operation.requestBody?.content;
      if (body !== undefined) {
        const [mediaType, content] = Object.entries(body)[0] ?? [];
        if (mediaType !== undefined && content !== undefined) {
          lines.push(`Request body (\`${mediaType}\`):`, "", ...fieldsTable(content.schema), "");
        }
      }
      const responses = Object.entries(operation.responses)
        .filter(([status]) => !/^[45]XX$/.test(status))
        .map(([status, response]) => {
          const [mediaType, content] = Object.entries(response.content ?? {})[0] ?? [];
          const what =
            content === undefined ? "" : ` \`${mediaType}\` ${cell(typeOf(content.schema))}`;
          return `\`${status}\`${what}`;
        });
      lines.push(`Responses: ${responses.join(", ")}; errors as problem documents.`, "");
      const tag = operation.tags?.[0] ?? "other";
      byTag.set(tag, [...(byTag.get(tag) ?? []), ...lines]);
    }
  }
  const titles: Record<string, string> = {
    runs: "Runs",
    evidence: "Evidence",
    packs: "Pack registry",
    simulations: "Simulations",
    operations: "Operations",
  };
  return [...byTag.entries()]
    .flatMap(([tag, lines]) => [`## ${titles[tag] ?? tag}`, "", ...lines])
    .join("\n")
    .trimEnd()
    .concat("\n");
}

/** The gateway's OpenAPI document, from an app that is built but never listens. */
export async function gatewayOpenApiDocument(): Promise<OpenApiDocument> {
  const nowhere = "http://127.0.0.1:9";
  const clients = createServiceClients({
    plannerUrl: nowhere,
    executorUrl: nowhere,
    evidenceUrl: nowhere,
  });
  const app = await buildGatewayApp({
    clients,
    verifier: {
      verify: () => Promise.reject(new PackrunError("UNAUTHENTICATED", "documentation only")),
    },
    metrics: createGatewayMetrics(),
    logger: createLogger({ service: "gateway-docs", level: "silent" }),
    bodyLimitBytes: 4 * 1024 * 1024,
    heartbeatMs: 15_000,
  });
  await app.ready();
  const document = app.swagger() as unknown as OpenApiDocument;
  await app.close();
  clients.close();
  return document;
}
