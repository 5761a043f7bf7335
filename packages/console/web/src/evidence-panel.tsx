import { useEffect, useState } from "preact/hooks";
import { api, segment } from "./api.ts";
import type { AttestationResponse, ListArtifactsResponse, Run } from "./api-types.ts";
import { type Downloaded, downloadVerified } from "./downloads.ts";
import { formatBytes } from "./states.ts";

function statementOf(attestation: AttestationResponse): string {
  const payload = attestation.envelope.payload;
  if (typeof payload !== "string") return "(no payload)";
  try {
    const bytes = Uint8Array.from(atob(payload), (char) => char.charCodeAt(0));
    return JSON.stringify(JSON.parse(new TextDecoder().decode(bytes)), null, 2);
  } catch {
    return "(the payload is not JSON)";
  }
}

/** Artifacts (digest, download), the attestation (statement, signer key id), the bundle. */
export function EvidencePanel({ run, finished }: { run: Run; finished: boolean }) {
  const [artifacts, setArtifacts] = useState<ListArtifactsResponse["artifacts"]>([]);
  const [attestation, setAttestation] = useState<AttestationResponse | string | undefined>();
  const [note, setNote] = useState<{ ok: boolean; text: string } | undefined>();
  const runPath = `/api/runs/${segment(run.id)}`;
  useEffect(() => {
    api<ListArtifactsResponse>(`${runPath}/artifacts`)
      .then((answer) => setArtifacts(answer.artifacts))
      .catch(() => setArtifacts([]));
    if (finished)
      api<AttestationResponse>(`${runPath}/attestation`)
        .then(setAttestation)
        .catch((error: Error) => setAttestation(error.message));
  }, [runPath, finished]);
  const download = async (path: string, filename: string, expected?: string) => {
    setNote(undefined);
    try {
      const done: Downloaded = await downloadVerified(path, filename, expected);
      setNote({
        ok: true,
        text: `Downloaded ${filename} (${formatBytes(done.bytes)}), digest verified: ${done.digest}`,
      });
    } catch (error) {
      setNote({ ok: false, text: error instanceof Error ? error.message : String(error) });
    }
  };
  return (
    <section class="panel" aria-labelledby="evidence-title">
      <h2 id="evidence-title">Evidence</h2>
      <h3>Artifacts</h3>
      {artifacts.length === 0 ? (
        <p class="muted">No artifacts.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Step</th>
              <th scope="col">Name</th>
              <th scope="col">Size</th>
              <th scope="col">Digest</th>
              <th scope="col">Download</th>
            </tr>
          </thead>
          <tbody>
            {artifacts.map((artifact) => (
              <tr key={artifact.digest + artifact.name}>
                <td>{artifact.stepId}</td>
                <td>{artifact.name}</td>
                <td>{formatBytes(artifact.sizeBytes)}</td>
                <td>
                  <code>{artifact.digest}</code>
                </td>
                <td>
                  <button
                    type="button"
                    onClick={() =>
                      void download(artifact.downloadUrl, artifact.name, artifact.digest)
                    }
                  >
                    ⤓ {artifact.name}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Attestation and bundle</h3>
      {!finished ? (
        <p class="muted">Signed when the run finishes.</p>
      ) : typeof attestation === "string" ? (
        <p class="notice bad">{attestation}</p>
      ) : attestation === undefined ? (
        <p class="muted">Loading…</p>
      ) : (
        <div>
          <p>
            Signed by key <code data-testid="key-id">{attestation.keyId}</code>
          </p>
          <details>
            <summary>In-toto statement</summary>
            <pre class="statement">{statementOf(attestation)}</pre>
          </details>
          <button
            type="button"
            onClick={() => void download(`${runPath}/bundle`, `packrun-evidence-${run.id}.tar.gz`)}
          >
            ⤓ Evidence bundle
          </button>
        </div>
      )}
      {note === undefined ? null : (
        <p
          class={note.ok ? "notice ok" : "notice bad"}
          role={note.ok ? "status" : "alert"}
          data-testid="download-note"
        >
          {note.text}
        </p>
      )}
    </section>
  );
}
