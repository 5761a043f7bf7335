/**
 * Shared test data: a real plan (built by @packrun/planning) and a run record for it. Used by
 * this package's tests and the evidence service's.
 */
import { createHash } from "node:crypto";
import { planPack } from "@packrun/planning";
import type { JsonValue } from "./evidence-json.ts";
import { buildStatement, inTotoPayloadType, serializeStatement } from "./in-toto.ts";
import type { SigningKey } from "./keys.ts";
import { buildPredicate } from "./pack-run-predicate.ts";
import { parseRunRecord, type RunRecord } from "./run-record.ts";
import { signEnvelope } from "./sign-envelope.ts";
import { type TranscriptEvent, transcriptLine } from "./transcript.ts";
import type { BundleSource } from "./write-bundle.ts";

/** A small pack exercising inputs, a secret, an approval gate and a map. */
export const fixtureManifest = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: release-notes
  version: 1.2.0
spec:
  inputs:
    - name: region
      type: string
      required: true
    - name: shards
      type: array
      default: [a, b]
  secrets:
    - name: token
  approvals:
    - id: ship
      grants: [release-managers]
  steps:
    - id: build
      run:
        uses: builtin:shell
        with:
          argv: [make, "{{ inputs.region }}"]
    - id: approve
      gate:
        approval:
          id: ship
          message: Ship it?
    - id: fanout
      map:
        items: "{{ inputs.shards }}"
        step:
          id: publish
          run:
            uses: builtin:noop
  outputs:
    - name: summary
      type: object
      expression: "{{ inputs.region }}"
`;

/** The fixture pack planned with `{ region: "eu-west-1" }` and the secret `token`. */
export function fixturePlan() {
  return planPack(fixtureManifest, {
    inputs: { region: "eu-west-1" },
    suppliedSecretNames: ["token"],
  });
}

/** A plausible run record for {@link fixturePlan}, ending with `status`. */
export function fixtureRunRecord(runId: string, overrides: Partial<RunRecord> = {}): RunRecord {
  const { plan, planHash } = fixturePlan();
  return {
    runId,
    status: "succeeded",
    pack: { name: plan.pack.name, version: plan.pack.version, digest: `sha256:${"ab".repeat(32)}` },
    planHash,
    inputs: plan.inputs as RunRecord["inputs"],
    secrets: ["token"],
    outputs: [
      { name: "summary", type: "object", value: { region: "eu-west-1", ok: true } },
      { name: "binary", type: "file", digest: `sha256:${"cd".repeat(32)}`, path: "dist/app" },
    ],
    steps: [
      {
        id: "build",
        status: "succeeded",
        attempts: 2,
        exitCode: 0,
        startedAt: "2026-01-31T12:00:00.000Z",
        finishedAt: "2026-01-31T12:00:05.000Z",
      },
      {
        id: "approve",
        status: "succeeded",
        attempts: 0,
        exitCode: null,
        startedAt: "2026-01-31T12:00:05.000Z",
        finishedAt: "2026-01-31T12:01:00.000Z",
      },
      {
        id: "fanout[0]::publish",
        status: "succeeded",
        attempts: 1,
        exitCode: 0,
        startedAt: "2026-01-31T12:01:00.000Z",
        finishedAt: "2026-01-31T12:01:01.000Z",
      },
      {
        id: "fanout[1]::publish",
        status: "succeeded",
        attempts: 1,
        exitCode: 0,
        startedAt: "2026-01-31T12:01:00.000Z",
        finishedAt: "2026-01-31T12:01:02.000Z",
      },
    ],
    approvals: [
      {
        approvalId: "ship",
        stepId: "approve",
        approver: "alice@example.com",
        decision: "approved",
        decidedAt: "2026-01-31T12:00:59.000Z",
        comment: "LGTM",
      },
    ],
    policyDecisions: [],
    startedAt: "2026-01-31T12:00:00.000Z",
    finishedAt: "2026-01-31T12:01:02.000Z",
    executor: { id: "executor@test", version: "0.1.0" },
    ...overrides,
  };
}

/** A transcript for a fixture run: started, steps, log lines, then the terminal event. */
export function fixtureTranscript(runId: string, status = "succeeded"): TranscriptEvent[] {
  const types: [string, string, string][] = [
    ["run.started", "", "run started"],
    ["step.started", "build", "build started"],
    ["log.stdout", "build", "compiling"],
    ["log.stderr", "build", "warning: [MASKED] used"],
    ["step.succeeded", "build", "build succeeded"],
    ["gate.approved", "approve", "alice@example.com approved ship"],
    ["step.succeeded", "fanout[0]::publish", "published"],
    ["step.succeeded", "fanout[1]::publish", "published"],
    [`run.${status}`, "", `run ${status}`],
  ];
  return types.map(([type, stepId, message], index) => ({
    sequence: index + 1,
    runId,
    time: new Date(Date.UTC(2026, 0, 31, 12, 0, index)).toISOString(),
    level: type === "log.stderr" ? "warn" : "info",
    type,
    stepId,
    message,
    metadata: { index },
    idempotencyKey: `${runId}:${index + 1}`,
  }));
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** A complete, signed bundle source for a fixture run, with two artifacts (both included). */
export function fixtureBundleSource(
  key: SigningKey,
  runId = "run-fixture-1",
  events: readonly TranscriptEvent[] = fixtureTranscript(runId),
): BundleSource {
  const { planJson } = fixturePlan();
  const record = parseRunRecord(fixtureRunRecord(runId));
  const transcript = Buffer.from(events.map(transcriptLine).join(""));
  const files = [Buffer.from("#!/bin/sh\necho app\n"), Buffer.from('{"critical":0}\n')];
  const artifacts = files.map((content, index) => ({
    name: index === 0 ? "app" : "scan.json",
    stepId: index === 0 ? "build" : "",
    type: "file",
    digest: sha256(content),
    sizeBytes: content.length,
    sourcePath: index === 0 ? "dist/app" : "scan.json",
  }));
  const predicate = buildPredicate(record, {
    artifacts,
    transcript: {
      events: events.length,
      sizeBytes: transcript.length,
      digest: sha256(transcript),
    },
  });
  const envelope = signEnvelope(
    inTotoPayloadType,
    serializeStatement(buildStatement(predicate)),
    key,
  );
  const outputValues: Record<string, JsonValue> = {};
  for (const output of record.outputs) {
    if (output.value !== undefined) outputValues[output.name] = output.value as JsonValue;
  }
  return {
    signingKey: key,
    envelope,
    planJson,
    inputValues: record.inputs as Record<string, JsonValue>,
    outputValues,
    publicKeyPem: key.publicKeyPem,
    transcript,
    artifactFiles: files.map((content) => ({
      digest: sha256(content),
      sizeBytes: content.length,
      open: async function* () {
        yield content;
      },
    })),
  };
}
