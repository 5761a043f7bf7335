import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { RunJson } from "../api-schemas.ts";
import type { RestClient } from "./rest-client.ts";

/** Run states a run never leaves. */
export const terminalRunStates = ["succeeded", "failed", "cancelled", "timed_out"];

/** Polls GET /api/runs/{id} until `done` holds (default: terminal). */
export async function waitForRun(
  client: RestClient,
  id: string,
  done: (run: RunJson) => boolean = (run) => terminalRunStates.includes(run.state),
  timeoutMs = 30_000,
): Promise<RunJson> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { status, body } = await client.get<RunJson>(`/api/runs/${id}`);
    assert.equal(status, 200, JSON.stringify(body));
    if (done(body)) return body;
    if (Date.now() > deadline)
      assert.fail(
        `run ${id} still ${body.state}: ${JSON.stringify(body.steps.map((s) => [s.id, s.state]))}`,
      );
    await sleep(50);
  }
}

/** POST /api/runs, asserting 201. */
export async function submitRun(client: RestClient, body: unknown): Promise<RunJson> {
  const response = await client.post<{ run: RunJson; created: boolean }>("/api/runs", body);
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.run;
}
