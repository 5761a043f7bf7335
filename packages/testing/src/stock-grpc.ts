import { fileURLToPath } from "node:url";
import { loadPackageDefinition, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";

/** The repository's `.proto` sources, which a third-party client reads instead of our code. */
export const protoSourceDir = fileURLToPath(new URL("../../../proto", import.meta.url));

/**
 * `@grpc/proto-loader` options of a stock client, as the tests' outsiders use them: plain objects
 * out, field names in camelCase, enums as names, 64-bit numbers as strings, defaults filled in,
 * the set member of a oneof named.
 */
export const stockLoaderOptions: Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [protoSourceDir],
};

/**
 * The client class of `service` (its path in the package, e.g. `["packrun", "executor", "v1",
 * "ExecutorService"]`) from `file` under proto/, loaded as a stock client loads it.
 */
export function loadStockService(
  file: string,
  service: readonly string[],
): ServiceClientConstructor {
  let node: unknown = loadPackageDefinition(loadSync(file, stockLoaderOptions));
  for (const key of service) node = (node as Record<string, unknown>)[key];
  if (typeof node !== "function")
    throw new Error(`${service.join(".")} is not a service of ${file}`);
  return node as ServiceClientConstructor;
}
