import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { RunEvent } from "./api-types.ts";
import type { StreamStatus } from "./event-stream.ts";

const rowHeight = 20;
const viewportHeight = 360;
const overscan = 10;

interface Props {
  /** Every event so far, in sequence order (the array grows in place; `version` says when). */
  readonly events: readonly RunEvent[];
  readonly version: number;
  readonly status: StreamStatus;
  readonly stepIds: readonly string[];
}

function lineText(event: RunEvent): string {
  const step = event.stepId === undefined || event.stepId === "" ? "" : `[${event.stepId}] `;
  return `${step}${event.message}`;
}

/**
 * The run's log, whole or one step's, live: a fixed-height window that renders only the rows in
 * view (a 100k-line log is 100k strings, not 100k DOM nodes), following the tail while scrolled
 * to the bottom; search keeps the matching lines.
 */
export function LogView({ events, version, status, stepIds }: Props) {
  const [step, setStep] = useState("");
  const [query, setQuery] = useState("");
  const [scrollTop, setScrollTop] = useState(0);
  const [follow, setFollow] = useState(true);
  const viewport = useRef<HTMLDivElement>(null);
  // `events` grows in place; `version` marks each growth.
  const lines = useMemo(() => {
    const needle = query.toLowerCase();
    if (step === "" && needle === "") return events;
    return events.filter(
      (event) =>
        (step === "" || event.stepId === step) &&
        (needle === "" || lineText(event).toLowerCase().includes(needle)),
    );
  }, [events, version, step, query]);
  const total = lines.length;
  useEffect(() => {
    const element = viewport.current;
    if (follow && element !== null) element.scrollTop = element.scrollHeight;
  }, [total, follow]);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(total, Math.ceil((scrollTop + viewportHeight) / rowHeight) + overscan);
  const visible = lines.slice(first, last);
  return (
    <section class="panel" aria-labelledby="logs-title">
      <h2 id="logs-title">Logs</h2>
      <div class="toolbar">
        <label>
          Step{" "}
          <select value={step} onChange={(event) => setStep(event.currentTarget.value)}>
            <option value="">whole run</option>
            {stepIds.map((id) => (
              <option key={id} value={id}>
                {id}
              </option>
            ))}
          </select>
        </label>
        <label>
          Search{" "}
          <input
            type="search"
            value={query}
            placeholder="text in the log"
            onInput={(event) => setQuery(event.currentTarget.value)}
          />
        </label>
        <label>
          <input
            type="checkbox"
            checked={follow}
            onChange={(event) => setFollow(event.currentTarget.checked)}
          />{" "}
          follow the tail
        </label>
        <span class="muted" role="status" data-testid="log-status">
          {total} {query === "" ? "lines" : "matching lines"} · stream {status}
        </span>
      </div>
      <div
        ref={viewport}
        class="log-viewport"
        style={{ height: `${viewportHeight}px` }}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolled region must take focus to scroll by keyboard
        tabIndex={0}
        role="log"
        aria-label="Run log"
        aria-live="off"
        onScroll={(event) => {
          const element = event.currentTarget;
          setScrollTop(element.scrollTop);
          const atBottom =
            element.scrollTop + element.clientHeight >= element.scrollHeight - rowHeight;
          if (atBottom !== follow) setFollow(atBottom);
        }}
      >
        <div style={{ height: `${total * rowHeight}px`, position: "relative" }}>
          {visible.map((event, index) => (
            <div
              key={event.sequence}
              class={`log-line level-${event.level}`}
              data-sequence={event.sequence}
              style={{ top: `${(first + index) * rowHeight}px`, height: `${rowHeight}px` }}
            >
              <span class="seq">{event.sequence}</span>
              <span class="time">{event.time.slice(11, 23)}</span>
              {event.stepId ? <span class="step">[{event.stepId}]</span> : null}
              <span class="type">{event.type === "log.stdout" ? "" : event.type}</span>
              <span class="message">{event.message}</span>
            </div>
          ))}
        </div>
      </div>
    </section>
  );
}
