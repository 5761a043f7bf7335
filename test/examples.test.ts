/**
 * Plans and simulates every pack under examples/ with its inputs.json, and checks the facts each
 * example's README states.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import {
  canonicalJson,
  isRuntimeValue,
  moduleCatalog,
  PackValidationError,
  type PlannedStep,
  type PlanResult,
  planPack,
  type SimulatedStep,
  type Simulation,
  simulatePlan,
} from "@packrun/planning";
import { describe, test } from "vitest";

const examplesDir = path.resolve(import.meta.dirname, "..", "examples");
const exampleNames = readdirSync(examplesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();

function read(name: string, file: string): string {
  return readFileSync(path.join(examplesDir, name, file), "utf8");
}

function inputsOf(name: string): Record<string, unknown> {
  return JSON.parse(read(name, "inputs.json")) as Record<string, unknown>;
}

function plan(name: string, inputs = inputsOf(name), suppliedSecretNames?: string[]): PlanResult {
  return planPack(
    read(name, "pack.yaml"),
    suppliedSecretNames === undefined ? { inputs } : { inputs, suppliedSecretNames },
  );
}

/** Every planned step, depth first, children included. */
function flatten(steps: readonly PlannedStep[]): PlannedStep[] {
  return steps.flatMap((step) => [
    step,
    ...flatten(
      step.kind === "parallel" ? step.parallel.steps : step.kind === "map" ? step.map.steps : [],
    ),
  ]);
}

function simulated(simulation: Simulation): Map<string, SimulatedStep> {
  const all = new Map<string, SimulatedStep>();
  const visit = (steps: readonly SimulatedStep[]) => {
    for (const step of steps) {
      all.set(step.id, step);
      visit(step.children);
    }
  };
  visit(simulation.steps);
  return all;
}

function step<K extends PlannedStep["kind"]>(
  result: PlanResult,
  id: string,
  kind: K,
): Extract<PlannedStep, { kind: K }> {
  const found = flatten(result.plan.steps).find((candidate) => candidate.id === id);
  assert.ok(found !== undefined, `no planned step ${id}`);
  assert.equal(found.kind, kind, `${id} is a ${found.kind}`);
  return found as Extract<PlannedStep, { kind: K }>;
}

function planError(run: () => unknown): PackValidationError {
  try {
    run();
  } catch (error) {
    assert.ok(
      error instanceof PackValidationError,
      `expected a PackValidationError, got ${String(error)}`,
    );
    return error;
  }
  assert.fail("planning succeeded, but it should have failed");
}

test("there are at least five examples, each complete", () => {
  assert.ok(exampleNames.length >= 5, `only ${exampleNames.length} examples`);
  for (const name of exampleNames) {
    for (const file of ["pack.yaml", "inputs.json", "README.md"]) {
      assert.ok(
        existsSync(path.join(examplesDir, name, file)),
        `examples/${name}/${file} is missing`,
      );
    }
  }
});

/** Every program a `builtin:shell` step of `steps` runs directly (argv[0]), map templates too. */
function argvPrograms(steps: readonly PlannedStep[]): string[] {
  return steps.flatMap((step): string[] => {
    switch (step.kind) {
      case "run": {
        const argv = step.run.with.argv;
        const first = Array.isArray(argv) ? argv[0] : undefined;
        return step.run.uses === "builtin:shell" && typeof first === "string" ? [first] : [];
      }
      case "parallel":
        return argvPrograms(step.parallel.steps);
      case "map":
        return argvPrograms([
          ...step.map.steps,
          ...(step.map.template === null ? [] : [step.map.template]),
        ]);
      default:
        return [];
    }
  });
}

describe("every example's README says what it needs", () => {
  for (const name of exampleNames) {
    test(name, () => {
      const readme = read(name, "README.md");
      const section = /^## What it needs\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(readme)?.[1];
      assert.ok(section, `examples/${name}/README.md has no "## What it needs" section`);
      for (const program of new Set(argvPrograms(plan(name).plan.steps)))
        assert.ok(
          section.includes(`\`${program}\``),
          `examples/${name}/README.md does not say it needs \`${program}\``,
        );
    });
  }
});

describe("every example plans and simulates", () => {
  for (const name of exampleNames) {
    test(name, () => {
      const first = plan(name);
      const second = plan(name);
      assert.equal(first.plan.pack.name, name, "metadata.name matches the directory");
      assert.match(first.planHash, /^sha256:[0-9a-f]{64}$/);
      assert.equal(second.planHash, first.planHash, "the plan hash is stable");
      assert.equal(first.planJson, canonicalJson(first.plan));
      assert.equal(
        first.planHash,
        `sha256:${createHash("sha256").update(first.planJson, "utf8").digest("hex")}`,
      );
      const simulation = simulatePlan(first);
      assert.equal(simulation.planHash, first.planHash);
      const ids = flatten(first.plan.steps).map((candidate) => candidate.id);
      assert.equal(new Set(ids).size, ids.length, "planned ids are unique");
      assert.equal(
        simulated(simulation).size,
        ids.length,
        "the simulation shows every planned step",
      );
      assert.equal(first.summary.stepCount, ids.length);
      // Run parameters reach processes as text: every leaf is a string or a runtime value.
      const leaves = (value: unknown): unknown[] =>
        isRuntimeValue(value) || typeof value !== "object" || value === null
          ? [value]
          : Object.values(value).flatMap(leaves);
      for (const planned of flatten(first.plan.steps)) {
        if (planned.kind !== "run") continue;
        for (const leaf of leaves(planned.run.with)) {
          assert.ok(
            typeof leaf === "string" || isRuntimeValue(leaf),
            `${planned.id}: ${String(leaf)}`,
          );
        }
      }
      assert.match(read(name, "README.md"), new RegExp(`^# ${name}\\n`));
    });
  }
});

test("together the examples use every step kind, every module and when", () => {
  const kinds = new Set<string>();
  const modules = new Set<string>();
  const shellForms = new Set<string>();
  let whenAtPlanTime = false;
  let whenAtRunTime = false;
  for (const name of exampleNames) {
    for (const planned of flatten(plan(name).plan.steps)) {
      kinds.add(planned.kind);
      if (isRuntimeValue(planned.enabled)) whenAtRunTime = true;
      if (planned.skipReason?.startsWith("when ")) whenAtPlanTime = true;
      if (planned.kind !== "run") continue;
      modules.add(planned.run.uses);
      if (planned.run.uses === "builtin:shell") {
        shellForms.add("argv" in planned.run.with ? "argv" : "script");
      }
    }
  }
  assert.deepEqual([...kinds].sort(), ["approval-gate", "map", "parallel", "policy-gate", "run"]);
  assert.deepEqual([...modules].sort(), Object.keys(moduleCatalog).sort());
  assert.deepEqual([...shellForms].sort(), ["argv", "script"]);
  assert.ok(whenAtPlanTime, "some example skips a step at plan time");
  assert.ok(whenAtRunTime, "some example decides a when at run time");
});

describe("image-scan", () => {
  const inputs = inputsOf("image-scan");
  const images = inputs.images as string[];

  test("scan is a map with one child per image, ids <mapId>[<index>]::<templateId>", () => {
    const result = plan("image-scan");
    const scan = step(result, "scan", "map");
    assert.equal(scan.map.maxParallel, 4);
    assert.equal(scan.map.continueOnError, true);
    assert.equal(scan.map.templateId, "scanImage");
    assert.deepEqual(scan.map.items, images);
    assert.deepEqual(
      scan.map.steps.map((child) => child.id),
      images.map((_, index) => `scan[${index}]::scanImage`),
    );
    scan.map.steps.forEach((child, index) => {
      assert.equal(child.kind, "run");
      if (child.kind !== "run") return;
      assert.equal(child.parentId, "scan");
      assert.equal(child.timeoutSeconds, 900);
      assert.equal(child.run.with.workdir, `scans/${index}`);
      const argv = child.run.with.argv as string[];
      assert.equal(argv.at(-1), images[index]);
      assert.ok(argv.includes("HIGH,CRITICAL"));
      assert.deepEqual(child.failure, {
        maxAttempts: 3,
        backoffSeconds: 5,
        backoff: "exponential",
        maxBackoffSeconds: 60,
        jitter: 0,
      });
    });
    const verify = step(result, "verify", "map");
    assert.equal(verify.enabled, true);
    assert.equal(verify.map.steps.length, images.length);
  });

  test("the report reads earlier steps at run time", () => {
    const result = plan("image-scan");
    const report = step(result, "report", "run");
    const env = report.run.with.env as Record<string, unknown>;
    assert.deepEqual(env.DB_UPDATED_AT, { $runtime: "{{ steps.updateDb.outputs.updatedAt }}" });
    assert.deepEqual(env.SCAN_STATUS, { $runtime: "{{ steps.scan.status }}" });
    assert.equal(env.IMAGE_COUNT, String(images.length));
    assert.ok(!String(report.run.with.script).includes("{{"));
    const sim = simulated(simulatePlan(result)).get("report");
    assert.equal(sim?.status, "pending");
    assert.equal(sim?.runtimeDependent, true);
    assert.deepEqual(
      result.plan.outputs.map((output) => [output.name, output.type]),
      [
        ["report", "file"],
        ["criticalCount", "object"],
      ],
    );
  });

  test("signature verification can be switched off at plan time", () => {
    const result = plan("image-scan", { ...inputs, verifySignatures: false });
    const sims = simulated(simulatePlan(result));
    assert.equal(sims.get("verify")?.status, "skipped");
    assert.equal(sims.get("verify[0]::verifyImage")?.reason, 'parent step "verify" is skipped');
    assert.equal(sims.get("scan[0]::scanImage")?.status, "pending");
    assert.notEqual(result.planHash, plan("image-scan").planHash);
  });

  test("image references are validated", () => {
    const error = planError(() =>
      plan("image-scan", { images: ["registry.example.com/x; rm -rf /"] }),
    );
    assert.equal(error.diagnostics[0]?.code, "INPUT_INVALID");
  });
});

describe("bundle-ingest", () => {
  const inputs = inputsOf("bundle-ingest");

  test("runs sealed and ingests with the given checksum", () => {
    const result = plan("bundle-ingest");
    assert.equal(result.plan.sandbox.mode, "sealed");
    assert.deepEqual(result.plan.sandbox.egressAllowlist, []);
    assert.equal(result.summary.sandboxMode, "sealed");
    const ingest = step(result, "ingest", "run");
    assert.equal(ingest.run.uses, "builtin:bundle.ingest");
    assert.deepEqual(ingest.run.with, {
      path: inputs.bundlePath,
      sha256: inputs.sha256,
      filename: "bundle.tar.gz",
    });
    const index = step(result, "index", "run");
    assert.deepEqual(index.run.with.env, {
      STAGED: `bundles/${String(inputs.sha256)}/bundle.tar.gz`,
    });
    assert.equal(step(result, "recordTicket", "run").run.uses, "builtin:noop");
    const staged = result.plan.outputs.find((output) => output.name === "stagedPath");
    assert.equal(staged?.expression, `bundles/${String(inputs.sha256)}/bundle.tar.gz`);
    for (const sim of simulated(simulatePlan(result)).values()) assert.equal(sim.status, "pending");
  });

  test("the ticket step is skipped without a ticket", () => {
    const { ticket: _ticket, ...withoutTicket } = inputs;
    const recordTicket = step(plan("bundle-ingest", withoutTicket), "recordTicket", "run");
    assert.equal(recordTicket.enabled, false);
    assert.equal(recordTicket.skipReason, "when `inputs.ticket != null` is false");
  });

  test("a malformed checksum or filename is refused before anything runs", () => {
    const bad = planError(() =>
      plan("bundle-ingest", { ...inputs, sha256: "../../etc", filename: "../x" }),
    );
    assert.deepEqual(
      bad.diagnostics.map((diagnostic) => [diagnostic.code, diagnostic.path]),
      [
        ["INPUT_INVALID", "inputs.sha256"],
        ["INPUT_INVALID", "inputs.filename"],
      ],
    );
  });
});

describe("deploy-with-approval", () => {
  const inputs = inputsOf("deploy-with-approval");

  test("production requires the policy and two approvals", () => {
    const result = plan("deploy-with-approval", inputs, ["kubeconfig"]);
    const sims = simulated(simulatePlan(result));
    assert.equal(sims.get("vulnerabilityPolicy")?.status, "requires-policy");
    assert.equal(sims.get("vulnerabilityPolicy")?.gateRef, "no-critical-vulnerabilities");
    assert.equal(sims.get("releaseApproval")?.status, "requires-approval");
    assert.equal(sims.get("releaseApproval")?.gateRef, "production-release");
    assert.match(
      sims.get("releaseApproval")?.reason ?? "",
      /^needs 2 approvals "production-release" holding release-managers/,
    );
    assert.deepEqual(result.plan.approvals, [
      {
        id: "production-release",
        grants: ["release-managers"],
        required: 2,
        expiresAfterSeconds: 86400,
        reason: "Production changes need two release managers (change policy CP-7).",
      },
    ]);
    const policy = step(result, "vulnerabilityPolicy", "policy-gate");
    assert.deepEqual(policy.gate, {
      policy: "no-critical-vulnerabilities",
      failAction: "fail",
      parameters: {
        environment: "production",
        maxCritical: 0,
        critical: { $runtime: "{{ steps.scan.outputs.critical }}" },
      },
    });
    assert.equal(sims.get("smokeTest")?.runtimeDependent, true);
    assert.equal(step(result, "smokeTest", "run").run.uses, "builtin:container");
  });

  test("the secret reaches the deploy step only as a runtime env value", () => {
    const result = plan("deploy-with-approval", inputs, ["kubeconfig"]);
    assert.deepEqual(result.plan.secrets, ["kubeconfig"]);
    const deploy = step(result, "deploy", "run");
    assert.deepEqual((deploy.run.with.env as Record<string, unknown>).KUBECONFIG_DATA, {
      $runtime: "{{ secrets.kubeconfig }}",
    });
    const mentions = result.planJson.split("secrets.kubeconfig").length - 1;
    assert.equal(mentions, 1, "the secret is referenced exactly once, in the deploy env");
    const missing = planError(() => plan("deploy-with-approval", inputs, []));
    assert.equal(missing.diagnostics[0]?.code, "SECRET_MISSING");
  });

  test("staging skips the approval gate at plan time", () => {
    const result = plan("deploy-with-approval", { ...inputs, environment: "staging" });
    const sims = simulated(simulatePlan(result));
    assert.equal(sims.get("releaseApproval")?.status, "skipped");
    assert.equal(sims.get("vulnerabilityPolicy")?.status, "requires-policy");
  });

  test("unpinned images and unknown environments are refused", () => {
    const error = planError(() =>
      plan("deploy-with-approval", { ...inputs, environment: "prod", image: "nginx:latest" }),
    );
    assert.deepEqual(
      error.diagnostics.map((diagnostic) => diagnostic.path),
      ["inputs.environment", "inputs.image"],
    );
  });
});

describe("build-matrix", () => {
  const fixed = {
    maxAttempts: 2,
    backoffSeconds: 15,
    backoff: "fixed",
    maxBackoffSeconds: null,
    jitter: 0,
  };

  test("the build is a parallel step limited to two at a time", () => {
    const result = plan("build-matrix");
    const build = step(result, "build", "parallel");
    assert.equal(build.parallel.maxParallel, 2);
    assert.equal(build.parallel.continueOnError, false);
    assert.deepEqual(
      build.parallel.steps.map((child) => child.id),
      ["linuxAmd64", "linuxArm64", "darwinArm64", "windowsAmd64"],
    );
    for (const child of build.parallel.steps) {
      assert.equal(child.kind, "run");
      if (child.kind !== "run") continue;
      assert.equal(child.parentId, "build");
      assert.equal(child.run.uses, "builtin:container");
      assert.equal(child.run.with.image, "docker.io/library/golang:1.23.4-bookworm");
      assert.equal((child.run.with.env as Record<string, unknown>).CGO_ENABLED, "0");
    }
    const checks = step(result, "checks", "parallel");
    assert.equal(checks.parallel.continueOnError, true);
    assert.equal(checks.parallel.maxParallel, 0);
  });

  test("failure policies are what the README says", () => {
    const result = plan("build-matrix");
    const expected: Record<string, unknown> = {
      checkout: {
        maxAttempts: 4,
        backoffSeconds: 2,
        backoff: "exponential",
        maxBackoffSeconds: 30,
        jitter: 0.5,
      },
      build: fixed,
      linuxAmd64: fixed,
      linuxArm64: fixed,
      darwinArm64: fixed,
      windowsAmd64: {
        maxAttempts: 5,
        backoffSeconds: 5,
        backoff: "exponential",
        maxBackoffSeconds: 120,
        jitter: 0.2,
      },
      checks: fixed,
      vet: fixed,
      govulncheck: { ...fixed, maxAttempts: 1 },
      checksums: fixed,
    };
    assert.deepEqual(
      Object.fromEntries(
        flatten(result.plan.steps).map((planned) => [planned.id, planned.failure]),
      ),
      expected,
    );
  });
});

describe("sealed-report", () => {
  const inputs = inputsOf("sealed-report");

  test("is sealed and declares file and object outputs", () => {
    const result = plan("sealed-report");
    assert.equal(result.plan.sandbox.mode, "sealed");
    assert.deepEqual(result.plan.outputs, [
      { name: "sbom", type: "file", path: "sbom.spdx.json", expression: null },
      { name: "report", type: "file", path: "report.md", expression: null },
      { name: "licenseSummary", type: "object", path: "licenses.json", expression: null },
      {
        name: "packageCount",
        type: "object",
        path: null,
        expression: { $runtime: "{{ steps.licenses.outputs.packages }}" },
      },
    ]);
    assert.deepEqual(simulatePlan(result).outputs, result.plan.outputs);
  });

  test("the copyleft check is skipped unless asked for", () => {
    const skipped = simulated(simulatePlan(plan("sealed-report"))).get("copyleftCheck");
    assert.equal(skipped?.status, "skipped");
    assert.equal(skipped?.reason, "when `inputs.failOnCopyleft` is false");
    const enabled = simulated(
      simulatePlan(plan("sealed-report", { ...inputs, failOnCopyleft: true })),
    );
    assert.equal(enabled.get("copyleftCheck")?.status, "pending");
  });

  test("the render step mixes plan-time and run-time values", () => {
    const render = step(plan("sealed-report"), "render", "run");
    assert.deepEqual(render.run.with.env, {
      TITLE: inputs.title,
      SOURCE_DIR: inputs.sourceDir,
      PACKAGES: { $runtime: "{{ steps.licenses.outputs.packages }}" },
    });
  });
});
