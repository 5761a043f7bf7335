import type { DescFile, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { ServerReflection, type ServerReflectionRequest } from "@packrun/proto/reflection/v1";
import { ServerReflection as ServerReflectionV1alpha } from "@packrun/proto/reflection/v1alpha";

/** One answer, typed without a $typeName so v1 and v1alpha responses both accept it. */
type Reply =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Answers grpc.reflection.v1 and v1alpha from the descriptors protoc-gen-es embedded in the
 * generated code, so grpcurl and `buf curl` work without the .proto files.
 */
export class ReflectionIndex {
  readonly #services: string[];
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #extensions = new Map<string, Map<number, DescFile>>();

  /** @param services every service the server answers, reflection itself included */
  constructor(services: readonly DescService[]) {
    this.#services = [...new Set(services.map((service) => service.typeName))].sort();
    for (const service of services) this.#addFile(service.file);
  }

  #addFile(file: DescFile): void {
    if (this.#files.has(file.proto.name)) return;
    this.#files.set(file.proto.name, file);
    for (const type of nestedTypes(file)) {
      this.#symbols.set(type.typeName, file);
      if (type.kind === "service") {
        for (const method of type.methods)
          this.#symbols.set(`${type.typeName}.${method.name}`, file);
      }
      if (type.kind === "extension") {
        const numbers = this.#extensions.get(type.extendee.typeName) ?? new Map();
        numbers.set(type.number, file);
        this.#extensions.set(type.extendee.typeName, numbers);
      }
    }
    for (const dependency of file.dependencies) this.#addFile(dependency);
  }

  /** The file first, then its transitive dependencies, each serialized once. */
  #withDependencies(file: DescFile): Reply {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (each: DescFile) => {
      if (seen.has(each.proto.name)) return;
      seen.add(each.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, each.proto));
      for (const dependency of each.dependencies) visit(dependency);
    };
    visit(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  }

  #notFound(message: string): Reply {
    return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } };
  }

  /** Answers one reflection request. */
  answer(request: ServerReflectionRequest["messageRequest"]): Reply {
    switch (request.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.#services.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const file = this.#files.get(request.value);
        return file
          ? this.#withDependencies(file)
          : this.#notFound(`file ${request.value} not found`);
      }
      case "fileContainingSymbol": {
        const file = this.#symbols.get(request.value);
        return file
          ? this.#withDependencies(file)
          : this.#notFound(`symbol ${request.value} not found`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = request.value;
        const file = this.#extensions.get(containingType)?.get(extensionNumber);
        return file
          ? this.#withDependencies(file)
          : this.#notFound(`extension ${extensionNumber} of ${containingType} not found`);
      }
      case "allExtensionNumbersOfType": {
        const numbers = this.#extensions.get(request.value);
        if (numbers === undefined && !this.#symbols.has(request.value))
          return this.#notFound(`type ${request.value} not found`);
        return {
          case: "allExtensionNumbersResponse",
          value: {
            baseTypeName: request.value,
            extensionNumber: [...(numbers?.keys() ?? [])].sort((a, b) => a - b),
          },
        };
      }
      default:
        return {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "empty request" },
        };
    }
  }
}

/** The reflection service names, to report in grpc.health.v1 too. */
export const reflectionServices: readonly DescService[] = [
  ServerReflection,
  ServerReflectionV1alpha,
];

/**
 * Registers grpc.reflection.v1 and v1alpha on the router, describing `services` (the
 * reflection services are added). Each request on the bidirectional stream gets one answer.
 */
export function registerReflection(router: ConnectRouter, services: readonly DescService[]): void {
  const index = new ReflectionIndex([...services, ...reflectionServices]);
  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield {
          validHost: request.host,
          originalRequest: request,
          messageResponse: index.answer(request.messageRequest),
        };
      }
    },
  });
  // v1alpha is wire-identical to v1; older grpcurl and grpc_cli releases only ask for it.
  router.service(ServerReflectionV1alpha, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        const { $typeName: _, ...original } = request;
        yield {
          validHost: request.host,
          originalRequest: original,
          messageResponse: index.answer(
            request.messageRequest as ServerReflectionRequest["messageRequest"],
          ),
        };
      }
    },
  });
}
