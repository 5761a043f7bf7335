#!/usr/bin/env node
/**
 * Gateway process entry: `node services/gateway/src/main.ts`. Configured by environment (see
 * gateway-config.ts); SIGINT or SIGTERM stops it gracefully.
 */
import { consoleAssetsDir } from "@packrun/console";
import { isPackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { serviceSecurityFromConfig, stopOnSignals } from "@packrun/rpc-server";
import { initTelemetry } from "@packrun/telemetry";
import { loadGatewayConfig } from "./gateway-config.ts";
import { type Gateway, startGateway } from "./gateway-server.ts";

let config: ReturnType<typeof loadGatewayConfig>;
try {
  config = loadGatewayConfig();
} catch (error) {
  // Plain stderr: the log level is part of what failed to load.
  process.stderr.write(`gateway: ${isPackrunError(error) ? error.message : String(error)}\n`);
  process.exit(2);
}

const logger = createLogger({ service: "gateway", level: config.logLevel });
const stopTelemetry = initTelemetry({ serviceName: "packrun-gateway", logger });
let gateway: Gateway;
try {
  const security = await serviceSecurityFromConfig(config.rpc, undefined, logger);
  gateway = await startGateway({
    ...(security === undefined ? {} : { tls: security.tls }),
    logger,
    auth: config.auth,
    plannerUrl: config.plannerUrl,
    executorUrl: config.executorUrl,
    evidenceUrl: config.evidenceUrl,
    port: config.port,
    host: config.host,
    bodyLimitBytes: config.bodyLimitBytes,
    sseHeartbeatSeconds: config.sseHeartbeatSeconds,
    rateLimits: {
      perTokenPerMinute: config.rateLimitPerToken,
      perTenantPerMinute: config.rateLimitPerTenant,
    },
    // The web console at / (built into the image; never the dev sign-in here).
    console: { assetsDir: consoleAssetsDir },
  });
} catch (error) {
  logger.fatal({ err: error }, "gateway failed to start");
  process.exit(isPackrunError(error) && error.code === "CONFIG_INVALID" ? 2 : 1);
}
logger.info({ url: gateway.url }, "gateway ready");

stopOnSignals({
  logger,
  service: "gateway",
  async close() {
    await gateway.close();
    await stopTelemetry();
  },
});
