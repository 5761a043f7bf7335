export {
  callerAccessInterceptor,
  peerContextValues,
  type RpcAccessPolicy,
  type RpcAccessRule,
  type RpcCaller,
  rpcCallerKey,
} from "./caller-access.ts";
export { deadlineInterceptor } from "./deadlines.ts";
export { type DevCertificates, ensureDevCertificates } from "./dev-certificates.ts";
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
  type RpcSecurity,
  type RpcServer,
  type RpcServerOptions,
  type ServiceSecurity,
  startRpcServer,
} from "./rpc-server.ts";
export { isServiceIdentity, type ServiceIdentity, serviceIdentities } from "./service-identity.ts";
export { type RpcSecuritySettings, serviceSecurityFromConfig } from "./service-security.ts";
export {
  clientSessionOptions,
  loadServiceTls,
  type ServiceTls,
  type ServiceTlsFiles,
  type ServiceTransport,
  serviceBaseUrl,
  serviceTransport,
} from "./service-tls.ts";
export { type StopOnSignalsOptions, stopOnSignals } from "./stop-on-signals.ts";
