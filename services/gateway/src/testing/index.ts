export { type GatewayStack, startGatewayStack, type TestTokenOptions } from "./gateway-stack.ts";
export { type JsonResponse, type RestClient, restClient } from "./rest-client.ts";
