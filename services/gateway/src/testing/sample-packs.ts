/**
 * Small Task Packs the gateway's and the CLI's end-to-end tests share. Each takes the pack name,
 * so tests that look runs up by pack do not see each other's.
 */

/** Three steps: `ok` succeeds, `broken` exits 3 with a line on stderr, `never` is skipped. */
export function partialFailurePack(name: string): string {
  return `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: ${name}, version: 1.0.0}
spec:
  steps:
    - id: ok
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo fine"]}}
    - id: broken
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo 'disk on fire' >&2; exit 3"]}}
    - id: never
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo unreachable"]}}
`;
}

/** `prepare`, then the approval gate `release` (grant `release-managers`), then `deploy`. */
export function gatedPack(name: string): string {
  return `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata: {name: ${name}, version: 1.0.0}
spec:
  approvals: [{id: release, grants: [release-managers], required: 1}]
  steps:
    - id: prepare
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo prepared"]}}
    - id: release-gate
      gate: {approval: {id: release, message: "ship it?"}}
    - id: deploy
      run: {uses: builtin:shell, with: {argv: [sh, -c, "echo deployed"]}}
`;
}
