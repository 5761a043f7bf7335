#!/usr/bin/env node
/**
 * Planner process entry: `node services/planner/src/main.ts`. Configured by environment
 * (see planner-config.ts); SIGINT or SIGTERM stops it gracefully.
 */
import { createPostgresDatabase } from "@packrun/db";
import { isPackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { serviceSecurityFromConfig, stopOnSignals } from "@packrun/rpc-server";
import { initTelemetry } from "@packrun/telemetry";
import { loadPlannerConfig } from "./planner-config.ts";
import { startPlannerServer } from "./planner-server.ts";

let config: ReturnType<typeof loadPlannerConfig>;
try {
  config = loadPlannerConfig();
} catch (error) {
  // Plain stderr: the log level is part of what failed to load.
  process.stderr.write(`planner: ${isPackrunError(error) ? error.message : String(error)}\n`);
  process.exit(2);
}

const logger = createLogger({ service: "planner", level: config.logLevel });
const stopTelemetry = initTelemetry({ serviceName: "packrun-planner", logger });
const database = createPostgresDatabase({
  url: config.databaseUrl,
  applicationName: "packrun-planner",
});

let server: Awaited<ReturnType<typeof startPlannerServer>>;
try {
  const security = await serviceSecurityFromConfig(config.rpc, config.auth, logger);
  server = await startPlannerServer({
    ...(security === undefined ? {} : { security }),
    database,
    logger,
    port: config.port,
    host: config.host,
    ...(config.metricsPort === undefined
      ? {}
      : { metrics: { port: config.metricsPort, host: config.host } }),
  });
} catch (error) {
  logger.fatal({ err: error }, "planner failed to start");
  await database.close().catch(() => {});
  process.exit(1);
}
logger.info({ url: server.url, metricsUrl: server.metricsUrl }, "planner ready");

stopOnSignals({
  logger,
  service: "planner",
  async close() {
    await server.close();
    await database.close();
    await stopTelemetry();
  },
});
