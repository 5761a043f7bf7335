/**
 * Test fixture: a pack with a map over an input list, an approval gate, a policy gate, a step
 * skipped by `when`, a secret and an output, i.e. every classification `simulate` makes.
 */
export const samplePack = `apiVersion: stellaops.io/pack.v1
kind: TaskPack
metadata:
  name: image-scan
  version: 1.2.0
  description: Scan images, then deploy after approval.
spec:
  inputs:
    - name: images
      type: array
      required: true
    - name: deploy
      type: boolean
      default: false
  secrets:
    - name: registryToken
  approvals:
    - id: release
      grants: [security-lead]
      required: 2
      expiresAfter: 24h
      reason: Production deploy
  policies:
    - name: no-critical
      expression: "true"
  steps:
    - id: prepare
      run:
        uses: builtin:noop
        with:
          message: "preparing {{ inputs.images.size() }} images"
    - id: scan
      map:
        items: "{{ inputs.images }}"
        step:
          id: scan-one
          run:
            uses: builtin:shell
            with:
              argv: ["echo", "{{ item }}"]
    - id: approve
      gate:
        approval:
          id: release
          message: ship it
    - id: check
      gate:
        policy:
          policy: no-critical
    - id: deploy
      when: inputs.deploy
      run:
        uses: builtin:noop
  outputs:
    - name: report
      type: file
      path: report.json
`;

/**
 * The same pack data as {@link samplePack} with keys in another order, other quoting and
 * comments: its plan (and planHash) must be identical.
 */
export const samplePackReordered = `# Reformatted copy of the sample pack.
kind: TaskPack
apiVersion: "stellaops.io/pack.v1"
metadata:
  version: "1.2.0"   # quoted on purpose
  description: Scan images, then deploy after approval.
  name: image-scan
spec:
  outputs:
    - { path: report.json, type: file, name: report }
  steps:
    - run:
        with:
          message: 'preparing {{ inputs.images.size() }} images'
        uses: builtin:noop
      id: prepare
    - map:
        step:
          run:
            with:
              argv:
                - echo
                - "{{ item }}"
            uses: builtin:shell
          id: scan-one
        items: "{{ inputs.images }}"
      id: scan
    # the approval gate
    - gate: { approval: { message: ship it, id: release } }
      id: approve
    - gate:
        policy:
          policy: no-critical
      id: check
    - run: { uses: "builtin:noop" }
      when: inputs.deploy
      id: deploy
  policies:
    - expression: "true"
      name: no-critical
  approvals:
    - reason: Production deploy
      expiresAfter: 24h
      required: 2
      grants:
        - security-lead
      id: release
  secrets:
    - name: registryToken
  inputs:
    - required: true
      type: array
      name: images
    - default: false
      name: deploy
      type: boolean
`;
