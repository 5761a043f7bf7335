/** The machine description and the Markdown summary of a benchmark run. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import path from "node:path";
import type { Limits, WorkloadResult } from "./workloads.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

function version(command: string, args: string[], pattern: RegExp): string {
  try {
    const text = execFileSync(command, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    return text.match(pattern)?.[1] ?? text.trim().split("\n")[0] ?? "?";
  } catch {
    return "not installed";
  }
}

function packageVersion(name: string): string {
  try {
    const file = path.join(ROOT, "node_modules", name, "package.json");
    return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  postgres: string;
  redis: string;
  bullmq: string;
  graphileWorker: string;
  bubblewrap: string;
  podman: string;
  loadAverageAtStart: string;
}

export function describeMachine(postgres: string, redis: string): Machine {
  let load = "?";
  try {
    load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    // not Linux
  }
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    postgres,
    redis,
    bullmq: packageVersion("bullmq"),
    graphileWorker: packageVersion("graphile-worker"),
    bubblewrap: version("bwrap", ["--version"], /bubblewrap (\S+)/),
    podman: version("podman", ["--version"], /version (\S+)/),
    loadAverageAtStart: load,
  };
}

const fmt = (value: number | undefined): string => {
  if (value === undefined || !Number.isFinite(value)) return "–";
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return value.toFixed(0);
  if (magnitude >= 100) return value.toFixed(1);
  if (magnitude >= 10) return value.toFixed(2);
  return value.toFixed(3);
};

/** Markdown: the machine, the limits, and one table per workload. */
export function summary(
  machine: Machine,
  limits: Limits,
  results: WorkloadResult[],
  options: { quick: boolean; durable: string[] },
): string {
  const lines: string[] = [];
  lines.push(
    `# Benchmark results${options.quick ? " (quick smoke run: tiny counts, not for comparison)" : ""}`,
  );
  lines.push("");
  lines.push(
    `Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}; Node ${machine.node}, PostgreSQL ${machine.postgres}, Redis ${machine.redis}, BullMQ ${machine.bullmq}, graphile-worker ${machine.graphileWorker}, bubblewrap ${machine.bubblewrap}, podman ${machine.podman}; load average at start ${machine.loadAverageAtStart}.`,
  );
  lines.push(`Durability: ${options.durable.join("; ")}.`);
  lines.push("");
  lines.push("## Physical limits");
  lines.push("");
  lines.push("| limit | value |");
  lines.push("| --- | ---: |");
  for (const r of limits.spawn.results)
    lines.push(
      `| spawn(/bin/true)/s, concurrency ${r.concurrency}, process of ${fmt(limits.spawn.rssMiB)} MiB RSS (an idle packrun worker: ${fmt(limits.workerRssMiB)} MiB) | ${fmt(r.perSecond)} (p50 ${fmt(r.latencyMs.p50)} ms, ${fmt(r.cpuMsPerSpawn)} CPU ms each) |`,
    );
  for (const r of limits.spawnPlainNode.results)
    lines.push(
      `| spawn(/bin/true)/s, concurrency ${r.concurrency}, plain Node (${fmt(limits.spawnPlainNode.rssMiB)} MiB) | ${fmt(r.perSecond)} |`,
    );
  for (const c of limits.commits)
    lines.push(
      `| single-row PostgreSQL commits/s, concurrency ${c.concurrency} | ${fmt(c.perSecond)} (p50 ${fmt(c.latencyMs.p50)} ms) |`,
    );
  lines.push(
    `| Redis PING round trip p50 / p99 | ${fmt(limits.redisPingMs.p50)} / ${fmt(limits.redisPingMs.p99)} ms |`,
  );
  for (const result of results) {
    lines.push("");
    lines.push(`## ${result.id}: ${result.title}`);
    lines.push("");
    lines.push(`${result.measures}.`);
    lines.push("");
    const metricNames = [
      ...new Set(Object.values(result.systems).flatMap((s) => Object.keys(s.metrics))),
    ];
    const header = [
      "system",
      ...metricNames,
      "CPU ms/run",
      "peak RSS MiB",
      "÷ limit",
      "÷ best peer",
      "÷ floor",
    ];
    lines.push(`| ${header.join(" | ")} |`);
    lines.push(
      `| --- | ${header
        .slice(1)
        .map(() => "---:")
        .join(" | ")} |`,
    );
    for (const [name, system] of Object.entries(result.systems)) {
      if (system.error) {
        lines.push(`| ${name} | failed: ${system.error.split("\n")[0]?.replaceAll("|", "\\|")} |`);
        continue;
      }
      const cells = metricNames.map((metric) => {
        const m = system.metrics[metric];
        if (!m) return "–";
        return m.values.length > 1
          ? `${fmt(m.median)} (${fmt(m.min)}–${fmt(m.max)})`
          : fmt(m.median);
      });
      const rss = Object.entries(system.peakRssMiB)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(", ");
      const ratio = result.ratios[name];
      lines.push(
        `| ${name} | ${cells.join(" | ")} | ${fmt(system.cpuMsPerRun.total)} | ${rss || "–"} | ${fmt(ratio?.toLimit)} | ${fmt(ratio?.toBestPeer)} | ${fmt(ratio?.toFloor)} |`,
      );
    }
    lines.push("");
    lines.push(
      `Headline: \`${result.headline.metric}\` (${result.headline.unit}, ${result.headline.higherIsBetter ? "higher" : "lower"} is better)${result.limit ? `; limit = ${result.limit.what} = ${fmt(result.limit.value)}` : ""}. Values: median of the repetitions (min–max).`,
    );
    const breakdown = Object.entries(result.systems)
      .filter(([, s]) => !s.error && Object.keys(s.cpuMsPerRun).length > 0)
      .map(
        ([name, s]) =>
          `${name}: ${Object.entries(s.cpuMsPerRun)
            .filter(([k]) => k !== "total")
            .map(([k, v]) => `${k} ${fmt(v)}`)
            .join(", ")}`,
      );
    if (breakdown.length > 0) lines.push(`CPU ms per run by process: ${breakdown.join("; ")}.`);
    for (const check of result.checks)
      lines.push(`- check ${check.ok ? "passed" : "**FAILED**"}: ${check.name} (${check.detail})`);
    for (const note of result.notes) lines.push(`- ${note}`);
    for (const [name, system] of Object.entries(result.systems)) {
      const { walPerRunByRecordType, ...rest } = system.extra ?? {};
      if (Object.keys(rest).length > 0) lines.push(`- ${name}: ${JSON.stringify(rest)}`);
      if (Array.isArray(walPerRunByRecordType))
        lines.push(
          `- ${name}: WAL per run by record type: ${(
            walPerRunByRecordType as { type: string; perRun: number; kibPerRun: number }[]
          )
            .map((entry) => `${entry.type} ${fmt(entry.perRun)}× ${fmt(entry.kibPerRun)} KiB`)
            .join(", ")}`,
        );
    }
    lines.push(`- took ${fmt(result.durationSeconds)} s`);
  }
  return `${lines.join("\n")}\n`;
}
