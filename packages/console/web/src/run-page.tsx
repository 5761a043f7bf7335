import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, segment } from "./api.ts";
import type { Run, RunEvent } from "./api-types.ts";
import { ApprovalPanel } from "./approval-panel.tsx";
import { followRunEvents, type StreamStatus } from "./event-stream.ts";
import { EvidencePanel } from "./evidence-panel.tsx";
import { mapChildren } from "./graph-model.ts";
import { jumpTo } from "./jump-to.ts";
import { LogView } from "./log-view.tsx";
import { elapsed, formatDuration, formatTime, stateLook } from "./states.ts";
import { StepDetails } from "./step-details.tsx";
import { StepGraph } from "./step-graph.tsx";

const finishedStates = new Set(["succeeded", "failed", "cancelled"]);

/** A run: header, live step graph, the selected step, approvals, logs and evidence. */
export function RunPage({ runId }: { runId: string }) {
  const [run, setRun] = useState<Run | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [selected, setSelected] = useState<string | undefined>();
  const [expandedMaps, setExpandedMaps] = useState<ReadonlySet<string>>(new Set());
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const [version, setVersion] = useState(0);
  const [now, setNow] = useState(Date.now());
  const events = useRef<RunEvent[]>([]);
  const refreshTimer = useRef<number | undefined>(undefined);

  const load = useCallback(() => {
    api<Run>(`/api/runs/${segment(runId)}`)
      .then((answer) => {
        setRun(answer);
        setError(undefined);
      })
      .catch((failure: Error) => setError(failure.message));
  }, [runId]);
  // State changes arrive as events; the run is read again at most every 250 ms.
  const refreshSoon = useCallback(() => {
    refreshTimer.current ??= window.setTimeout(() => {
      refreshTimer.current = undefined;
      load();
    }, 250);
  }, [load]);

  useEffect(() => {
    events.current = [];
    setVersion(0);
    load();
    const stop = followRunEvents(runId, {
      onEvents(batch) {
        events.current.push(...batch);
        setVersion((value) => value + 1);
        // Log lines (log.stdout, log.stderr) change no state; anything else may.
        if (batch.some((event) => !event.type.startsWith("log."))) refreshSoon();
      },
      onStatus: setStatus,
      onEnd: () => refreshSoon(),
    });
    const ticker = window.setInterval(() => setNow(Date.now()), 1000);
    return () => {
      stop();
      window.clearInterval(ticker);
      window.clearTimeout(refreshTimer.current);
      refreshTimer.current = undefined;
    };
  }, [runId, load, refreshSoon]);

  const steps = run?.steps ?? [];
  const stepIds = useMemo(() => steps.map((step) => step.id), [steps]);
  if (error !== undefined && run === undefined)
    return (
      <p class="notice bad" role="alert">
        {error}
      </p>
    );
  if (run === undefined) return <p aria-busy="true">Loading run…</p>;
  const look = stateLook(run.state);
  const finished = finishedStates.has(run.state);
  const selectedStep = steps.find((step) => step.id === selected);
  const toggleMap = (id: string) =>
    setExpandedMaps((current) => {
      const next = new Set(current);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  return (
    <div class="run-page">
      <header class="run-header">
        <h1>
          <span class={`badge big tone-${look.tone}`} data-testid="run-state">
            <span aria-hidden="true">{look.icon}</span> {look.label}
          </span>{" "}
          {run.pack.name} <span class="muted">{run.pack.version}</span>
        </h1>
        <dl class="facts inline">
          <dt>Run</dt>
          <dd>
            <code>{run.id}</code>
          </dd>
          <dt>Started by</dt>
          <dd>{run.submittedBy}</dd>
          <dt>Started</dt>
          <dd>{formatTime(run.startedAt ?? run.createdAt)}</dd>
          <dt>Duration</dt>
          <dd>{formatDuration(elapsed(run.startedAt ?? run.createdAt, run.finishedAt))}</dd>
          <dt>Plan hash</dt>
          <dd>
            <code>{run.planHash}</code>
          </dd>
          {run.reason ? (
            <>
              <dt>Reason</dt>
              <dd>{run.reason}</dd>
            </>
          ) : null}
        </dl>
        {run.pendingGates.length > 0 ? (
          <p class="notice wait" role="status">
            ‖ Waiting for approval: {run.pendingGates.join(", ")} —{" "}
            <button type="button" class="link" onClick={() => jumpTo("approvals")}>
              decide below
            </button>
          </p>
        ) : null}
      </header>
      <section class="panel" aria-labelledby="graph-title">
        <h2 id="graph-title">Steps</h2>
        <StepGraph
          steps={steps}
          selected={selected}
          expandedMaps={expandedMaps}
          onSelect={setSelected}
          onToggleMap={toggleMap}
        />
        {[...expandedMaps].map((mapId) => {
          const children = mapChildren(steps, mapId);
          return (
            <section key={mapId} class="map-children" aria-label={`Children of ${mapId}`}>
              <h3>
                {mapId}: {children.length} children
              </h3>
              <ul>
                {children.map((child) => {
                  const childLook = stateLook(child.state);
                  return (
                    <li key={child.id}>
                      <button
                        type="button"
                        class={`chip tone-${childLook.tone}`}
                        aria-pressed={selected === child.id}
                        title={`${child.id}: ${childLook.label}`}
                        onClick={() => setSelected(child.id)}
                      >
                        <span aria-hidden="true">{childLook.icon}</span> {child.id}
                        <span class="sr-only"> {childLook.label}</span>
                      </button>
                    </li>
                  );
                })}
              </ul>
            </section>
          );
        })}
      </section>
      {selectedStep === undefined ? null : <StepDetails step={selectedStep} now={now} />}
      <ApprovalPanel run={run} onDecided={load} />
      <LogView events={events.current} version={version} status={status} stepIds={stepIds} />
      {finished || run.outputs !== undefined ? (
        run.outputs !== undefined && Object.keys(run.outputs).length > 0 ? (
          <section class="panel" aria-labelledby="outputs-title">
            <h2 id="outputs-title">Outputs</h2>
            <pre>{JSON.stringify(run.outputs, null, 2)}</pre>
          </section>
        ) : null
      ) : null}
      <EvidencePanel run={run} finished={finished} />
    </div>
  );
}
