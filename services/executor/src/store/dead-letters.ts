import type { Database, Queryable } from "@packrun/db";
import { isPackrunError, PackrunError } from "@packrun/errors";
import type { Logger } from "@packrun/logging";
import type { RunService } from "../rpc/run-service.ts";
import type { RunState } from "../run/state-machine.ts";
import type { WorkQueue } from "../worker/work-queue.ts";
import { decodePageToken, keysetPage } from "./keyset-page.ts";

/** A dead letter with its run and the last attempt's result, as ListDeadLetters returns it. */
export interface DeadLetterView {
  id: string;
  run_id: string;
  step_id: string;
  attempt: number;
  reason: string;
  created_at: Date;
  pack_name: string;
  pack_version: string;
  run_state: RunState;
  retried_at: Date | null;
  retried_by: string | null;
  retry_run_id: string | null;
  /** The step's last attempt (null when none started). */
  last_attempt: {
    attempt: number;
    state: string;
    exit_code: number | null;
    reason: string;
    worker_id: string;
    started_at: string;
    finished_at: string | null;
    cpu_micros: number | null;
    peak_memory_bytes: number | null;
  } | null;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The tenant's dead letters, newest first: open ones, or all with `includeRetried`. A dead
 * letter belongs to the tenant of its run.
 */
export async function listDeadLetters(
  db: Queryable,
  query: {
    tenant: string;
    includeRetried: boolean;
    runId: string;
    pageSize: number;
    pageToken: string;
  },
): Promise<{ deadLetters: DeadLetterView[]; nextPageToken: string }> {
  if (query.runId !== "" && !uuid.test(query.runId)) return { deadLetters: [], nextPageToken: "" };
  const size = Math.min(Math.max(query.pageSize || 50, 1), 500);
  const after = query.pageToken === "" ? undefined : decodePageToken(query.pageToken);
  const rows = (
    await db.query<DeadLetterView>(
      `SELECT d.id, d.run_id, d.step_id, d.attempt, d.reason, d.created_at, d.retried_at, d.retried_by, d.retry_run_id,
              r.pack_name, r.pack_version, r.state AS run_state,
              (SELECT to_jsonb(a) FROM step_attempts a
                WHERE a.run_id = d.run_id AND a.step_id = d.step_id ORDER BY a.attempt DESC LIMIT 1) AS last_attempt
         FROM dead_letters d JOIN runs r ON r.id = d.run_id
        WHERE r.tenant = $1
          AND ($2 OR d.retried_at IS NULL)
          AND ($3 = '' OR d.run_id = $3::uuid)
          AND ($4::timestamptz IS NULL OR (d.created_at, d.id) < ($4, $5::uuid))
        ORDER BY d.created_at DESC, d.id DESC LIMIT $6`,
      [
        query.tenant,
        query.includeRetried,
        query.runId,
        after?.createdAt ?? null,
        after?.id ?? "00000000-0000-0000-0000-000000000000",
        size + 1,
      ],
    )
  ).rows;
  const { page, nextPageToken } = keysetPage(rows, size);
  return { deadLetters: page, nextPageToken };
}

/** What {@link retryDeadLetters} needs. */
export interface DeadLetterDependencies {
  database: Database;
  runs: RunService;
  /** The queue's own dead-letter list loses the entries re-driven (when there is a queue). */
  queue?: WorkQueue;
  logger: Logger;
}

/** The outcome of a re-drive: what was re-driven into which run, and what was refused. */
export interface DeadLetterRetryResult {
  retried: { deadLetterId: string; runId: string; retryRunId: string }[];
  refused: { deadLetterId: string; code: string; message: string }[];
}

interface OpenDeadLetter {
  id: string;
  run_id: string;
  step_id: string;
  attempt: number;
  retry_run_id: string | null;
}

/**
 * Re-drives dead letters of the tenant (`ids`, or every open one with `all`): the dead letters
 * of one run are re-driven together by one resume of that run (see rerun-run.ts) in which their
 * steps run again; the new run's `run.rerun` event and attestation name them, and they are
 * marked retried in the same transaction (so a dead letter is re-driven once). With exactly one
 * id its refusal is thrown (DEAD_LETTER_NOT_FOUND, DEAD_LETTER_RETRIED, RUN_NOT_FINISHED,
 * SECRET_MISSING, ...); otherwise refusals are listed per dead letter.
 */
export async function retryDeadLetters(
  deps: DeadLetterDependencies,
  request: {
    tenant: string;
    ids: readonly string[];
    all: boolean;
    secrets: Record<string, string>;
    requestedBy: string;
  },
): Promise<DeadLetterRetryResult> {
  if (request.all === request.ids.length > 0)
    throw new PackrunError("REQUEST_INVALID", "name dead letters by id, or ask for all of them");
  const single = request.ids.length === 1;
  const result: DeadLetterRetryResult = { retried: [], refused: [] };
  const wanted = request.ids.filter((id) => uuid.test(id));
  const found = (
    await deps.database.query<OpenDeadLetter>(
      `SELECT d.id, d.run_id, d.step_id, d.attempt, d.retry_run_id
         FROM dead_letters d JOIN runs r ON r.id = d.run_id
        WHERE r.tenant = $1 AND (${request.all ? "d.retried_at IS NULL" : "d.id = ANY($2::uuid[])"})
        ORDER BY d.created_at, d.id`,
      request.all ? [request.tenant] : [request.tenant, wanted],
    )
  ).rows;
  const refuse = (id: string, error: PackrunError) => {
    if (single) throw error;
    result.refused.push({ deadLetterId: id, code: error.code, message: error.message });
  };
  for (const id of request.ids)
    if (!found.some((row) => row.id === id))
      refuse(id, new PackrunError("DEAD_LETTER_NOT_FOUND", `dead letter ${id} not found`));
  const byRun = new Map<string, OpenDeadLetter[]>();
  for (const row of found) {
    if (row.retry_run_id !== null) {
      refuse(
        row.id,
        new PackrunError(
          "DEAD_LETTER_RETRIED",
          `dead letter ${row.id} was already re-driven by run ${row.retry_run_id}`,
        ),
      );
      continue;
    }
    byRun.set(row.run_id, [...(byRun.get(row.run_id) ?? []), row]);
  }
  for (const [runId, letters] of byRun) {
    const ids = letters.map((letter) => letter.id);
    try {
      const view = await deps.runs.rerun({
        tenant: request.tenant,
        runId,
        mode: "resume",
        secrets: request.secrets,
        submittedBy: request.requestedBy,
        redrive: {
          stepIds: letters.map((letter) => letter.step_id),
          metadata: {
            deadLetters: letters.map((letter) => ({
              id: letter.id,
              stepId: letter.step_id,
              attempt: letter.attempt,
            })),
          },
          record: (tx, newRunId) => markRetried(tx, ids, request.requestedBy, newRunId),
        },
      });
      for (const letter of letters)
        result.retried.push({ deadLetterId: letter.id, runId, retryRunId: view.run.id });
      await deps.queue
        ?.removeDeadLetters?.(
          letters.map((letter) => ({ ...letter, runId, stepId: letter.step_id })),
        )
        .catch((error: unknown) => {
          deps.logger.warn(
            { err: error, runId },
            "the queue's dead-letter list kept re-driven entries",
          );
        });
      deps.logger.info(
        { runId, retryRunId: view.run.id, deadLetters: ids, by: request.requestedBy },
        "dead letters re-driven",
      );
    } catch (error) {
      if (!isPackrunError(error)) throw error;
      for (const letter of letters) refuse(letter.id, error);
    }
  }
  return result;
}

async function markRetried(
  tx: Queryable,
  ids: readonly string[],
  by: string,
  retryRunId: string,
): Promise<void> {
  const marked = await tx.query(
    "UPDATE dead_letters SET retried_at = now(), retried_by = $2, retry_run_id = $3 WHERE id = ANY($1::uuid[]) AND retried_at IS NULL",
    [ids, by, retryRunId],
  );
  // A concurrent re-drive won: this one changes nothing (its transaction rolls back).
  if (marked.rowCount !== ids.length)
    throw new PackrunError(
      "DEAD_LETTER_RETRIED",
      `dead letter(s) ${ids.join(", ")} were re-driven meanwhile`,
    );
}
