/**
 * Test helpers for packrun: per-test PostgreSQL databases and Redis key spaces on the throwaway
 * servers that `npm test` starts.
 */

export { measureEventLoopLag } from "./event-loop-lag.ts";
export { stepSharedDir } from "./step-shared-dir.ts";
export { loadStockService, protoSourceDir, stockLoaderOptions } from "./stock-grpc.ts";
export {
  createTestDatabase,
  type TestDatabase,
  type TestDatabaseHandle,
  useTestDatabase,
} from "./test-database.ts";
export { readTestEnv, type TestEnv } from "./test-env.ts";
export { createTestRedis, type TestRedis } from "./test-redis.ts";
export { uniqueName } from "./unique-name.ts";
