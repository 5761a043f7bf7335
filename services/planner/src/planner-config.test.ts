import assert from "node:assert/strict";
import { PackrunError } from "@packrun/errors";
import { test } from "vitest";
import { defaultPlannerPort, loadPlannerConfig } from "./planner-config.ts";

test("defaults apply and the planner-specific database URL wins over DATABASE_URL", () => {
  assert.deepEqual(loadPlannerConfig({ DATABASE_URL: "postgres://shared/db" }), {
    databaseUrl: "postgres://shared/db",
    port: defaultPlannerPort,
    host: "127.0.0.1",
    logLevel: "info",
  });
  const config = loadPlannerConfig({
    DATABASE_URL: "postgres://shared/db",
    PACKRUN_PLANNER_DATABASE_URL: "postgresql://planner/db",
    PACKRUN_PLANNER_PORT: "0",
    PACKRUN_PLANNER_HOST: "0.0.0.0",
    PACKRUN_LOG_LEVEL: "debug",
  });
  assert.deepEqual(config, {
    databaseUrl: "postgresql://planner/db",
    port: 0,
    host: "0.0.0.0",
    logLevel: "debug",
  });
});

test("a missing database URL and bad values are reported together, by variable", () => {
  assert.throws(
    () => loadPlannerConfig({ PACKRUN_PLANNER_PORT: "seventy", PACKRUN_LOG_LEVEL: "loud" }),
    (error: unknown) => {
      assert.ok(error instanceof PackrunError);
      assert.equal(error.code, "CONFIG_INVALID");
      assert.match(error.message, /set PACKRUN_PLANNER_DATABASE_URL or DATABASE_URL/);
      assert.match(error.message, /PACKRUN_PLANNER_PORT \(port\)/);
      assert.match(error.message, /PACKRUN_LOG_LEVEL \(logLevel\)/);
      return true;
    },
  );
  assert.throws(
    () => loadPlannerConfig({ DATABASE_URL: "mysql://nope" }),
    /DATABASE_URL \(databaseUrl\): expected a postgres:\/\/ or postgresql:\/\/ URL/,
  );
});
