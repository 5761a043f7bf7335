import type { PlanResult } from "@packrun/planning";
import type { Command } from "commander";
import { formatDuration } from "../format-duration.ts";
import {
  declaredOutputRows,
  emitOutput,
  renderFields,
  renderJson,
  renderTable,
} from "../output.ts";
import { addPlanningOptions, type PlanningOptions, planFromOptions } from "../planning-options.ts";
import { printable } from "../printable.ts";

function list(values: readonly string[]): string {
  return values.length === 0 ? "(none)" : values.map(printable).join(", ");
}

/** The human rendering of a plan: what will run and what it will need from people. */
export function renderPlanTable(result: PlanResult): string {
  const { summary } = result;
  const secrets =
    summary.secretNames.length === 0
      ? "(none)"
      : `${list(summary.secretNames)} (values are supplied at run time and never shown)`;
  let out = renderFields([
    ["Pack", `${printable(summary.packName)}@${printable(summary.packVersion)}`],
    ["Plan hash", result.planHash],
    ["Pack digest", summary.packDigest],
    ["Steps", String(summary.stepCount)],
    ["Sandbox", printable(summary.sandboxMode)],
    ["Policies", list(summary.policyNames)],
    ["Secrets", secrets],
  ]);
  out += "\nApprovals:\n";
  out +=
    summary.approvals.length === 0
      ? "  (none)\n"
      : indent(
          renderTable(
            ["ID", "REQUIRED", "GRANTS", "EXPIRES", "REASON"],
            summary.approvals.map((approval) => [
              printable(approval.id),
              String(approval.required),
              approval.grants.length === 0 ? "(any)" : list(approval.grants),
              formatDuration(approval.expiresAfterSeconds),
              printable(approval.reason),
            ]),
          ),
        );
  out += "\nOutputs:\n";
  out +=
    summary.outputs.length === 0
      ? "  (none)\n"
      : indent(
          renderTable(["NAME", "TYPE", "PATH", "EXPRESSION"], declaredOutputRows(summary.outputs)),
        );
  return out;
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, "  ");
}

/** `packrun plan`: builds the deterministic plan and its hash, offline. */
export function registerPlanCommand(program: Command): void {
  addPlanningOptions(program.command("plan"))
    .summary("build the plan of a pack and its planHash")
    .description(
      "Validate a manifest with its inputs and build the deterministic plan: the normalised " +
        "step graph and its planHash (sha256 over the RFC 8785 canonical JSON). The same " +
        "manifest data and inputs give the same hash on any machine, whatever the YAML " +
        "formatting. Works offline.",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun plan pack.yaml --input image=nginx:1.27\n" +
        "  packrun plan -m pack.yaml --inputs inputs.json --format json --output plan.json\n\n" +
        "JSON output: {planHash, summary, plan}.\n",
    )
    .action(async (positional: string | undefined, options: PlanningOptions) => {
      const { result } = await planFromOptions(positional, options);
      const text =
        options.format === "json"
          ? renderJson({ planHash: result.planHash, summary: result.summary, plan: result.plan })
          : renderPlanTable(result);
      await emitOutput(text, options.output);
    });
}
