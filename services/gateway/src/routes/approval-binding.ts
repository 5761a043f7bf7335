/** Shared with the executor's public DecideApproval: the binding rules live in @packrun/auth. */
export { approvalTokenId, type BoundGate, gateOfBinding } from "@packrun/auth";
