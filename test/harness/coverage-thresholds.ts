/** Per-package line-coverage floors (percent), set at what was measured, rounded down. */
export const coverageThresholds: Record<string, { lines: number }> = {};
