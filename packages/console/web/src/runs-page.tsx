import { runStates } from "@packrun/contract";
import { useEffect, useState } from "preact/hooks";
import { api } from "./api.ts";
import type { ListRunsResponse } from "./api-types.ts";
import { elapsed, formatDuration, formatTime, stateLook } from "./states.ts";

const pageSize = 25;
const refreshMs = 3000;

/** The tenant's runs, newest first: filter by state and pack, page through, refreshed live. */
export function RunsPage() {
  const [state, setState] = useState("");
  const [pack, setPack] = useState("");
  const [pages, setPages] = useState<string[]>([""]);
  const [answer, setAnswer] = useState<ListRunsResponse | undefined>();
  const [error, setError] = useState<string | undefined>();
  const pageToken = pages[pages.length - 1] ?? "";
  useEffect(() => {
    const query = new URLSearchParams({ pageSize: String(pageSize) });
    if (state !== "") query.append("state", state);
    if (pack.trim() !== "") query.set("pack", pack.trim());
    if (pageToken !== "") query.set("pageToken", pageToken);
    let stopped = false;
    const load = () =>
      api<ListRunsResponse>(`/api/runs?${query}`)
        .then((runs) => {
          if (stopped) return;
          setAnswer(runs);
          setError(undefined);
        })
        .catch((failure: Error) => !stopped && setError(failure.message));
    void load();
    // No list stream exists: the list is read again every few seconds.
    const timer = window.setInterval(load, refreshMs);
    return () => {
      stopped = true;
      window.clearInterval(timer);
    };
  }, [state, pack, pageToken]);
  return (
    <section aria-labelledby="runs-title">
      <h1 id="runs-title">Runs</h1>
      <form class="toolbar" aria-label="Filter runs" onSubmit={(event) => event.preventDefault()}>
        <label>
          State{" "}
          <select
            value={state}
            onChange={(event) => {
              setState(event.currentTarget.value);
              setPages([""]);
            }}
          >
            <option value="">any</option>
            {runStates.map((name) => (
              <option key={name} value={name}>
                {stateLook(name).label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Pack{" "}
          <input
            type="search"
            value={pack}
            placeholder="pack name"
            onChange={(event) => {
              setPack(event.currentTarget.value);
              setPages([""]);
            }}
          />
        </label>
      </form>
      {error === undefined ? null : (
        <p class="notice bad" role="alert">
          {error}
        </p>
      )}
      <table class="runs">
        <thead>
          <tr>
            <th scope="col">State</th>
            <th scope="col">Pack</th>
            <th scope="col">Version</th>
            <th scope="col">Started by</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Run</th>
          </tr>
        </thead>
        <tbody>
          {(answer?.runs ?? []).map((run) => {
            const look = stateLook(run.state);
            return (
              <tr key={run.id} data-run={run.id}>
                <td class={`tone-${look.tone}`}>
                  <span aria-hidden="true">{look.icon}</span> {look.label}
                </td>
                <td>{run.pack.name}</td>
                <td>{run.pack.version}</td>
                <td>{run.submittedBy}</td>
                <td>{formatTime(run.startedAt ?? run.createdAt)}</td>
                <td>{formatDuration(elapsed(run.startedAt ?? run.createdAt, run.finishedAt))}</td>
                <td>
                  <a href={`#/runs/${run.id}`}>{run.id.slice(0, 8)}</a>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {answer !== undefined && answer.runs.length === 0 ? <p class="muted">No runs.</p> : null}
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={pages.length <= 1}
          onClick={() => setPages(pages.slice(0, -1))}
        >
          ← Newer
        </button>
        <span>Page {pages.length}</span>
        <button
          type="button"
          disabled={answer?.nextPageToken === undefined}
          onClick={() => answer?.nextPageToken && setPages([...pages, answer.nextPageToken])}
        >
          Older →
        </button>
      </nav>
    </section>
  );
}
