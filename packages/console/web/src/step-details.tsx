import type { Step } from "./api-types.ts";
import { elapsed, formatBytes, formatDuration, formatTime, stateLook } from "./states.ts";

/** Secrets come back from the API already masked as `***`; say so instead of showing stars. */
function OutputValue({ value }: { value: unknown }) {
  if (value === "***")
    return (
      <span class="masked" title="secret, masked">
        •••• (secret, masked)
      </span>
    );
  return <code>{typeof value === "string" ? value : JSON.stringify(value)}</code>;
}

/** One step: state, retry countdown, attempts with exit codes, timings and resources, outputs. */
export function StepDetails({ step, now }: { step: Step; now: number }) {
  const look = stateLook(step.state);
  const retryIn =
    step.nextAttemptAt === undefined ? undefined : Date.parse(step.nextAttemptAt) - now;
  return (
    <section class="panel" aria-labelledby="step-title" data-testid="step-details">
      <h2 id="step-title">
        Step {step.id}{" "}
        <span class={`badge tone-${look.tone}`}>
          <span aria-hidden="true">{look.icon}</span> {look.label}
        </span>
      </h2>
      <dl class="facts">
        <dt>Kind</dt>
        <dd>{step.kind}</dd>
        <dt>Attempt</dt>
        <dd>
          {step.attempt} of {step.maxAttempts}
        </dd>
        {retryIn === undefined ? null : (
          <>
            <dt>Next attempt</dt>
            <dd>
              <span role="timer">
                {retryIn > 0 ? `in ${formatDuration(retryIn)}` : "due now"} (
                {formatTime(step.nextAttemptAt)})
              </span>
            </dd>
          </>
        )}
        <dt>Duration</dt>
        <dd>{formatDuration(step.durationMs ?? elapsed(step.startedAt, step.finishedAt))}</dd>
        {step.exitCode === undefined ? null : (
          <>
            <dt>Exit code</dt>
            <dd>{step.exitCode}</dd>
          </>
        )}
        {step.reason === undefined ? null : (
          <>
            <dt>Reason</dt>
            <dd>{step.reason}</dd>
          </>
        )}
      </dl>
      {step.attempts.length > 0 ? (
        <table>
          <caption>Attempts</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">State</th>
              <th scope="col">Exit code</th>
              <th scope="col">Started</th>
              <th scope="col">Took</th>
              <th scope="col">CPU</th>
              <th scope="col">Peak memory</th>
              <th scope="col">Worker</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {step.attempts.map((attempt) => {
              const attemptLook = stateLook(attempt.state);
              return (
                <tr key={attempt.attempt}>
                  <td>{attempt.attempt}</td>
                  <td class={`tone-${attemptLook.tone}`}>
                    <span aria-hidden="true">{attemptLook.icon}</span> {attemptLook.label}
                  </td>
                  <td>{attempt.exitCode ?? "—"}</td>
                  <td>{formatTime(attempt.startedAt)}</td>
                  <td>{formatDuration(elapsed(attempt.startedAt, attempt.finishedAt))}</td>
                  <td>
                    {attempt.cpuMicros === undefined
                      ? "—"
                      : formatDuration(attempt.cpuMicros / 1000)}
                  </td>
                  <td>{formatBytes(attempt.peakMemoryBytes)}</td>
                  <td>{attempt.workerId ?? "—"}</td>
                  <td>{attempt.reason ?? ""}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      {step.outputs !== undefined && Object.keys(step.outputs).length > 0 ? (
        <table>
          <caption>Outputs</caption>
          <tbody>
            {Object.entries(step.outputs).map(([name, value]) => (
              <tr key={name}>
                <th scope="row">{name}</th>
                <td>
                  <OutputValue value={value} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
