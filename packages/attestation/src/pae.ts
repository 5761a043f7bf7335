/**
 * DSSE v1 Pre-Authentication Encoding: the exact bytes a DSSE signature covers.
 *
 * `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, where SP is one ASCII
 * space and LEN is the ASCII decimal length in bytes (not characters), without leading zeros.
 * See https://github.com/secure-systems-lab/dsse/blob/master/protocol.md.
 */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, "ascii"),
    type,
    Buffer.from(` ${payload.length} `, "ascii"),
    payload,
  ]);
}
