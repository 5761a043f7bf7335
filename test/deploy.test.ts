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
 *   targets, the URLs services call each other by, the HPA target, grace periods, secrets, the
 *   gateway's token keys and commands are cross-checked, the packages the services import are
 *   checked to be installed in the image, and the compose services are started through the
 *   image's entrypoint with their compose environment (only hosts, ports and paths made local)
 *   and must pass their compose health checks; the gateway must accept a token minted with the
 *   key make-secrets.sh wrote and refuse others.
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
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { loadSigningKey } from "@packrun/attestation";
import { generateLocalSigningKey, mintToken } from "@packrun/auth";
import { createTestDatabase, readTestEnv, type TestDatabase, uniqueName } from "@packrun/testing";
import { Ajv, type ErrorObject } from "ajv";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";
import { calculateJwkThumbprint, type JWK } from "jose";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import ts from "typescript";
import { afterAll, describe, test } from "vitest";
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
import {
  type AuthConfig,
  defaultGatewayPort,
  loadGatewayConfig,
} from "../services/gateway/src/gateway-config.ts";
import { createTokenVerifier } from "../services/gateway/src/token-verifier.ts";
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
type ServiceName = "planner" | "executor" | "evidence" | "gateway";

interface ServiceFacts {
  load(env: Env): Record<string, unknown> & { port: number; host: string };
  defaultPort: number;
  /**
   * What its port speaks: gRPC/Connect over cleartext HTTP/2 with grpc.health.v1, or plain
   * HTTP/1.1 with GET /healthz (liveness) and GET /readyz (readiness).
   */
  protocol: "grpc" | "http";
  /** Variables read outside the configuration schema, with the file that reads each. */
  extra: Record<string, string>;
}

const services: Record<ServiceName, ServiceFacts> = {
  planner: {
    load: loadPlannerConfig,
    defaultPort: defaultPlannerPort,
    protocol: "grpc",
    extra: {},
  },
  executor: {
    load: loadExecutorConfig,
    defaultPort: defaultExecutorPort,
    protocol: "grpc",
    extra: {
      PACKRUN_PODMAN_ARGS: "services/executor/src/runtime/podman.ts",
      PACKRUN_BUNDLE_ROOTS: "services/executor/src/runtime/modules/bundle-ingest.ts",
      PACKRUN_EXECUTOR_STEP_UID: "services/executor/src/runtime/step-user.ts",
      PACKRUN_EXECUTOR_STEP_GID: "services/executor/src/runtime/step-user.ts",
      PACKRUN_EXECUTOR_STEP_CPUS: "services/executor/src/runtime/step-limits.ts",
      PACKRUN_EXECUTOR_STEP_MOUNTS: "services/executor/src/runtime/step-mounts.ts",
      PACKRUN_EXECUTOR_EGRESS_DENY: "services/executor/src/runtime/egress-rules.ts",
      PACKRUN_EXECUTOR_UNISOLATED_STEPS: "services/executor/src/runtime/support.ts",
      PACKRUN_EXECUTOR_SPAWN_HELPER: "services/executor/src/runtime/launcher.ts",
      PACKRUN_EXECUTOR_WARM_NETWORKS: "services/executor/src/runtime/warm-networks.ts",
      PACKRUN_EXECUTOR_WARM_WORKDIRS: "services/executor/src/runtime/workdir-slots.ts",
    },
  },
  evidence: {
    load: loadEvidenceConfig,
    defaultPort: defaultEvidencePort,
    protocol: "grpc",
    extra: {},
  },
  gateway: {
    load: loadGatewayConfig,
    defaultPort: defaultGatewayPort,
    protocol: "http",
    extra: {},
  },
};

/** The gateway's HTTP health endpoints. */
const livenessPath = "/healthz";
const readinessPath = "/readyz";
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

/**
 * Settings whose own name ends in `_FILE` (paths the service reads itself, like
 * PACKRUN_AUTH_JWKS_FILE): the entrypoint must pass them through, not read them as `NAME_FILE`.
 */
const fileSettings = new Set(
  serviceNames.flatMap((service) => [...known[service]]).filter((name) => name.endsWith("_FILE")),
);

/** The variable a `NAME_FILE` variable sets through the entrypoint, or the name itself. */
function baseVariable(name: string): string {
  if (fileSettings.has(name)) return name;
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

/** Patterns of Dockerfile.dockerignore, as regular expressions over repository paths. */
const buildContextIgnores = read(path.join(deployDir, "Dockerfile.dockerignore"))
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

/** The pattern that keeps a repository path out of the image's build context, if one does. */
function excludedBy(file: string): RegExp | undefined {
  return buildContextIgnores.find((regex) => regex.test(file));
}

interface Lockfile {
  packages: Record<string, { dev?: boolean; link?: boolean; resolved?: string } | undefined>;
}
const lockfile = JSON.parse(read(path.join(root, "package-lock.json"))) as Lockfile;

/** Module specifiers a file loads at run time (type-only imports are erased). */
function runtimeSpecifiers(file: string): string[] {
  const source = ts.createSourceFile(file, read(file), ts.ScriptTarget.ES2022, true);
  const specifiers: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly) ||
      (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier)
    ) {
      const specifier = node.moduleSpecifier;
      if (specifier && ts.isStringLiteral(specifier)) specifiers.push(specifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      specifiers.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specifiers;
}

/**
 * Everything the entry files load at run time, following relative imports and the workspace
 * packages' exports as Node resolves them: repository files (repo-relative), and installed
 * packages as lockfile keys (`node_modules/x`) with the file that first imports each.
 */
function runtimeImports(entries: string[]): { files: Set<string>; packages: Map<string, string> } {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const pending = [...entries];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    const relative = path.relative(root, file);
    if (files.has(relative)) continue;
    assert.ok(existsSync(file), `${relative} exists`);
    files.add(relative);
    for (const specifier of runtimeSpecifiers(file)) {
      if (specifier.startsWith(".")) {
        pending.push(path.resolve(path.dirname(file), specifier));
        continue;
      }
      if (specifier.startsWith("node:")) continue;
      const parts = specifier.split("/");
      const name = (specifier.startsWith("@") ? parts.slice(0, 2) : parts.slice(0, 1)).join("/");
      // Node looks in node_modules beside the importing workspace first, then at the root.
      let directory = path.dirname(relative);
      while (directory !== "." && !existsSync(path.join(root, directory, "package.json"))) {
        directory = path.dirname(directory);
      }
      const nested = path.join(directory, "node_modules", name);
      const key = lockfile.packages[nested] ? nested : `node_modules/${name}`;
      if (!packages.has(key)) packages.set(key, relative);
      const entry = lockfile.packages[key];
      if (entry?.link && entry.resolved) {
        // A workspace package: its sources are part of the image, follow its exports.
        const manifest = JSON.parse(read(path.join(root, entry.resolved, "package.json"))) as {
          exports?: Record<string, string>;
        };
        const subpath = `.${specifier.slice(name.length)}`;
        const target = manifest.exports?.[subpath];
        assert.ok(target, `${relative}: ${entry.resolved} exports no ${subpath}`);
        pending.push(path.join(root, entry.resolved, target));
      }
    }
  }
  return { files, packages };
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
    assert.equal(
      instructions("HEALTHCHECK").length,
      0,
      "one image, several services: the orchestrator probes each one (gRPC or HTTP)",
    );
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
      "gateway",
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

  test("the entrypoint passes settings named *_FILE through instead of reading them as files", () => {
    const listed = /^file_settings='([A-Z0-9_ ]*)'$/m.exec(entrypointText)?.[1];
    assert.ok(listed !== undefined, "docker-entrypoint.sh sets file_settings='…'");
    assert.deepEqual(listed.split(" ").filter(Boolean).sort(), [...fileSettings].sort());
  });

  test("it exposes the port of every serving service", () => {
    const exposed = instructions("EXPOSE")
      .flatMap((instruction) => (instruction.getArgumentsContent() ?? "").split(/\s+/))
      .filter(Boolean)
      .map((port) => Number(port.replace(/\/tcp$/, "")))
      .sort();
    assert.deepEqual(
      exposed,
      serviceNames.map((name) => services[name].defaultPort).sort(),
      "EXPOSE lists the default ports",
    );
  });

  test("its environment holds only settings some service reads", () => {
    const all = new Set([...processVariables, ...serviceNames.flatMap((name) => [...known[name]])]);
    for (const name of Object.keys(imageEnv)) {
      assert.ok(all.has(name), `Dockerfile ENV ${name} is read by no service`);
    }
  });

  test("the build context keeps what the image copies", () => {
    const needed = [
      "package.json",
      "package-lock.json",
      "deploy/docker-entrypoint.sh",
      "deploy/grpc-health-check.ts",
      ...serviceNames.flatMap((name) => {
        const migrations = path.join(root, "services", name, "migrations");
        return [
          `services/${name}/package.json`,
          `services/${name}/src/main.ts`,
          ...(existsSync(migrations)
            ? [`services/${name}/migrations/001-${readdirSync(migrations)[0]?.slice(4)}`]
            : []),
        ];
      }),
      "packages/proto/src/gen/grpc/health/v1/health_pb.js",
    ];
    for (const file of needed) {
      assert.ok(existsSync(path.join(root, file)), `${file} exists`);
      const pattern = excludedBy(file);
      assert.equal(pattern, undefined, `${file} is excluded from the build context by ${pattern}`);
    }
  });

  test("what the services import at run time is in the build context or installed by npm ci --omit=dev", () => {
    const { files, packages } = runtimeImports(
      serviceNames.map((name) => path.join(root, `services/${name}/src/main.ts`)),
    );
    assert.ok(files.size > serviceNames.length && packages.size > 0);
    for (const file of files) {
      const pattern = excludedBy(file);
      assert.equal(pattern, undefined, `${file} is excluded from the build context by ${pattern}`);
    }
    for (const [name, importer] of packages) {
      const entry = lockfile.packages[name];
      assert.ok(entry, `${importer} imports ${name}, which the lockfile does not install`);
      assert.ok(
        entry.dev !== true,
        `${importer} imports ${name}, a development-only package that the image does not install`,
      );
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
  healthcheck?: { test: string[]; retries?: number };
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
afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory removed when the file's tests end. */
function scratchDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

function makeSecrets(): { dir: string; files: Record<string, string> } {
  const dir = scratchDir("packrun-deploy-");
  copyFileSync(path.join(deployDir, "make-secrets.sh"), path.join(dir, "make-secrets.sh"));
  const result = spawnSync("sh", [path.join(dir, "make-secrets.sh")], { encoding: "utf8" });
  assert.equal(result.status, 0, `make-secrets.sh: ${result.stdout}${result.stderr}`);
  return {
    dir,
    files: Object.fromEntries(
      Object.entries(compose.secrets).map(([name, secret]) => [
        name,
        path.resolve(dir, secret.file),
      ]),
    ),
  };
}

const { dir: secretsScratch, files: secretFiles } = makeSecrets();
/** The private half of the gateway's development token key: on the host, mounted nowhere. */
const tokenSigningKeyFile = path.join(secretsScratch, "secrets", "token-signing-key.jwk");

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

/** The compose service (and port) a URL setting names, if it names one. */
function composeServiceOfUrl(value: string): { name: string; port: number } | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (!Object.hasOwn(compose.services, url.hostname)) return undefined;
  return { name: url.hostname, port: Number(url.port) };
}

/** The URL an HTTP compose health check (`node -e "fetch('URL', …)…"`) fetches. */
function httpHealthCheckUrl(check: string[] | undefined, where: string): URL {
  assert.ok(check, `${where}: has a health check`);
  const [form, program, flag, script] = check;
  assert.deepEqual([form, program, flag], ["CMD", "node", "-e"], `${where}: node -e <script>`);
  const url = /\bfetch\('([^']+)'/.exec(script ?? "")?.[1];
  assert.ok(url, `${where}: the health check script fetches a URL`);
  assert.match(script ?? "", /process\.exit\(r\.ok\?0:1\)/, `${where}: exit 0 only on 2xx`);
  return new URL(url);
}

/**
 * The gateway's token keys: the JWK Set it is configured with holds only the public half of the
 * private JWK `keyFile` (with its RFC 7638 thumbprint as key id), a token minted with that key
 * for the configured issuer and audience verifies, and one signed by another key does not.
 */
async function assertTokenKeysMatch(auth: AuthConfig, keyFile: string, where: string) {
  const key = JSON.parse(read(keyFile)) as JWK;
  const jwks = JSON.parse(read(auth.jwksFile as string)) as { keys: JWK[] };
  assert.equal(jwks.keys.length, 1, `${where}: one trusted key`);
  const publicKey = jwks.keys[0] as JWK;
  assert.equal(publicKey.d, undefined, `${where}: the JWK Set holds no private key`);
  assert.equal(key.kid, await calculateJwkThumbprint(publicKey), `${where}: key id`);
  assert.equal(publicKey.kid, key.kid, `${where}: the key ids match`);
  assert.ok(auth.algorithms.includes(key.alg as never), `${where}: ${key.alg} is accepted`);
  const verifier = await createTokenVerifier(auth);
  const claims = {
    issuer: auth.issuer,
    audience: auth.audience,
    subject: "deploy-test",
    tenant: "acme",
    scopes: ["packs.read"] as const,
    tenantClaim: auth.tenantClaim,
  };
  const principal = await verifier.verify(`Bearer ${await mintToken({ key, ...claims })}`);
  assert.equal(principal.tenant, "acme", `${where}: the minted token verifies`);
  const stranger = (await generateLocalSigningKey()).privateJwk;
  await assert.rejects(
    verifier.verify(`Bearer ${await mintToken({ key: stranger, ...claims })}`),
    /no trusted key matches the token/,
    `${where}: a token signed by another key is refused`,
  );
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
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  volumeMounts?: { name: string; mountPath: string }[];
}

interface Probe {
  grpc?: { port: number };
  exec?: { command: string[] };
  httpGet?: { path?: string; port: number | string; scheme?: string };
  timeoutSeconds?: number;
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
          configMap?: { name: string };
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

/** What a Deployment's container reads at `file`, mounted from a Secret or a ConfigMap. */
function mountedFile(entry: LoadedObject & { object: DeploymentObject }, file: string): string {
  const { pod, container } = deploymentFacts(entry);
  const mount = container.volumeMounts?.find((candidate) =>
    file.startsWith(`${candidate.mountPath}/`),
  );
  assert.ok(mount, `${entry.where}: ${file} is mounted`);
  const volume = pod.volumes?.find((candidate) => candidate.name === mount.name);
  const data = volume?.secret
    ? secretData(volume.secret.secretName)
    : volume?.configMap
      ? configMapData(volume.configMap.name)
      : assert.fail(`${entry.where}: ${file} comes from neither a Secret nor a ConfigMap`);
  const key = path.posix.relative(mount.mountPath, file);
  assert.ok(Object.hasOwn(data, key), `${entry.where}: ${mount.name} has no key ${key}`);
  return data[key] as string;
}

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

  test("the gateway's JWK Set is a placeholder the gateway refuses to start with", async () => {
    const gateway = deployments().find(({ object }) => object.metadata.name === "gateway");
    assert.ok(gateway);
    const { env } = deploymentFacts(gateway);
    const placeholder = mountedFile(gateway, loadGatewayConfig(env).auth.jwksFile as string);
    const file = path.join(scratchDir("packrun-deploy-jwks-"), "jwks.json");
    writeFileSync(file, placeholder);
    await assert.rejects(
      createTokenVerifier({ ...loadGatewayConfig(env).auth, jwksFile: file }),
      /PACKRUN_AUTH_JWKS_FILE: cannot read a JWK Set/,
    );
  });

  test("each Deployment's environment is one its service knows and accepts", () => {
    assert.deepEqual(
      deployments()
        .map(({ object }) => object.metadata.name)
        .sort(),
      ["evidence", "executor-api", "executor-worker", "gateway", "planner"],
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

  test("serving containers expose their port and are probed on it in its protocol", () => {
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
      const protocol = services[service].protocol;
      assert.deepEqual(
        container.ports?.map((port) => [port.name, port.containerPort]),
        [[protocol, config.port]],
      );
      if (protocol === "grpc") {
        // gRPC over TLS: the kubelet's grpc probes speak cleartext only, so the image's
        // grpc.health.v1 check runs in the container (it trusts PACKRUN_TLS_CA).
        assert.ok(env.PACKRUN_TLS_CA, `${entry.where}: serves TLS`);
        for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
          assert.deepEqual(
            container[probe]?.exec?.command,
            ["/app/deploy/docker-entrypoint.sh", "healthcheck", String(config.port)],
            `${entry.where}: ${probe} is the gRPC health check on ${config.port}`,
          );
          assert.ok(
            (container[probe]?.timeoutSeconds ?? 1) >= 5,
            `${entry.where}: ${probe} allows for starting node`,
          );
        }
        continue;
      }
      // HTTP: liveness (and startup) on /healthz, which never depends on other services, so a
      // downstream outage cannot get the gateway restarted; readiness on /readyz.
      const expected = {
        startupProbe: livenessPath,
        readinessProbe: readinessPath,
        livenessProbe: livenessPath,
      } as const;
      for (const [probe, probePath] of Object.entries(expected) as [
        keyof typeof expected,
        string,
      ][]) {
        const httpGet = container[probe]?.httpGet;
        assert.ok(httpGet, `${entry.where}: ${probe} is an HTTP GET`);
        const named = httpGet.port;
        const port: number | undefined =
          typeof named === "number"
            ? named
            : container.ports?.find((candidate) => candidate.name === named)?.containerPort;
        assert.equal(port, config.port, `${entry.where}: ${probe} on port ${config.port}`);
        assert.equal(httpGet.path, probePath, `${entry.where}: ${probe} path`);
        assert.ok((httpGet.scheme ?? "HTTP") === "HTTP", `${entry.where}: ${probe} is plain HTTP`);
      }
      // /readyz waits up to 2 s for each downstream health check (in parallel).
      assert.ok(
        (container.readinessProbe?.timeoutSeconds ?? 1) > 2,
        `${entry.where}: the readiness probe outlasts /readyz's downstream checks`,
      );
    }
  });

  test("every Service selects one serving Deployment and targets its port", () => {
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
      const { container, service } = deploymentFacts(
        selected[0] as LoadedObject & { object: DeploymentObject },
      );
      const protocol = services[service].protocol;
      const port = container.ports?.find((candidate) => candidate.name === protocol);
      assert.ok(port, `${where}: the selected pods have a ${protocol} port`);
      assert.deepEqual(object.spec.ports, [
        {
          name: protocol,
          port: port.containerPort,
          targetPort: protocol,
          protocol: "TCP",
          // gRPC is HTTP/2 over TLS; the gateway speaks HTTP/1.1.
          appProtocol: protocol === "grpc" ? "https" : "http",
        },
      ]);
      assert.equal(
        (object.spec as { type?: string }).type ?? "ClusterIP",
        "ClusterIP",
        `${where}: not exposed outside the cluster by itself`,
      );
    }
  });

  test("the executors and the gateway find the services they call through their Services", () => {
    const urlSettings = [
      ["plannerUrl", "planner"],
      ["executorUrl", "executor"],
      ["evidenceUrl", "evidence"],
    ] as const;
    const callers: Record<string, string[]> = {};
    for (const entry of deployments()) {
      const { service, env } = deploymentFacts(entry);
      const config = loadConfig(service, env, entry.where);
      for (const [setting, target] of urlSettings) {
        const url = config[setting];
        if (url === undefined) continue;
        assert.equal(typeof url, "string", `${entry.where}: ${setting}`);
        const name = entry.object.metadata.name;
        callers[name] = [...(callers[name] ?? []), target];
        const { protocol, hostname, port } = new URL(url as string);
        assert.equal(protocol, "https:", `${entry.where}: ${url} is TLS inside the cluster`);
        const svc = find("Service", hostname) as
          | (KubeObject & { spec: { selector: Record<string, string>; ports: { port: number }[] } })
          | undefined;
        assert.ok(svc, `${entry.where}: ${url} names the Service ${hostname}`);
        assert.equal(Number(port), svc.spec.ports[0]?.port, `${entry.where}: ${url} port`);
        const backends = deployments().filter(({ object }) =>
          Object.entries(svc.spec.selector).every(
            ([label, value]) => object.spec.template.metadata.labels[label] === value,
          ),
        );
        assert.deepEqual(
          backends.map((backend) => deploymentFacts(backend).service),
          [target],
          `${entry.where}: ${url} reaches the ${target}`,
        );
      }
    }
    assert.deepEqual(callers, {
      "executor-api": ["planner", "evidence"],
      "executor-worker": ["planner", "evidence"],
      gateway: ["planner", "executor", "evidence"],
    });
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
      if (service === "gateway") {
        const auth = (config as unknown as { auth: AuthConfig }).auth;
        assert.ok(auth.jwksFile !== undefined, `${entry.where}: PACKRUN_AUTH_JWKS_FILE is set`);
        assert.ok(mountedFile(entry, auth.jwksFile), `${entry.where}: the JWK Set is mounted`);
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

  test("each packrun service's environment is one it knows and accepts", async () => {
    const names = packrunServices()
      .map(([name]) => name)
      .sort();
    assert.deepEqual(names, ["evidence", "executor-api", "executor-worker", "gateway", "planner"]);
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
      if (kind === "gateway") {
        // PACKRUN_AUTH_JWKS_FILE is a path: /run/secrets/<secret>, the JWK Set make-secrets.sh
        // wrote; tokens signed with the private key it wrote beside it must verify.
        const auth = loadGatewayConfig(composeEnv(name, service)).auth;
        const secret = /^\/run\/secrets\/([a-z_]+)$/.exec(String(auth.jwksFile))?.[1];
        assert.ok(secret && service.secrets?.includes(secret), `${where}: the JWK Set is a secret`);
        await assertTokenKeysMatch(
          { ...auth, jwksFile: secretFiles[secret] as string },
          tokenSigningKeyFile,
          where,
        );
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
      assert.equal(config.host, "0.0.0.0", `compose ${name}: listens where the port is published`);
      if (services[kind].protocol === "http") {
        const url = httpHealthCheckUrl(service.healthcheck?.test, `compose ${name}`);
        assert.equal(url.href, `http://127.0.0.1:${config.port}${readinessPath}`);
        continue;
      }
      assert.deepEqual(service.healthcheck?.test, [
        "CMD",
        "/app/deploy/docker-entrypoint.sh",
        "healthcheck",
        String(config.port),
      ]);
    }
  });

  test("every service a URL names is a dependency that is healthy first, on the port it serves", () => {
    for (const [name, service] of packrunServices()) {
      const where = `compose ${name}`;
      const kind = serviceOfCommand(service.command?.[0], where);
      const called = new Set<string>();
      for (const [variable, value] of Object.entries(composeEnv(name, service))) {
        const target = composeServiceOfUrl(value);
        if (target === undefined) continue;
        called.add(target.name);
        assert.equal(
          service.depends_on?.[target.name]?.condition,
          "service_healthy",
          `${where}: ${variable} names ${target.name}, so it waits for it to be healthy`,
        );
        const serving = compose.services[target.name] as ComposeService;
        const targetKind = serving.build ? (serving.command?.[0] as ServiceName) : undefined;
        if (targetKind !== undefined) {
          const port = loadConfig(targetKind, composeEnv(target.name, serving), target.name).port;
          assert.equal(
            target.port,
            port,
            `${where}: ${variable} is the port ${target.name} serves`,
          );
          assert.equal(services[targetKind].protocol, "grpc", `${where}: ${variable} is gRPC`);
        }
      }
      if (kind !== "gateway") assert.ok(called.has("postgres"), `${where}: uses PostgreSQL`);
      else {
        assert.deepEqual([...called].sort(), ["evidence", "executor-api", "planner"], where);
      }
    }
  });

  test("dependencies wait for health; workers are replicated and drain in time", () => {
    for (const [name, service] of packrunServices()) {
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
    // The token signing key is not mounted anywhere: it stays on the host, private to its owner.
    assert.ok(existsSync(tokenSigningKeyFile), `make-secrets.sh creates ${tokenSigningKeyFile}`);
    assert.equal(statSync(tokenSigningKeyFile).mode & 0o077, 0, "the private JWK is mode 0600");
  });

  test("make-secrets.sh never replaces a key, and refuses half a token key pair", () => {
    const dir = secretsScratch;
    const before = Object.values(secretFiles).map((file) => read(file));
    const again = spawnSync("sh", [path.join(dir, "make-secrets.sh")], { encoding: "utf8" });
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /created/);
    assert.deepEqual(
      Object.values(secretFiles).map((file) => read(file)),
      before,
    );
    const jwks = secretFiles.token_jwks as string;
    const saved = read(jwks);
    rmSync(jwks);
    try {
      const half = spawnSync("sh", [path.join(dir, "make-secrets.sh")], { encoding: "utf8" });
      assert.equal(half.status, 1);
      assert.match(half.stderr, /one key pair, but only one exists/);
    } finally {
      writeFileSync(jwks, saved);
    }
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
  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL");
    await database?.drop();
  });

  test("with their compose environment they become healthy, serve and stop cleanly", async () => {
    database = await createTestDatabase("deploy");
    const redisUrl = readTestEnv().redisUrl;
    const scratch = scratchDir("packrun-deploy-run-");
    const ports: Record<string, number> = {};
    for (const [name] of packrunServices()) ports[name] = await freePort();
    const serviceUrl = (name: string) => `http://127.0.0.1:${ports[name]}`;

    /**
     * The compose environment made local (hosts, ports and paths only): URLs naming a compose
     * service point at its local stand-in, /run/secrets/<name> at the generated secret file.
     * Variables compose gives as NAME_FILE stay files, rewritten, so the entrypoint's file
     * handling runs too.
     */
    const localize = (name: string, service: ComposeService): Env => {
      const kind = service.command?.[0] as ServiceName;
      const env = composeEnv(name, service);
      const upper = kind.toUpperCase();
      env[`PACKRUN_${upper}_HOST`] = "127.0.0.1";
      env[`PACKRUN_${upper}_PORT`] = String(ports[name] ?? 0);
      for (const [variable, value] of Object.entries(env)) {
        const target = composeServiceOfUrl(value);
        if (target?.name === "postgres") env[variable] = database?.url as string;
        else if (target?.name === "redis") env[variable] = redisUrl;
        else if (target !== undefined) {
          assert.ok(ports[target.name], `compose ${name}: ${variable} names ${target.name}`);
          env[variable] = serviceUrl(target.name);
        }
        const secret = /^\/run\/secrets\/([a-z_]+)$/.exec(value)?.[1];
        if (secret !== undefined) env[variable] = secretFiles[secret] as string;
      }
      if (kind === "executor") {
        env.PACKRUN_EXECUTOR_QUEUE_PREFIX = uniqueName("deploy");
        env.PACKRUN_EXECUTOR_WORK_ROOT = path.join(scratch, `${name}-work`);
      }
      if (kind === "evidence") {
        env.PACKRUN_EVIDENCE_ARTIFACT_ROOT = path.join(scratch, "artifacts");
        mkdirSync(env.PACKRUN_EVIDENCE_ARTIFACT_ROOT);
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
          if (/"msg":"(planner|evidence|executor|gateway) ready"/.test(line)) resolve();
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

    /** Runs a compose health check, made local, through the entrypoint or node; its exit code. */
    const runHealthCheck = async (name: string, service: ComposeService) => {
      const kind = service.command?.[0] as ServiceName;
      const local = `127.0.0.1:${ports[name]}`;
      let argv: string[];
      if (services[kind].protocol === "http") {
        const url = httpHealthCheckUrl(service.healthcheck?.test, `compose ${name}`);
        assert.equal(Number(url.port), services[kind].defaultPort);
        const script = service.healthcheck?.test[3] as string;
        argv = [process.execPath, "-e", script.replace(url.host, local)];
      } else {
        const [, script, command, port] = service.healthcheck?.test ?? [];
        assert.equal(script, "/app/deploy/docker-entrypoint.sh");
        assert.equal(command, "healthcheck");
        assert.equal(Number(port), services[kind].defaultPort);
        argv = [
          "sh",
          path.join(deployDir, "docker-entrypoint.sh"),
          "healthcheck",
          `http://${local}`,
        ];
      }
      // Inside the container the check sees the service's environment: its PACKRUN_TLS_CA.
      const caSecret = /^\/run\/secrets\/([a-z_]+)$/.exec(
        String(service.environment?.PACKRUN_TLS_CA ?? ""),
      )?.[1];
      const caFile = caSecret === undefined ? undefined : secretFiles[caSecret];
      const check = spawn(argv[0] as string, argv.slice(1), {
        env: {
          PATH: process.env.PATH ?? "",
          ...(caFile === undefined ? {} : { PACKRUN_TLS_CA: caFile }),
        },
        stdio: "ignore",
      });
      const [code] = (await once(check, "exit")) as [number | null];
      return code;
    };

    // In compose order: planner and evidence first, then the executors that depend on them,
    // then the gateway in front of planner, executor API and evidence.
    const order = ["planner", "evidence", "executor-api", "executor-worker", "gateway"];
    assert.deepEqual([...order].sort(), Object.keys(ports).sort());
    const started = [];
    for (const name of order) {
      const service = start(name, compose.services[name] as ComposeService);
      await service.ready;
      started.push(service);
    }
    for (const { name, service } of started) {
      if (service.healthcheck === undefined) continue;
      // As compose does: unhealthy only after `retries` consecutive failures (this machine may be
      // slow enough for a check to time out once).
      let code = await runHealthCheck(name, service);
      for (let retry = 1; code !== 0 && retry < (service.healthcheck.retries ?? 3); retry++) {
        await sleep(1000);
        code = await runHealthCheck(name, service);
      }
      assert.equal(code, 0, `compose ${name}: its health check passes`);
    }

    // The gateway: ready because all three answer, and it serves tokens of the compose issuer
    // signed with the key make-secrets.sh wrote, and only those.
    const gateway = serviceUrl("gateway");
    // (Each /readyz check allows 2 s per service: on a loaded machine one may time out.)
    let readiness = await fetch(`${gateway}${readinessPath}`);
    for (let retry = 1; readiness.status !== 200 && retry < 5; retry++) {
      await sleep(1000);
      readiness = await fetch(`${gateway}${readinessPath}`);
    }
    assert.equal(readiness.status, 200, "ready, as its health check said");
    assert.deepEqual(await readiness.json(), {
      ready: true,
      services: { planner: "SERVING", executor: "SERVING", evidence: "SERVING" },
    });
    assert.equal((await fetch(`${gateway}${livenessPath}`)).status, 200);
    const auth = loadGatewayConfig(
      composeEnv("gateway", compose.services.gateway as ComposeService),
    ).auth;
    const claims = {
      issuer: auth.issuer,
      audience: auth.audience,
      subject: "deploy-test",
      tenant: "deploy-test",
      scopes: ["packs.read"] as const,
      tenantClaim: auth.tenantClaim,
    };
    const key = JSON.parse(read(tokenSigningKeyFile)) as JWK;
    const listPacks = (token?: string) =>
      fetch(`${gateway}/api/packs`, {
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      });
    const listed = await listPacks(await mintToken({ key, ...claims }));
    assert.equal(listed.status, 200, await listed.clone().text());
    assert.deepEqual(await listed.json(), { packs: [] });
    assert.equal((await listPacks()).status, 401, "no token: refused");
    const stranger = (await generateLocalSigningKey()).privateJwk;
    assert.equal((await listPacks(await mintToken({ key: stranger, ...claims }))).status, 401);
    const otherIssuer = await mintToken({ key, ...claims, issuer: "someone-else" });
    assert.equal((await listPacks(otherIssuer)).status, 401, "another issuer: refused");

    for (const { child } of started.reverse()) child.kill("SIGTERM");
    for (const { name, exited } of started) {
      const [code] = await exited;
      assert.equal(code, 0, `compose ${name} exits 0 on SIGTERM`);
    }
    const closed = await checkHealth(serviceUrl("planner"), { timeoutMs: 1000 });
    assert.equal(closed.serving, false, "a stopped service fails its health check");
    const gatewayService = compose.services.gateway as ComposeService;
    assert.equal(await runHealthCheck("gateway", gatewayService), 1, "so does a stopped gateway");
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
  /** The text of the reference's `### <title>` subsection. */
  const subsection = (title: string) => {
    const start = reference.indexOf(`\n### ${title}`);
    assert.ok(start >= 0, `operations.md has a "### ${title}" configuration table`);
    const end = reference.indexOf("\n### ", start + 1);
    return reference.slice(start, end < 0 ? undefined : end);
  };

  test("the configuration reference lists every variable each service reads, in its table", () => {
    const shared = subsection("All services");
    for (const service of serviceNames) {
      const own = subsection(service[0]?.toUpperCase() + service.slice(1));
      for (const name of known[service]) {
        const row = `| \`${name}\` `;
        assert.ok(
          own.includes(row) || shared.includes(row),
          `operations.md does not document ${name} for the ${service}`,
        );
      }
    }
  });

  test("every variable it names is one a service or the CLI reads", () => {
    const cliDir = path.join(root, "packages", "cli", "src");
    const cli = new Set(
      readdirSync(cliDir, { recursive: true, encoding: "utf8" })
        .filter((file) => file.endsWith(".ts") && !file.endsWith(".test.ts"))
        .flatMap((file) =>
          [...read(path.join(cliDir, file)).matchAll(/\benv\.(PACKRUN_[A-Z0-9_]+)\b/g)].map(
            (match) => match[1] as string,
          ),
        ),
    );
    assert.ok(cli.has("PACKRUN_URL") && cli.has("PACKRUN_TOKEN"), "the CLI reads its variables");
    const all = new Set([...cli, ...serviceNames.flatMap((service) => [...known[service]])]);
    for (const [name] of doc.matchAll(/\b(?:DATABASE_URL|REDIS_URL|PACKRUN_[A-Z0-9_]+)\b/g)) {
      assert.ok(
        all.has(baseVariable(name)),
        `operations.md names ${name}, which neither a service nor the CLI reads`,
      );
    }
  });
});
