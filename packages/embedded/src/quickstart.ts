import { randomUUID } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { verifyBundle } from "@packrun/attestation";
import { isStepState } from "@packrun/contract";
import { stepStateFromProto } from "@packrun/contract/proto";
import { EvidenceService } from "@packrun/proto/evidence/v1";
import { ExecutorService, RunState, StepState } from "@packrun/proto/executor/v1";
import { PlannerService } from "@packrun/proto/planner/v1";
import { serviceTransport } from "@packrun/rpc-server";
import type { Embedded } from "./start-embedded.ts";

/** What the quickstart proved, for the caller (and tests). */
export interface QuickstartResult {
  runId: string;
  state: "succeeded" | "failed" | "cancelled";
  outputs: Record<string, unknown>;
  events: number;
  bundlePath: string;
  bundleVerified: boolean;
}

/** A step state in words ("timed out"), for the terminal. */
function stateWords(state: StepState): string {
  return (stepStateFromProto(state) ?? "unknown").replace(/[-_]/g, " ");
}

/**
 * Runs examples/quickstart end to end against running services: submits it, streams its events
 * live, approves its gate (as "embedded-demo"), waits for the signed attestation, downloads the
 * evidence bundle and verifies it offline. `print` receives the lines to show.
 */
export async function runQuickstart(
  services: Embedded,
  options: { packDir: string; home: string; print: (line: string) => void },
): Promise<QuickstartResult> {
  const { print } = options;
  // The demo is part of the trusted process: it calls as the gateway would (its identity).
  const executorTransport = serviceTransport(services.executorUrl, services.tls.services.gateway);
  const evidenceTransport = serviceTransport(services.evidenceUrl, services.tls.services.gateway);
  const executorSessions = executorTransport.sessions;
  const evidenceSessions = evidenceTransport.sessions;
  const executor = createClient(ExecutorService, executorTransport.transport);
  const evidence = createClient(EvidenceService, evidenceTransport.transport);
  const plannerTransport = serviceTransport(services.plannerUrl, services.tls.services.gateway);
  const plannerSessions = plannerTransport.sessions;
  try {
    const manifest = await readFile(join(options.packDir, "pack.yaml"), "utf8");
    const inputs = JSON.parse(await readFile(join(options.packDir, "inputs.json"), "utf8"));
    // Published as well, so that the web console's Packs page can simulate and run it again.
    await createClient(PlannerService, plannerTransport.transport).registerPack({
      tenant: "default",
      manifest,
      publishedBy: "embedded-demo",
    });
    const started = performance.now();
    const submitted = await executor.submitRun({
      tenant: "default",
      pack: { source: { case: "manifest", value: manifest } },
      inputs,
      secrets: { deployToken: "tok-3f9a-demo-secret" },
      submittedBy: "embedded-demo",
    });
    const run = submitted.run;
    if (run === undefined) throw new Error("the executor returned no run");
    print(
      `▶ run ${run.id}  ${run.packName}@${run.packVersion}  plan ${run.planHash.slice(0, 19)}…`,
    );

    let approved = false;
    let events = 0;
    const stepWidth = Math.max(...run.steps.map((step) => step.id.length), 8);
    // The run's first events reach the evidence log a moment after submission: wait for them.
    for (let tries = 0; ; tries++) {
      const known = await evidence
        .listEvents({ tenant: "default", runId: run.id, pageSize: 1 })
        .then(
          () => true,
          (error: unknown) => {
            if (ConnectError.from(error).code !== Code.NotFound || tries > 300) throw error;
            return false;
          },
        );
      if (known) break;
      await sleep(50);
    }
    for await (const { event } of evidence.subscribeEvents({ tenant: "default", runId: run.id })) {
      if (event === undefined) continue;
      events++;
      const step = event.stepId.padEnd(stepWidth);
      if (event.type.startsWith("log.")) print(`  ${step} │ ${event.message}`);
      else if (
        event.type.startsWith("step.") &&
        isStepState(event.type.slice(5)) &&
        event.type !== "step.pending"
      ) {
        print(
          `  ${step}   ${event.type.slice(5).replace(/[-_]/g, " ")}${event.message && !event.message.startsWith("step ") ? `: ${event.message}` : ""}`,
        );
      } else if (event.type.startsWith("gate.")) print(`  ${step}   ${event.message}`);
      if (event.type === "step.awaiting-approval" && !approved) {
        approved = true;
        print(
          `  ${step}   → approving as embedded-demo (in a deployment, a person with packs.approve does this)`,
        );
        // As the gateway does for a person: the claims of an approval token bound to the gate,
        // of an approver holding the groups the gate grants approval to.
        const grants = run.gates.find((gate) => gate.gateRef === "release")?.grants ?? [];
        await executor.decideApproval({
          tenant: "default",
          runId: run.id,
          approve: true,
          comment: "quickstart",
          token: {
            subject: "embedded-demo",
            tenant: "default",
            scopes: ["packs.approve"],
            groups: grants,
            runId: run.id,
            gateId: "release",
            planHash: run.planHash,
            tokenId: `jti:${randomUUID()}`,
          },
        });
      }
    }
    const finished = (await executor.getRun({ tenant: "default", runId: run.id })).run;
    const state =
      finished?.state === RunState.SUCCEEDED
        ? "succeeded"
        : finished?.state === RunState.CANCELLED
          ? "cancelled"
          : "failed";
    const outputs = (finished?.outputs ?? {}) as Record<string, unknown>;
    print(
      `${state === "succeeded" ? "✔" : "✖"} run ${state} in ${((performance.now() - started) / 1000).toFixed(1)} s; outputs ${JSON.stringify(outputs)}`,
    );
    for (const step of finished?.steps ?? [])
      if (step.state !== StepState.SUCCEEDED)
        print(`    ${step.id}: ${stateWords(step.state)} ${step.reason}`);

    // The attestation is signed once every event reached the evidence log.
    const deadline = Date.now() + 30_000;
    let keyId = "";
    while (keyId === "" && Date.now() < deadline) {
      keyId = await evidence.getAttestation({ tenant: "default", runId: run.id }).then(
        (response) => response.attestation?.keyId ?? "",
        () => "",
      );
      if (keyId === "") await sleep(100);
    }
    if (keyId === "") throw new Error("no attestation was signed within 30 s");
    const chunks: Uint8Array[] = [];
    for await (const part of evidence.getBundle({ tenant: "default", runId: run.id }))
      chunks.push(part.chunk);
    const bundle = Buffer.concat(chunks);
    await mkdir(join(options.home, "bundles"), { recursive: true });
    const bundlePath = join(options.home, "bundles", `${run.id}.tar.gz`);
    await writeFile(bundlePath, bundle);
    // Trust the evidence service's own published keys, as `packrun bundle` does.
    const { keys } = await evidence.listVerificationKeys({});
    const report = await verifyBundle(bundle, { keys: keys.map((key) => key.publicKeyPem) });
    print(
      `${report.ok ? "✔" : "✖"} attestation signed by key ${keyId.slice(0, 16)}…; evidence bundle ${report.ok ? "verified offline" : "FAILED verification"} (${report.checks.length} checks, ${events} events): ${bundlePath}`,
    );
    for (const failure of report.failures)
      print(
        `    ${failure.check}${failure.member ? ` ${failure.member}` : ""}: ${failure.message}`,
      );
    return { runId: run.id, state, outputs, events, bundlePath, bundleVerified: report.ok };
  } finally {
    executorSessions.abort();
    evidenceSessions.abort();
    plannerSessions.abort();
  }
}
