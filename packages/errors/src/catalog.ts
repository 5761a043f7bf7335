import { Code } from "@connectrpc/connect";

/** How one stable error code surfaces at each boundary. */
export interface ErrorCodeInfo {
  /** Connect/gRPC status at the RPC boundary. */
  readonly connect: Code;
  /** HTTP status at the REST boundary (RFC 9457 problem documents). */
  readonly http: number;
  /** Short, stable, human title for problem documents. */
  readonly title: string;
  /** CLI exit code (0 ok, 1 error, 2 invalid input, 3 auth, 4 not found, 5 sealed, 10 retryable). */
  readonly exit: number;
}

/**
 * Every error packrun reports, by stable code. Codes never change meaning once published;
 * add new ones rather than reusing old ones. docs/errors.md lists them.
 */
export const errorCatalog = {
  PACK_TOO_LARGE: {
    connect: Code.InvalidArgument,
    http: 413,
    title: "Manifest too large",
    exit: 2,
  },
  PACK_YAML_SYNTAX: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Manifest is not valid YAML",
    exit: 2,
  },
  PACK_YAML_UNSAFE: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Manifest uses unsafe YAML",
    exit: 2,
  },
  PACK_SCHEMA: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Manifest does not match the Task Pack schema",
    exit: 2,
  },
  PACK_DUPLICATE_ID: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Duplicate step id",
    exit: 2,
  },
  PACK_UNKNOWN_REFERENCE: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Reference to an undeclared name",
    exit: 2,
  },
  PACK_EXPRESSION: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Invalid expression",
    exit: 2,
  },
  PACK_LIMIT: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Manifest exceeds a limit",
    exit: 2,
  },
  INPUT_MISSING: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Required input missing",
    exit: 2,
  },
  INPUT_INVALID: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Input value invalid",
    exit: 2,
  },
  INPUT_UNKNOWN: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Input not declared by the pack",
    exit: 2,
  },
  SECRET_UNDECLARED: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Secret not declared by the pack",
    exit: 2,
  },
  SECRET_MISSING: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Declared secret not supplied",
    exit: 2,
  },
  REQUEST_INVALID: { connect: Code.InvalidArgument, http: 400, title: "Request invalid", exit: 2 },
  REQUEST_TOO_LARGE: {
    connect: Code.ResourceExhausted,
    http: 413,
    title: "Request body too large",
    exit: 2,
  },
  REQUEST_HEADERS_TOO_LARGE: {
    connect: Code.ResourceExhausted,
    http: 431,
    title: "Request headers too large",
    exit: 2,
  },
  IDEMPOTENCY_KEY_REUSED: {
    connect: Code.AlreadyExists,
    http: 409,
    title: "Idempotency key already used for a different request",
    exit: 1,
  },
  UNSUPPORTED_MEDIA_TYPE: {
    connect: Code.InvalidArgument,
    http: 415,
    title: "Unsupported media type",
    exit: 2,
  },
  ROUTE_NOT_FOUND: { connect: Code.NotFound, http: 404, title: "No such endpoint", exit: 4 },
  METHOD_NOT_ALLOWED: {
    connect: Code.Unimplemented,
    http: 405,
    title: "Method not allowed",
    exit: 2,
  },
  RANGE_NOT_SATISFIABLE: {
    connect: Code.OutOfRange,
    http: 416,
    title: "Range not satisfiable",
    exit: 2,
  },
  APPROVAL_TOKEN_MISMATCH: {
    connect: Code.PermissionDenied,
    http: 403,
    title: "Approval token is not bound to this gate",
    exit: 3,
  },
  APPROVAL_TOKEN_REUSED: {
    connect: Code.AlreadyExists,
    http: 409,
    title: "Approval token already used",
    exit: 3,
  },
  PACK_NOT_FOUND: { connect: Code.NotFound, http: 404, title: "Pack not found", exit: 4 },
  PACK_VERSION_CONFLICT: {
    connect: Code.AlreadyExists,
    http: 409,
    title: "Pack version already published with different content",
    exit: 1,
  },
  RUN_NOT_FOUND: { connect: Code.NotFound, http: 404, title: "Run not found", exit: 4 },
  SCHEDULE_NOT_FOUND: {
    connect: Code.NotFound,
    http: 404,
    title: "Schedule not found",
    exit: 4,
  },
  SCHEDULE_EXISTS: {
    connect: Code.AlreadyExists,
    http: 409,
    title: "Schedule already exists",
    exit: 1,
  },
  UNAUTHENTICATED: {
    connect: Code.Unauthenticated,
    http: 401,
    title: "Authentication required",
    exit: 3,
  },
  PERMISSION_DENIED: {
    connect: Code.PermissionDenied,
    http: 403,
    title: "Permission denied",
    exit: 3,
  },
  UNAVAILABLE: {
    connect: Code.Unavailable,
    http: 503,
    title: "Service temporarily unavailable",
    exit: 10,
  },
  CONFIG_INVALID: {
    connect: Code.FailedPrecondition,
    http: 500,
    title: "Configuration invalid",
    exit: 1,
  },
  INTERNAL: { connect: Code.Internal, http: 500, title: "Internal error", exit: 1 },
  // Evidence: event log, artifacts, attestations, bundles.
  RUN_FINISHED: {
    connect: Code.FailedPrecondition,
    http: 409,
    title: "Run already finished",
    exit: 1,
  },
  RUN_NOT_FINISHED: {
    connect: Code.FailedPrecondition,
    http: 409,
    title: "Run has not finished",
    exit: 1,
  },
  DEAD_LETTER_NOT_FOUND: {
    connect: Code.NotFound,
    http: 404,
    title: "Dead letter not found",
    exit: 4,
  },
  DEAD_LETTER_RETRIED: {
    connect: Code.FailedPrecondition,
    http: 409,
    title: "Dead letter already re-driven",
    exit: 1,
  },
  RUN_NOT_RESUMABLE: {
    connect: Code.FailedPrecondition,
    http: 409,
    title: "Run cannot be resumed",
    exit: 1,
  },
  RUN_RECORD_INVALID: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Run record invalid",
    exit: 2,
  },
  PLAN_HASH_MISMATCH: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Plan does not match its plan hash",
    exit: 2,
  },
  RATE_LIMITED: {
    connect: Code.ResourceExhausted,
    http: 429,
    title: "Too many requests; retry after the time Retry-After says",
    exit: 10,
  },
  SUBSCRIBER_TOO_SLOW: {
    connect: Code.ResourceExhausted,
    http: 429,
    title: "Subscriber too far behind; resume from the last received sequence",
    exit: 10,
  },
  ARTIFACT_NOT_FOUND: { connect: Code.NotFound, http: 404, title: "Artifact not found", exit: 4 },
  ARTIFACT_DIGEST_MISMATCH: {
    connect: Code.InvalidArgument,
    http: 422,
    title: "Artifact content does not match its expected digest",
    exit: 2,
  },
  ARTIFACT_TOO_LARGE: {
    connect: Code.InvalidArgument,
    http: 413,
    title: "Artifact too large",
    exit: 2,
  },
  ARTIFACT_STORE_FULL: {
    connect: Code.ResourceExhausted,
    http: 507,
    title: "Artifact store out of space",
    exit: 1,
  },
  ARTIFACT_STORE_FAILED: {
    connect: Code.Unavailable,
    http: 503,
    title: "Artifact store could not write",
    exit: 10,
  },
  ARTIFACT_STORE_UNAVAILABLE: {
    connect: Code.Unavailable,
    http: 503,
    title: "Artifact store could not be read",
    exit: 10,
  },
  ARTIFACT_CORRUPTED: {
    connect: Code.DataLoss,
    http: 502,
    title: "Stored artifact content does not match its digest",
    exit: 1,
  },
  ATTESTATION_NOT_FOUND: {
    connect: Code.NotFound,
    http: 404,
    title: "Attestation not found",
    exit: 4,
  },
  KEY_INVALID: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Key invalid or unsupported",
    exit: 2,
  },
  BUNDLE_INVALID: {
    connect: Code.InvalidArgument,
    http: 422,
    title: "Evidence bundle failed verification",
    exit: 2,
  },
  // Executor: runs, gates, queue.
  GATE_NOT_AWAITING: {
    connect: Code.FailedPrecondition,
    http: 409,
    title: "Gate is not awaiting a decision",
    exit: 1,
  },
  APPROVAL_STALE: {
    connect: Code.PermissionDenied,
    http: 403,
    title: "Approval does not match the run's plan",
    exit: 3,
  },
  APPROVAL_RESPONSE_INVALID: {
    connect: Code.InvalidArgument,
    http: 400,
    title: "Not an offline approval response",
    exit: 2,
  },
  APPROVAL_SIGNATURE_INVALID: {
    connect: Code.PermissionDenied,
    http: 403,
    title: "Offline approval signature does not verify",
    exit: 3,
  },
  APPROVER_UNKNOWN: {
    connect: Code.PermissionDenied,
    http: 403,
    title: "Offline approval signed by an unknown key",
    exit: 3,
  },
  APPROVAL_REQUEST_UNKNOWN: {
    connect: Code.NotFound,
    http: 404,
    title: "No such offline approval request",
    exit: 4,
  },
  APPROVAL_EXPIRED: {
    connect: Code.PermissionDenied,
    http: 403,
    title: "Offline approval request expired",
    exit: 3,
  },
  SECRETS_UNAVAILABLE: {
    connect: Code.FailedPrecondition,
    http: 409,
    title: "The run's secrets are no longer available",
    exit: 1,
  },
  SEALED_MODE_VIOLATION: {
    connect: Code.FailedPrecondition,
    http: 409,
    title: "Sealed mode cannot be enforced for this step",
    exit: 5,
  },
} as const satisfies Record<string, ErrorCodeInfo>;

/** A stable packrun error code. */
export type ErrorCode = keyof typeof errorCatalog;

/** True when `value` names an entry of the catalog. */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(errorCatalog, value);
}
