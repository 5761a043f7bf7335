import type { Http2ServerRequest, Http2ServerResponse, OutgoingHttpHeaders } from "node:http2";

const grpcMessage = "grpc-message";

/**
 * Percent-encodes a status message as the gRPC HTTP/2 spec asks: UTF-8 bytes outside the
 * printable ASCII range 0x20-0x7E, and `%` itself, become `%XX`; everything else stays as is.
 * Clients that decode with `decodeURI` (grpc-js) or `decodeURIComponent` (Connect) both read
 * the original text back.
 */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

// connect-node writes grpc-message with encodeURIComponent, which also escapes `:`, `,`, `@`,
// spaces and more; stock grpc-js clients decode with decodeURI and show those escapes verbatim.
function respec(headers: OutgoingHttpHeaders | undefined): void {
  const value = headers?.[grpcMessage];
  if (headers === undefined || typeof value !== "string") return;
  let text: string;
  try {
    text = decodeURIComponent(value);
  } catch {
    return; // not something connect-node wrote: leave it alone
  }
  headers[grpcMessage] = encodeGrpcMessage(text);
}

type NodeHandler = (request: Http2ServerRequest, response: Http2ServerResponse) => void;

/**
 * Wraps a connect-node request handler so the `grpc-message` it sends, as a header of a
 * trailers-only response or as a trailer, is encoded per the gRPC spec
 * ({@link encodeGrpcMessage}) instead of with encodeURIComponent.
 */
export function withSpecGrpcMessages(handler: NodeHandler): NodeHandler {
  return (request, response) => {
    const writeHead = response.writeHead.bind(response) as (
      status: number,
      headers?: OutgoingHttpHeaders,
    ) => Http2ServerResponse;
    response.writeHead = ((status: number, ...rest: unknown[]) => {
      const headers = rest.find((each) => typeof each === "object") as
        | OutgoingHttpHeaders
        | undefined;
      respec(headers);
      return writeHead(status, headers);
    }) as Http2ServerResponse["writeHead"];
    const addTrailers = response.addTrailers.bind(response);
    response.addTrailers = (trailers) => {
      respec(trailers as OutgoingHttpHeaders);
      addTrailers(trailers);
    };
    handler(request, response);
  };
}
