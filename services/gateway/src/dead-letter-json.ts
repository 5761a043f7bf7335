import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { DeadLetter } from "@packrun/proto/executor/v1";
import { attemptJson, runStateName } from "./api-json.ts";
import type { DeadLetterJson } from "./api-schemas.ts";

/** The API shape of a dead letter. */
export function deadLetterJson(letter: DeadLetter): DeadLetterJson {
  return {
    id: letter.id,
    runId: letter.runId,
    stepId: letter.stepId,
    attempt: letter.attempt,
    reason: letter.reason,
    createdAt: (letter.createdAt === undefined
      ? new Date(0)
      : timestampDate(letter.createdAt)
    ).toISOString(),
    pack: { name: letter.packName, version: letter.packVersion },
    runState: runStateName(letter.runState),
    ...(letter.lastAttempt === undefined ? {} : { lastAttempt: attemptJson(letter.lastAttempt) }),
    ...(letter.retriedAt === undefined
      ? {}
      : {
          retriedAt: timestampDate(letter.retriedAt).toISOString(),
          retriedBy: letter.retriedBy,
          retryRunId: letter.retryRunId,
        }),
  };
}
