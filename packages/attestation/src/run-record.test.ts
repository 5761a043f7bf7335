import assert from "node:assert/strict";
import { PackrunError } from "@packrun/errors";
import { test } from "vitest";
import { digestJson } from "./evidence-json.ts";
import { buildStatement, packRunPredicateType, statementType } from "./in-toto.ts";
import { buildPredicate } from "./pack-run-predicate.ts";
import { planConsistencyProblems } from "./plan-consistency.ts";
import { parseRunRecord } from "./run-record.ts";
import { fixturePlan, fixtureRunRecord } from "./test-fixtures.ts";

const transcript = { events: 9, sizeBytes: 100, digest: `sha256:${"1".repeat(64)}` };

test("a valid run record becomes a predicate with digests, redacted secrets and sorted lists", () => {
  const record = parseRunRecord(fixtureRunRecord("run-1"));
  const predicate = buildPredicate(record, { artifacts: [], transcript });
  assert.deepEqual(predicate.inputs, [
    { name: "region", digest: digestJson("eu-west-1") },
    { name: "shards", digest: digestJson(["a", "b"]) },
  ]);
  assert.deepEqual(predicate.secrets, [{ name: "token", redacted: true }]);
  assert.deepEqual(
    predicate.outputs.map((output) => [output.name, output.digest]),
    [
      ["binary", `sha256:${"cd".repeat(32)}`],
      ["summary", digestJson({ region: "eu-west-1", ok: true })],
    ],
  );
  const statement = buildStatement(predicate);
  assert.equal(statement._type, statementType);
  assert.equal(statement.predicateType, packRunPredicateType);
  assert.deepEqual(
    statement.subject.map((subject) => subject.name),
    ["outputs/binary", "outputs/summary", "plan.json"],
  );
});

test("invalid records list every problem with its path", () => {
  const record = {
    ...fixtureRunRecord("run-1"),
    status: "running",
    planHash: "sha256:XYZ",
    secretValues: { token: "hunter2" },
    steps: [
      {
        id: "build",
        status: "succeeded",
        attempts: -1,
        exitCode: 0,
        startedAt: "yesterday",
        finishedAt: null,
      },
    ],
  };
  assert.throws(
    () => parseRunRecord(record),
    (error: unknown) => {
      assert.ok(error instanceof PackrunError);
      assert.equal(error.code, "RUN_RECORD_INVALID");
      assert.match(error.message, /run_record\.status: /);
      assert.match(
        error.message,
        /run_record\.planHash: expected sha256:<64 lowercase hex digits>/,
      );
      assert.match(error.message, /run_record\.steps\.0\.attempts/);
      assert.match(error.message, /run_record\.steps\.0\.startedAt/);
      assert.match(error.message, /secretValues/);
      assert.ok(!error.message.includes("hunter2"));
      return true;
    },
  );
  assert.throws(
    () => parseRunRecord({ ...fixtureRunRecord("r"), outputs: [{ name: "f", type: "file" }] }),
    /outputs\.0\.digest: file outputs need a digest/,
  );
});

test("an object output whose digest contradicts its value is refused", () => {
  const record = parseRunRecord(
    fixtureRunRecord("r", {
      outputs: [{ name: "o", type: "object", value: 1, digest: digestJson(2) }],
    }),
  );
  assert.throws(() => buildPredicate(record, { artifacts: [], transcript }), {
    code: "RUN_RECORD_INVALID",
  });
});

test("plan consistency: map children and declared approvals pass; strangers are named", () => {
  const { plan } = fixturePlan();
  const record = fixtureRunRecord("r");
  const claims = {
    pack: record.pack,
    stepIds: record.steps.map((step) => step.id),
    approvalIds: ["ship"],
    policyStepIds: [],
    inputValues: record.inputs,
  };
  assert.deepEqual(planConsistencyProblems(plan, claims), []);
  assert.deepEqual(
    planConsistencyProblems(plan, {
      ...claims,
      pack: { name: "other", version: "1.2.0" },
      stepIds: ["build", "fanout[7]::publish", "ghost", "nomap[0]::x"],
      approvalIds: ["ship", "sneaky"],
      inputValues: { region: "us-east-1", shards: ["a", "b"] },
    }),
    [
      "pack other@1.2.0 is not the plan's release-notes@1.2.0",
      "step ghost is not in the plan",
      "step nomap[0]::x is not in the plan",
      "approval sneaky is not declared by the plan",
      "input region differs from the plan's",
    ],
  );
});
