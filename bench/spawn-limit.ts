/**
 * Physical limit: bare spawns per second from a Node process whose resident heap has been
 * inflated to `rssMiB` (fork cost grows with the parent's memory). Settings as JSON in
 * BENCH_SPAWN: { rssMiB, concurrency: number[], count, argv }. Prints one JSON line:
 * { rssMiB, results: [{ concurrency, perSecond, latencyMs: {p50, p99} }] }.
 */
import { readFileSync } from "node:fs";
import { spawnStep } from "./lib/durable.ts";
import { nowMs, quantile } from "./lib/util.ts";

const settings = JSON.parse(process.env.BENCH_SPAWN ?? "{}") as {
  rssMiB: number;
  concurrency: number[];
  count: number;
  argv: string[];
};

/** CPU seconds of this process and its waited-for children (utime+stime+cutime+cstime). */
function cpuSeconds(): number {
  const text = readFileSync("/proc/self/stat", "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
  return ticks / 100;
}

function rss(): number {
  const match = readFileSync("/proc/self/status", "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  return Number.parseInt(match?.[1] ?? "0", 10) / 1024;
}

// Live objects on the JS heap until the process is as large as the worker it stands for.
const ballast: unknown[] = [];
while (rss() < settings.rssMiB) {
  ballast.push(Array.from({ length: 16_384 }, (_, n) => ({ n, s: `v${n}` })));
}

async function measure(concurrency: number, count: number) {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = cpuSeconds();
  const started = nowMs();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) {
        const t0 = nowMs();
        const code = await spawnStep(settings.argv);
        if (code !== 0) throw new Error(`${settings.argv.join(" ")} exited with ${code}`);
        latencies.push(nowMs() - t0);
      }
    }),
  );
  const seconds = (nowMs() - started) / 1000;
  return {
    concurrency,
    perSecond: count / seconds,
    cpuMsPerSpawn: ((cpuSeconds() - cpu0) * 1000) / count,
    latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) },
  };
}

await measure(2, Math.min(50, settings.count)); // warm-up
const results = [];
for (const concurrency of settings.concurrency)
  results.push(await measure(concurrency, settings.count));
process.stdout.write(
  `${JSON.stringify({ rssMiB: rss(), ballastArrays: ballast.length, results })}\n`,
);
