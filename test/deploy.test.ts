/**
 * Validates deploy/: the Kubernetes manifests, the compose file, the Dockerfile and its
 * entrypoint, and that they agree with each other and with the services' configuration schemas.
 *
 * - Kubernetes: every object is validated against the Kubernetes v1.36.0 OpenAPI schemas as
 *   compiled to ajv validators by the `kubernetes-models` package (types, required fields,
 *   enums), and checked for unknown fields (which those schemas allow) against the TypeScript
 *   interfaces the same package generates from the same spec.
 * - Compose: ajv against the Compose Specification JSON schema shipped by `dclint`.
 * - Dockerfile: `dockerfile-utils` lint, parsed with `dockerfile-ast`.
 * - Consistency: each service's configuration loader is fed the environment the manifests give it
 *   (the variables it reads are recorded, so an unknown variable fails), ports, probes, Service
 *   targets, the HPA target, grace periods, secrets and commands are cross-checked, and the compose
 *   services are started through the image's entrypoint with their compose environment (only
 *   hosts, ports and paths made local) and must pass their compose health checks.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, describe, test } from "node:test";
import { loadSigningKey } from "@packrun/attestation";
import { createTestDatabase, readTestEnv, type TestDatabase, uniqueName } from "@packrun/testing";
import { Ajv, type ErrorObject } from "ajv";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import ts from "typescript";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { checkHealth } from "../deploy/grpc-health-check.ts";
import {
  defaultEvidencePort,
  loadEvidenceConfig,
} from "../services/evidence/src/evidence-config.ts";
import {
  defaultExecutorPort,
  loadExecutorConfig,
} from "../services/executor/src/executor-config.ts";
import { defaultPlannerPort, loadPlannerConfig } from "../services/planner/src/planner-config.ts";

const root = path.resolve(import.meta.dirname, "..");
const deployDir = path.join(root, "deploy");
const kubernetesDir = path.join(deployDir, "kubernetes");
const read = (file: string) => readFileSync(file, "utf8");

/** The Kubernetes version whose OpenAPI schemas kubernetes-models 5.x was generated from. */
const KUBERNETES_VERSION = "1.36.0";

// ---------------------------------------------------------------------------------------------
// The services: what each one reads from its environment, and where it listens by default.

type Env = Record<string, string>;
type ServiceName = "planner" | "executor" | "evidence";

interface ServiceFacts {
  load(env: Env): Record<string, unknown> & { port: number; host: string };
  defaultPort: number;
  /** Variables read outside the configuration schema, with the file that reads each. */
  extra: Record<string, string>;
}

const services: Record<ServiceName, ServiceFacts> = {
  planner: { load: loadPlannerConfig, defaultPort: defaultPlannerPort, extra: {} },
  executor: {
    load: loadExecutorConfig,
    defaultPort: defaultExecutorPort,
    extra: {
      PACKRUN_PODMAN_ARGS: "services/executor/src/runtime/podman.ts",
      PACKRUN_BUNDLE_ROOTS: "services/executor/src/runtime/modules/bundle-ingest.ts",
    },
  },
  evidence: { load: loadEvidenceConfig, defaultPort: defaultEvidencePort, extra: {} },
};
const serviceNames = Object.keys(services) as ServiceName[];

/** Runtime variables any process may be given (Node's own). */
const processVariables = new Set(["NODE_ENV"]);

/**
 * Every environment variable a service's configuration loader reads: it is handed an
 * environment that records each lookup (the loader looks up every name it maps, then fails on
 * the missing required values, which does not matter here).
 */
function variablesReadBy(service: ServiceName): Set<string> {
  const names = new Set<string>();
  const recorder = new Proxy<Env>(
    {},
    {
      get(_target, name) {
        if (typeof name === "string") names.add(name);
        return undefined;
      },
    },
  );
  try {
    services[service].load(recorder);
  } catch {
    // required settings are missing: expected
  }
  for (const name of Object.keys(services[service].extra)) names.add(name);
  return names;
}

const known = Object.fromEntries(
  serviceNames.map((name) => [name, variablesReadBy(name)]),
) as Record<ServiceName, Set<string>>;

/** The variable a `NAME_FILE` variable sets through the entrypoint, or the name itself. */
function baseVariable(name: string): string {
  return /^(DATABASE_URL|REDIS_URL|PACKRUN_[A-Z0-9_]+)_FILE$/.test(name) ? name.slice(0, -5) : name;
}

test("the variables read outside the configuration schemas are still read there", () => {
  for (const service of serviceNames) {
    for (const [name, file] of Object.entries(services[service].extra)) {
      assert.match(
        read(path.join(root, file)),
        new RegExp(`\\b${name}\\b`),
        `${file} reads ${name}`,
      );
    }
  }
});

function assertKnown(service: ServiceName, names: Iterable<string>, where: string): void {
  for (const name of names) {
    const base = baseVariable(name);
    assert.ok(
      known[service].has(base),
      `${where}: ${name} is not a setting of the ${service} (it reads ${[...known[service]].sort().join(", ")})`,
    );
  }
}

/** Parses `env` with the service's loader; a failure names the manifest. */
function loadConfig(service: ServiceName, env: Env, where: string) {
  try {
    return services[service].load(env);
  } catch (error) {
    assert.fail(`${where}: the ${service} rejects its configuration: ${(error as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile and the entrypoint.

const dockerfileText = read(path.join(deployDir, "Dockerfile"));
const dockerfile = DockerfileParser.parse(dockerfileText);
const entrypointText = read(path.join(deployDir, "docker-entrypoint.sh"));

function instructions(keyword: string): Instruction[] {
  return dockerfile.getInstructions().filter((instruction) => instruction.getKeyword() === keyword);
}

/** ENV of the final stage: what every container of the image starts with. */
const imageEnv: Env = (() => {
  const stages = dockerfile.getFROMs();
  const lastFrom = stages[stages.length - 1];
  assert.ok(lastFrom, "the Dockerfile has a FROM");
  const env: Env = {};
  for (const instruction of dockerfile.getENVs()) {
    if (instruction.getRange().start.line < lastFrom.getRange().start.line) continue;
    for (const property of instruction.getProperties()) {
      env[property.getName()] = property.getValue() ?? "";
    }
  }
  return env;
})();

/** Commands of the entrypoint that start a service: command → script path (repo-relative). */
const entrypointCommands: Map<string, string> = (() => {
  const commands = new Map<string, string>();
  for (const match of entrypointText.matchAll(
    /^ {2}([a-z][a-z-]*)\)\n(?:.*\n)*? {4}exec node (\S+)/gm,
  )) {
    commands.set(match[1] as string, match[2] as string);
  }
  return commands;
})();

/** The packrun service a container command starts. */
function serviceOfCommand(command: unknown, where: string): ServiceName {
  assert.ok(
    typeof command === "string" && entrypointCommands.has(command),
    `${where}: command ${String(command)} is not one of the entrypoint's (${[...entrypointCommands.keys()].join(", ")})`,
  );
  assert.ok(serviceNames.includes(command as ServiceName), `${where}: ${command} is not a service`);
  return command as ServiceName;
}

describe("Dockerfile", () => {
  test("lints clean (dockerfile-utils)", () => {
    const problems = lintDockerfile(dockerfileText);
    assert.deepEqual(
      problems.map((problem) => `line ${problem.range.start.line + 1}: ${problem.message}`),
      [],
    );
  });

  test("builds on the Debian-based official node:26 image and runs as a non-root user", () => {
    const arg = instructions("ARG")
      .map((instruction) => instruction.getArgumentsContent() ?? "")
      .find((content) => content.startsWith("NODE_IMAGE="));
    assert.ok(arg, "ARG NODE_IMAGE=<base image>");
    assert.match(arg, /^NODE_IMAGE=node:26(-(slim|trixie|trixie-slim|bookworm|bookworm-slim))?$/);
    for (const from of dockerfile.getFROMs())
      assert.equal(from.getImageName(), "$" + "{NODE_IMAGE}");
    const users = instructions("USER").map((instruction) => instruction.getArgumentsContent());
    assert.ok(users.length > 0, "the image sets USER");
    assert.doesNotMatch(
      String(users[users.length - 1]),
      /^(0|root)(:|$)/,
      "the final USER is not root",
    );
    const run = instructions("RUN")
      .map((instruction) => instruction.getArgumentsContent())
      .join("\n");
    for (const pkg of ["bubblewrap", "time", "tini"]) {
      assert.match(run, new RegExp(`apt-get install [^\\n]*\\b${pkg}\\b`), `installs ${pkg}`);
    }
    assert.match(run, /npm ci --omit=dev/, "installs production dependencies from the lockfile");
    assert.equal(instructions("HEALTHCHECK").length, 0, "health is probed over gRPC");
  });

  test("the entrypoint it runs is the one in deploy/ and starts every service", () => {
    const entrypoint = instructions("ENTRYPOINT")[0]?.getArgumentsContent();
    assert.ok(entrypoint, "ENTRYPOINT is set");
    const argv = JSON.parse(entrypoint) as string[];
    assert.deepEqual(argv, ["/usr/bin/tini", "--", "/app/deploy/docker-entrypoint.sh"]);
    const workdirs = instructions("WORKDIR").map((instruction) =>
      instruction.getArgumentsContent(),
    );
    assert.equal(workdirs[workdirs.length - 1], "/app");
    const copies = instructions("COPY").map(
      (instruction) => instruction.getArgumentsContent() ?? "",
    );
    assert.ok(
      copies.some((copy) => /^deploy\/docker-entrypoint\.sh .*\bdeploy\/$/.test(copy)),
      "COPY deploy/docker-entrypoint.sh … deploy/",
    );
    assert.deepEqual([...entrypointCommands.keys()].sort(), [
      "evidence",
      "executor",
      "healthcheck",
      "planner",
    ]);
    for (const service of serviceNames) {
      assert.equal(entrypointCommands.get(service), `services/${service}/src/main.ts`);
    }
    for (const script of entrypointCommands.values()) {
      assert.ok(existsSync(path.join(root, script)), `${script} exists`);
    }
  });

  test("its environment holds only settings some service reads", () => {
    const all = new Set([...processVariables, ...serviceNames.flatMap((name) => [...known[name]])]);
    for (const name of Object.keys(imageEnv)) {
      assert.ok(all.has(name), `Dockerfile ENV ${name} is read by no service`);
    }
  });

  test("the build context keeps what the image copies", () => {
    const ignored = read(path.join(deployDir, "Dockerfile.dockerignore"))
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map(
        (pattern) =>
          new RegExp(
            `^${pattern
              .replace(/[.+^${}()|[\]\\]/g, "\\$&")
              .replace(/\*\*\//g, "(.*/)?")
              .replace(/\*/g, "[^/]*")}(/.*)?$`,
          ),
      );
    const needed = [
      "package.json",
      "package-lock.json",
      "deploy/docker-entrypoint.sh",
      "deploy/grpc-health-check.ts",
      ...serviceNames.flatMap((name) => [
        `services/${name}/package.json`,
        `services/${name}/src/main.ts`,
        `services/${name}/migrations/001-${readdirSync(path.join(root, "services", name, "migrations"))[0]?.slice(4)}`,
      ]),
      "packages/proto/src/gen/grpc/health/v1/health_pb.js",
    ];
    for (const file of needed) {
      assert.ok(existsSync(path.join(root, file)), `${file} exists`);
      const pattern = ignored.find((regex) => regex.test(file));
      assert.equal(pattern, undefined, `${file} is excluded from the build context by ${pattern}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Compose.

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  secrets?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  deploy?: { replicas?: number };
  stop_grace_period?: string;
  security_opt?: string[];
}

const composeText = read(path.join(deployDir, "compose.yaml"));
const compose = parseYaml(composeText, { merge: true, uniqueKeys: true }) as {
  services: Record<string, ComposeService>;
  secrets: Record<string, { file: string }>;
  volumes?: Record<string, unknown>;
};

function formatErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((error) => `${error.instancePath || "/"} ${error.message}`).join("\n");
}

const packrunServices = () =>
  Object.entries(compose.services).filter(([, service]) => service.build !== undefined);

/** "45s", "1m30s" → seconds. */
function durationSeconds(text: string): number {
  let total = 0;
  for (const [, value, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(value) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit as "ms" | "s" | "m" | "h"];
  }
  return total;
}

/**
 * Runs deploy/make-secrets.sh in a scratch copy of deploy/ (so its output lands there) and returns
 * the compose secret name → generated file.
 */
const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory removed when the file's tests end. */
function scratchDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

function makeSecrets(): Record<string, string> {
  const dir = scratchDir("packrun-deploy-");
  copyFileSync(path.join(deployDir, "make-secrets.sh"), path.join(dir, "make-secrets.sh"));
  const result = spawnSync("sh", [path.join(dir, "make-secrets.sh")], { encoding: "utf8" });
  assert.equal(result.status, 0, `make-secrets.sh: ${result.stdout}${result.stderr}`);
  return Object.fromEntries(
    Object.entries(compose.secrets).map(([name, secret]) => [name, path.resolve(dir, secret.file)]),
  );
}

const secretFiles = makeSecrets();

/** A compose service's environment as its process sees it (the image's, then compose's, then *_FILE). */
function composeEnv(name: string, service: ComposeService): Env {
  const env: Env = { ...imageEnv };
  for (const [variable, value] of Object.entries(service.environment ?? {})) {
    const base = baseVariable(variable);
    if (base === variable) {
      env[variable] = String(value);
      continue;
    }
    const secret = /^\/run\/secrets\/([a-z_]+)$/.exec(String(value))?.[1];
    assert.ok(secret, `compose ${name}: ${variable} points into /run/secrets`);
    assert.ok(service.secrets?.includes(secret), `compose ${name}: mounts the secret ${secret}`);
    env[base] = read(secretFiles[secret] as string).replace(/\n+$/, "");
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes.

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface LoadedObject {
  file: string;
  object: KubeObject;
  where: string;
}

/** The schema of each kind the manifests use: its model (ajv validator) and its TS interface. */
const kinds: Record<string, { model: new (data: never) => { validate(): void }; module: string }> =
  {
    "v1/Namespace": { model: Namespace, module: "kubernetes-models/v1/Namespace" },
    "v1/ConfigMap": { model: ConfigMap, module: "kubernetes-models/v1/ConfigMap" },
    "v1/Secret": { model: Secret, module: "kubernetes-models/v1/Secret" },
    "v1/Service": { model: Service, module: "kubernetes-models/v1/Service" },
    "v1/PersistentVolumeClaim": {
      model: PersistentVolumeClaim,
      module: "kubernetes-models/v1/PersistentVolumeClaim",
    },
    "apps/v1/Deployment": { model: Deployment, module: "kubernetes-models/apps/v1/Deployment" },
    "autoscaling/v2/HorizontalPodAutoscaler": {
      model: HorizontalPodAutoscaler,
      module: "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
    },
    "policy/v1/PodDisruptionBudget": {
      model: PodDisruptionBudget,
      module: "kubernetes-models/policy/v1/PodDisruptionBudget",
    },
  };

const manifestFiles = readdirSync(kubernetesDir)
  .filter((file) => /\.ya?ml$/.test(file) && file !== "kustomization.yaml")
  .sort();

/** Every object of every manifest; YAML is read as Kubernetes reads it (YAML 1.1). */
const objects: LoadedObject[] = manifestFiles.flatMap((file) => {
  const documents = parseAllDocuments(read(path.join(kubernetesDir, file)), {
    version: "1.1",
    uniqueKeys: true,
  });
  assert.ok(Array.isArray(documents), `${file}: YAML documents`);
  return documents.flatMap((document, index) => {
    const where = `deploy/kubernetes/${file}#${index + 1}`;
    assert.deepEqual(
      [...document.errors, ...document.warnings].map((problem) => problem.message),
      [],
      `${where}: YAML`,
    );
    const object = document.toJS() as KubeObject | null;
    return object === null ? [] : [{ file, object, where }];
  });
});

function byKind<T = KubeObject>(kind: string): (LoadedObject & { object: T })[] {
  return objects.filter((entry) => entry.object.kind === kind) as (LoadedObject & { object: T })[];
}

function find(kind: string, name: string): KubeObject | undefined {
  return objects.find((entry) => entry.object.kind === kind && entry.object.metadata.name === name)
    ?.object;
}

/**
 * Unknown fields, found with the TypeScript compiler: each object becomes an object literal
 * typed with its kubernetes-models interface, and every property of every nested literal must
 * exist in the type the compiler expects there (or the type has an index signature). Type errors
 * the compiler reports are returned too.
 */
function unknownFieldProblems(entries: LoadedObject[]): string[] {
  const file = path.join(root, "test", "__kubernetes_manifests__.ts");
  const text = entries
    .map(({ object }, index) => {
      const kind = kinds[`${object.apiVersion}/${object.kind}`];
      assert.ok(kind);
      const typeName = `I${object.kind}`;
      return `export const m${index}: import(${JSON.stringify(kind.module)}).${typeName} = ${JSON.stringify(object)};`;
    })
    .join("\n");
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    lib: ["lib.es2022.d.ts"],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === file
      ? ts.createSourceFile(name, text, language, true)
      : getSourceFile(name, language, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const source = program.getSourceFile(file);
  assert.ok(source);
  const checker = program.getTypeChecker();
  const whereOf = (node: ts.Node) =>
    entries[source.getLineAndCharacterOfPosition(node.getStart(source)).line]?.where ?? "?";
  const problems: string[] = [];

  const hasProperty = (type: ts.Type, name: string): boolean =>
    (type.isUnion() ? type.types : [type]).some(
      (member) =>
        checker.getPropertyOfType(member, name) !== undefined ||
        checker.getIndexInfosOfType(member).length > 0,
    );

  const walk = (node: ts.Node, at: string): void => {
    if (ts.isObjectLiteralExpression(node)) {
      const type = checker.getContextualType(node);
      for (const property of node.properties) {
        if (!ts.isPropertyAssignment(property)) continue;
        const name = ts.isStringLiteral(property.name)
          ? property.name.text
          : property.name.getText();
        if (type !== undefined && !hasProperty(type, name)) {
          problems.push(
            `${whereOf(property)}: unknown field ${at}.${name} (not in ${checker.typeToString(type)})`,
          );
          continue;
        }
        walk(property.initializer, `${at}.${name}`);
      }
      return;
    }
    if (ts.isArrayLiteralExpression(node)) {
      node.elements.forEach((element, index) => {
        walk(element, `${at}[${index}]`);
      });
      return;
    }
    ts.forEachChild(node, (child) => {
      walk(child, at);
    });
  };
  walk(source, "");
  for (const diagnostic of [
    ...program.getSyntacticDiagnostics(source),
    ...program.getSemanticDiagnostics(source),
  ]) {
    const where =
      diagnostic.start === undefined
        ? "?"
        : (entries[source.getLineAndCharacterOfPosition(diagnostic.start).line]?.where ?? "?");
    problems.push(`${where}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, " ")}`);
  }
  return problems;
}

interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: {
      secretKeyRef?: { name: string; key: string };
      configMapKeyRef?: { name: string; key: string };
      fieldRef?: { fieldPath: string };
    };
  }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: { grpc?: { port: number } };
  readinessProbe?: { grpc?: { port: number } };
  livenessProbe?: { grpc?: { port: number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  volumeMounts?: { name: string; mountPath: string }[];
}

interface DeploymentObject extends KubeObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds?: number;
        securityContext?: { runAsNonRoot?: boolean };
        containers: Container[];
        volumes?: {
          name: string;
          secret?: { secretName: string };
          persistentVolumeClaim?: { claimName: string };
          emptyDir?: object;
        }[];
      };
    };
  };
}

function secretData(name: string): Record<string, string> {
  const secret = find("Secret", name) as
    | (KubeObject & { stringData?: Record<string, string>; data?: Record<string, string> })
    | undefined;
  assert.ok(secret, `Secret ${name} exists`);
  return {
    ...Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([key, value]) => [
        key,
        Buffer.from(value, "base64").toString(),
      ]),
    ),
    ...secret.stringData,
  };
}

function configMapData(name: string): Record<string, string> {
  const map = find("ConfigMap", name) as
    | (KubeObject & { data?: Record<string, string> })
    | undefined;
  assert.ok(map, `ConfigMap ${name} exists`);
  return map.data ?? {};
}

/** Values that stand in for the placeholder Secrets when the configuration is checked. */
const realSecretValues: Env = {
  DATABASE_URL: "postgres://packrun:secret@postgres.example.internal:5432/packrun",
  REDIS_URL: "redis://redis.example.internal:6379",
  PACKRUN_SECRETS_KEY: randomBytes(32).toString("base64"),
};

/** The environment a Deployment's container gets: the image's, then envFrom, then env. */
function containerEnv(container: Container, where: string): { env: Env; set: string[] } {
  const env: Env = { ...imageEnv };
  const set: string[] = [];
  for (const source of container.envFrom ?? []) {
    assert.ok(source.configMapRef, `${where}: envFrom only from ConfigMaps (secrets by key)`);
    const data = configMapData(source.configMapRef.name);
    Object.assign(env, data);
    set.push(...Object.keys(data));
  }
  for (const variable of container.env ?? []) {
    set.push(variable.name);
    const from = variable.valueFrom;
    if (from?.secretKeyRef) {
      const data = secretData(from.secretKeyRef.name);
      assert.ok(
        Object.hasOwn(data, from.secretKeyRef.key),
        `${where}: Secret ${from.secretKeyRef.name} has no key ${from.secretKeyRef.key}`,
      );
      env[variable.name] =
        realSecretValues[from.secretKeyRef.key] ?? (data[from.secretKeyRef.key] as string);
    } else if (from?.configMapKeyRef) {
      const data = configMapData(from.configMapKeyRef.name);
      assert.ok(Object.hasOwn(data, from.configMapKeyRef.key), `${where}: ${variable.name}`);
      env[variable.name] = data[from.configMapKeyRef.key] as string;
    } else if (from?.fieldRef) {
      assert.equal(from.fieldRef.fieldPath, "metadata.name", `${where}: ${variable.name}`);
      env[variable.name] = "executor-worker-5d8f7c9b4-x2x7q";
    } else {
      assert.equal(typeof variable.value, "string", `${where}: ${variable.name} has a value`);
      env[variable.name] = variable.value as string;
    }
  }
  return { env, set };
}

/** The one container of a Deployment, which service it runs and how that service is configured. */
function deploymentFacts(entry: LoadedObject & { object: DeploymentObject }) {
  const pod = entry.object.spec.template.spec;
  assert.equal(pod.containers.length, 1, `${entry.where}: one container`);
  const container = pod.containers[0] as Container;
  assert.equal(container.command, undefined, `${entry.where}: the image's entrypoint is used`);
  const service = serviceOfCommand(container.args?.[0], entry.where);
  const { env, set } = containerEnv(container, entry.where);
  return { pod, container, service, env, set };
}

const deployments = () => byKind<DeploymentObject>("Deployment");

const kustomization = parseYaml(read(path.join(kubernetesDir, "kustomization.yaml")), {
  version: "1.1",
}) as { namespace: string; resources: string[]; images?: { name: string }[] };

describe(`Kubernetes manifests (schemas of Kubernetes v${KUBERNETES_VERSION})`, () => {
  test("every object is of a known kind and valid against its schema", () => {
    assert.ok(objects.length > 0);
    const problems: string[] = [];
    for (const { object, where } of objects) {
      const kind = kinds[`${object.apiVersion}/${object.kind}`];
      if (kind === undefined) {
        problems.push(`${where}: no schema for ${object.apiVersion} ${object.kind} in this test`);
        continue;
      }
      try {
        new kind.model(object as never).validate();
      } catch (error) {
        problems.push(
          `${where} (${object.kind} ${object.metadata?.name}): ${(error as Error).message}`,
        );
      }
    }
    assert.deepEqual(problems, []);
  });

  test("no object has a field its schema does not define", () => {
    assert.deepEqual(unknownFieldProblems(objects), []);
  });

  test("names are unique and everything is in the namespace", () => {
    const namespaces = byKind("Namespace");
    assert.equal(namespaces.length, 1, "one Namespace");
    const namespace = namespaces[0]?.object.metadata.name;
    assert.equal(kustomization.namespace, namespace);
    const seen = new Set<string>();
    for (const { object, where } of objects) {
      const key = `${object.kind}/${object.metadata.name}`;
      assert.ok(!seen.has(key), `${where}: ${key} is defined twice`);
      seen.add(key);
      if (object.kind !== "Namespace") assert.equal(object.metadata.namespace, namespace, where);
    }
  });

  test("the kustomization lists every manifest and is well formed", () => {
    const ajv = new Ajv({ allErrors: true, strict: true });
    const validate = ajv.compile({
      type: "object",
      required: ["apiVersion", "kind", "resources"],
      additionalProperties: false,
      properties: {
        apiVersion: { const: "kustomize.config.k8s.io/v1beta1" },
        kind: { const: "Kustomization" },
        namespace: { type: "string" },
        resources: { type: "array", items: { type: "string" }, uniqueItems: true },
        images: {
          type: "array",
          items: {
            type: "object",
            required: ["name"],
            additionalProperties: false,
            properties: {
              name: { type: "string" },
              newName: { type: "string" },
              newTag: { type: "string" },
              digest: { type: "string" },
            },
          },
        },
      },
    });
    assert.ok(validate(kustomization), formatErrors(validate.errors));
    assert.deepEqual([...kustomization.resources].sort(), manifestFiles);
  });

  test("the Secrets are placeholders that no service accepts", () => {
    const key = secretData("packrun-executor").PACKRUN_SECRETS_KEY;
    assert.ok(key);
    assert.throws(
      () => loadExecutorConfig({ ...realSecretValues, PACKRUN_SECRETS_KEY: key }),
      /PACKRUN_SECRETS_KEY \(secretsKey\): must be base64 of exactly 32 bytes/,
    );
    const pem = secretData("packrun-evidence-signing-key")["signing-key.pem"];
    assert.ok(pem);
    assert.throws(() => loadSigningKey(pem, "signing-key.pem"));
  });

  test("each Deployment's environment is one its service knows and accepts", () => {
    assert.deepEqual(
      deployments()
        .map(({ object }) => object.metadata.name)
        .sort(),
      ["evidence", "executor-api", "executor-worker", "planner"],
    );
    for (const entry of deployments()) {
      const { service, env, set } = deploymentFacts(entry);
      assertKnown(service, set, entry.where);
      const config = loadConfig(service, env, entry.where);
      assert.equal(config.host, "0.0.0.0", `${entry.where}: listens on the pod's addresses`);
      assert.equal(config.port, services[service].defaultPort, `${entry.where}: the default port`);
      if (service === "executor") {
        const role = entry.object.metadata.name.replace("executor-", "");
        assert.equal(config.role, role, `${entry.where}: PACKRUN_EXECUTOR_ROLE`);
      }
    }
  });

  test("serving containers expose their port and are probed over gRPC on it", () => {
    for (const entry of deployments()) {
      const { container, service, env } = deploymentFacts(entry);
      const config = loadConfig(service, env, entry.where);
      const serves = config.role !== "worker";
      if (!serves) {
        // The worker role serves nothing (no RPC server, no health service).
        assert.equal(container.ports, undefined, `${entry.where}: a worker has no port`);
        for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
          assert.equal(container[probe], undefined, `${entry.where}: a worker has no ${probe}`);
        }
        continue;
      }
      assert.deepEqual(
        container.ports?.map((port) => [port.name, port.containerPort]),
        [["grpc", config.port]],
      );
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
        assert.equal(
          container[probe]?.grpc?.port,
          config.port,
          `${entry.where}: ${probe} is gRPC on ${config.port}`,
        );
      }
    }
  });

  test("every Service selects one serving Deployment and targets its gRPC port", () => {
    const serviceObjects = byKind<
      KubeObject & {
        spec: {
          selector: Record<string, string>;
          ports: { port: number; targetPort: string | number; appProtocol?: string }[];
        };
      }
    >("Service");
    assert.ok(serviceObjects.length > 0);
    for (const { object, where } of serviceObjects) {
      const selected = deployments().filter(({ object: deployment }) =>
        Object.entries(object.spec.selector).every(
          ([label, value]) => deployment.spec.template.metadata.labels[label] === value,
        ),
      );
      assert.equal(selected.length, 1, `${where}: selects exactly one Deployment`);
      const { container } = deploymentFacts(
        selected[0] as LoadedObject & { object: DeploymentObject },
      );
      const port = container.ports?.find((candidate) => candidate.name === "grpc");
      assert.ok(port, `${where}: the selected pods have a grpc port`);
      assert.deepEqual(object.spec.ports, [
        {
          name: "grpc",
          port: port.containerPort,
          targetPort: "grpc",
          protocol: "TCP",
          appProtocol: "kubernetes.io/h2c",
        },
      ]);
    }
  });

  test("the executors find the planner and the evidence service through their Services", () => {
    for (const entry of deployments()) {
      const { service, env } = deploymentFacts(entry);
      if (service !== "executor") continue;
      const config = loadExecutorConfig(env);
      for (const [url, target] of [
        [config.plannerUrl, "planner"],
        [config.evidenceUrl, "evidence"],
      ] as const) {
        assert.ok(url, `${entry.where}: ${target} URL`);
        const { hostname, port } = new URL(url);
        const svc = find("Service", hostname) as
          | (KubeObject & { spec: { ports: { port: number }[] } })
          | undefined;
        assert.ok(svc, `${entry.where}: ${url} names the Service ${hostname}`);
        assert.equal(Number(port), svc.spec.ports[0]?.port, `${entry.where}: ${url} port`);
        assert.equal(Number(port), services[target].defaultPort);
      }
    }
  });

  test("mounted files and writable paths line up with the configuration", () => {
    for (const entry of deployments()) {
      const { pod, container, service, env } = deploymentFacts(entry);
      const config = loadConfig(service, env, entry.where);
      const mountOf = (file: string) =>
        container.volumeMounts?.find(
          (mount) => file === mount.mountPath || file.startsWith(`${mount.mountPath}/`),
        );
      const volumeOf = (name: string) => pod.volumes?.find((volume) => volume.name === name);
      assert.equal(
        container.securityContext?.readOnlyRootFilesystem,
        true,
        `${entry.where}: read-only root`,
      );
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false, entry.where);
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${entry.where}: runs as non-root`);
      assert.ok(mountOf("/tmp"), `${entry.where}: /tmp is writable`);
      if (service === "evidence") {
        const signing = config.signingKeyPath as string;
        const mount = mountOf(signing);
        assert.ok(mount, `${entry.where}: ${signing} is mounted`);
        const secretName = volumeOf(mount.name)?.secret?.secretName;
        assert.ok(secretName, `${entry.where}: ${signing} comes from a Secret`);
        assert.ok(Object.hasOwn(secretData(secretName), path.relative(mount.mountPath, signing)));
        const artifacts = mountOf(config.artifactRoot as string);
        assert.ok(
          artifacts && volumeOf(artifacts.name)?.persistentVolumeClaim,
          `${entry.where}: artifacts on a volume`,
        );
        const claim = volumeOf(artifacts.name)?.persistentVolumeClaim?.claimName as string;
        assert.ok(find("PersistentVolumeClaim", claim), `${entry.where}: PVC ${claim}`);
      }
      if (service === "executor") {
        assert.ok(mountOf(config.workRoot as string), `${entry.where}: the work root is writable`);
      }
    }
  });

  test("executors get a termination grace period above their drain grace", () => {
    for (const entry of deployments()) {
      const { pod, service, env } = deploymentFacts(entry);
      if (service !== "executor") continue;
      const config = loadExecutorConfig(env);
      const needed = (config.graceMs + config.killGraceMs) / 1000;
      assert.ok(
        (pod.terminationGracePeriodSeconds ?? 30) > needed,
        `${entry.where}: terminationGracePeriodSeconds must exceed ${needed}`,
      );
    }
  });

  test("the autoscaler and the disruption budget govern the worker Deployment", () => {
    const worker = find("Deployment", "executor-worker") as DeploymentObject | undefined;
    assert.ok(worker);
    assert.equal(worker.spec.replicas, undefined, "the HPA owns the worker replica count");
    const hpas = byKind<
      KubeObject & {
        spec: {
          scaleTargetRef: { apiVersion: string; kind: string; name: string };
          minReplicas: number;
          maxReplicas: number;
          metrics: { type: string; resource?: { name: string } }[];
        };
      }
    >("HorizontalPodAutoscaler");
    assert.equal(hpas.length, 1);
    const hpa = hpas[0]?.object;
    assert.ok(hpa);
    assert.deepEqual(hpa.spec.scaleTargetRef, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "executor-worker",
    });
    assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    const container = worker.spec.template.spec.containers[0];
    for (const metric of hpa.spec.metrics) {
      if (metric.type !== "Resource") continue;
      const resource = metric.resource?.name as string;
      assert.ok(container?.resources?.requests?.[resource], `the worker requests ${resource}`);
    }
    const budgets = byKind<
      KubeObject & { spec: { selector: { matchLabels: Record<string, string> } } }
    >("PodDisruptionBudget");
    assert.equal(budgets.length, 1);
    const selector = budgets[0]?.object.spec.selector.matchLabels ?? {};
    const selected = deployments().filter(({ object }) =>
      Object.entries(selector).every(
        ([label, value]) => object.spec.template.metadata.labels[label] === value,
      ),
    );
    assert.deepEqual(
      selected.map(({ object }) => object.metadata.name),
      ["executor-worker"],
    );
  });

  test("every container runs the image the kustomization and compose name", () => {
    const images = new Set(
      deployments().flatMap(({ object }) =>
        object.spec.template.spec.containers.map((c) => c.image),
      ),
    );
    assert.equal(images.size, 1, `one image: ${[...images].join(", ")}`);
    const [image] = images;
    assert.equal(image, "packrun:latest");
    assert.deepEqual(
      kustomization.images?.map((entry) => entry.name),
      ["packrun"],
    );
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.build) assert.equal(service.image, image, `compose ${name}`);
    }
  });
});

describe("compose file", () => {
  test("is valid against the Compose Specification schema", () => {
    const schemaPath = path.join(root, "node_modules/dclint/schemas/compose.schema.json");
    const schema = JSON.parse(read(schemaPath)) as Record<string, unknown>;
    // Draft-07; its "$schema" lacks the trailing "#" ajv registers the meta-schema under.
    delete schema.$schema;
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(schema);
    assert.ok(validate(compose), formatErrors(validate.errors));
    assert.doesNotMatch(composeText, /\$\{/, "no interpolation: what is validated is what runs");
  });

  test("PostgreSQL 15 and Redis 7, health-checked, Redis persistent and noeviction", () => {
    const { postgres, redis } = compose.services;
    assert.match(String(postgres?.image), /^postgres:15(\b|$)/);
    assert.match(String(redis?.image), /^redis:7(\b|$)/);
    assert.ok(postgres?.healthcheck && redis?.healthcheck);
    const command = (redis.command ?? []).join(" ");
    assert.match(command, /--appendonly yes/);
    assert.match(command, /--maxmemory-policy noeviction/);
    assert.equal(postgres.ports, undefined, "PostgreSQL is not published");
    assert.equal(redis.ports, undefined, "Redis is not published");
  });

  test("each packrun service's environment is one it knows and accepts", () => {
    const names = packrunServices()
      .map(([name]) => name)
      .sort();
    assert.deepEqual(names, ["evidence", "executor-api", "executor-worker", "planner"]);
    for (const [name, service] of packrunServices()) {
      const where = `compose ${name}`;
      assert.equal(
        path.resolve(deployDir, service.build?.context ?? "", service.build?.dockerfile ?? ""),
        path.join(deployDir, "Dockerfile"),
      );
      const kind = serviceOfCommand(service.command?.[0], where);
      assertKnown(kind, Object.keys(service.environment ?? {}), where);
      const config = loadConfig(kind, composeEnv(name, service), where);
      assert.equal(config.port, services[kind].defaultPort, `${where}: default port`);
      if (kind === "executor") assert.equal(config.role, name.replace("executor-", ""), where);
      if (kind === "evidence") {
        // PACKRUN_EVIDENCE_SIGNING_KEY is a path: /run/secrets/<secret>.
        const secret = /^\/run\/secrets\/([a-z_]+)$/.exec(String(config.signingKeyPath))?.[1];
        assert.ok(
          secret && service.secrets?.includes(secret),
          `${where}: the signing key is a secret`,
        );
        const pem = read(secretFiles[secret] as string);
        assert.ok(loadSigningKey(pem, "generated").keyId, `${where}: the generated key signs`);
      }
    }
  });

  test("ports are published on loopback only, health checks use the service port", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const port of service.ports ?? []) {
        assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `compose ${name}: ${port} on loopback`);
      }
    }
    for (const [name, service] of packrunServices()) {
      const kind = serviceOfCommand(service.command?.[0], name);
      const config = loadConfig(kind, composeEnv(name, service), name);
      if (config.role === "worker") {
        assert.equal(service.ports, undefined, `compose ${name}: a worker serves no port`);
        assert.equal(service.healthcheck, undefined, `compose ${name}: nothing to check`);
        continue;
      }
      assert.deepEqual(service.ports, [`127.0.0.1:${config.port}:${config.port}`]);
      assert.deepEqual(service.healthcheck?.test, [
        "CMD",
        "/app/deploy/docker-entrypoint.sh",
        "healthcheck",
        String(config.port),
      ]);
    }
  });

  test("dependencies wait for health; workers are replicated and drain in time", () => {
    for (const [name, service] of packrunServices()) {
      assert.equal(service.depends_on?.postgres?.condition, "service_healthy", `compose ${name}`);
      for (const [target, { condition }] of Object.entries(service.depends_on ?? {})) {
        if (condition === "service_healthy") {
          assert.ok(
            compose.services[target]?.healthcheck,
            `compose ${name}: ${target} has a health check`,
          );
        }
      }
    }
    const worker = compose.services["executor-worker"];
    assert.ok(worker);
    assert.ok((worker.deploy?.replicas ?? 1) >= 3, "several worker replicas");
    assert.equal(worker.depends_on?.redis?.condition, "service_healthy");
    for (const [name, service] of packrunServices()) {
      if (service.command?.[0] !== "executor") continue;
      const config = loadExecutorConfig(composeEnv(name, service));
      assert.ok(
        durationSeconds(service.stop_grace_period ?? "10s") >
          (config.graceMs + config.killGraceMs) / 1000,
        `compose ${name}: stop_grace_period above the drain grace`,
      );
    }
  });

  test("every secret is one make-secrets.sh creates, and the generated ones are accepted", () => {
    for (const [name, file] of Object.entries(secretFiles)) {
      assert.ok(existsSync(file), `compose secret ${name}: make-secrets.sh creates ${file}`);
    }
    const executor = compose.services["executor-api"] as ComposeService;
    assert.ok(loadExecutorConfig(composeEnv("executor-api", executor)).secretsKey.length === 32);
  });
});

// ---------------------------------------------------------------------------------------------
// The compose services, started through the image's entrypoint.

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  server.close();
  await once(server, "close");
  return address.port;
}

describe("compose services start through the entrypoint", () => {
  const children = new Set<ChildProcess>();
  let database: TestDatabase | undefined;
  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    await database?.drop();
  });

  test("with their compose environment they become healthy and stop cleanly", async () => {
    database = await createTestDatabase("deploy");
    const redisUrl = readTestEnv().redisUrl;
    const scratch = scratchDir("packrun-deploy-run-");
    const ports: Record<string, number> = {};
    for (const [name] of packrunServices()) ports[name] = await freePort();
    const serviceUrl = (name: string) => `http://127.0.0.1:${ports[name]}`;

    /**
     * The compose environment made local (hosts, ports and paths only). Variables compose gives
     * as NAME_FILE stay files, rewritten, so the entrypoint's file handling runs too.
     */
    const localize = (name: string, service: ComposeService): Env => {
      const kind = service.command?.[0] as ServiceName;
      const env = composeEnv(name, service);
      const upper = kind.toUpperCase();
      env[`PACKRUN_${upper}_HOST`] = "127.0.0.1";
      env[`PACKRUN_${upper}_PORT`] = String(ports[name] ?? 0);
      assert.match(env.DATABASE_URL ?? "", /@postgres:5432\//);
      env.DATABASE_URL = database?.url as string;
      if (kind === "executor") {
        assert.equal(env.REDIS_URL, "redis://redis:6379");
        env.REDIS_URL = redisUrl;
        env.PACKRUN_EXECUTOR_QUEUE_PREFIX = uniqueName("deploy");
        assert.equal(env.PACKRUN_PLANNER_URL, "http://planner:7001");
        env.PACKRUN_PLANNER_URL = serviceUrl("planner");
        assert.equal(env.PACKRUN_EVIDENCE_URL, "http://evidence:7003");
        env.PACKRUN_EVIDENCE_URL = serviceUrl("evidence");
        env.PACKRUN_EXECUTOR_WORK_ROOT = path.join(scratch, `${name}-work`);
      }
      if (kind === "evidence") {
        env.PACKRUN_EVIDENCE_ARTIFACT_ROOT = path.join(scratch, "artifacts");
        mkdirSync(env.PACKRUN_EVIDENCE_ARTIFACT_ROOT);
        env.PACKRUN_EVIDENCE_SIGNING_KEY = secretFiles.evidence_signing_key as string;
      }
      for (const variable of Object.keys(service.environment ?? {})) {
        const base = baseVariable(variable);
        if (base === variable) continue;
        const file = path.join(scratch, `${name}-${base}`);
        writeFileSync(file, `${env[base]}\n`, { mode: 0o600 });
        env[variable] = file;
        delete env[base];
      }
      return env;
    };

    const start = (name: string, service: ComposeService) => {
      const child = spawn(
        "sh",
        [path.join(deployDir, "docker-entrypoint.sh"), ...(service.command ?? [])],
        {
          env: { PATH: process.env.PATH ?? "", ...localize(name, service) },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      children.add(child);
      let stderr = "";
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
      });
      const ready = new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
          if (/"msg":"(planner|evidence|executor) ready"/.test(line)) resolve();
        });
        child.once("exit", (code) =>
          reject(new Error(`compose ${name} exited (${code}): ${stderr}`)),
        );
      });
      ready.catch(() => {});
      return {
        name,
        service,
        child,
        ready,
        exited: once(child, "exit") as Promise<[number | null]>,
      };
    };

    // In compose order: planner and evidence first, then the executors that depend on them.
    const order = ["planner", "evidence", "executor-api", "executor-worker"];
    const started = [];
    for (const name of order) {
      const service = start(name, compose.services[name] as ComposeService);
      await service.ready;
      started.push(service);
    }
    for (const { name, service } of started) {
      if (service.healthcheck === undefined) continue;
      const [, script, command, port] = service.healthcheck.test;
      assert.equal(script, "/app/deploy/docker-entrypoint.sh");
      assert.equal(command, "healthcheck");
      assert.equal(Number(port), services[service.command?.[0] as ServiceName].defaultPort);
      const check = spawn(
        "sh",
        [path.join(deployDir, "docker-entrypoint.sh"), "healthcheck", String(ports[name])],
        {
          env: { PATH: process.env.PATH ?? "" },
          stdio: "ignore",
        },
      );
      const [code] = (await once(check, "exit")) as [number | null];
      assert.equal(code, 0, `compose ${name}: its health check passes`);
    }
    for (const { child } of started.reverse()) child.kill("SIGTERM");
    for (const { name, exited } of started) {
      const [code] = await exited;
      assert.equal(code, 0, `compose ${name} exits 0 on SIGTERM`);
    }
    const closed = await checkHealth(serviceUrl("planner"), { timeoutMs: 1000 });
    assert.equal(closed.serving, false, "a stopped service fails its health check");
  });

  test("a bad *_FILE secret is reported by the variable it sets", async () => {
    const dir = scratchDir("packrun-deploy-file-");
    const file = path.join(dir, "database-url");
    writeFileSync(file, "mysql://nope\n");
    const child = spawn("sh", [path.join(deployDir, "docker-entrypoint.sh"), "planner"], {
      env: { PATH: process.env.PATH ?? "", DATABASE_URL_FILE: file },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 2);
    assert.match(stderr, /DATABASE_URL \(databaseUrl\): expected a postgres:\/\//);
  });
});

describe("docs/operations.md", () => {
  const doc = read(path.join(root, "docs", "operations.md"));
  const reference = doc.slice(
    doc.indexOf("## Configuration reference"),
    doc.indexOf("\n## ", doc.indexOf("## Configuration reference") + 1),
  );

  test("the configuration reference lists every variable each service reads", () => {
    for (const service of serviceNames) {
      for (const name of known[service]) {
        assert.ok(reference.includes(`\`${name}\``), `operations.md does not document ${name}`);
      }
    }
  });

  test("every variable it names is one a service reads", () => {
    const all = new Set(serviceNames.flatMap((service) => [...known[service]]));
    for (const [name] of doc.matchAll(/\b(?:DATABASE_URL|REDIS_URL|PACKRUN_[A-Z0-9_]+)\b/g)) {
      assert.ok(all.has(baseVariable(name)), `operations.md names ${name}, which no service reads`);
    }
  });
});
