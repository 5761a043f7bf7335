#!/usr/bin/env node
/**
 * `npm run docs:screenshots`: regenerates the console's screenshots in docs/ (the run page and
 * the approval panel of a run waiting at its gate) with headless chromium against the embedded
 * default started in this process on a fresh home.
 */
import { resolve } from "node:path";
import { launchChromium, startConsoleStack, tourPack } from "./testing/console-stack.ts";

const docs = resolve(import.meta.dirname, "../../../docs");
const stack = await startConsoleStack();
const browser = await launchChromium();
try {
  await stack.rest("/api/packs", { manifest: tourPack });
  const { run } = await stack.rest<{ run: { id: string } }>("/api/runs", {
    pack: { name: "console-tour" },
    inputs: { lines: 12 },
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900, deviceScaleFactor: 1 });
  await page.goto(`${stack.consoleUrl}#/runs/${run.id}`);
  await page.waitForSelector('[data-gate="approve"] button[type="submit"]', { timeout: 120_000 });
  await page.click('g[data-step="count"]');
  await page.waitForSelector('[data-testid="step-details"]');
  // The tail of the log is in view; the stream has settled.
  await new Promise((done) => setTimeout(done, 500));
  const runPage = resolve(docs, "console-run.png");
  await page.screenshot({ path: runPage, fullPage: true });
  const panel = await page.$("#approvals");
  if (panel === null) throw new Error("no approval panel");
  const approvalPanel = resolve(docs, "console-approval.png");
  await panel.screenshot({ path: approvalPanel });
  process.stdout.write(`screenshots: ${runPage}\n             ${approvalPanel}\n`);
} finally {
  await browser.close();
  await stack.close();
}
