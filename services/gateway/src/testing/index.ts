export { type GatewayStack, startGatewayStack, type TestTokenOptions } from "./gateway-stack.ts";
export { type JsonResponse, type RestClient, restClient } from "./rest-client.ts";
export { submitRun, terminalRunStates, waitForRun } from "./run-helpers.ts";
export { gatedPack, partialFailurePack } from "./sample-packs.ts";
