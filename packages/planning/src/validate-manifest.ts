import type { ErrorObject, ValidateFunction } from "ajv";
import semver from "semver";
import { DiagnosticList, type DocumentPath, PackValidationError } from "./diagnostic.ts";
import { EgressRuleError, parseEgressRule } from "./egress-rule.ts";
import {
  type Expression,
  ExpressionError,
  parseExpression,
  parseTemplate,
  type Reference,
  type Template,
  templateExpressions,
} from "./expression.ts";
import { compileInputSchema, createAjv } from "./json-schema.ts";
import type { PackLimits } from "./limits.ts";
import { manifestSchema } from "./manifest-schema.ts";
import type { PackManifest, StepDeclaration } from "./manifest-types.ts";
import { isKnownModule, moduleCatalog } from "./module-catalog.ts";
import { checkInputValue } from "./resolve-inputs.ts";
import type { YamlSource } from "./yaml-source.ts";

/** A declared step and where it sits. */
export interface StepSite {
  readonly declaration: StepDeclaration;
  readonly path: DocumentPath;
  /** Index of the top-level step that contains it (itself when top-level). */
  readonly topIndex: number;
  /** Declared id of the enclosing parallel or map step. */
  readonly parentId: string | undefined;
  /** True inside a map's step template, where `item` and `index` are bound. */
  readonly inMapTemplate: boolean;
}

/** A manifest that passed validation, with everything planning needs to find again. */
export interface ValidatedManifest {
  readonly manifest: PackManifest;
  readonly source: YamlSource;
  /** Every declared step by id, in document order. */
  readonly steps: ReadonlyMap<string, StepSite>;
  /** Parsed template for every templated string, keyed by its formatted document path. */
  readonly templates: ReadonlyMap<string, Template>;
  /** Parsed `when` expressions and policy expressions, keyed by formatted document path. */
  readonly expressions: ReadonlyMap<string, Expression>;
}

const ajv = createAjv();
const validateStructure: ValidateFunction = ajv.compile(manifestSchema);
const validateModule = new Map(
  Object.entries(moduleCatalog).map(([name, entry]) => [name, ajv.compile(entry.schema)]),
);

const stepId = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

function pathFromPointer(pointer: string): (string | number)[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((raw) => raw.replaceAll("~1", "/").replaceAll("~0", "~"))
    .map((segment) => (/^\d+$/.test(segment) ? Number(segment) : segment));
}

function describe(error: ErrorObject): {
  path: (string | number)[];
  message: string;
  atKey?: boolean;
} {
  const path = pathFromPointer(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties":
      return {
        path: [...path, String(params.additionalProperty)],
        message: `unknown field "${String(params.additionalProperty)}"`,
        atKey: true,
      };
    case "required":
      return { path, message: `missing required field "${String(params.missingProperty)}"` };
    case "const":
      return { path, message: `must be ${JSON.stringify(params.allowedValue)}` };
    case "enum":
      return {
        path,
        message: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "oneOf":
      return {
        path,
        message:
          path.at(-1) === "jitter"
            ? "must be a boolean or a number from 0 to 1"
            : "must be a duration: whole seconds or a string such as 30s, 5m, 1h30m",
      };
    case "minProperties":
    case "maxProperties":
      return { path, message: "must have exactly one of approval or policy" };
    case "type": {
      const article = (type: string) => (/^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`);
      return {
        path,
        message: `must be ${String(params.type).split(",").map(article).join(" or ")}`,
      };
    }
    default:
      return { path, message: error.message ?? "is invalid" };
  }
}

function structuralErrors(
  errors: readonly ErrorObject[],
  diagnostics: DiagnosticList,
  source: YamlSource,
): void {
  // Errors inside a oneOf branch are noise once the oneOf itself is reported.
  const oneOfPaths = new Set(
    errors.filter((e) => e.keyword === "oneOf").map((e) => e.instancePath),
  );
  const seen = new Set<string>();
  for (const error of errors) {
    if (
      error.keyword !== "oneOf" &&
      oneOfPaths.has(error.instancePath) &&
      error.schemaPath.includes("/oneOf/")
    )
      continue;
    const { path, message, atKey } = describe(error);
    const key = `${path.join("/")}:${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    diagnostics.add("PACK_SCHEMA", path, source.locate(path, { key: atKey === true }), message);
  }
}

/** Collects every step with its site, checking ids and kinds on the way. */
function collectSteps(
  manifest: PackManifest,
  source: YamlSource,
  diagnostics: DiagnosticList,
  limits: PackLimits,
): { steps: Map<string, StepSite>; sites: StepSite[] } {
  const steps = new Map<string, StepSite>();
  // Every site, duplicates included, so a duplicate's own problems are reported too.
  const sites: StepSite[] = [];
  const visit = (
    declaration: StepDeclaration,
    path: DocumentPath,
    topIndex: number,
    parentId: string | undefined,
    inMapTemplate: boolean,
  ): void => {
    const idPath = [...path, "id"];
    const id = declaration.id;
    const site = { declaration, path, topIndex, parentId, inMapTemplate };
    sites.push(site);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: reporting them is the point
    const control = /[\u0000-\u001f\u007f-\u009f]/.exec(id);
    if (control !== null) {
      const code = control[0].codePointAt(0)?.toString(16).padStart(4, "0");
      diagnostics.add(
        "PACK_SCHEMA",
        idPath,
        source.locate(idPath),
        `step id contains control character U+${code}`,
      );
    } else if (!stepId.test(id)) {
      diagnostics.add(
        "PACK_SCHEMA",
        idPath,
        source.locate(idPath),
        `step id ${JSON.stringify(id)} must start with a letter and contain only letters, digits, "_" and "-" (at most 64)`,
      );
    } else if (steps.has(id)) {
      const first = steps.get(id) as StepSite;
      const at = source.locate(first.path);
      diagnostics.add(
        "PACK_DUPLICATE_ID",
        idPath,
        source.locate(idPath),
        `step id "${id}" is already used at line ${at.line}:${at.column}`,
      );
    } else {
      steps.set(id, site);
    }
    if (sites.length > limits.maxDeclaredSteps) {
      throw new PackValidationError([
        {
          code: "PACK_LIMIT",
          path: "spec.steps",
          line: 0,
          column: 0,
          message: `more than ${limits.maxDeclaredSteps} steps declared`,
        },
      ]);
    }
    const kinds = (["run", "parallel", "map", "gate"] as const).filter(
      (kind) => declaration[kind] !== undefined,
    );
    if (kinds.length !== 1) {
      const message =
        kinds.length === 0
          ? "a step needs exactly one of run, parallel, map or gate"
          : `a step has exactly one of run, parallel, map or gate; found ${kinds.join(" and ")}`;
      diagnostics.add("PACK_SCHEMA", path, source.locate(path), message);
    }
    declaration.parallel?.steps.forEach((child, index) => {
      visit(child, [...path, "parallel", "steps", index], topIndex, id, inMapTemplate);
    });
    if (declaration.map !== undefined) {
      visit(declaration.map.step, [...path, "map", "step"], topIndex, id, true);
    }
  };
  manifest.spec.steps.forEach((step, index) => {
    visit(step, ["spec", "steps", index], index, undefined, false);
  });
  return { steps, sites };
}

/** What an expression at some place in the manifest may read. */
interface Scope {
  /** Top-level index of the step the expression belongs to; undefined = after all steps. */
  topIndex: number | undefined;
  inMapTemplate: boolean;
  secrets: boolean;
  policy: boolean;
}

function checkReference(
  reference: Reference,
  scope: Scope,
  model: { manifest: PackManifest; steps: Map<string, StepSite> },
): string | undefined {
  const [first, second] = reference.path;
  const spec = model.manifest.spec;
  switch (reference.root) {
    case "inputs":
      if (first !== undefined && !(spec.inputs ?? []).some((input) => input.name === first)) {
        return `unknown input "${first}"; declared inputs: ${(spec.inputs ?? []).map((i) => i.name).join(", ") || "none"}`;
      }
      return undefined;
    case "secrets":
      if (!scope.secrets)
        return "secrets can only be read in a run step's with.env values (they reach the step as environment variables)";
      if (first !== undefined && !(spec.secrets ?? []).some((secret) => secret.name === first)) {
        return `unknown secret "${first}"; declare it under spec.secrets`;
      }
      return undefined;
    case "item":
    case "index":
      return scope.inMapTemplate
        ? undefined
        : `"${reference.root}" is only defined inside a map step template`;
    case "run":
    case "parameters":
      return scope.policy ? undefined : `"${reference.root}" is only defined in policy expressions`;
    case "steps": {
      if (first === undefined)
        return 'read a step as steps.<id>.outputs.<name> or steps["<id>"].outputs.<name>';
      const target = model.steps.get(first);
      if (target === undefined) return `unknown step "${first}"`;
      if (second !== undefined && second !== "outputs" && second !== "status") {
        return `steps.${first} has "outputs" and "status", not "${second}"`;
      }
      if (target.inMapTemplate) {
        return `step "${first}" runs once per map item; read the map step instead (steps.${target.parentId ?? "<map>"})`;
      }
      if (scope.topIndex !== undefined && target.topIndex >= scope.topIndex) {
        return `step "${first}" does not finish before this point; only steps in earlier top-level positions can be read`;
      }
      return undefined;
    }
    default:
      return `unknown name "${reference.root}"; expressions can read inputs, steps, secrets, item and index`;
  }
}

const reservedEnv = /^(PACKRUN_|LD_)/;
const sha256Literal = /^(sha256:)?[0-9a-f]{64}$/;
const plainFileName = /^(?!\.{1,2}$)[^/\\]+$/;

/** Module-independent rules for run parameters that the module schemas cannot express. */
function checkRunParameters(
  run: NonNullable<StepDeclaration["run"]>,
  withPath: DocumentPath,
  runPath: DocumentPath,
  add: (code: "PACK_SCHEMA", path: DocumentPath, message: string) => void,
): void {
  const parameters = run.with ?? {};
  const env = parameters.env;
  if (env !== null && typeof env === "object") {
    for (const name of Object.keys(env)) {
      if (reservedEnv.test(name))
        add(
          "PACK_SCHEMA",
          [...withPath, "env", name],
          `environment variable ${name} is reserved (PACKRUN_* and LD_* are set by packrun or could hijack the process)`,
        );
    }
  }
  if (run.uses === "builtin:bundle.ingest") {
    const { sha256, filename } = parameters as { sha256?: unknown; filename?: unknown };
    if (typeof sha256 === "string" && !sha256.includes("{{") && !sha256Literal.test(sha256)) {
      add(
        "PACK_SCHEMA",
        [...withPath, "sha256"],
        "must be 64 lowercase hex characters, optionally prefixed with sha256:",
      );
    }
    if (typeof filename === "string" && !filename.includes("{{") && !plainFileName.test(filename)) {
      add(
        "PACK_SCHEMA",
        [...withPath, "filename"],
        "must be a plain file name (no directories, not . or ..)",
      );
    }
  }
  const names = new Set<string>();
  (run.artifacts ?? []).forEach((artifact, index) => {
    const at = [...runPath, "artifacts", index];
    if (names.has(artifact.name))
      add("PACK_SCHEMA", [...at, "name"], `artifact "${artifact.name}" is declared twice`);
    names.add(artifact.name);
    if (artifact.path.startsWith("/") || artifact.path.split(/[\\/]/).includes("..")) {
      add(
        "PACK_SCHEMA",
        [...at, "path"],
        "must be a relative path inside the step's workdir (no leading / and no ..)",
      );
    }
  });
}

/** Validates structure and meaning of a parsed manifest; throws a {@link PackValidationError}. */
export function validateManifest(source: YamlSource, limits: PackLimits): ValidatedManifest {
  const diagnostics = new DiagnosticList();
  if (typeof source.value !== "object" || source.value === null || Array.isArray(source.value)) {
    diagnostics.add(
      "PACK_SCHEMA",
      [],
      { line: 1, column: 1 },
      "a manifest is a mapping with apiVersion, kind, metadata and spec",
    );
    diagnostics.throwIfAny();
  }
  if (!validateStructure(source.value)) {
    structuralErrors(validateStructure.errors ?? [], diagnostics, source);
    diagnostics.throwIfAny();
  }
  const manifest = source.value as PackManifest;
  const spec = manifest.spec;
  const add = (code: Parameters<DiagnosticList["add"]>[0], path: DocumentPath, message: string) =>
    diagnostics.add(code, path, source.locate(path), message);

  if (semver.valid(manifest.metadata.version) !== manifest.metadata.version) {
    add(
      "PACK_SCHEMA",
      ["metadata", "version"],
      `"${manifest.metadata.version}" is not a semantic version in canonical form such as 1.2.0 (no "v" prefix, no build metadata)`,
    );
  }
  const unique = (
    list: { name?: string; id?: string }[] | undefined,
    field: "name" | "id",
    where: string,
  ) => {
    const seen = new Set<string>();
    (list ?? []).forEach((entry, index) => {
      const value = entry[field] as string;
      if (seen.has(value))
        add(
          "PACK_DUPLICATE_ID",
          ["spec", where, index, field],
          `${where} ${field} "${value}" is declared twice`,
        );
      seen.add(value);
    });
  };
  (spec.sandbox?.egressAllowlist ?? []).forEach((entry, index) => {
    try {
      parseEgressRule(entry);
    } catch (error) {
      if (!(error instanceof EgressRuleError)) throw error;
      add("PACK_SCHEMA", ["spec", "sandbox", "egressAllowlist", index], error.message);
    }
  });
  if (spec.sandbox?.mode === "sealed" && (spec.sandbox.egressAllowlist ?? []).length > 0) {
    add(
      "PACK_SCHEMA",
      ["spec", "sandbox", "egressAllowlist"],
      "a sealed pack has no network: remove egressAllowlist or use mode: open",
    );
  }
  // A bare output expression reads like `when`: treat it as one `{{ }}` template.
  for (const output of spec.outputs ?? []) {
    if (output.expression !== undefined && !output.expression.includes("{{"))
      output.expression = `{{ ${output.expression} }}`;
  }
  unique(spec.inputs, "name", "inputs");
  unique(spec.secrets, "name", "secrets");
  unique(spec.approvals, "id", "approvals");
  unique(spec.policies, "name", "policies");
  unique(spec.outputs, "name", "outputs");

  (spec.inputs ?? []).forEach((input, index) => {
    if (input.schema !== undefined) {
      try {
        compileInputSchema(input.schema);
      } catch (error) {
        add(
          "PACK_SCHEMA",
          ["spec", "inputs", index, "schema"],
          `invalid JSON Schema: ${error instanceof Error ? error.message : String(error)}`,
        );
        return;
      }
    }
    if (input.default !== undefined) {
      const problem = checkInputValue(input, input.default);
      if (problem !== undefined)
        add("PACK_SCHEMA", ["spec", "inputs", index, "default"], `default ${problem}`);
    }
  });

  const { steps, sites } = collectSteps(manifest, source, diagnostics, limits);
  const model = { manifest, steps };
  const templates = new Map<string, Template>();
  const expressions = new Map<string, Expression>();

  const checkExpression = (expression: Expression, path: DocumentPath, scope: Scope) => {
    for (const reference of expression.references) {
      const problem = checkReference(reference, scope, model);
      if (problem !== undefined)
        add("PACK_UNKNOWN_REFERENCE", path, `${problem} (in \`${expression.source}\`)`);
    }
  };
  const keyOf = (path: DocumentPath) => JSON.stringify(path);
  /** Finds and checks templates in every string below `value`. */
  const scanTemplates = (
    value: unknown,
    path: DocumentPath,
    scope: (path: DocumentPath) => Scope,
  ): void => {
    if (typeof value === "string") {
      let template: Template | undefined;
      try {
        template = parseTemplate(value, limits.maxExpressionLength);
      } catch (error) {
        if (!(error instanceof ExpressionError)) throw error;
        add("PACK_EXPRESSION", path, error.message);
        return;
      }
      if (template === undefined) return;
      templates.set(keyOf(path), template);
      for (const expression of templateExpressions(template))
        checkExpression(expression, path, scope(path));
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => {
        scanTemplates(item, [...path, index], scope);
      });
    } else if (value !== null && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) scanTemplates(inner, [...path, key], scope);
    }
  };
  const parseInto = (source: string, path: DocumentPath, scope: Scope) => {
    try {
      const expression = parseExpression(source, limits.maxExpressionLength);
      expressions.set(keyOf(path), expression);
      checkExpression(expression, path, scope);
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      add("PACK_EXPRESSION", path, error.message);
    }
  };

  const approvalIds = new Set((spec.approvals ?? []).map((approval) => approval.id));
  const policyNames = new Set((spec.policies ?? []).map((policy) => policy.name));
  for (const site of sites) {
    const { declaration, path } = site;
    const scope: Scope = {
      topIndex: site.topIndex,
      inMapTemplate: site.inMapTemplate,
      secrets: false,
      policy: false,
    };
    if (typeof declaration.when === "string") {
      const text = declaration.when.trim();
      const bare = text.startsWith("{{") && text.endsWith("}}") ? text.slice(2, -2).trim() : text;
      parseInto(bare, [...path, "when"], scope);
    }
    const run = declaration.run;
    if (run !== undefined) {
      const withPath = [...path, "run", "with"];
      if (!isKnownModule(run.uses)) {
        add(
          "PACK_SCHEMA",
          [...path, "run", "uses"],
          `unknown module "${run.uses}"; available: ${Object.keys(moduleCatalog).join(", ")}`,
        );
      } else {
        const validate = validateModule.get(run.uses) as ValidateFunction;
        if (!validate(run.with ?? {})) {
          for (const error of validate.errors ?? []) {
            const { path: inner, message, atKey } = describe(error);
            const at = [...withPath, ...inner];
            diagnostics.add(
              "PACK_SCHEMA",
              at,
              source.locate(at, { key: atKey === true }),
              `${run.uses}: ${message}`,
            );
          }
        }
        checkRunParameters(run, withPath, [...path, "run"], add);
        if (run.uses === "builtin:shell") {
          const hasArgv = run.with?.argv !== undefined;
          const hasScript = run.with?.script !== undefined;
          if (hasArgv === hasScript)
            add("PACK_SCHEMA", withPath, "builtin:shell needs exactly one of argv or script");
          if (typeof run.with?.script === "string" && run.with.script.includes("{{")) {
            add(
              "PACK_EXPRESSION",
              [...withPath, "script"],
              'templates are not allowed inside a shell script (they could inject commands); pass values through env and read them as "$NAME"',
            );
          }
        }
      }
      for (const [outputName, output] of Object.entries(run.outputs ?? {})) {
        const outputPath = [...path, "run", "outputs", outputName];
        if (output.schema === undefined) continue;
        if (output.type === "string") {
          add(
            "PACK_SCHEMA",
            [...outputPath, "schema"],
            `output "${outputName}" has a schema but type string; a schema needs type: json`,
          );
          continue;
        }
        try {
          compileInputSchema(output.schema);
        } catch (error) {
          add(
            "PACK_SCHEMA",
            [...outputPath, "schema"],
            `invalid JSON Schema: ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      }
      scanTemplates(run.with ?? {}, withPath, (at) => ({
        ...scope,
        secrets: at[withPath.length] === "env",
      }));
    }
    if (declaration.map !== undefined) {
      const itemsPath = [...path, "map", "items"];
      // Items are evaluated where the map step sits, outside its own template.
      scanTemplates(declaration.map.items, itemsPath, () => scope);
      if (typeof declaration.map.items === "string" && !templates.get(keyOf(itemsPath))?.whole) {
        add(
          "PACK_EXPRESSION",
          itemsPath,
          "map items must be a list or a single {{ expression }} that evaluates to one",
        );
      }
    }
    const gate = declaration.gate;
    if (gate?.approval !== undefined && !approvalIds.has(gate.approval.id)) {
      add(
        "PACK_UNKNOWN_REFERENCE",
        [...path, "gate", "approval", "id"],
        `approval "${gate.approval.id}" is not declared under spec.approvals`,
      );
    }
    if (gate?.policy !== undefined) {
      if (!policyNames.has(gate.policy.policy)) {
        add(
          "PACK_UNKNOWN_REFERENCE",
          [...path, "gate", "policy", "policy"],
          `policy "${gate.policy.policy}" is not declared under spec.policies`,
        );
      }
      scanTemplates(
        gate.policy.parameters ?? {},
        [...path, "gate", "policy", "parameters"],
        () => scope,
      );
    }
  }
  (spec.policies ?? []).forEach((policy, index) => {
    parseInto(policy.expression, ["spec", "policies", index, "expression"], {
      topIndex: undefined,
      inMapTemplate: false,
      secrets: false,
      policy: true,
    });
  });
  (spec.outputs ?? []).forEach((output, index) => {
    const path = ["spec", "outputs", index];
    if ((output.path === undefined) === (output.expression === undefined)) {
      add("PACK_SCHEMA", path, "an output has exactly one of path or expression");
    }
    if (output.type === "file" && output.path === undefined)
      add("PACK_SCHEMA", path, "a file output needs a path");
    scanTemplates(output.expression, [...path, "expression"], () => ({
      topIndex: undefined,
      inMapTemplate: false,
      secrets: false,
      policy: false,
    }));
    scanTemplates(output.path, [...path, "path"], () => ({
      topIndex: undefined,
      inMapTemplate: false,
      secrets: false,
      policy: false,
    }));
  });
  diagnostics.throwIfAny();
  return { manifest, source, steps, templates, expressions };
}

/** The key under which a template or expression at `path` is stored in a {@link ValidatedManifest}. */
export function siteKey(path: DocumentPath): string {
  return JSON.stringify(path);
}
