export {
  errorCodeHeader,
  errorMappingInterceptor,
  packrunErrorToConnect,
  toConnectError,
} from "./error-mapping.ts";
export { HealthRegistry, ServingStatus } from "./health-service.ts";
export {
  type RpcMetricsOptions,
  type RpcServer,
  type RpcServerOptions,
  startRpcServer,
} from "./rpc-server.ts";
export { type StopOnSignalsOptions, stopOnSignals } from "./stop-on-signals.ts";
