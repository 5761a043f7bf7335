import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PackrunError } from "@packrun/errors";
import { test } from "vitest";
import { z } from "zod";
import { logLevelSchema, portSchema } from "./common-schemas.ts";
import { loadConfig } from "./load-config.ts";

const schema = z.object({
  port: portSchema.default(7001),
  logLevel: logLevelSchema.default("info"),
  database: z.object({ url: z.string().min(1) }),
});
const envMap = {
  PACKRUN_PORT: "port",
  PACKRUN_LOG_LEVEL: "logLevel",
  DATABASE_URL: "database.url",
};

test("env overrides the file and values are coerced", () => {
  const dir = mkdtempSync(join(tmpdir(), "cfg-"));
  const file = join(dir, "packrun.yaml");
  writeFileSync(file, "port: 9000\ndatabase:\n  url: postgres://file\n");
  const config = loadConfig(schema, { envMap, file, env: { PACKRUN_PORT: "9100" } });
  assert.deepEqual(config, { port: 9100, logLevel: "info", database: { url: "postgres://file" } });
});

test("every bad value is reported with the variable that supplied it", () => {
  assert.throws(
    () => loadConfig(schema, { envMap, env: { PACKRUN_PORT: "http", PACKRUN_LOG_LEVEL: "loud" } }),
    (error: unknown) => {
      assert.ok(error instanceof PackrunError);
      assert.equal(error.code, "CONFIG_INVALID");
      assert.match(error.message, /PACKRUN_PORT \(port\)/);
      assert.match(error.message, /PACKRUN_LOG_LEVEL \(logLevel\)/);
      assert.match(error.message, /config: database/);
      return true;
    },
  );
});

test("an unreadable config file is named", () => {
  assert.throws(
    () => loadConfig(schema, { envMap, env: {}, file: "/nonexistent/packrun.yaml" }),
    /cannot read config file \/nonexistent\/packrun.yaml/,
  );
});
