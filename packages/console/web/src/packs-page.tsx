import { useEffect, useState } from "preact/hooks";
import { ApiError, api, segment } from "./api.ts";
import type {
  GetPackVersionResponse,
  ListPacksResponse,
  ListPackVersionsResponse,
  SimulatedStep,
  SimulateResponse,
  SubmitRunResponse,
} from "./api-types.ts";
import { formatTime } from "./states.ts";

function parseObject(text: string, what: string): Record<string, unknown> {
  if (text.trim() === "") return {};
  const value: unknown = JSON.parse(text);
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new Error(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

function SimulatedSteps({ steps }: { steps: readonly SimulatedStep[] }) {
  return (
    <ul class="simulated">
      {steps.map((step) => (
        <li key={step.id} data-simulated={step.id}>
          <strong>{step.id}</strong> <span class="muted">{step.kind}</span> →{" "}
          <span class={`badge sim-${step.status}`}>{step.status}</span>
          {step.reason ? <span class="muted"> ({step.reason})</span> : null}
          {step.children.length > 0 ? <SimulatedSteps steps={step.children} /> : null}
        </li>
      ))}
    </ul>
  );
}

/** One pack: versions, manifest, simulate, run. */
function PackDetail({ name }: { name: string }) {
  const [versions, setVersions] = useState<ListPackVersionsResponse["versions"]>([]);
  const [version, setVersion] = useState("");
  const [manifest, setManifest] = useState("");
  const [inputs, setInputs] = useState("{}");
  const [secrets, setSecrets] = useState("");
  const [simulation, setSimulation] = useState<SimulateResponse | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    api<ListPackVersionsResponse>(`/api/packs/${segment(name)}/versions`)
      .then((answer) => {
        setVersions(answer.versions);
        setVersion(answer.versions[0]?.version ?? "");
      })
      .catch((failure: Error) => setError(failure.message));
  }, [name]);
  useEffect(() => {
    if (version === "") return;
    api<GetPackVersionResponse>(`/api/packs/${segment(name)}/versions/${segment(version)}`)
      .then((answer) => setManifest(answer.manifest))
      .catch((failure: Error) => setError(failure.message));
  }, [name, version]);
  const guard = async (action: () => Promise<void>) => {
    setError(undefined);
    try {
      await action();
    } catch (failure) {
      setError(
        failure instanceof ApiError ? `${failure.code}: ${failure.message}` : String(failure),
      );
    }
  };
  const simulate = () =>
    guard(async () => {
      const secretNames = Object.keys(parseObject(secrets, "Secrets"));
      setSimulation(
        await api<SimulateResponse>("/api/simulations", {
          body: { pack: { name, version }, inputs: parseObject(inputs, "Inputs"), secretNames },
        }),
      );
    });
  const run = () =>
    guard(async () => {
      const answer = await api<SubmitRunResponse>("/api/runs", {
        body: {
          pack: { name, version },
          inputs: parseObject(inputs, "Inputs"),
          secrets: parseObject(secrets, "Secrets") as Record<string, string>,
        },
      });
      location.hash = `#/runs/${answer.run.id}`;
    });
  return (
    <section aria-labelledby="pack-title">
      <h1 id="pack-title">Pack {name}</h1>
      <label>
        Version{" "}
        <select value={version} onChange={(event) => setVersion(event.currentTarget.value)}>
          {versions.map((entry) => (
            <option key={entry.version} value={entry.version}>
              {entry.version} — {formatTime(entry.publishedAt)} by {entry.publishedBy}
            </option>
          ))}
        </select>
      </label>
      <details>
        <summary>Manifest</summary>
        <pre class="manifest">{manifest}</pre>
      </details>
      <form
        class="simulate"
        onSubmit={(event) => {
          event.preventDefault();
          void simulate();
        }}
      >
        <label>
          Inputs (JSON)
          <textarea
            rows={4}
            data-testid="inputs"
            value={inputs}
            onInput={(event) => setInputs(event.currentTarget.value)}
          />
        </label>
        <label>
          Secrets (JSON, sent only with a run, never stored)
          <textarea
            rows={2}
            data-testid="secrets"
            value={secrets}
            placeholder='{"deployToken": "…"}'
            onInput={(event) => setSecrets(event.currentTarget.value)}
          />
        </label>
        <div class="buttons">
          <button type="submit" data-testid="simulate" disabled={version === ""}>
            Simulate
          </button>
          <button
            type="button"
            data-testid="run"
            disabled={version === ""}
            onClick={() => void run()}
          >
            ▶ Run
          </button>
        </div>
      </form>
      {error === undefined ? null : (
        <p class="notice bad" role="alert">
          {error}
        </p>
      )}
      {simulation === undefined ? null : (
        <section class="panel" aria-labelledby="simulation-title">
          <h2 id="simulation-title">Plan {simulation.planHash}</h2>
          <p>
            {simulation.stepCount} steps · sandbox {simulation.sandboxMode}
          </p>
          <SimulatedSteps steps={simulation.steps as SimulatedStep[]} />
        </section>
      )}
    </section>
  );
}

/** Published packs, or one pack when `name` is given. */
export function PacksPage({ name }: { name?: string | undefined }) {
  const [packs, setPacks] = useState<ListPacksResponse["packs"]>([]);
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    if (name !== undefined) return;
    api<ListPacksResponse>("/api/packs?pageSize=200")
      .then((answer) => setPacks(answer.packs))
      .catch((failure: Error) => setError(failure.message));
  }, [name]);
  if (name !== undefined) return <PackDetail name={name} />;
  return (
    <section aria-labelledby="packs-title">
      <h1 id="packs-title">Packs</h1>
      {error === undefined ? null : (
        <p class="notice bad" role="alert">
          {error}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th scope="col">Pack</th>
            <th scope="col">Latest version</th>
            <th scope="col">Versions</th>
          </tr>
        </thead>
        <tbody>
          {packs.map((pack) => (
            <tr key={pack.name}>
              <td>
                <a href={`#/packs/${encodeURIComponent(pack.name)}`}>{pack.name}</a>
              </td>
              <td>{pack.latestVersion}</td>
              <td>{pack.versionCount}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {packs.length === 0 && error === undefined ? <p class="muted">No published packs.</p> : null}
    </section>
  );
}
