import { Code, ConnectError } from "@connectrpc/connect";
import { errorCodeHeader } from "@packrun/rpc-server";

/**
 * True when the evidence service does not know the run. It learns of a run from the run's
 * first event, so a run the executor has just accepted is briefly unknown there.
 */
export function isRunUnknownToEvidence(error: unknown): boolean {
  return (
    error instanceof ConnectError &&
    error.code === Code.NotFound &&
    error.metadata.get(errorCodeHeader) === "RUN_NOT_FOUND"
  );
}
