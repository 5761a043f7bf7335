import { type EventSourceMessage, EventSourceParserStream } from "eventsource-parser/stream";

/** A response with its parsed JSON body (or undefined when the body is not JSON). */
export interface JsonResponse<T = unknown> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: T;
}

/** A tiny REST client for tests: bearer token, JSON in and out. */
export interface RestClient {
  get<T = unknown>(path: string, headers?: Record<string, string>): Promise<JsonResponse<T>>;
  post<T = unknown>(
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<JsonResponse<T>>;
  delete<T = unknown>(path: string, headers?: Record<string, string>): Promise<JsonResponse<T>>;
  /** Reads an SSE stream to its end (or until `until` returns true) and returns its messages. */
  sse(
    path: string,
    options?: { lastEventId?: string; until?: (message: EventSourceMessage) => boolean },
  ): Promise<EventSourceMessage[]>;
}

async function parse<T>(response: Response): Promise<JsonResponse<T>> {
  const text = await response.text();
  let body: unknown;
  try {
    body = text === "" ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, headers: response.headers, body: body as T };
}

/** A client of the gateway at `baseUrl` sending `token` (none when undefined). */
export function restClient(baseUrl: string, token: string | undefined): RestClient {
  const auth = (): Record<string, string> =>
    token === undefined ? {} : { authorization: `Bearer ${token}` };
  return {
    async get(path, headers = {}) {
      return parse(await fetch(`${baseUrl}${path}`, { headers: { ...auth(), ...headers } }));
    },
    async post(path, body, headers = {}) {
      const isText = typeof body === "string";
      return parse(
        await fetch(`${baseUrl}${path}`, {
          method: "POST",
          headers: {
            ...auth(),
            "content-type": isText ? "application/yaml" : "application/json",
            ...headers,
          },
          body: isText ? body : JSON.stringify(body ?? {}),
        }),
      );
    },
    async delete(path, headers = {}) {
      return parse(
        await fetch(`${baseUrl}${path}`, { method: "DELETE", headers: { ...auth(), ...headers } }),
      );
    },
    async sse(path, options = {}) {
      const controller = new AbortController();
      const response = await fetch(`${baseUrl}${path}`, {
        headers: {
          ...auth(),
          accept: "text/event-stream",
          ...(options.lastEventId === undefined ? {} : { "last-event-id": options.lastEventId }),
        },
        signal: controller.signal,
      });
      if (response.status !== 200 || response.body === null)
        throw new Error(`SSE ${path} answered ${response.status}: ${await response.text()}`);
      const messages: EventSourceMessage[] = [];
      const reader = response.body
        .pipeThrough(new TextDecoderStream())
        .pipeThrough(new EventSourceParserStream())
        .getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        messages.push(value);
        if (options.until?.(value) === true) {
          controller.abort();
          break;
        }
      }
      return messages;
    },
  };
}
