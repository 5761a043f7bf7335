import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { RunState as RunStateEnum, StepState as StepStateEnum } from "@packrun/proto/executor/v1";
import { describe, test } from "vitest";
import { isTenantName, runStates, stepStates } from "./index.ts";
import {
  runStateFromProto,
  runStateToProto,
  stepStateFromProto,
  stepStateToProto,
} from "./proto-states.ts";

/** The enum's values other than UNSPECIFIED (numeric enums also map names back). */
function enumValues(enumObject: Record<string, string | number>): number[] {
  return Object.values(enumObject).filter(
    (value): value is number => typeof value === "number" && value !== 0,
  );
}

describe("state names and the protobuf enums", () => {
  test("every name maps to a distinct enum value and back", () => {
    assert.deepEqual(
      runStates.map((state) => runStateFromProto(runStateToProto(state))),
      [...runStates],
    );
    assert.deepEqual(
      stepStates.map((state) => stepStateFromProto(stepStateToProto(state))),
      [...stepStates],
    );
  });

  test("every enum value has a name; UNSPECIFIED has none", () => {
    for (const value of enumValues(RunStateEnum)) assert.ok(runStateFromProto(value));
    for (const value of enumValues(StepStateEnum)) assert.ok(stepStateFromProto(value));
    assert.equal(runStateFromProto(RunStateEnum.UNSPECIFIED), undefined);
    assert.equal(stepStateFromProto(StepStateEnum.UNSPECIFIED), undefined);
  });

  test("the public spelling is the one the OpenAPI document promised", () => {
    assert.ok(stepStates.includes("timed_out"));
    assert.ok(stepStates.includes("awaiting-approval"));
  });
});

describe("tenant names", () => {
  test("letters, digits and . _ : @ / -, starting with a letter or digit, at most 128", () => {
    for (const name of ["acme", "org:acme", "acme/eu-1", "a.b_c@d", "x".repeat(128)])
      assert.ok(isTenantName(name), name);
    for (const name of ["", "-acme", ".acme", "ac me", "acme\n", "x".repeat(129), "ä"])
      assert.ok(!isTenantName(name), JSON.stringify(name));
  });
});

describe("the docs spell the states as the contract does", () => {
  const docs = path.resolve(import.meta.dirname, "..", "..", "..", "docs");

  /** The backticked words of the paragraph of `file` that starts with `marker`. */
  async function namesAfter(file: string, marker: string): Promise<string[]> {
    const text = await readFile(path.join(docs, file), "utf8");
    const start = text.indexOf(marker);
    assert.ok(start >= 0, `${file} has no "${marker}"`);
    const paragraph = text.slice(start, text.indexOf("\n\n", start));
    return [...paragraph.matchAll(/`([a-z_-]+)`/g)].map((match) => match[1] as string);
  }

  test("glossary: run states and step states", async () => {
    assert.deepEqual(await namesAfter("glossary.md", "**Step state.**"), [...stepStates]);
    assert.deepEqual(
      (await namesAfter("glossary.md", "**Run.**")).filter((name) => name !== "planHash"),
      [...runStates],
    );
  });
});
