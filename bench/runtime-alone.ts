/**
 * The isolation floor: the executor's step runtime alone (`executeStep`, as the worker calls it,
 * with its workdir slots, spawn helper and warm networks) running `/bin/true` steps, without a
 * queue, a database, evidence or any other service. The parent meters this process's whole tree
 * (the spawn helper, bubblewrap, slirp4netns, nft, the steps), so the CPU per step is what
 * isolating one step costs however lean the rest of a runner is.
 *
 * Settings as JSON in BENCH_RUNTIME: { mode: "open" | "sealed", count, concurrency, workRoot }.
 * Protocol on stdio: prints "ready" after a warm-up (pools filled); a line on stdin starts the
 * measured steps; prints one JSON line { seconds, latencyMs: {p50, p99} }; exits when stdin ends.
 */
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { isolatedStepRunner } from "./lib/isolated-step.ts";
import { nowMs, quantile } from "./lib/util.ts";

const settings = JSON.parse(process.env.BENCH_RUNTIME ?? "{}") as {
  mode: "open" | "sealed";
  count: number;
  concurrency: number;
  workRoot: string;
};
const runner = await isolatedStepRunner(settings.mode, settings.workRoot);

async function oneStep(): Promise<number> {
  const started = nowMs();
  const code = await runner.run(["/bin/true"]);
  if (code !== 0) throw new Error(`an isolated /bin/true step exited with ${code}`);
  return nowMs() - started;
}

async function steps(count: number, concurrency: number): Promise<number[]> {
  const latencies: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) latencies.push(await oneStep());
    }),
  );
  return latencies;
}

// Warm-up: the first steps start the spawn helper and fill the pools; then let them refill.
await steps(settings.concurrency * 2, settings.concurrency);
await sleep(2_000);
const input = createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
process.stdout.write("ready\n");
await lines.next();
const started = nowMs();
const latencies = await steps(settings.count, settings.concurrency);
const seconds = (nowMs() - started) / 1000;
process.stdout.write(
  `${JSON.stringify({ seconds, latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) } })}\n`,
);
await lines.next();
await runner.close();
process.exit(0);
