import type { Run } from "./api-types.ts";
import { formatElapsed } from "./format-duration.ts";
import { renderFields, renderTable } from "./output.ts";
import { printable } from "./printable.ts";
import { pendingGateLines, runDurationMs, stepRows } from "./run-progress.ts";

/** `k=v, k=w` of a label map, or "". */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([key, value]) => `${printable(key)}=${printable(value)}`)
    .join(", ");
}

/** The rows of `runs list`: ID, PACK, STATE, CREATED, TIME, LABELS. */
export function runListRows(runs: readonly Run[], now: number): string[][] {
  return runs.map((run) => [
    run.id,
    `${printable(run.pack.name)}@${printable(run.pack.version)}`,
    run.state,
    run.createdAt,
    formatElapsed(runDurationMs(run, now)),
    formatLabels(run.labels),
  ]);
}

/** The fields that have a value. */
function optionalFields(fields: [string, string | undefined][]): [string, string][] {
  return fields.filter((field): field is [string, string] => field[1] !== undefined);
}

/**
 * The human rendering of one run (`runs show`): its fields, the step table (with attempts and
 * durations), the gates with their decisions, the pending gates with the command to decide
 * them, and the run's outputs.
 */
export function renderRunDetails(run: Run, now: number): string {
  const fields: [string, string][] = [
    ["Run", run.id],
    ["Pack", `${printable(run.pack.name)}@${printable(run.pack.version)} (${run.pack.digest})`],
    ["State", `${run.state}${run.reason === undefined ? "" : `: ${printable(run.reason)}`}`],
    ["Plan hash", run.planHash],
    ["Submitted by", printable(run.submittedBy)],
    ["Created", run.createdAt],
    ["Started", run.startedAt ?? ""],
    ["Finished", run.finishedAt ?? ""],
    ["Duration", formatElapsed(runDurationMs(run, now))],
    ["Priority", String(run.priority)],
    ["Labels", formatLabels(run.labels)],
    ...(run.rerunOf === undefined
      ? []
      : [
          [run.rerunOf.mode === "resume" ? "Resumed from" : "Rerun of", run.rerunOf.runId] as [
            string,
            string,
          ],
        ]),
    ...(run.reruns === undefined || run.reruns.length === 0
      ? []
      : [
          [
            "Started again as",
            run.reruns.map((link) => `${link.runId} (${link.mode})`).join(", "),
          ] as [string, string],
        ]),
    // Issue 17: only shown when set, so other runs read as before.
    ...optionalFields([
      ["Waiting", run.waitingReason === undefined ? undefined : printable(run.waitingReason)],
      ["Not before", run.notBefore],
      [
        "Deadline",
        run.timeoutSeconds === undefined
          ? undefined
          : `${run.timeoutSeconds}s${run.deadlineAt === undefined ? "" : ` (at ${run.deadlineAt})`}`,
      ],
      [
        "Schedule",
        run.schedule === undefined ? undefined : `${run.schedule.id} (due ${run.schedule.dueAt})`,
      ],
    ]),
  ];
  let out = renderFields(fields);
  if (run.steps.length > 0) {
    out += `\n${renderTable(["STEP", "STATE", "ATTEMPT", "TIME", "NOTE"], stepRows(run, now))}`;
  }
  if (run.gates.length > 0) {
    const rows = run.gates.map((gate) => [
      printable(gate.gateId),
      gate.kind,
      printable(gate.stepId),
      gate.state,
      gate.kind === "approval"
        ? `${gate.decisions.filter((decision) => decision.approved).length}/${gate.requiredApprovals}`
        : "",
      gate.decisions
        .map(
          (decision) =>
            `${printable(decision.approver)} ${decision.approved ? "approved" : "rejected"}${decision.comment === undefined ? "" : ` (${printable(decision.comment)})`}`,
        )
        .join("; "),
    ]);
    out += `\n${renderTable(["GATE", "KIND", "STEP", "STATE", "APPROVALS", "DECISIONS"], rows)}`;
  }
  const pending = pendingGateLines(run);
  if (pending.length > 0) out += `\n${pending.join("\n")}\n`;
  if (run.outputs !== undefined && Object.keys(run.outputs).length > 0) {
    const rows = Object.entries(run.outputs).map(([name, value]) => [
      printable(name),
      printable(JSON.stringify(value) ?? ""),
    ]);
    out += `\n${renderTable(["OUTPUT", "VALUE"], rows)}`;
  }
  return out;
}
