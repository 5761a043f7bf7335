export { type ErrorCode, type ErrorCodeInfo, errorCatalog, isErrorCode } from "./catalog.ts";
export { isPackrunError, PackrunError } from "./packrun-error.ts";
