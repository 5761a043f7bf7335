import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** The DEADLINE_EXCEEDED error connect put on the call's signal when grpc-timeout ran out. */
function deadlineError(signal: AbortSignal): ConnectError | undefined {
  const reason: unknown = signal.reason;
  return signal.aborted && reason instanceof ConnectError && reason.code === Code.DeadlineExceeded
    ? reason
    : undefined;
}

function throwIfExpired(signal: AbortSignal): void {
  const error = deadlineError(signal);
  if (error !== undefined) throw error;
}

/** Resolves (never rejects) once the signal aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Rejects with the deadline error once the deadline passes; otherwise never settles. */
function expiry(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    aborted(signal).then(() => {
      const error = deadlineError(signal);
      if (error !== undefined) reject(error);
    });
  });
}

async function* enforceDeadline<T>(stream: AsyncIterable<T>, signal: AbortSignal) {
  const iterator = stream[Symbol.asyncIterator]();
  const cut = aborted(signal).then(() => undefined);
  let finished = false;
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), cut]);
      // A handler may stop quietly on its abort signal, or not notice it at all; either way
      // the call ran out of time, and ending with OK would read as "the stream is complete".
      throwIfExpired(signal);
      if (next === undefined) return; // cancelled or shut down: connect reports that itself
      if (next.done === true) {
        finished = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // A handler blocked on an await never resolves return(): don't wait for it.
    if (!finished) void iterator.return?.()?.catch(() => undefined);
  }
}

/**
 * Server interceptor making a call that outlives its `grpc-timeout` end with
 * DEADLINE_EXCEEDED: a unary call whose deadline had passed before or while it ran, and a
 * server stream cut by its deadline (connect-node aborts the handler's signal but, when the
 * handler then returns normally, would report status 0).
 */
export function deadlineInterceptor(): Interceptor {
  return (next) => async (request) => {
    throwIfExpired(request.signal);
    // A unary handler that ignores its signal would otherwise keep the caller past its deadline.
    const response = await Promise.race([next(request), expiry(request.signal)]);
    throwIfExpired(request.signal);
    if (response.stream) {
      return { ...response, message: enforceDeadline(response.message, request.signal) };
    }
    return response;
  };
}
