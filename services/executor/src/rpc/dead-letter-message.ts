import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { isStepState } from "@packrun/contract";
import { runStateToProto, stepStateToProto } from "@packrun/contract/proto";
import { type DeadLetter, DeadLetterSchema, StepAttemptSchema } from "@packrun/proto/executor/v1";
import type { DeadLetterView } from "../store/dead-letters.ts";

const time = (value: Date | string | null | undefined) =>
  value === null || value === undefined ? undefined : timestampFromDate(new Date(value));

/** The DeadLetter message of a listed dead letter. */
export function deadLetterMessage(row: DeadLetterView): DeadLetter {
  const last = row.last_attempt;
  return create(DeadLetterSchema, {
    id: row.id,
    runId: row.run_id,
    stepId: row.step_id,
    attempt: row.attempt,
    reason: row.reason,
    createdAt: time(row.created_at),
    packName: row.pack_name,
    packVersion: row.pack_version,
    runState: runStateToProto(row.run_state),
    ...(last === null
      ? {}
      : {
          lastAttempt: create(StepAttemptSchema, {
            attempt: last.attempt,
            state: stepStateToProto(isStepState(last.state) ? last.state : "failed"),
            startedAt: time(last.started_at),
            finishedAt: time(last.finished_at),
            exitCode: last.exit_code ?? -1,
            reason: last.reason,
            workerId: last.worker_id,
            cpuMicros: BigInt(last.cpu_micros ?? 0),
            peakMemoryBytes: BigInt(last.peak_memory_bytes ?? 0),
          }),
        }),
    retriedAt: time(row.retried_at),
    retriedBy: row.retried_by ?? "",
    retryRunId: row.retry_run_id ?? "",
  });
}
