import {
  compileInputSchema,
  describeSchemaErrors,
  type PlannedStepOutput,
} from "@packrun/planning";
import type { StepExecutionResult } from "../runtime/types.ts";

/**
 * Applies a run step's declared output types to a succeeded attempt's outputs: a `json` output
 * is parsed (and checked against its schema), a declared output the step did not write fails
 * the step. The values were masked as text first, so a secret never reaches the parsed value.
 * Any problem fails the attempt with a reason naming the output.
 */
export function applyDeclaredOutputs(
  result: StepExecutionResult,
  declared: Readonly<Record<string, PlannedStepOutput>> | undefined,
): StepExecutionResult {
  if (declared === undefined || result.outcome !== "succeeded") return result;
  const outputs: Record<string, unknown> = { ...result.outputs };
  const problems: string[] = [];
  for (const [name, output] of Object.entries(declared)) {
    const raw = result.outputs[name];
    if (raw === undefined) {
      problems.push(`output "${name}" is declared but the step did not write it`);
      continue;
    }
    if (output.type !== "json") continue;
    const parsed = parseJsonOutput(name, raw);
    if (!parsed.ok) {
      problems.push(parsed.problem);
      continue;
    }
    if (output.schema !== null) {
      const validate = compileInputSchema(output.schema);
      if (!validate(parsed.value)) {
        problems.push(
          `output "${name}" does not match its schema: ${describeSchemaErrors(validate.errors).join("; ")}`,
        );
        continue;
      }
    }
    outputs[name] = parsed.value;
  }
  if (problems.length === 0) return { ...result, outputs };
  return { ...result, outcome: "failed", reason: `$PACKRUN_OUTPUT: ${problems.join("; ")}` };
}

function parseJsonOutput(
  name: string,
  raw: unknown,
): { ok: true; value: unknown } | { ok: false; problem: string } {
  if (typeof raw !== "string") return { ok: true, value: raw };
  try {
    return { ok: true, value: JSON.parse(raw) as unknown };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return {
      ok: false,
      problem: `output "${name}" is declared type json but is not valid JSON (${detail})`,
    };
  }
}
