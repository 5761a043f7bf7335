/** A timeout in words for step reasons: whole seconds as `30s`, anything else in `ms`. */
export function describeTimeout(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
