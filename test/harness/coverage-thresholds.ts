/**
 * Per-package line-coverage floors (percent) of `npm run coverage` and CI's `npm test -- --coverage`,
 * set at what was measured on 2026-12-06 less half a point, rounded down: timing-dependent paths
 * (retries, reconnects) move a package's figure by a few tenths from run to run, and the floor
 * must not turn that into a red CI. Raise them as coverage rises. Coverage counts code run inside
 * the test files' processes; services a test starts as child processes are not measured, which
 * is why the CLI and the embedded default look low.
 */
export const coverageThresholds: Record<string, { lines: number }> = {
  // measured 92.45 %
  "packages/attestation/src/**": { lines: 91 },
  // measured 100.00 %
  "packages/auth/src/**": { lines: 99 },
  // measured 73.87 % (2026-12-06; 56.45 % before): the schedules, rerun and approvals-sign
  // command tests run the CLI's main() in-process (runCliInProcess), so coverage sees it
  "packages/cli/src/**": { lines: 73 },
  // measured 97.44 %
  "packages/config/src/**": { lines: 96 },
  // measured 95.00 %
  "packages/contract/src/**": { lines: 94 },
  // measured 95.10 %
  "packages/db/src/**": { lines: 94 },
  // measured 29.01 %
  "packages/embedded/src/**": { lines: 28 },
  // measured 100.00 %
  "packages/errors/src/**": { lines: 99 },
  // measured 100.00 %
  "packages/logging/src/**": { lines: 99 },
  // measured 94.68 %, then about 93.6 % (2026-12-06): planning and CEL evaluation moved into
  // worker threads (planning-pool.ts), which coverage does not see; their task function is
  // tested in-process too (planning-thread.test.ts)
  "packages/planning/src/**": { lines: 93 },
  // measured 82.63 %
  "packages/rpc-server/src/**": { lines: 82 },
  // measured 91.71 %
  "packages/telemetry/src/**": { lines: 91 },
  // measured 92.28 %
  "services/evidence/src/**": { lines: 91 },
  // measured 89.55 %
  "services/executor/src/**": { lines: 89 },
  // measured 91.45 %
  "services/gateway/src/**": { lines: 90 },
  // measured 86.81 %
  "services/planner/src/**": { lines: 86 },
};
