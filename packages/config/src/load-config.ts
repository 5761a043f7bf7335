import { readFileSync } from "node:fs";
import { PackrunError } from "@packrun/errors";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Environment to read; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Maps environment variable names to dotted config paths, e.g. `{ PACKRUN_PORT: "port" }`. */
  envMap: Readonly<Record<string, string>>;
  /** Optional YAML or JSON config file; env `PACKRUN_CONFIG` names one when this is absent. */
  file?: string;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}

/**
 * Builds a config object from a file (lowest precedence) and environment variables, then
 * validates it. Every invalid value is reported at once, each naming where it came from
 * (`PACKRUN_PORT (port): ...` or `config.yaml: port: ...`), as a CONFIG_INVALID error.
 */
export function loadConfig<Schema extends z.ZodType>(
  schema: Schema,
  options: LoadConfigOptions,
): z.infer<Schema> {
  const env = options.env ?? process.env;
  const file = options.file ?? env.PACKRUN_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file !== undefined && file !== "") {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (cause) {
      throw new PackrunError("CONFIG_INVALID", `cannot read config file ${file}`, { cause });
    }
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new PackrunError("CONFIG_INVALID", `${file}: expected a mapping at the top level`);
      }
      raw = parsed as Record<string, unknown>;
    }
  }
  const sourceOf = new Map<string, string>();
  for (const [name, path] of Object.entries(options.envMap)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    setPath(raw, path, value);
    sourceOf.set(path, name);
  }
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const path = issue.path.join(".");
    // An issue inside a value (`auth.algorithms.0`) belongs to the variable that set the
    // value (`auth.algorithms`): the longest set path that prefixes it.
    const keys = issue.path.map(String);
    let envName: string | undefined;
    for (let length = keys.length; length > 0 && envName === undefined; length--)
      envName = sourceOf.get(keys.slice(0, length).join("."));
    const where = envName !== undefined ? `${envName} (${path})` : `${file ?? "config"}: ${path}`;
    return `${where}: ${issue.message}`;
  });
  throw new PackrunError("CONFIG_INVALID", `invalid configuration:\n  ${lines.join("\n  ")}`, {
    details: { issues: lines },
  });
}
