export { deadlineInterceptor } from "./deadlines.ts";
export {
  errorCodeHeader,
  errorMappingInterceptor,
  packrunErrorToConnect,
  toConnectError,
} from "./error-mapping.ts";
export { encodeGrpcMessage, withSpecGrpcMessages } from "./grpc-message.ts";
export { HealthRegistry, ServingStatus } from "./health-service.ts";
export { ReflectionIndex, registerReflection } from "./reflection-service.ts";
export {
  type RpcMetricsOptions,
  type RpcServer,
  type RpcServerOptions,
  startRpcServer,
} from "./rpc-server.ts";
export { type StopOnSignalsOptions, stopOnSignals } from "./stop-on-signals.ts";
