/**
 * The evidence service in a process of its own, for fault tests that kill it: started by
 * {@link startEvidenceProcess} with its settings as JSON in PACKRUN_TEST_EVIDENCE. Prints
 * `{"event":"ready","url":...}` on stdout once it serves. Not `main.ts`: a fixed port, a given
 * key file and nothing else, so the test controls exactly what a restart keeps.
 */
import { readFile } from "node:fs/promises";
import { loadSigningKey } from "@packrun/attestation";
import { createPostgresDatabase } from "@packrun/db";
import { startEvidenceServer } from "@packrun/evidence";
import { createLogger } from "@packrun/logging";

interface EvidenceProcessConfig {
  databaseUrl: string;
  port: number;
  artifactRoot: string;
  signingKeyFile: string;
}

const config = JSON.parse(process.env.PACKRUN_TEST_EVIDENCE ?? "{}") as EvidenceProcessConfig;
const logger = createLogger({
  service: "evidence-test-process",
  level: process.env.PACKRUN_TEST_LOG ?? "silent",
  destination: process.stderr,
});
const database = createPostgresDatabase({ url: config.databaseUrl, schema: "evidence" });
const server = await startEvidenceServer({
  database,
  databaseUrl: config.databaseUrl,
  logger,
  artifactRoot: config.artifactRoot,
  signingKey: loadSigningKey(await readFile(config.signingKeyFile), "test key"),
  port: config.port,
});
process.stdout.write(`${JSON.stringify({ event: "ready", url: server.url, pid: process.pid })}\n`);
const stop = async () => {
  await server.close();
  await database.close();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
