/**
 * The slow suite (`npm run test:slow`): the files under test/slow, which stop and restart the
 * harness's own PostgreSQL and Redis. Same servers, reporter and last line as `npm test`, but one
 * file at a time, because restarting a server that another file is using would break that file.
 */
import { defineConfig } from "vitest/config";
import base from "./vitest.config.ts";

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ["test/slow/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    fileParallelism: false,
    env: { PACKRUN_TEST_SLOW: "1" },
  },
});
