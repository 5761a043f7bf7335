#!/usr/bin/env node
/**
 * Evidence process entry: `node services/evidence/src/main.ts`. Configured by environment
 * (see evidence-config.ts); SIGINT or SIGTERM stops it gracefully.
 */
import { createPostgresDatabase } from "@packrun/db";
import { isPackrunError } from "@packrun/errors";
import { createLogger } from "@packrun/logging";
import { serviceSecurityFromConfig, stopOnSignals } from "@packrun/rpc-server";
import { initTelemetry } from "@packrun/telemetry";
import { type EvidenceConfig, loadEvidenceConfig, objectStoreOptions } from "./evidence-config.ts";
import { type EvidenceServer, startEvidenceServer } from "./evidence-server.ts";
import { loadKeyRing } from "./key-ring.ts";

let config: EvidenceConfig;
try {
  config = loadEvidenceConfig();
} catch (error) {
  // Plain stderr: the log level is part of what failed to load.
  process.stderr.write(`evidence: ${isPackrunError(error) ? error.message : String(error)}\n`);
  process.exit(2);
}

const logger = createLogger({ service: "evidence", level: config.logLevel });
const stopTelemetry = initTelemetry({ serviceName: "packrun-evidence", logger });
const database = createPostgresDatabase({
  url: config.databaseUrl,
  applicationName: "packrun-evidence",
});

let server: EvidenceServer;
try {
  const security = await serviceSecurityFromConfig(config.rpc, config.auth, logger);
  const keys = await loadKeyRing(
    {
      signingKeyPath: config.signingKeyPath,
      verificationKeyPaths: config.verificationKeyPaths,
      devKeyPath: config.devKeyPath,
    },
    logger,
  );
  const objectStore = objectStoreOptions(config);
  server = await startEvidenceServer({
    ...(security === undefined ? {} : { security }),
    database,
    databaseUrl: config.databaseUrl,
    logger,
    artifactRoot: config.artifactRoot ?? "",
    ...(objectStore === undefined ? {} : { objectStore }),
    signingKey: keys.signing,
    verificationKeys: keys.verification,
    limits: {
      bundleArtifactMaxBytes: config.bundleArtifactMaxBytes,
      maxArtifactBytes: config.maxArtifactBytes,
      subscriberMaxBacklog: config.subscriberMaxBacklog,
    },
    port: config.port,
    host: config.host,
    ...(config.metricsPort === undefined
      ? {}
      : { metrics: { port: config.metricsPort, host: config.host } }),
  });
} catch (error) {
  logger.fatal({ err: error }, "evidence failed to start");
  await database.close().catch(() => {});
  process.exit(1);
}
logger.info({ url: server.url, metricsUrl: server.metricsUrl }, "evidence ready");

stopOnSignals({
  logger,
  service: "evidence",
  async close() {
    await server.close();
    await database.close();
    await stopTelemetry();
  },
});
