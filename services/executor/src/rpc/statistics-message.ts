import { create } from "@bufbuild/protobuf";
import { runStateToProto, stepStateToProto } from "@packrun/contract/proto";
import {
  DurationBucketSchema,
  DurationHistogramSchema,
  type GetRunStatisticsResponse,
  GetRunStatisticsResponseSchema,
  RunStateCountSchema,
  StepStateCountSchema,
  ValueHistogramSchema,
} from "@packrun/proto/executor/v1";
import type { CumulativeHistogram } from "../run/run-statistics.ts";
import type { RunState, StepState } from "../run/state-machine.ts";
import type { RunService } from "./run-service.ts";

/** The bucket messages of a cumulative histogram. */
function bucketMessages(histogram: CumulativeHistogram) {
  return histogram.buckets.map((bucket) =>
    create(DurationBucketSchema, {
      upperBound: bucket.upperBound,
      cumulativeCount: BigInt(bucket.cumulativeCount),
    }),
  );
}

/** The GetRunStatistics response of the run service's statistics. */
export function runStatisticsMessage(
  statistics: Awaited<ReturnType<RunService["statistics"]>>,
): GetRunStatisticsResponse {
  const histogram = statistics.attemptDurations;
  return create(GetRunStatisticsResponseSchema, {
    runsByState: (Object.entries(statistics.runsByState) as [RunState, number][]).map(
      ([state, count]) =>
        create(RunStateCountSchema, { state: runStateToProto(state), count: BigInt(count) }),
    ),
    stepsByState: (Object.entries(statistics.stepsByState) as [StepState, number][]).map(
      ([state, count]) =>
        create(StepStateCountSchema, { state: stepStateToProto(state), count: BigInt(count) }),
    ),
    queueWaiting: BigInt(statistics.queue?.waiting ?? 0),
    queueDelayed: BigInt(statistics.queue?.delayed ?? 0),
    queueActive: BigInt(statistics.queue?.active ?? 0),
    queueDeadLetter: BigInt(statistics.queue?.deadLetter ?? 0),
    queueAvailable: statistics.queue !== undefined,
    stepAttemptDurations: create(DurationHistogramSchema, {
      buckets: histogram.buckets.map((bucket) =>
        create(DurationBucketSchema, {
          upperBound: bucket.upperBound,
          cumulativeCount: BigInt(bucket.cumulativeCount),
        }),
      ),
      count: BigInt(histogram.count),
      sumSeconds: histogram.sumSeconds,
    }),
    retriesTotal: BigInt(statistics.retriesTotal),
    stepAttemptCpuSeconds: create(DurationHistogramSchema, {
      buckets: bucketMessages(statistics.cpuSeconds),
      count: BigInt(statistics.cpuSeconds.count),
      sumSeconds: statistics.cpuSeconds.sum,
    }),
    stepAttemptPeakMemoryBytes: create(ValueHistogramSchema, {
      buckets: bucketMessages(statistics.peakMemoryBytes),
      count: BigInt(statistics.peakMemoryBytes.count),
      sum: statistics.peakMemoryBytes.sum,
    }),
  });
}
