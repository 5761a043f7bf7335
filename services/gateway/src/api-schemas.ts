/**
 * The public REST contract, as JSON Schema built with TypeBox. The routes validate with these
 * schemas and the OpenAPI document at `/.well-known/openapi` is generated from them, so the
 * two cannot drift. Field names are camelCase; times are RFC 3339 strings; 64-bit counters are
 * JSON numbers (they stay far below 2^53).
 */
import type { Readable } from "node:stream";
import { type RunState, runStates, type StepState, stepStates } from "@packrun/contract";
import { type Static, Type } from "typebox";

/** A binary download body (a stream on the server side). */
export const BinarySchema = Type.Unsafe<Readable>({ type: "string", format: "binary" });

const nonEmptyName = Type.String({ minLength: 1, maxLength: 128 });

/** A run state as the API reports it; the names are @packrun/contract's. */
export const RunStateSchema = Type.Unsafe<RunState>(
  Type.Union(
    runStates.map((state) => Type.Literal(state)),
    { title: "RunState", description: "State of a run." },
  ),
);
export type RunStateName = RunState;

/** A step state as the API reports it; the names are @packrun/contract's. */
export const StepStateSchema = Type.Unsafe<StepState>(
  Type.Union(
    stepStates.map((state) => Type.Literal(state)),
    {
      title: "StepState",
      description: "State of a step; docs/state-machine.md has the transitions.",
    },
  ),
);
export type StepStateName = StepState;

/** A step kind as the API reports it. */
export const StepKindSchema = Type.Union(
  [
    Type.Literal("run"),
    Type.Literal("parallel"),
    Type.Literal("map"),
    Type.Literal("approval-gate"),
    Type.Literal("policy-gate"),
  ],
  { title: "StepKind" },
);
export type StepKindName = Static<typeof StepKindSchema>;

const Time = Type.String({ format: "date-time" });
const JsonObject = Type.Record(Type.String(), Type.Unknown());

export const StepAttemptSchema = Type.Object(
  {
    attempt: Type.Integer({ minimum: 1 }),
    state: StepStateSchema,
    startedAt: Type.Optional(Time),
    finishedAt: Type.Optional(Time),
    exitCode: Type.Optional(
      Type.Integer({ description: "Absent when the process did not exit by itself." }),
    ),
    reason: Type.Optional(Type.String()),
    workerId: Type.Optional(Type.String()),
    cpuMicros: Type.Optional(Type.Integer({ minimum: 0 })),
    peakMemoryBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { title: "StepAttempt", description: "One attempt at a run step." },
);
export type StepAttemptJson = Static<typeof StepAttemptSchema>;

export const StepSchema = Type.Object(
  {
    id: Type.String(),
    parentId: Type.Optional(Type.String({ description: "Enclosing parallel or map step." })),
    kind: StepKindSchema,
    state: StepStateSchema,
    attempt: Type.Integer({ minimum: 0 }),
    maxAttempts: Type.Integer({ minimum: 0 }),
    nextAttemptAt: Type.Optional(Time),
    reason: Type.Optional(Type.String()),
    exitCode: Type.Optional(
      Type.Integer({ description: "Absent when the process did not exit by itself." }),
    ),
    startedAt: Type.Optional(Time),
    finishedAt: Type.Optional(Time),
    durationMs: Type.Optional(Type.Integer({ minimum: 0 })),
    outputs: Type.Optional(JsonObject),
    attempts: Type.Array(StepAttemptSchema),
  },
  { title: "Step", description: "A node of the run's execution graph, in plan order." },
);
export type StepJson = Static<typeof StepSchema>;

export const ApprovalDecisionSchema = Type.Object(
  {
    approver: Type.String(),
    approved: Type.Boolean(),
    comment: Type.Optional(Type.String()),
    decidedAt: Type.Optional(Time),
  },
  { title: "ApprovalDecision" },
);

export const GateSchema = Type.Object(
  {
    stepId: Type.String(),
    gateId: Type.String({ description: "Approval id (spec.approvals) or policy name." }),
    kind: Type.Union([Type.Literal("approval"), Type.Literal("policy")]),
    state: StepStateSchema,
    requiredApprovals: Type.Integer({ minimum: 0 }),
    grants: Type.Array(Type.String(), {
      description: "Groups an approver must hold one of; empty means any approver.",
    }),
    decisions: Type.Array(ApprovalDecisionSchema),
    expiresAt: Type.Optional(Time),
    message: Type.Optional(Type.String()),
  },
  { title: "Gate", description: "An approval or policy gate of a run." },
);
export type GateJson = Static<typeof GateSchema>;

export const RunLinkSchema = Type.Object(
  {
    runId: Type.String({ format: "uuid" }),
    mode: Type.Union([Type.Literal("rerun"), Type.Literal("resume")], {
      description: "rerun: every step ran again; resume: the succeeded steps were kept.",
    }),
  },
  {
    title: "RunLink",
    description: "A run made from another by rerun or resume, or the run it was made from.",
  },
);

export const RerunBodySchema = Type.Object(
  {
    secrets: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description:
          "Secret values by name for the new run; every secret the plan declares is needed again (the original run's are never reused).",
      }),
    ),
  },
  { additionalProperties: false, title: "RerunRequest" },
);

export const RunSchema = Type.Object(
  {
    id: Type.String({ format: "uuid" }),
    pack: Type.Object({ name: Type.String(), version: Type.String(), digest: Type.String() }),
    planHash: Type.String({ description: "sha256:<hex> over the canonical plan." }),
    state: RunStateSchema,
    priority: Type.Integer(),
    reason: Type.Optional(Type.String()),
    createdAt: Time,
    startedAt: Type.Optional(Time),
    finishedAt: Type.Optional(Time),
    submittedBy: Type.String(),
    labels: Type.Record(Type.String(), Type.String()),
    outputs: Type.Optional(JsonObject),
    steps: Type.Array(StepSchema, { description: "Empty in list responses." }),
    gates: Type.Array(GateSchema, { description: "Empty in list responses." }),
    pendingGates: Type.Array(Type.String(), {
      description: "Ids of the approval gates awaiting a decision now.",
    }),
    rerunOf: Type.Optional(RunLinkSchema),
    reruns: Type.Optional(
      Type.Array(RunLinkSchema, {
        description: "Runs made from this one by rerun or resume, oldest first (not in lists).",
      }),
    ),
    notBefore: Type.Optional(
      Type.String({ format: "date-time", description: "A delayed run starts no earlier." }),
    ),
    waitingReason: Type.Optional(
      Type.String({
        description:
          "Why a queued run has not started: delayed (notBefore), its user's limit of runs in flight, or an earlier run of its schedule (overlap policy queue).",
      }),
    ),
    timeoutSeconds: Type.Optional(
      Type.Integer({ minimum: 1, description: "Run deadline in seconds from the start." }),
    ),
    deadlineAt: Type.Optional(
      Type.String({ format: "date-time", description: "When the run deadline passes." }),
    ),
    schedule: Type.Optional(
      Type.Object(
        { id: Type.String({ format: "uuid" }), dueAt: Time },
        { description: "The schedule and due time that made this run." },
      ),
    ),
  },
  { title: "Run", description: "A run of a planned pack." },
);
export type RunJson = Static<typeof RunSchema>;

export const PackRefSchema = Type.Object(
  {
    name: nonEmptyName,
    version: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: "Exact version; default latest." }),
    ),
  },
  { additionalProperties: false },
);

const InputsSchema = Type.Record(Type.String(), Type.Unknown(), {
  description: "Input values by name.",
});

/** Request body of POST /api/runs. Exactly one of `manifest` and `pack`. */
export const SubmitRunBodySchema = Type.Object(
  {
    manifest: Type.Optional(Type.String({ minLength: 1, description: "Inline pack.yaml text." })),
    pack: Type.Optional(
      Type.Object(PackRefSchema.properties, {
        additionalProperties: false,
        description: "A published pack: {name, version}; version defaults to the highest.",
      }),
    ),
    inputs: Type.Optional(InputsSchema),
    secrets: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: "Secret values by name; never stored in Postgres, logs or evidence.",
      }),
    ),
    priority: Type.Optional(
      Type.Integer({ minimum: -1000, maximum: 1000, description: "Higher runs first; default 0." }),
    ),
    idempotencyKey: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description:
          "Retries with the same key and request answer the same run (created: false); the same key with another manifest, pack or inputs is 409 IDEMPOTENCY_KEY_REUSED.",
      }),
    ),
    labels: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: "Free-form labels kept on the run.",
      }),
    ),
    notBefore: Type.Optional(
      Type.String({
        format: "date-time",
        description:
          "RFC 3339 time: the run waits, queued and holding no worker, until then (at most 366 days ahead).",
      }),
    ),
    timeoutSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 31_536_000,
        description:
          "Run deadline in seconds; may shorten the pack's spec.timeout, never lengthen it. Default: the pack's.",
      }),
    ),
  },
  { additionalProperties: false, title: "SubmitRunRequest" },
);
export type SubmitRunBody = Static<typeof SubmitRunBodySchema>;

export const SubmitRunResponseSchema = Type.Object(
  {
    run: RunSchema,
    created: Type.Boolean({ description: "False when the idempotency key matched a run." }),
  },
  { title: "SubmitRunResponse" },
);

export const ListRunsQuerySchema = Type.Object(
  {
    state: Type.Optional(
      Type.Array(RunStateSchema, { description: "Repeat to match any of several states." }),
    ),
    pack: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "Pack name." })),
    pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    pageToken: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);
export type ListRunsQuery = Static<typeof ListRunsQuerySchema>;

export const ListRunsResponseSchema = Type.Object(
  {
    runs: Type.Array(RunSchema),
    nextPageToken: Type.Optional(Type.String({ description: "Absent on the last page." })),
  },
  { title: "ListRunsResponse" },
);

export const RunIdParamsSchema = Type.Object({
  id: Type.String({ maxLength: 64, description: "Run id (UUID)." }),
});

export const LogsQuerySchema = Type.Object(
  {
    format: Type.Optional(
      Type.Union([Type.Literal("sse"), Type.Literal("ndjson")], { default: "sse" }),
    ),
    after: Type.Optional(
      Type.Integer({
        minimum: 0,
        // Sequences are int64 inside; beyond 2^53 a JSON number is not even exact.
        maximum: Number.MAX_SAFE_INTEGER,
        description: "Start after this sequence (SSE clients may send Last-Event-ID instead).",
      }),
    ),
    follow: Type.Optional(
      Type.Boolean({
        default: true,
        description: "Keep streaming until the run finishes; false returns what is stored now.",
      }),
    ),
    step: Type.Optional(Type.String({ maxLength: 512, description: "Only this step's events." })),
  },
  { additionalProperties: false },
);
export type LogsQuery = Static<typeof LogsQuerySchema>;

/** One entry of a run's ordered event log; the SSE `data:` and the NDJSON line. */
export const RunEventSchema = Type.Object(
  {
    sequence: Type.Integer({ minimum: 1 }),
    time: Time,
    level: Type.Union([
      Type.Literal("debug"),
      Type.Literal("info"),
      Type.Literal("warn"),
      Type.Literal("error"),
    ]),
    type: Type.String({ description: "For example step.log, step.started, run.succeeded." }),
    stepId: Type.Optional(Type.String()),
    message: Type.String(),
    metadata: Type.Optional(JsonObject),
  },
  { title: "RunEvent" },
);
export type RunEventJson = Static<typeof RunEventSchema>;

export const ArtifactSchema = Type.Object(
  {
    stepId: Type.String(),
    name: Type.String(),
    type: Type.String(),
    digest: Type.String({ description: "sha256:<hex> of the content." }),
    sizeBytes: Type.Integer({ minimum: 0 }),
    sourcePath: Type.Optional(Type.String()),
    status: Type.String(),
    createdAt: Type.Optional(Time),
    downloadUrl: Type.String(),
  },
  { title: "Artifact" },
);
export type ArtifactJson = Static<typeof ArtifactSchema>;

export const ListArtifactsResponseSchema = Type.Object(
  { artifacts: Type.Array(ArtifactSchema) },
  { title: "ListArtifactsResponse" },
);

export const ArtifactParamsSchema = Type.Object({
  id: Type.String({ maxLength: 64 }),
  digest: Type.String({ pattern: "^sha256:[0-9a-f]{64}$" }),
});

/**
 * Request body of POST /api/runs/{id}/approve. The gate, run and plan hash come from the
 * approval token's claims; `gateId`, when given, must name the same gate.
 */
export const ApproveBodySchema = Type.Object(
  {
    gateId: Type.Optional(nonEmptyName),
    approve: Type.Optional(Type.Boolean({ default: true, description: "False rejects." })),
    comment: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false, title: "ApproveRequest" },
);
export type ApproveBody = Static<typeof ApproveBodySchema>;

export const ApproveResponseSchema = Type.Object(
  {
    gate: GateSchema,
    recorded: Type.Boolean({
      description: "False when this approver's identical decision was already recorded.",
    }),
    runState: RunStateSchema,
  },
  { title: "ApproveResponse" },
);

export const ApprovalRequestParamsSchema = Type.Object({
  id: Type.String({ maxLength: 64, description: "Run id (UUID)." }),
  gate: Type.String({
    minLength: 1,
    maxLength: 500,
    description: "The gate's step id, or an approval id only one gate of the run uses.",
  }),
});

export const ExportApprovalRequestBodySchema = Type.Object(
  {
    ttlSeconds: Type.Optional(
      Type.Integer({
        minimum: 60,
        maximum: 30 * 24 * 60 * 60,
        description:
          "How long the request is valid (default 86400, 24 hours); never beyond the gate's expiry.",
      }),
    ),
  },
  { additionalProperties: false, title: "ExportApprovalRequest" },
);

const DsseEnvelopeSchema = Type.Object(
  {
    payloadType: Type.String({ minLength: 1 }),
    payload: Type.String(),
    signatures: Type.Array(
      Type.Object({ keyid: Type.Optional(Type.String()), sig: Type.String() }),
      { minItems: 1, maxItems: 16 },
    ),
  },
  { title: "DsseEnvelope", description: "A DSSE envelope in its JSON form." },
);

export const ExportApprovalRequestResponseSchema = Type.Object(
  {
    requestId: Type.String({ format: "uuid" }),
    expiresAt: Time,
    envelope: DsseEnvelopeSchema,
  },
  {
    title: "ApprovalRequestExport",
    description:
      "The signed offline approval request: a DSSE envelope of type application/vnd.packrun.approval-request+json signed by the evidence service's key.",
  },
);

export const ImportApprovalResponseResponseSchema = Type.Object(
  {
    runId: Type.String({ format: "uuid" }),
    approver: Type.String({ description: "The approver identity the verified key maps to." }),
    gate: GateSchema,
    recorded: Type.Boolean({
      description: "False when this approver's identical decision was already recorded.",
    }),
    runState: RunStateSchema,
  },
  { title: "ApprovalResponseImport" },
);

/** Body of POST /api/approvals/import: the approver's signed response, as `approvals sign` wrote it. */
export const ImportApprovalResponseBodySchema = DsseEnvelopeSchema;

export const CancelBodySchema = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 2000 })) },
  { additionalProperties: false, title: "CancelRequest" },
);

export const AttestationResponseSchema = Type.Object(
  {
    runId: Type.String(),
    keyId: Type.String(),
    createdAt: Type.Optional(Time),
    envelope: JsonObject,
  },
  { title: "Attestation", description: "The run's signed DSSE envelope (in-toto statement)." },
);

/** Request body of POST /api/simulations. Exactly one of `manifest` and `pack`. */
export const SimulateBodySchema = Type.Object(
  {
    manifest: Type.Optional(Type.String({ minLength: 1 })),
    pack: Type.Optional(PackRefSchema),
    inputs: Type.Optional(InputsSchema),
    secretNames: Type.Optional(
      Type.Array(Type.String(), {
        description: "Names of the secrets the real run would supply (values are not needed).",
      }),
    ),
  },
  { additionalProperties: false, title: "SimulateRequest" },
);
export type SimulateBody = Static<typeof SimulateBodySchema>;

export const SimulatedStepSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.Optional(Type.String()),
    kind: StepKindSchema,
    status: Type.Union([
      Type.Literal("pending"),
      Type.Literal("skipped"),
      Type.Literal("requires-approval"),
      Type.Literal("requires-policy"),
    ]),
    reason: Type.Optional(Type.String()),
    uses: Type.Optional(Type.String()),
    gateRef: Type.Optional(Type.String()),
    runtimeDependent: Type.Boolean(),
    children: Type.Array(Type.Unknown(), {
      description: "Nested simulated steps of a parallel or map block (same shape).",
    }),
  },
  { title: "SimulatedStep" },
);

export const DeclaredOutputSchema = Type.Object({
  name: Type.String(),
  type: Type.String(),
  path: Type.Optional(Type.String()),
  expression: Type.Optional(Type.String()),
});

export const SimulateResponseSchema = Type.Object(
  {
    planHash: Type.String(),
    pack: Type.Object({ name: Type.String(), version: Type.String(), digest: Type.String() }),
    stepCount: Type.Integer({ minimum: 0 }),
    sandboxMode: Type.String(),
    approvals: Type.Array(
      Type.Object({
        id: Type.String(),
        grants: Type.Array(Type.String()),
        required: Type.Integer(),
        expiresAfterSeconds: Type.Optional(Type.Integer()),
        reason: Type.Optional(Type.String()),
      }),
    ),
    secretNames: Type.Array(Type.String()),
    policyNames: Type.Array(Type.String()),
    steps: Type.Array(SimulatedStepSchema),
    outputs: Type.Array(DeclaredOutputSchema),
  },
  { title: "SimulateResponse" },
);

export const PackVersionSchema = Type.Object(
  {
    name: Type.String(),
    version: Type.String(),
    digest: Type.String(),
    description: Type.Optional(Type.String()),
    tags: Type.Array(Type.String()),
    publishedAt: Type.Optional(Time),
    publishedBy: Type.String(),
  },
  { title: "PackVersion" },
);
export type PackVersionJson = Static<typeof PackVersionSchema>;

/** Request body of POST /api/packs (JSON); `application/yaml` bodies carry the manifest bare. */
export const PublishPackBodySchema = Type.Object(
  { manifest: Type.String({ minLength: 1 }) },
  { additionalProperties: false, title: "PublishPackRequest" },
);

export const PublishPackResponseSchema = Type.Object(
  {
    pack: PackVersionSchema,
    created: Type.Boolean({ description: "False when the identical manifest was published." }),
  },
  { title: "PublishPackResponse" },
);

export const ListPacksQuerySchema = Type.Object(
  {
    pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    pageToken: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);

export const ListPacksResponseSchema = Type.Object(
  {
    packs: Type.Array(
      Type.Object({
        name: Type.String(),
        latestVersion: Type.String(),
        versionCount: Type.Integer({ minimum: 1 }),
      }),
    ),
    nextPageToken: Type.Optional(Type.String()),
  },
  { title: "ListPacksResponse" },
);

export const PackNameParamsSchema = Type.Object({ name: nonEmptyName });
export const PackVersionParamsSchema = Type.Object({ name: nonEmptyName, version: nonEmptyName });

export const ListPackVersionsResponseSchema = Type.Object(
  { versions: Type.Array(PackVersionSchema), nextPageToken: Type.Optional(Type.String()) },
  { title: "ListPackVersionsResponse" },
);

export const GetPackVersionResponseSchema = Type.Object(
  { pack: PackVersionSchema, manifest: Type.String() },
  { title: "GetPackVersionResponse" },
);

export const VerificationKeysResponseSchema = Type.Object(
  {
    keys: Type.Array(
      Type.Object({
        keyId: Type.String(),
        algorithm: Type.String(),
        publicKeyPem: Type.String(),
        active: Type.Boolean(),
      }),
    ),
  },
  { title: "VerificationKeysResponse" },
);

/** A JWK Set (RFC 7517) of the public keys that verify evidence signatures. */
export const SigningKeysJwksSchema = Type.Object(
  {
    keys: Type.Array(
      Type.Object(
        {
          kty: Type.String({ description: "`OKP` (Ed25519) or `EC` (P-256)" }),
          crv: Type.String(),
          x: Type.String(),
          y: Type.Optional(Type.String()),
          kid: Type.String({ description: "packrun key id: hex SHA-256 of the SPKI DER" }),
          use: Type.Literal("sig"),
          alg: Type.Union([Type.Literal("EdDSA"), Type.Literal("ES256")]),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { title: "SigningKeysJwks" },
);

/** RFC 9457 problem document; `code` is the stable packrun error code (docs/errors.md). */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ format: "uri-reference" }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    code: Type.String(),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String({ description: "JSON Pointer into the request, or a YAML path." }),
          message: Type.String(),
          line: Type.Optional(Type.Integer()),
          column: Type.Optional(Type.Integer()),
        }),
      ),
    ),
  },
  { title: "Problem" },
);
export type ProblemJson = Static<typeof ProblemSchema>;

export const DeadLetterSchema = Type.Object(
  {
    id: Type.String({ format: "uuid" }),
    runId: Type.String({ format: "uuid" }),
    stepId: Type.String(),
    attempt: Type.Integer({ minimum: 0, description: "The attempt that failed last." }),
    reason: Type.String({ description: "Why the step failed permanently." }),
    createdAt: Time,
    pack: Type.Object({ name: Type.String(), version: Type.String() }),
    runState: RunStateSchema,
    lastAttempt: Type.Optional(StepAttemptSchema),
    retriedAt: Type.Optional(Time),
    retriedBy: Type.Optional(Type.String()),
    retryRunId: Type.Optional(
      Type.String({ format: "uuid", description: "The run that re-drove it." }),
    ),
  },
  {
    title: "DeadLetter",
    description:
      "A step that failed permanently (its attempts used up), with the last attempt's result.",
  },
);
export type DeadLetterJson = Static<typeof DeadLetterSchema>;

export const ListDeadLettersQuerySchema = Type.Object(
  {
    includeRetried: Type.Optional(
      Type.Boolean({ description: "Also list dead letters already re-driven." }),
    ),
    runId: Type.Optional(Type.String({ format: "uuid", description: "Only this run's." })),
    pageSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
    pageToken: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);

export const ListDeadLettersResponseSchema = Type.Object(
  {
    deadLetters: Type.Array(DeadLetterSchema),
    nextPageToken: Type.Optional(Type.String()),
  },
  { title: "ListDeadLettersResponse" },
);

export const DeadLetterIdParamsSchema = Type.Object({ id: Type.String({ maxLength: 100 }) });

export const RetryDeadLetterBodySchema = Type.Object(
  {
    secrets: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description:
          "Secret values for the new run(s); every secret the pack declares is needed again.",
      }),
    ),
  },
  { additionalProperties: false, title: "RetryDeadLetterRequest" },
);

export const DeadLetterRetrySchema = Type.Object(
  {
    deadLetterId: Type.String({ format: "uuid" }),
    runId: Type.String({ format: "uuid" }),
    retryRunId: Type.String({
      format: "uuid",
      description: "The new run (a resume of runId) in which the step runs again.",
    }),
  },
  { title: "DeadLetterRetry" },
);
export type DeadLetterRetryJson = Static<typeof DeadLetterRetrySchema>;

export const RetryAllDeadLettersResponseSchema = Type.Object(
  {
    retried: Type.Array(DeadLetterRetrySchema),
    refused: Type.Array(
      Type.Object({
        deadLetterId: Type.String(),
        code: Type.String({ description: "Stable error code, e.g. SECRET_MISSING." }),
        message: Type.String(),
      }),
    ),
  },
  { title: "RetryAllDeadLettersResponse" },
);
