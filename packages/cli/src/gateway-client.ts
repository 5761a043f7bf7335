import type {
  ApproveRequest,
  ApproveResponse,
  AttestationResponse,
  DeadLetterRetry,
  ListArtifactsResponse,
  ListDeadLettersResponse,
  ListPacksResponse,
  ListPackVersionsResponse,
  ListRunsResponse,
  PublishPackResponse,
  RetryAllDeadLettersResponse,
  Run,
  RunState,
  SubmitRunRequest,
  SubmitRunResponse,
  VerificationKeysResponse,
} from "./api-types.ts";
import { gatewayErrorFromResponse, networkError } from "./gateway-error.ts";
import { cliVersion } from "./version.ts";

/** A query string value: repeated for arrays, left out when undefined. */
export type QueryValue = string | number | boolean | readonly string[] | undefined;

/** Options of one request. */
export interface RequestOptions {
  query?: Readonly<Record<string, QueryValue>>;
  /** A JSON body (sent as application/json). */
  json?: unknown;
  headers?: Readonly<Record<string, string>>;
  /** Overrides the client's bearer token for this request (e.g. an approval token). */
  token?: string;
  /** Cancels the request (and reading its body). */
  signal?: AbortSignal;
  /** Overall time limit; `null` for none (streams and downloads). Default: the client's. */
  timeoutMs?: number | null;
  /** Prefix of the problem's `errors` lines, e.g. the manifest file the request carried. */
  errorPrefix?: string;
}

/** How to reach the gateway. */
export interface GatewayClientOptions {
  /** Base URL without a trailing slash. */
  baseUrl: string;
  /** Bearer token sent in `Authorization`. */
  token: string;
  /** Overall time limit of plain JSON requests (default 60 s). */
  timeoutMs?: number;
  /** The fetch implementation (default the global one). */
  fetch?: typeof fetch;
}

/** `/a/b` with every segment percent-encoded. */
export function apiPath(...segments: readonly string[]): string {
  return `/${segments.map((segment) => encodeURIComponent(segment)).join("/")}`;
}

/** `?k=v&k=w` for the defined values of `query` (arrays repeat the key), or "". */
export function queryString(query: Readonly<Record<string, QueryValue>> | undefined): string {
  if (query === undefined) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) params.append(key, item);
    else params.append(key, String(value));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

/**
 * A small typed client of the gateway's REST API (`/api/...`). Error answers become
 * GatewayError (exit code from the problem's code), requests that get no answer become a
 * retryable CliError (exit 10).
 */
export class GatewayClient {
  readonly baseUrl: string;
  readonly #token: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: GatewayClientOptions) {
    this.baseUrl = options.baseUrl;
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#fetch = options.fetch ?? fetch;
  }

  /**
   * Sends one request and returns the (2xx) response with its body unread.
   * @throws GatewayError for an error answer, CliError (exit 10) when there is no answer
   */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const url = `${this.baseUrl}${path}${queryString(options.query)}`;
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.token ?? this.#token}`,
      "user-agent": `packrun-cli/${cliVersion}`,
      ...options.headers,
    };
    let body: string | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const timeoutMs = options.timeoutMs === undefined ? this.#timeoutMs : options.timeoutMs;
    const signals = [
      ...(options.signal === undefined ? [] : [options.signal]),
      ...(timeoutMs === null ? [] : [AbortSignal.timeout(timeoutMs)]),
    ];
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        ...(signals.length === 0 ? {} : { signal: AbortSignal.any(signals) }),
        redirect: "follow",
      });
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      throw networkError(this.baseUrl, error);
    }
    if (response.ok) return response;
    let text = "";
    try {
      text = await response.text();
    } catch {
      // The status alone still says what went wrong.
    }
    throw gatewayErrorFromResponse(
      response.status,
      response.statusText,
      response.headers.get("content-type"),
      text,
      options.errorPrefix,
    );
  }

  /** Sends one request and parses its JSON answer. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(method, path, options);
    try {
      return (await response.json()) as T;
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      if (error instanceof SyntaxError)
        throw networkError(this.baseUrl, new Error("the answer is not valid JSON"));
      throw networkError(this.baseUrl, error);
    }
  }

  /** POST /api/runs */
  submitRun(body: SubmitRunRequest, errorPrefix?: string): Promise<SubmitRunResponse> {
    return this.json("POST", "/api/runs", {
      json: body,
      ...(errorPrefix === undefined ? {} : { errorPrefix }),
    });
  }

  /** GET /api/runs/{id} */
  getRun(runId: string, signal?: AbortSignal): Promise<Run> {
    return this.json("GET", apiPath("api", "runs", runId), signal === undefined ? {} : { signal });
  }

  /** GET /api/runs */
  listRuns(query: {
    state?: readonly RunState[];
    pack?: string;
    pageSize?: number;
    pageToken?: string;
  }): Promise<ListRunsResponse> {
    return this.json("GET", "/api/runs", { query });
  }

  /** GET /api/runs/{id}/artifacts */
  listArtifacts(runId: string): Promise<ListArtifactsResponse> {
    return this.json("GET", apiPath("api", "runs", runId, "artifacts"));
  }

  /** POST /api/runs/{id}/approve with a token bound to the run, gate and plan hash. */
  approve(runId: string, body: ApproveRequest, approvalToken: string): Promise<ApproveResponse> {
    return this.json("POST", apiPath("api", "runs", runId, "approve"), {
      json: body,
      token: approvalToken,
    });
  }

  /** POST /api/runs/{id}/cancel */
  cancelRun(runId: string, reason: string | undefined): Promise<Run> {
    return this.json("POST", apiPath("api", "runs", runId, "cancel"), {
      json: reason === undefined ? {} : { reason },
    });
  }

  /** POST /api/runs/{id}/rerun or /resume: a new run from a finished one. */
  rerunRun(
    runId: string,
    mode: "rerun" | "resume",
    secrets: Record<string, string> | undefined,
  ): Promise<SubmitRunResponse> {
    return this.json("POST", apiPath("api", "runs", runId, mode), {
      json: secrets === undefined ? {} : { secrets },
    });
  }

  /** GET /api/dead-letters */
  listDeadLetters(query: {
    includeRetried?: boolean;
    runId?: string;
    pageSize?: number;
    pageToken?: string;
  }): Promise<ListDeadLettersResponse> {
    return this.json("GET", "/api/dead-letters", {
      query: { ...query, includeRetried: query.includeRetried === true ? "true" : undefined },
    });
  }

  /** POST /api/dead-letters/{id}/retry */
  retryDeadLetter(
    id: string,
    secrets: Record<string, string> | undefined,
  ): Promise<DeadLetterRetry> {
    return this.json("POST", apiPath("api", "dead-letters", id, "retry"), {
      json: secrets === undefined ? {} : { secrets },
    });
  }

  /** POST /api/dead-letters/retry */
  retryAllDeadLetters(
    secrets: Record<string, string> | undefined,
  ): Promise<RetryAllDeadLettersResponse> {
    return this.json("POST", "/api/dead-letters/retry", {
      json: secrets === undefined ? {} : { secrets },
    });
  }

  /** GET /api/runs/{id}/attestation */
  attestation(runId: string): Promise<AttestationResponse> {
    return this.json("GET", apiPath("api", "runs", runId, "attestation"));
  }

  /** POST /api/packs with the manifest text. */
  publishPack(manifest: string, errorPrefix?: string): Promise<PublishPackResponse> {
    return this.json("POST", "/api/packs", {
      json: { manifest },
      ...(errorPrefix === undefined ? {} : { errorPrefix }),
    });
  }

  /** GET /api/packs */
  listPacks(query: { pageSize?: number; pageToken?: string }): Promise<ListPacksResponse> {
    return this.json("GET", "/api/packs", { query });
  }

  /** GET /api/packs/{name}/versions */
  listPackVersions(
    name: string,
    query: { pageSize?: number; pageToken?: string },
  ): Promise<ListPackVersionsResponse> {
    return this.json("GET", apiPath("api", "packs", name, "versions"), { query });
  }

  /** GET /api/verification-keys */
  verificationKeys(): Promise<VerificationKeysResponse> {
    return this.json("GET", "/api/verification-keys");
  }
}
