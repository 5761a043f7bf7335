import { useState } from "preact/hooks";
import { ApiError, api, segment } from "./api.ts";
import type { ApproveResponse, Gate, Run } from "./api-types.ts";
import { isDevSession } from "./session.ts";
import { formatTime, stateLook } from "./states.ts";

interface Props {
  readonly run: Run;
  onDecided(): void;
}

/** The token that decides: dev mode mints one bound to this gate and plan; else the pasted one. */
async function approvalToken(run: Run, gate: Gate, pasted: string): Promise<string | undefined> {
  if (pasted.trim() !== "") return pasted.trim();
  if (!isDevSession()) return undefined;
  const { token } = await api<{ token: string }>("/console/dev-approval-token", {
    // Dev mode: the local operator holds the signing key and may claim the gate's groups, as
    // `packrun approve --group` does.
    body: { runId: run.id, gateId: gate.stepId, planHash: run.planHash, groups: gate.grants },
  });
  return token;
}

function GateCard({ run, gate, onDecided }: { run: Run; gate: Gate; onDecided(): void }) {
  const [comment, setComment] = useState("");
  const [pasted, setPasted] = useState("");
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const look = stateLook(gate.state);
  const approvals = gate.decisions.filter((decision) => decision.approved).length;
  const waiting = gate.state === "awaiting-approval";
  const dev = isDevSession();
  const decide = async (approve: boolean) => {
    setBusy(true);
    setOutcome(undefined);
    try {
      const token = await approvalToken(run, gate, pasted);
      const response = await api<ApproveResponse>(`/api/runs/${segment(run.id)}/approve`, {
        body: { gateId: gate.stepId, approve, ...(comment === "" ? {} : { comment }) },
        ...(token === undefined ? {} : { token }),
      });
      setOutcome({
        ok: true,
        text: `${approve ? "Approved" : "Rejected"}${response.recorded ? "" : " (already recorded)"}: the gate is ${stateLook(response.gate.state).label}, the run ${stateLook(response.runState).label}.`,
      });
      onDecided();
    } catch (error) {
      setOutcome({
        ok: false,
        text:
          error instanceof ApiError
            ? `Refused (${error.code}): ${error.message}`
            : `Failed: ${String(error)}`,
      });
    } finally {
      setBusy(false);
    }
  };
  const titleId = `gate-${gate.stepId}`;
  return (
    <article class={`gate tone-${look.tone}`} aria-labelledby={titleId} data-gate={gate.stepId}>
      <h3 id={titleId}>
        <span aria-hidden="true">{look.icon}</span> {gate.stepId}{" "}
        <span class="badge">{look.label}</span>
      </h3>
      <dl class="facts">
        <dt>Asks</dt>
        <dd>{gate.message ?? "(no message)"}</dd>
        <dt>Approval</dt>
        <dd>{gate.gateId}</dd>
        <dt>Plan hash</dt>
        <dd>
          <code>{run.planHash}</code>
        </dd>
        <dt>Quorum</dt>
        <dd data-testid="quorum">
          {approvals} of {gate.requiredApprovals} approvals
          {gate.grants.length > 0 ? ` (approvers in: ${gate.grants.join(", ")})` : ""}
        </dd>
        <dt>Expires</dt>
        <dd>{formatTime(gate.expiresAt)}</dd>
      </dl>
      {gate.decisions.length > 0 ? (
        <ul class="decisions" aria-label="Decisions so far">
          {gate.decisions.map((decision) => (
            <li key={`${decision.approver}-${decision.decidedAt ?? ""}`}>
              {decision.approved ? "✔ approved" : "✖ rejected"} by {decision.approver}
              {decision.comment ? `: “${decision.comment}”` : ""} ({formatTime(decision.decidedAt)})
            </li>
          ))}
        </ul>
      ) : null}
      {waiting ? (
        <form
          class="decide"
          onSubmit={(event) => {
            event.preventDefault();
            void decide(true);
          }}
        >
          <label>
            Comment
            <textarea
              value={comment}
              maxLength={2000}
              rows={2}
              onInput={(event) => setComment(event.currentTarget.value)}
            />
          </label>
          <label>
            Approval token{" "}
            <span class="muted">
              {dev
                ? `(optional: dev mode mints one bound to this gate and plan${gate.grants.length > 0 ? `, in ${gate.grants.join(", ")}` : ""})`
                : "(bound to this run, gate and plan hash: packrun token --run --gate --plan-hash)"}
            </span>
            <input
              type="password"
              autocomplete="off"
              value={pasted}
              onInput={(event) => setPasted(event.currentTarget.value)}
            />
          </label>
          <div class="buttons">
            <button type="submit" disabled={busy}>
              ✔ Approve
            </button>
            <button type="button" class="danger" disabled={busy} onClick={() => void decide(false)}>
              ✖ Reject
            </button>
          </div>
        </form>
      ) : null}
      {outcome === undefined ? null : (
        <p class={outcome.ok ? "notice ok" : "notice bad"} role={outcome.ok ? "status" : "alert"}>
          {outcome.text}
        </p>
      )}
    </article>
  );
}

/** The run's gates: what each asks, plan hash, quorum and expiry; approve or reject. */
export function ApprovalPanel({ run, onDecided }: Props) {
  const gates = run.gates.filter((gate) => gate.kind === "approval");
  const policies = run.gates.filter((gate) => gate.kind === "policy");
  if (gates.length === 0 && policies.length === 0) return null;
  return (
    <section class="panel" aria-labelledby="approvals-title" id="approvals">
      <h2 id="approvals-title">Approvals and policies</h2>
      {gates.map((gate) => (
        <GateCard key={gate.stepId} run={run} gate={gate} onDecided={onDecided} />
      ))}
      {policies.map((gate) => {
        const look = stateLook(gate.state);
        return (
          <p key={gate.stepId} class={`policy tone-${look.tone}`}>
            <span aria-hidden="true">{look.icon}</span> policy <strong>{gate.gateId}</strong> (
            {gate.stepId}): {look.label}
            {gate.message ? ` — ${gate.message}` : ""}
          </p>
        );
      })}
    </section>
  );
}
