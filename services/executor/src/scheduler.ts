import type { Queryable, Transaction } from "@packrun/db";
import {
  ExpressionError,
  isRuntimeValue,
  type PlannedStep,
  runtimeReferences,
  sharedPlanningPool,
} from "@packrun/planning";
import { flattenPlannedSteps, insertStepRows } from "./plan-rows.ts";
import { type RunEvent, recordEvents } from "./run-events.ts";
import { type ReadyWork, type RunRow, runColumns, type StepRow } from "./run-rows.ts";
import {
  assertRunTransition,
  assertStepTransition,
  failedStepStates,
  type RunState,
  type StepState,
  terminalRunStates,
} from "./state-machine.ts";
import { loadStepBindings, referencedStepIds } from "./step-bindings.ts";

/** Most steps a run may hold after run-time map expansion (the planner's limit too). */
const maxStepsPerRun = 10_000;

/** How a step attempt ended, as its `step_attempts` row records it. */
export interface AttemptEnd {
  state: string;
  exitCode: number | null;
  reason: string;
  cpuMicros: number;
  peakMemoryBytes: number;
  /** Container steps: the image that ran, by reference and resolved digest. */
  image?: { reference: string; digest: string };
}

/** The reason a run ends `timed_out` with. */
export function runDeadlineReason(timeoutSeconds: number): string {
  return `run deadline of ${timeoutSeconds}s passed`;
}

/** SQL for "now" in a field value: the database clock is the only clock scheduling uses. */
export const dbNow = { sql: "now()" } as const;
type FieldValue = unknown | typeof dbNow | { sql: string; param: unknown };

/**
 * Decides and records what happens next in one run, inside one transaction that holds the
 * run's row lock (so transitions of a run are serialised). Steps that become claimable are
 * collected in {@link ready}; the caller queues them after the commit.
 */
export class RunScheduler {
  readonly ready: ReadyWork[] = [];
  /** Set when the run reached a terminal state in this transaction. */
  finishedState: RunState | undefined;
  /** Set when the run settled (terminal event recorded) in this transaction. */
  settled = false;
  readonly tx: Queryable;
  run: RunRow;
  /** Events of this transaction, written to the outbox in one statement just before COMMIT. */
  readonly #pendingEvents: RunEvent[] = [];
  /** Bumped by every write that can change what {@link syncRunState} decides. */
  #changes = 0;
  #syncedAt = -1;

  private constructor(tx: Transaction, run: RunRow) {
    this.tx = tx;
    this.run = run;
    tx.beforeCommit(async () => {
      const events = this.#pendingEvents.splice(0);
      await recordEvents(tx, this.run, events);
    });
  }

  /** Locks the run row; undefined when the run does not exist (or not in this tenant). */
  static async lock(
    tx: Transaction,
    runId: string,
    tenant?: string,
  ): Promise<RunScheduler | undefined> {
    const result = await tx.query<RunRow>(
      `SELECT ${runColumns} FROM runs WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) FOR UPDATE`,
      [runId, tenant ?? null],
    );
    const run = result.rows[0];
    return run === undefined ? undefined : new RunScheduler(tx, run);
  }

  /**
   * Locks the run row of a step a worker is running and says, in the same round trip, whether
   * the worker's claim (fence and lease owner) is still the current one, closing the attempt's
   * row when it is. Stable for the rest of the transaction: a claim is only superseded under
   * the run's lock, and a running step cannot be claimed.
   */
  static async lockForClaim(
    tx: Transaction,
    claim: { runId: string; stepId: string; fence: number; owner: string; attempt: number },
    ended: AttemptEnd,
  ): Promise<{ scheduler: RunScheduler; holdsClaim: boolean } | undefined> {
    // The attempt row is closed in the same statement, only if the claim holds; its condition
    // reads the locked run row, so the run is locked first, as everywhere else.
    const result = await tx.query<RunRow & { holds_claim: boolean }>(
      `WITH locked AS (
         SELECT ${runColumns}, EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.id AND s.step_id = $2 AND s.fence = $3 AND s.state = 'running' AND s.lease_owner = $4) AS holds_claim
           FROM runs r WHERE id = $1 FOR UPDATE OF r
       ), attempt AS (
         UPDATE step_attempts SET state = $6, finished_at = now(), exit_code = $7, reason = $8, cpu_micros = $9, peak_memory_bytes = $10,
                image_reference = $11, image_digest = $12
          WHERE run_id = $1 AND step_id = $2 AND attempt = $5 AND (SELECT holds_claim FROM locked)
       )
       SELECT * FROM locked`,
      [
        claim.runId,
        claim.stepId,
        claim.fence,
        claim.owner,
        claim.attempt,
        ended.state,
        ended.exitCode,
        ended.reason,
        ended.cpuMicros,
        ended.peakMemoryBytes,
        ended.image?.reference ?? null,
        ended.image?.digest ?? null,
      ],
    );
    const row = result.rows[0];
    if (row === undefined) return undefined;
    const { holds_claim: holdsClaim, ...run } = row;
    return { scheduler: new RunScheduler(tx, run), holdsClaim };
  }

  /**
   * Records events in the outbox with this run's identity, in order, when the transaction
   * commits (one statement for all of them): an event exists exactly when its transition does.
   */
  async events(events: readonly RunEvent[]): Promise<void> {
    this.#pendingEvents.push(...events);
  }

  async step(stepId: string): Promise<StepRow | undefined> {
    const result = await this.tx.query<StepRow>(
      "SELECT * FROM steps WHERE run_id = $1 AND step_id = $2",
      [this.run.id, stepId],
    );
    return result.rows[0];
  }

  /**
   * Moves a step to `to`, setting `fields`, only if it is still in `step.state` (the state
   * machine is checked here and by a trigger). Returns the updated row, or undefined when the
   * step had already moved on (a concurrent claim won).
   */
  async transition(
    step: StepRow,
    to: StepState,
    fields: Record<string, FieldValue> = {},
    note?: string,
  ): Promise<StepRow | undefined> {
    assertStepTransition(step.step_id, step.state, to);
    const sets = ["state = $3"];
    const params: unknown[] = [this.run.id, step.step_id, to, step.state];
    for (const [column, value] of Object.entries(fields)) {
      if (value === dbNow) sets.push(`${column} = now()`);
      else if (typeof value === "object" && value !== null && "sql" in value && "param" in value) {
        params.push((value as { param: unknown }).param);
        sets.push(
          `${column} = ${(value as { sql: string }).sql.replace("?", `$${params.length}`)}`,
        );
      } else {
        params.push(
          value !== null && typeof value === "object" && !(value instanceof Date)
            ? JSON.stringify(value)
            : value,
        );
        sets.push(`${column} = $${params.length}`);
      }
    }
    const result = await this.tx.query<StepRow>(
      `UPDATE steps SET ${sets.join(", ")} WHERE run_id = $1 AND step_id = $2 AND state = $4 RETURNING *`,
      params,
    );
    const updated = result.rows[0];
    if (updated === undefined) return undefined;
    this.#changes++;
    await this.events([stepEvent(updated, step.state, note)]);
    return updated;
  }

  /** Starts a queued run: activates its first step. */
  async startRun(): Promise<void> {
    if (this.run.state !== "queued") return;
    await this.setRunState("running", "", { started: true });
    if (this.run.timeout_seconds > 0) {
      // The deadline counts from the start: a delayed or waiting run has all of its time.
      const row = (
        await this.tx.query<{ deadline_at: Date }>(
          "UPDATE runs SET deadline_at = now() + make_interval(secs => timeout_seconds), waiting_reason = '' WHERE id = $1 RETURNING deadline_at",
          [this.run.id],
        )
      ).rows[0];
      if (row !== undefined) this.run = { ...this.run, deadline_at: row.deadline_at };
    } else if (this.run.waiting_reason !== "") {
      await this.tx.query("UPDATE runs SET waiting_reason = '' WHERE id = $1", [this.run.id]);
    }
    this.run = { ...this.run, waiting_reason: "" };
    await this.advanceTopLevel(-1);
    await this.syncRunState();
  }

  /**
   * Propagates a step that just reached a terminal state: up through the blocks it closes,
   * then along the top-level sequence.
   */
  async stepFinished(step: StepRow): Promise<void> {
    let current: StepRow | undefined = step;
    // Blocks are closed even after the run ended (e.g. cancelled while children ran).
    while (current !== undefined && current.parent_id !== null)
      current = await this.progressContainer(current.parent_id);
    if (current !== undefined && !terminalRunStates.has(this.run.state)) {
      if (failedStepStates.has(current.state)) {
        await this.failRun(
          `step "${current.step_id}" ${current.state.replace("_", " ")}${current.reason ? `: ${current.reason}` : ""}`,
        );
      } else {
        await this.advanceTopLevel(current.position);
      }
    }
    await this.syncRunState();
    await this.settle();
  }

  /**
   * Records the run's terminal event once the run is terminal and no step runs any more (a
   * cancelled run's steps may still be stopping): the evidence log accepts nothing after it.
   */
  async settle(): Promise<void> {
    if (!terminalRunStates.has(this.run.state)) return;
    const settled = await this.tx.query(
      "UPDATE runs SET settled_at = now() WHERE id = $1 AND settled_at IS NULL AND NOT EXISTS (SELECT 1 FROM steps WHERE run_id = $1 AND state = 'running')",
      [this.run.id],
    );
    if (settled.rowCount === 0) return;
    const state = this.run.state;
    await this.events([
      {
        type: `run.${state}`,
        level: state === "failed" || state === "timed_out" ? "error" : "info",
        message: this.run.reason || `run ${state}`,
        metadata: { state },
        idempotencyKey: `${this.run.id}/run/${state}`,
      },
    ]);
    this.settled = true;
  }

  /** Activates top-level steps after `position` until one keeps running or the run ends. */
  private async advanceTopLevel(position: number): Promise<void> {
    let next = position + 1;
    for (;;) {
      if (terminalRunStates.has(this.run.state)) return;
      const row = (
        await this.tx.query<StepRow>(
          "SELECT * FROM steps WHERE run_id = $1 AND parent_id IS NULL AND position = $2",
          [this.run.id, next],
        )
      ).rows[0];
      if (row === undefined) {
        await this.finishRun("succeeded", "");
        return;
      }
      const done = await this.activate(row);
      if (done === undefined) return;
      if (failedStepStates.has(done.state)) {
        await this.failRun(
          `step "${done.step_id}" ${done.state.replace("_", " ")}${done.reason ? `: ${done.reason}` : ""}`,
        );
        return;
      }
      next++;
    }
  }

  private async bindings(step: StepRow, value: unknown): Promise<Record<string, unknown>> {
    const ids = referencedStepIds(runtimeReferences(value));
    return {
      inputs: this.run.inputs,
      steps: await loadStepBindings(this.tx, this.run.id, ids),
      ...step.bindings,
    };
  }

  /** Fails a pending step whose run-time expression could not be evaluated. */
  private async failPending(step: StepRow, reason: string): Promise<StepRow> {
    const running = (await this.transition(step, "running", { started_at: dbNow })) ?? step;
    return (await this.transition(running, "failed", { finished_at: dbNow, reason })) ?? running;
  }

  /**
   * Reaches a pending step. Returns the step when it finished immediately (skipped, failed,
   * decided gate, empty block); undefined when it is now running, queued or awaiting a decision.
   */
  /**
   * Makes plain `run` steps (no run-time condition) claimable in one statement: what
   * {@link activate} does for each of them, for a map's many children at once.
   */
  private async readyRunSteps(steps: readonly StepRow[]): Promise<void> {
    const updated = (
      await this.tx.query<StepRow>(
        "UPDATE steps SET ready_at = now() WHERE run_id = $1 AND step_id = ANY($2) AND state = 'pending' AND ready_at IS NULL RETURNING *",
        [this.run.id, steps.map((step) => step.step_id)],
      )
    ).rows;
    if (updated.length === 0) return;
    this.#changes++;
    const byId = new Map(updated.map((row) => [row.step_id, row]));
    const inOrder = steps.flatMap((step) => byId.get(step.step_id) ?? []);
    await this.events(inOrder.map((row) => stepEvent(row, "pending", "ready")));
    for (const row of inOrder)
      this.ready.push({
        runId: this.run.id,
        stepId: row.step_id,
        tenant: this.run.tenant,
        priority: this.run.priority,
        attempt: row.attempt,
        delayMs: 0,
      });
  }

  async activate(step: StepRow): Promise<StepRow | undefined> {
    // A step a resume kept from the original run is done already: go on after it.
    if (step.state === "succeeded") return step;
    if (step.state !== "pending" || step.ready_at !== null) return undefined;
    const planned = step.planned;
    if (planned.enabled === false) {
      return this.transition(step, "skipped", {
        finished_at: dbNow,
        reason: planned.skipReason ?? "disabled",
      });
    }
    if (isRuntimeValue(planned.enabled)) {
      let enabled: unknown;
      try {
        enabled = await sharedPlanningPool().evaluateRuntimeValue(
          planned.enabled,
          await this.bindings(step, planned.enabled),
        );
      } catch (error) {
        return this.failPending(
          step,
          error instanceof ExpressionError ? error.message : String(error),
        );
      }
      if (typeof enabled !== "boolean")
        return this.failPending(
          step,
          `when must evaluate to true or false; \`${planned.enabled.$runtime}\` gave ${JSON.stringify(enabled)}`,
        );
      if (!enabled)
        return this.transition(step, "skipped", {
          finished_at: dbNow,
          reason: `when \`${planned.enabled.$runtime}\` is false`,
        });
    }
    switch (planned.kind) {
      case "run": {
        const updated = await this.transition(step, "pending", { ready_at: dbNow }, "ready");
        if (updated !== undefined)
          this.ready.push({
            runId: this.run.id,
            stepId: step.step_id,
            tenant: this.run.tenant,
            priority: this.run.priority,
            attempt: step.attempt,
            delayMs: 0,
          });
        return undefined;
      }
      case "parallel":
      case "map": {
        const running = await this.transition(step, "running", {
          started_at: dbNow,
          ready_at: dbNow,
        });
        if (running === undefined) return undefined;
        if (planned.kind === "map" && isRuntimeValue(planned.map.items)) {
          const failure = await this.expandMap(running, planned);
          if (failure !== undefined)
            return this.transition(running, "failed", { finished_at: dbNow, reason: failure });
        }
        return this.progressContainer(step.step_id);
      }
      case "approval-gate":
        return this.awaitApproval(step, planned);
      case "policy-gate":
        return this.evaluatePolicy(step, planned);
    }
  }

  private async expandMap(
    container: StepRow,
    planned: Extract<PlannedStep, { kind: "map" }>,
  ): Promise<string | undefined> {
    if (!isRuntimeValue(planned.map.items) || planned.map.template === null) return undefined;
    let items: unknown;
    try {
      items = await sharedPlanningPool().evaluateRuntimeValue(
        planned.map.items,
        await this.bindings(container, planned.map.items),
      );
    } catch (error) {
      return error instanceof ExpressionError ? error.message : String(error);
    }
    if (!Array.isArray(items))
      return `map items must evaluate to a list; got ${items === null ? "null" : typeof items}`;
    const template = planned.map.template;
    let children: PlannedStep[];
    try {
      children = await sharedPlanningPool().expandMapTemplates(
        template,
        container.step_id,
        items,
        this.run.inputs,
      );
    } catch (error) {
      return error instanceof ExpressionError ? error.message : String(error);
    }
    const rows = flattenPlannedSteps(children);
    const count =
      (
        await this.tx.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM steps WHERE run_id = $1",
          [this.run.id],
        )
      ).rows[0]?.n ?? 0;
    if (count + rows.length > maxStepsPerRun)
      return `map expands to ${rows.length} steps; a run holds at most ${maxStepsPerRun}`;
    await insertStepRows(this.tx, this.run, rows);
    this.#changes++;
    await this.events([
      {
        type: "step.expanded",
        level: "info",
        stepId: container.step_id,
        message: `map expanded to ${items.length} items`,
        metadata: { items: items.length },
        idempotencyKey: `${this.run.id}/${container.step_id}/expanded`,
      },
    ]);
    return undefined;
  }

  private async awaitApproval(
    step: StepRow,
    planned: Extract<PlannedStep, { kind: "approval-gate" }>,
  ): Promise<StepRow | undefined> {
    const plan = await this.approvals();
    const approval = plan.find((candidate) => candidate.id === planned.gate.approvalId);
    const seconds = approval?.expiresAfterSeconds ?? null;
    await this.transition(step, "awaiting-approval", {
      ready_at: dbNow,
      expires_at:
        seconds === null ? null : { sql: "now() + make_interval(secs => ?)", param: seconds },
      reason: `awaiting ${approval?.required ?? 1} approval(s) "${planned.gate.approvalId}"`,
    });
    return undefined;
  }

  private async approvals(): Promise<
    { id: string; required: number; expiresAfterSeconds: number | null }[]
  > {
    const result = await this.tx.query<{
      approvals: { id: string; required: number; expiresAfterSeconds: number | null }[];
    }>("SELECT (plan_json::jsonb)->'approvals' AS approvals FROM runs WHERE id = $1", [
      this.run.id,
    ]);
    return result.rows[0]?.approvals ?? [];
  }

  private async evaluatePolicy(
    step: StepRow,
    planned: Extract<PlannedStep, { kind: "policy-gate" }>,
  ): Promise<StepRow | undefined> {
    const policies =
      (
        await this.tx.query<{ policies: { name: string; expression: string }[] }>(
          "SELECT (plan_json::jsonb)->'policies' AS policies FROM runs WHERE id = $1",
          [this.run.id],
        )
      ).rows[0]?.policies ?? [];
    const policy = policies.find((candidate) => candidate.name === planned.gate.policy);
    const running = await this.transition(step, "running", { started_at: dbNow });
    if (running === undefined) return undefined;
    let passed = false;
    let reason: string;
    try {
      if (policy === undefined)
        throw new ExpressionError(`policy "${planned.gate.policy}" is not in the plan`);
      const bindings = {
        inputs: this.run.inputs,
        steps: await loadStepBindings(this.tx, this.run.id),
        run: {
          id: this.run.id,
          tenant: this.run.tenant,
          packName: this.run.pack_name,
          packVersion: this.run.pack_version,
          planHash: this.run.plan_hash,
        },
        // Parameters may read earlier steps' outputs (`steps.x.outputs.y`), known only now.
        parameters: await sharedPlanningPool().resolveRuntimeValues(
          planned.gate.parameters,
          await this.bindings(step, planned.gate.parameters),
        ),
      };
      const value = await sharedPlanningPool().evaluateExpression(policy.expression, bindings);
      if (typeof value !== "boolean")
        throw new ExpressionError(
          `policy must evaluate to true or false; gave ${JSON.stringify(value)}`,
        );
      passed = value;
      reason = passed
        ? `policy "${policy.name}" passed`
        : `policy "${policy.name}" denied: \`${policy.expression}\` is false`;
    } catch (error) {
      reason = `policy "${planned.gate.policy}" could not be evaluated: ${error instanceof Error ? error.message : String(error)}`;
    }
    const warnOnly = !passed && planned.gate.failAction === "warn";
    const outputs = {
      decision: passed ? "allow" : "deny",
      failAction: planned.gate.failAction,
      reason,
    };
    await this.events([
      {
        type: "gate.policy",
        level: passed ? "info" : warnOnly ? "warn" : "error",
        stepId: step.step_id,
        message: reason,
        metadata: outputs,
        idempotencyKey: `${this.run.id}/${step.step_id}/policy`,
      },
    ]);
    return this.transition(running, passed || warnOnly ? "succeeded" : "failed", {
      finished_at: dbNow,
      outputs,
      reason: warnOnly ? `${reason} (failAction warn)` : reason,
    });
  }

  /**
   * Starts further children of a running parallel/map step within its maxParallel, and
   * finishes it when no child is left. Returns the container when it finished.
   */
  async progressContainer(containerId: string): Promise<StepRow | undefined> {
    for (;;) {
      // The container and its children's counts by state, in one round trip.
      const row = (
        await this.tx.query<
          StepRow & { child_counts: { state: StepState; activated: boolean; n: number }[] }
        >(
          `SELECT s.*, coalesce(
                    (SELECT jsonb_agg(jsonb_build_object('state', state, 'activated', activated, 'n', n))
                       FROM (SELECT state, ready_at IS NOT NULL AS activated, count(*)::int AS n
                               FROM steps WHERE run_id = s.run_id AND parent_id = s.step_id GROUP BY 1, 2) g),
                    '[]'::jsonb) AS child_counts
             FROM steps s WHERE s.run_id = $1 AND s.step_id = $2`,
          [this.run.id, containerId],
        )
      ).rows[0];
      if (row === undefined || row.state !== "running") return undefined;
      const { child_counts: counts, ...container } = row;
      const planned = container.planned;
      const block =
        planned.kind === "parallel"
          ? planned.parallel
          : planned.kind === "map"
            ? planned.map
            : undefined;
      if (block === undefined) return undefined;
      const sum = (test: (row: (typeof counts)[number]) => boolean) =>
        counts.filter(test).reduce((total, row) => total + row.n, 0);
      const total = sum(() => true);
      const failed = sum((row) => failedStepStates.has(row.state));
      const active = sum(
        (row) =>
          row.state === "running" ||
          row.state === "awaiting-approval" ||
          (row.state === "pending" && row.activated),
      );
      const waiting = sum((row) => row.state === "pending" && !row.activated);
      const ended = terminalRunStates.has(this.run.state);
      const stopping = ended || (failed > 0 && !block.continueOnError);
      if (stopping && waiting > 0) {
        await this.skipChildren(containerId, `block "${containerId}" stopped after a child failed`);
        continue;
      }
      if (!stopping && waiting > 0) {
        const slots = block.maxParallel === 0 ? waiting : block.maxParallel - active;
        if (slots <= 0) return undefined;
        const next = (
          await this.tx.query<StepRow>(
            "SELECT * FROM steps WHERE run_id = $1 AND parent_id = $2 AND state = 'pending' AND ready_at IS NULL ORDER BY position LIMIT $3",
            [this.run.id, containerId, slots],
          )
        ).rows;
        let finishedNow = 0;
        for (const batch of activationBatches(next)) {
          if (Array.isArray(batch)) await this.readyRunSteps(batch);
          else if ((await this.activate(batch)) !== undefined) finishedNow++;
        }
        if (finishedNow === 0) return undefined;
        continue;
      }
      if (active > 0) return undefined;
      const failedNote = failed > 0 ? `${failed} of ${total} children failed` : "";
      if (ended && failed === 0)
        return this.transition(container, "cancelled", {
          finished_at: dbNow,
          reason: `run ${this.run.state}`,
        });
      if (stopping)
        return this.transition(container, "failed", { finished_at: dbNow, reason: failedNote });
      return this.transition(container, "succeeded", {
        finished_at: dbNow,
        reason: failedNote === "" ? "" : `${failedNote} (continueOnError)`,
      });
    }
  }

  /** Skips every not-yet-started step below `parentId` (recursively). */
  private async skipChildren(parentId: string, reason: string): Promise<void> {
    let parents = [parentId];
    while (parents.length > 0) {
      const skipped = (
        await this.tx.query<StepRow>(
          "UPDATE steps SET state = 'skipped', finished_at = now(), reason = $3 WHERE run_id = $1 AND parent_id = ANY($2) AND state = 'pending' AND ready_at IS NULL RETURNING *",
          [this.run.id, parents, reason],
        )
      ).rows;
      this.#changes++;
      await this.events(skipped.map((row) => stepEvent(row, "pending")));
      parents = skipped
        .filter((row) => row.kind === "parallel" || row.kind === "map")
        .map((row) => row.step_id);
    }
  }

  /**
   * Moves the run to `to`; `also` sets the start time, or the finish time and outputs, in the
   * same statement.
   */
  private async setRunState(
    to: RunState,
    reason: string,
    also: { started: true } | { outputs: Record<string, unknown> } | undefined = undefined,
  ): Promise<void> {
    if (this.run.state === to) return;
    assertRunTransition(this.run.id, this.run.state, to);
    const from = this.run.state;
    if (also !== undefined && "outputs" in also)
      await this.tx.query(
        "UPDATE runs SET state = $2, reason = $3, finished_at = now(), outputs = $4 WHERE id = $1",
        [this.run.id, to, reason, JSON.stringify(also.outputs)],
      );
    else
      await this.tx.query(
        `UPDATE runs SET state = $2, reason = $3${also === undefined ? "" : ", started_at = now()"} WHERE id = $1`,
        [this.run.id, to, reason],
      );
    this.run = { ...this.run, state: to, reason };
    // The terminal event is the last event of a run: it is recorded when the run settles.
    if (terminalRunStates.has(to)) return;
    await this.events([
      {
        type: `run.${to}`,
        level: to === "failed" ? "error" : "info",
        message: reason || `run ${to}`,
        metadata: { from, to },
        idempotencyKey: `${this.run.id}/run/${to}`,
      },
    ]);
  }

  /** Fails the run: the remaining not-started steps are skipped; running ones finish on their own. */
  async failRun(reason: string): Promise<void> {
    // A step stopped by the run's deadline (its timer is cut to it) fails the run only
    // because the deadline passed: the run ends timed_out, as the deadline sweep would end it.
    if (this.run.deadline_at !== null && (await this.deadlinePassed())) {
      await this.endRun("timed_out", runDeadlineReason(this.run.timeout_seconds), "cancelled");
      return;
    }
    await this.endRun("failed", reason, "skipped");
  }

  /** True when the run has a deadline and it passed (database clock). */
  async deadlinePassed(): Promise<boolean> {
    const row = (
      await this.tx.query<{ passed: boolean | null }>(
        "SELECT deadline_at <= now() AS passed FROM runs WHERE id = $1",
        [this.run.id],
      )
    ).rows[0];
    return row?.passed === true;
  }

  /**
   * Ends the run: steps not started yet become `notStarted` (skipped on failure, cancelled on
   * cancel), blocks with nothing left running are closed; running steps finish on their own
   * (their workers see the run state and stop).
   */
  async endRun(
    state: "failed" | "cancelled" | "timed_out",
    reason: string,
    notStarted: "skipped" | "cancelled",
  ): Promise<void> {
    const untouched = (
      await this.tx.query<StepRow & { old_state: StepState }>(
        `UPDATE steps s SET state = CASE WHEN old.state = 'pending' THEN $2 ELSE 'cancelled' END,
              finished_at = now(), reason = $3
         FROM (SELECT step_id, state FROM steps
                WHERE run_id = $1 AND state IN ('pending', 'awaiting-approval') FOR UPDATE) old
        WHERE s.run_id = $1 AND s.step_id = old.step_id
        RETURNING s.*, old.state AS old_state`,
        [this.run.id, notStarted, `run ${state}: ${reason}`],
      )
    ).rows;
    this.#changes++;
    await this.events(untouched.map((row) => stepEvent(row, row.old_state)));
    await this.finishRun(state, reason);
    // Close blocks with nothing left running, innermost first, until nothing changes.
    for (let changed = true; changed; ) {
      changed = false;
      const blocks = (
        await this.tx.query<{ step_id: string }>(
          "SELECT step_id FROM steps WHERE run_id = $1 AND state = 'running' AND kind IN ('parallel', 'map')",
          [this.run.id],
        )
      ).rows;
      for (const block of blocks)
        if ((await this.progressContainer(block.step_id)) !== undefined) changed = true;
    }
    await this.settle();
  }

  /** Moves the run to a terminal state and computes its outputs. */
  async finishRun(
    state: "succeeded" | "failed" | "cancelled" | "timed_out",
    reason: string,
  ): Promise<void> {
    if (terminalRunStates.has(this.run.state)) return;
    let outputs: Record<string, unknown> = {};
    if (state === "succeeded") {
      try {
        outputs = await this.runOutputs();
      } catch (error) {
        state = "failed";
        reason = `outputs could not be evaluated: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    // Success is reached through running (e.g. the approval of a run's last step, a gate).
    if (
      (this.run.state === "queued" || this.run.state === "awaiting-approval") &&
      state === "succeeded"
    )
      await this.setRunState("running", "");
    await this.setRunState(state, reason, { outputs });
    this.finishedState = state;
    await this.settle();
  }

  private async runOutputs(): Promise<Record<string, unknown>> {
    const declared =
      (
        await this.tx.query<{ outputs: { name: string; path: unknown; expression: unknown }[] }>(
          "SELECT (plan_json::jsonb)->'outputs' AS outputs FROM runs WHERE id = $1",
          [this.run.id],
        )
      ).rows[0]?.outputs ?? [];
    if (declared.length === 0) return {};
    const bindings = {
      inputs: this.run.inputs,
      steps: await loadStepBindings(this.tx, this.run.id),
    };
    const pool = sharedPlanningPool();
    return Object.fromEntries(
      await Promise.all(
        declared.map(
          async (output) =>
            [
              output.name,
              await pool.resolveRuntimeValues(output.expression ?? output.path, bindings),
            ] as const,
        ),
      ),
    );
  }

  /** running ⇄ awaiting-approval: the run waits when a gate waits and nothing else can move. */
  async syncRunState(): Promise<void> {
    if (this.run.state !== "running" && this.run.state !== "awaiting-approval") return;
    // Only a gate makes a run wait, and only declared approvals make gates.
    if (!this.run.has_approvals && this.run.state === "running") return;
    // Nothing moved since the last check in this transaction: the answer is the same.
    if (this.#syncedAt === this.#changes) return;
    this.#syncedAt = this.#changes;
    const result = await this.tx.query<{ waiting: boolean; moving: boolean }>(
      `SELECT bool_or(state = 'awaiting-approval') AS waiting,
              bool_or((state = 'running' AND lease_owner IS NOT NULL) OR (state = 'pending' AND ready_at IS NOT NULL)) AS moving
         FROM steps WHERE run_id = $1`,
      [this.run.id],
    );
    const { waiting, moving } = result.rows[0] ?? { waiting: false, moving: false };
    await this.setRunStateQuietly(waiting && !moving ? "awaiting-approval" : "running");
  }

  private async setRunStateQuietly(to: "running" | "awaiting-approval"): Promise<void> {
    if (this.run.state === to) return;
    assertRunTransition(this.run.id, this.run.state, to);
    await this.tx.query("UPDATE runs SET state = $2 WHERE id = $1", [this.run.id, to]);
    this.run = { ...this.run, state: to };
    await this.events([
      {
        type: `run.${to}`,
        level: "info",
        message: `run ${to}`,
        idempotencyKey: `${this.run.id}/run/${to}/${Date.now()}-${Math.random().toString(36).slice(2)}`,
      },
    ]);
  }
}

/**
 * Splits steps to activate, in order, into runs of plain `run` steps (activated together by one
 * statement) and single steps that need {@link RunScheduler.activate}'s evaluation.
 */
function activationBatches(steps: readonly StepRow[]): (StepRow[] | StepRow)[] {
  const batches: (StepRow[] | StepRow)[] = [];
  for (const step of steps) {
    const plain =
      step.kind === "run" &&
      step.planned.enabled === true &&
      step.state === "pending" &&
      step.ready_at === null;
    const last = batches.at(-1);
    if (!plain) batches.push(step);
    else if (Array.isArray(last)) last.push(step);
    else batches.push([step]);
  }
  return batches;
}

/** The event for a step transition; its idempotency key is unique per attempt and fence. */
export function stepEvent(step: StepRow, from: StepState, note?: string): RunEvent {
  const failed = failedStepStates.has(step.state) && step.state !== "cancelled";
  return {
    type: `step.${note === "ready" ? "ready" : step.state}`,
    level: failed ? "error" : "info",
    stepId: step.step_id,
    message: step.reason || `step ${note === "ready" ? "ready" : step.state}`,
    metadata: {
      from,
      to: step.state,
      attempt: step.attempt,
      ...(step.exit_code === null ? {} : { exitCode: step.exit_code }),
      ...(step.next_attempt_at === null ? {} : { nextAttemptAt: step.next_attempt_at }),
    },
    idempotencyKey: `${step.run_id}/${step.step_id}/${note ?? step.state}/${step.attempt}/${step.fence}`,
  };
}
