import { EventEmitter, on } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "@packrun/proto/health/v1";

export { ServingStatus };

/**
 * Serving status per gRPC service name ("" is the server as a whole), observable by the
 * standard grpc.health.v1 Check and Watch RPCs.
 */
export class HealthRegistry {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #changes = new EventEmitter();

  constructor(serviceNames: readonly string[]) {
    this.#changes.setMaxListeners(0);
    this.#statuses.set("", ServingStatus.SERVING);
    for (const name of serviceNames) this.#statuses.set(name, ServingStatus.SERVING);
  }

  /** Sets the status of one service, or of all (and the server) when `service` is omitted. */
  set(status: ServingStatus, service?: string): void {
    const names = service === undefined ? [...this.#statuses.keys()] : [service];
    for (const name of names) {
      if (this.#statuses.get(name) === status) continue;
      this.#statuses.set(name, status);
      this.#changes.emit("change", name, status);
    }
  }

  /** Current status; undefined for a service this server does not serve. */
  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** The grpc.health.v1.Health implementation over this registry. */
  service(): ServiceImpl<typeof Health> {
    const statusOf = (name: string) => this.get(name);
    const changes = this.#changes;
    return {
      check: (request) => {
        const status = this.get(request.service);
        if (status === undefined) {
          throw new ConnectError(`unknown service ${request.service}`, Code.NotFound);
        }
        return create(HealthCheckResponseSchema, { status });
      },
      watch: async function* (this: void, request, context) {
        yield create(HealthCheckResponseSchema, {
          status: statusOf(request.service) ?? ServingStatus.SERVICE_UNKNOWN,
        });
        try {
          for await (const [name, status] of on(changes, "change", { signal: context.signal })) {
            if (name === request.service) yield create(HealthCheckResponseSchema, { status });
          }
        } catch (error) {
          if (!context.signal.aborted) throw error;
        }
      },
    };
  }
}
