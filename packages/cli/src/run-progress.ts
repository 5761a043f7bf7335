import { failedStepStates } from "@packrun/contract";
import type { Gate, Run, Step } from "./api-types.ts";
import { commandHint } from "./command-hint.ts";
import { formatElapsed } from "./format-duration.ts";
import { renderTable } from "./output.ts";
import { printable } from "./printable.ts";

function millisBetween(from: string | undefined, to: string | undefined, now: number) {
  if (from === undefined) return undefined;
  const start = Date.parse(from);
  const end = to === undefined ? now : Date.parse(to);
  return Number.isNaN(start) || Number.isNaN(end) ? undefined : Math.max(0, end - start);
}

/** How long a step has run: its recorded duration, or the time since it started. */
export function stepDurationMs(step: Step, now: number): number | undefined {
  if (step.durationMs !== undefined) return step.durationMs;
  return millisBetween(step.startedAt, step.finishedAt, now);
}

/** How long a run has taken so far (or took). */
export function runDurationMs(run: Run, now: number): number | undefined {
  return millisBetween(run.startedAt ?? run.createdAt, run.finishedAt, now);
}

/** Nesting depth of each step (0 for top-level, +1 per enclosing parallel or map). */
export function stepDepths(steps: readonly Step[]): Map<string, number> {
  const parents = new Map(steps.map((step) => [step.id, step.parentId]));
  const depths = new Map<string, number>();
  for (const step of steps) {
    let depth = 0;
    let parent = step.parentId;
    const seen = new Set<string>();
    while (parent !== undefined && !seen.has(parent) && parents.has(parent)) {
      seen.add(parent);
      depth++;
      parent = parents.get(parent);
    }
    depths.set(step.id, depth);
  }
  return depths;
}

/**
 * The steps with each one's children right after it (the API lists a `parallel` or `map`
 * block's children after the top-level steps), otherwise in the order given.
 */
export function treeOrder(steps: readonly Step[]): Step[] {
  const ids = new Set(steps.map((step) => step.id));
  const children = new Map<string, Step[]>();
  const roots: Step[] = [];
  for (const step of steps) {
    const parent = step.parentId;
    if (parent !== undefined && parent !== step.id && ids.has(parent)) {
      children.set(parent, [...(children.get(parent) ?? []), step]);
    } else roots.push(step);
  }
  const ordered: Step[] = [];
  const seen = new Set<Step>();
  const visit = (step: Step) => {
    if (seen.has(step)) return;
    seen.add(step);
    ordered.push(step);
    for (const child of children.get(step.id) ?? []) visit(child);
  };
  for (const step of roots) visit(step);
  // Steps in a parent cycle have no root: keep them rather than lose them.
  for (const step of steps) visit(step);
  return ordered;
}

/** `attempt/maxAttempts` of a step that runs something; "" for blocks and gates. */
export function formatAttempt(step: Step): string {
  return step.kind === "run" && step.maxAttempts > 0 ? `${step.attempt}/${step.maxAttempts}` : "";
}

/** A short note: why a step failed or was skipped, when a retry is due, what a gate waits for. */
export function stepNote(step: Step, now: number): string {
  if (step.nextAttemptAt !== undefined && (step.state === "pending" || step.state === "failed")) {
    const due = Date.parse(step.nextAttemptAt) - now;
    const when = Number.isNaN(due) ? step.nextAttemptAt : `in ${formatElapsed(Math.max(0, due))}`;
    return `retry ${when}${step.reason === undefined ? "" : `: ${step.reason}`}`;
  }
  return step.reason ?? "";
}

/**
 * The rows of the step table, children under their parent (see {@link treeOrder}): STEP
 * (indented by depth), STATE, ATTEMPT, TIME, NOTE.
 */
export function stepRows(run: Run, now: number): string[][] {
  const depths = stepDepths(run.steps);
  return treeOrder(run.steps).map((step) => [
    `${"  ".repeat(depths.get(step.id) ?? 0)}${printable(step.id)}`,
    step.state,
    formatAttempt(step),
    formatElapsed(stepDurationMs(step, now)),
    printable(stepNote(step, now)),
  ]);
}

/** The command that decides a gate. */
export function approveCommand(runId: string, gateId: string): string {
  return commandHint(`approve ${runId} ${printable(gateId)}`);
}

/** The pending approval gates of a run, each with what it needs and the command to approve. */
export function pendingGateLines(run: Run): string[] {
  const lines: string[] = [];
  for (const gateId of run.pendingGates) {
    const gate: Gate | undefined = run.gates.find(
      (candidate) => candidate.gateId === gateId && candidate.kind === "approval",
    );
    const approvals = gate?.decisions.filter((decision) => decision.approved).length ?? 0;
    const details = [
      gate === undefined ? undefined : `step ${printable(gate.stepId)}`,
      gate === undefined ? undefined : `${approvals}/${gate.requiredApprovals} approvals`,
      gate === undefined || gate.grants.length === 0
        ? undefined
        : `grants: ${gate.grants.map(printable).join(", ")}`,
      gate?.expiresAt === undefined ? undefined : `expires ${gate.expiresAt}`,
    ].filter((detail) => detail !== undefined);
    const message = gate?.message === undefined ? "" : `: ${printable(gate.message)}`;
    lines.push(
      `approval required: gate ${printable(gateId)}${details.length === 0 ? "" : ` (${details.join(", ")})`}${message}`,
      `  approve: ${approveCommand(run.id, gateId)}`,
      `  reject:  ${approveCommand(run.id, gateId)} --reject`,
    );
  }
  return lines;
}

/** The header line: run id, pack, state and elapsed time. */
export function runHeadline(run: Run, now: number): string {
  return `run ${run.id}  ${printable(run.pack.name)}@${printable(run.pack.version)}  ${run.state}  ${formatElapsed(runDurationMs(run, now))}`;
}

/**
 * The whole live view of a run: the headline, one line per step, then the pending gates.
 * With `maxLines`, the step table is cut so the view fits (a terminal redraw must never
 * scroll), keeping the steps that are not pending or succeeded first, and a last line counts
 * what was left out.
 */
export function renderProgress(run: Run, now: number, maxLines = Number.POSITIVE_INFINITY) {
  const gates = pendingGateLines(run);
  const table = renderTable(["STEP", "STATE", "ATTEMPT", "TIME", "NOTE"], stepRows(run, now))
    .trimEnd()
    .split("\n");
  const room = maxLines - 1 - gates.length;
  let shown = table;
  if (table.length > room && room >= 3) {
    const [header = "", ...rows] = table;
    const ordered = treeOrder(run.steps);
    const interesting = rows
      .map((row, index) => ({ row, step: ordered[index] }))
      .filter(({ step }) => step !== undefined && !["pending", "succeeded"].includes(step.state));
    const kept = interesting.slice(0, room - 2).map(({ row }) => row);
    const counts = new Map<string, number>();
    for (const step of run.steps) counts.set(step.state, (counts.get(step.state) ?? 0) + 1);
    const summary = [...counts].map(([state, count]) => `${count} ${state}`).join(", ");
    shown = [header, ...kept, `… ${run.steps.length} steps: ${summary}`];
  }
  return [runHeadline(run, now), ...shown, ...gates];
}

/** What of a step the plain (non-TTY) view reports a change of. */
function stepKey(step: Step): string {
  return `${step.state}#${step.attempt}`;
}

/** The time prefix of a plain progress line (UTC, to the second). */
function clock(now: number): string {
  return new Date(now).toISOString().slice(11, 19);
}

/**
 * The plain view (for pipes and logs): one appended line per change since `previous` (the
 * run's state, each step's state or attempt, each newly pending gate with its commands).
 * `previous` undefined means everything is new.
 */
export function stateChangeLines(previous: Run | undefined, run: Run, now: number): string[] {
  const lines: string[] = [];
  const at = clock(now);
  if (previous === undefined || previous.state !== run.state) {
    lines.push(
      `${at} run ${run.id} ${run.state}${run.reason === undefined ? "" : `: ${printable(run.reason)}`}`,
    );
  }
  const before = new Map(previous?.steps.map((step) => [step.id, stepKey(step)]));
  for (const step of treeOrder(run.steps)) {
    if (before.get(step.id) === stepKey(step)) continue;
    // Steps first seen pending are not news.
    if (!before.has(step.id) && step.state === "pending" && step.attempt === 0) continue;
    const attempt = formatAttempt(step);
    const facts = [
      attempt === "" ? undefined : `attempt ${attempt}`,
      stepDurationMs(step, now) === undefined || step.state === "pending"
        ? undefined
        : formatElapsed(stepDurationMs(step, now)),
    ].filter((fact) => fact !== undefined);
    const note = stepNote(step, now);
    lines.push(
      `${at} step ${printable(step.id)} ${step.state}${facts.length === 0 ? "" : ` (${facts.join(", ")})`}${note === "" ? "" : `: ${printable(note)}`}`,
    );
  }
  const wasPending = new Set(previous?.pendingGates ?? []);
  const fresh = { ...run, pendingGates: run.pendingGates.filter((gate) => !wasPending.has(gate)) };
  lines.push(...pendingGateLines(fresh).map((line) => `${at} ${line}`));
  return lines;
}

/**
 * Steps that made the run fail (failed, timed out, rejected, expired) with their reasons and how
 * to see their logs. Cancelled steps are left out: they follow a cancel, they do not cause one.
 */
export function failureLines(run: Run): string[] {
  return run.steps
    .filter((step) => failedStepStates.has(step.state) && step.state !== "cancelled")
    .flatMap((step) => [
      `  step ${printable(step.id)} ${step.state}${step.exitCode === undefined ? "" : ` (exit ${step.exitCode})`}${step.reason === undefined ? "" : `: ${printable(step.reason)}`}`,
      `    logs: ${commandHint(`logs ${run.id} --step ${printable(step.id)}`)}`,
    ]);
}

/**
 * The closing lines of a followed run: how long a success took, or the steps that failed and
 * how to see their logs (the run's own reason is the CLI's error message).
 */
export function resultLines(run: Run, now: number): string[] {
  if (run.state !== "succeeded") return failureLines(run);
  const took = formatElapsed(runDurationMs(run, now));
  return [`run ${run.id} succeeded${took === "" ? "" : ` in ${took}`}`];
}
