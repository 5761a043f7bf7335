import type { FailurePolicy } from "@packrun/planning";

/**
 * Seconds to wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed:
 * fixed = backoffSeconds; exponential = backoffSeconds × 2^(attempt-1); both capped by
 * maxBackoffSeconds; then a `jitter` fraction of it is randomised downwards (so retries of
 * many steps spread out but never wait longer than the policy says).
 */
export function retryDelaySeconds(
  policy: FailurePolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base =
    policy.backoff === "exponential"
      ? policy.backoffSeconds * 2 ** (attempt - 1)
      : policy.backoffSeconds;
  const capped =
    policy.maxBackoffSeconds === null ? base : Math.min(base, policy.maxBackoffSeconds);
  const jittered = capped * (1 - policy.jitter * random());
  return Math.round(jittered * 1000) / 1000;
}
