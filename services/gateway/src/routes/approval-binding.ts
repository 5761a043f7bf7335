/** What makes an approval token single-use; the executor decides the approval itself. */
export { approvalTokenId } from "@packrun/auth";
