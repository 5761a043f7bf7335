import assert from "node:assert/strict";
import { PackrunError } from "@packrun/errors";
import { test } from "vitest";
import { defaultPlannerPort, loadPlannerConfig } from "./planner-config.ts";

const tls = {
  PACKRUN_TLS_CA: "/tls/ca.pem",
  PACKRUN_TLS_CERT: "/tls/planner.pem",
  PACKRUN_TLS_KEY: "/tls/planner-key.pem",
};

test("defaults apply and the planner-specific database URL wins over DATABASE_URL", () => {
  assert.deepEqual(loadPlannerConfig({ DATABASE_URL: "postgres://shared/db", ...tls }), {
    databaseUrl: "postgres://shared/db",
    port: defaultPlannerPort,
    host: "127.0.0.1",
    rpc: {
      tlsCa: "/tls/ca.pem",
      tlsCert: "/tls/planner.pem",
      tlsKey: "/tls/planner-key.pem",
      insecureNoAuth: false,
    },
    logLevel: "info",
  });
  const config = loadPlannerConfig({
    ...tls,
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
    rpc: {
      tlsCa: "/tls/ca.pem",
      tlsCert: "/tls/planner.pem",
      tlsKey: "/tls/planner-key.pem",
      insecureNoAuth: false,
    },
    logLevel: "debug",
  });
});

test("TLS is required: all three files, or the loudly named development opt-out", () => {
  const base = { DATABASE_URL: "postgres://shared/db" };
  assert.throws(
    () => loadPlannerConfig(base),
    /set PACKRUN_TLS_CA, PACKRUN_TLS_CERT and PACKRUN_TLS_KEY .*or PACKRUN_RPC_INSECURE_NO_AUTH=true on a development machine only/,
  );
  assert.throws(
    () => loadPlannerConfig({ ...base, PACKRUN_TLS_CA: "/tls/ca.pem" }),
    /set all three of PACKRUN_TLS_CA, PACKRUN_TLS_CERT and PACKRUN_TLS_KEY/,
  );
  assert.throws(
    () => loadPlannerConfig({ ...base, ...tls, PACKRUN_RPC_INSECURE_NO_AUTH: "true" }),
    /PACKRUN_RPC_INSECURE_NO_AUTH contradicts PACKRUN_TLS_\*/,
  );
  assert.equal(
    loadPlannerConfig({ ...base, PACKRUN_RPC_INSECURE_NO_AUTH: "true" }).rpc.insecureNoAuth,
    true,
  );
  // Bearer tokens on the public methods: the gateway's PACKRUN_AUTH_* settings, optional here.
  const withAuth = loadPlannerConfig({
    ...base,
    ...tls,
    PACKRUN_AUTH_JWKS_FILE: "/keys/jwks.json",
    PACKRUN_AUTH_ISSUER: "https://idp.example/",
    PACKRUN_AUTH_AUDIENCE: "packrun",
  });
  assert.equal(withAuth.auth?.issuer, "https://idp.example/");
  assert.throws(
    () => loadPlannerConfig({ ...base, ...tls, PACKRUN_AUTH_ISSUER: "https://idp.example/" }),
    /PACKRUN_AUTH_AUDIENCE/,
  );
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
