import { type SimulatedStep, type Simulation, simulatePlan } from "@packrun/planning";
import type { Command } from "commander";
import { declaredOutputRows, emitOutput, renderJson, renderTable } from "../output.ts";
import { addPlanningOptions, type PlanningOptions, planFromOptions } from "../planning-options.ts";
import { printable } from "../printable.ts";

/** Children last, so each step's own fields read before its subtree in the JSON. */
function childrenLast(step: SimulatedStep): SimulatedStep {
  const { children, ...own } = step;
  return { ...own, children: children.map(childrenLast) };
}

function stepRows(steps: readonly SimulatedStep[], depth: number): string[][] {
  return steps.flatMap((step) => [
    [`${"  ".repeat(depth)}${printable(step.id)}`, step.kind, step.status, printable(step.reason)],
    ...stepRows(step.children, depth + 1),
  ]);
}

/**
 * The human rendering of a simulation: the step tree (map and parallel children indented
 * under their parent) with each step's classification, then the declared outputs.
 */
export function renderSimulationTable(simulation: Simulation): string {
  const { summary } = simulation;
  let out = `${printable(summary.packName)}@${printable(summary.packVersion)}  ${simulation.planHash}\n\n`;
  out += renderTable(["STEP", "KIND", "STATUS", "REASON"], stepRows(simulation.steps, 0));
  out += "\n";
  out +=
    summary.outputs.length === 0
      ? "No declared outputs.\n"
      : renderTable(["OUTPUT", "TYPE", "PATH", "EXPRESSION"], declaredOutputRows(summary.outputs));
  return out;
}

/** `packrun simulate`: classifies every planned step without running anything, offline. */
export function registerSimulateCommand(program: Command): void {
  addPlanningOptions(program.command("simulate"))
    .summary("show what a run would do, without running anything")
    .description(
      "Plan a pack with its inputs and walk the plan: every step (map and parallel children " +
        "included) is classified pending, skipped, requires-approval or requires-policy, with " +
        "the reason, and the declared outputs are listed. Nothing executes; works offline.",
    )
    .addHelpText(
      "after",
      '\nExamples:\n  packrun simulate pack.yaml --input \'images=["a","b"]\'\n' +
        "  packrun simulate -m pack.yaml --inputs inputs.json --format json\n\n" +
        "JSON output: {planHash, pack, steps[{id, name, kind, status, reason, ..., children}], outputs, summary}.\n",
    )
    .action(async (positional: string | undefined, options: PlanningOptions) => {
      const { result } = await planFromOptions(positional, options);
      const simulation = simulatePlan(result);
      const text =
        options.format === "json"
          ? renderJson({
              planHash: simulation.planHash,
              pack: { name: simulation.summary.packName, version: simulation.summary.packVersion },
              steps: simulation.steps.map(childrenLast),
              outputs: simulation.outputs,
              summary: simulation.summary,
            })
          : renderSimulationTable(simulation);
      await emitOutput(text, options.output);
    });
}
