/**
 * `npm run bench:start`: how fast `npm start` (the embedded default) becomes ready and how much
 * memory it takes. Starts `packages/embedded/src/start.ts --once` as `npm start` does (from the
 * install-time bundle when it is current; `PACKRUN_EMBEDDED_BUNDLE=0` measures the sources), first
 * on a fresh home (cold: initdb, migrations, keys and certificates created) and then again on the
 * same home (warm), and reports for each start:
 *
 * - ready: from spawning the process to the console address printed (every service is serving
 *   gRPC and the gateway listens by then);
 * - peak resident memory: the largest sum of VmRSS over the whole process tree (the process and
 *   every process it started, steps included) from spawn to exit, sampled every 20 ms;
 * - resident at ready: the same sum when the console address appeared;
 * - CPU at ready: CPU time of the process tree until then (less load-dependent than ready);
 * - whether the quickstart ended in a verified bundle (exit code 0 of `--once`).
 *
 * `npm start` adds npm's own start and the console build's up-to-date check before this. The
 * environment and Node options are the `start` script's own (read from package.json), so the
 * figures are those of what `npm start` runs. Cold clears V8's compile cache too, as a fresh clone
 * has none.
 *
 * Usage: `npm run bench:start [-- --warm=N] [--keep] [--save]`; `--save` also writes the report
 * to `bench/results/latest/npm-start.md` (committed beside the latest full run, which keeps it).
 * A program, never a timed test.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { formatWithBiome } from "./lib/util.ts";

const repository = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    warm: { type: "string", default: "2" },
    keep: { type: "boolean", default: false },
    save: { type: "boolean", default: false },
  },
});
const warmStarts = Number(args.warm);

/**
 * What the root `start` script runs last: its environment assignments (`NAME=value`) and the
 * options given to node before the script, e.g. `NODE_COMPILE_CACHE=… MALLOC_ARENA_MAX=2 node
 * --max-semi-space-size=2 packages/embedded/src/start.ts`.
 */
function startCommand(): { env: Record<string, string>; nodeOptions: string[] } {
  const scripts = JSON.parse(readFileSync(join(repository, "package.json"), "utf8")).scripts;
  const words = String(scripts.start).split("&&").at(-1)?.trim().split(/\s+/) ?? [];
  const env: Record<string, string> = {};
  let word = words.shift();
  for (; word !== undefined && /^[A-Z_][A-Z0-9_]*=/.test(word); word = words.shift()) {
    const equals = word.indexOf("=");
    env[word.slice(0, equals)] = word.slice(equals + 1);
  }
  if (word !== "node" || words.at(-1) !== "packages/embedded/src/start.ts")
    throw new Error(
      `bench: the start script no longer runs packages/embedded/src/start.ts: ${word}`,
    );
  return { env, nodeOptions: words.slice(0, -1) };
}
const start = startCommand();

/** The pids of `root` and all its descendants, from /proc's children lists. */
function processTree(root: number): number[] {
  const found: number[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    found.push(pid);
    try {
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        const children = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
        if (children !== "") pending.push(...children.split(" ").map(Number));
      }
    } catch {
      // The process ended between two reads.
    }
  }
  return found;
}

/** Name and resident memory of one process in bytes (0 when it is gone). */
function resident(pid: number): { name: string; bytes: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    const name = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "?";
    return { name, bytes: rss === null ? 0 : Number(rss[1]) * 1024 };
  } catch {
    return { name: "gone", bytes: 0 };
  }
}

/** CPU time (user + system) of one process in ms, 0 when it is gone; children count once reaped. */
function cpuMs(pid: number): number {
  try {
    // The fields after the command name (which may hold spaces) start at the state, field 3.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index]), 0);
    return (ticks * 1000) / 100;
  } catch {
    return 0;
  }
}

/** What one start measured. */
interface StartFigures {
  kind: "cold" | "warm";
  readyMs: number;
  /** The "started in N ms" the program itself prints (services only, without Node's start). */
  servicesMs: number;
  /**
   * CPU time of the process tree until ready (utime + stime + reaped children's): what the start
   * costs, less dependent on the machine's load than the wall-clock time.
   */
  cpuAtReadyMs: number;
  residentAtReadyMiB: number;
  peakResidentMiB: number;
  peakProcesses: number;
  /** Resident MiB per process name at the peak (the largest first). */
  peakBreakdown: string;
  quickstartMs: number;
  verified: boolean;
  load: string;
}

const mib = (bytes: number) => Math.round(bytes / 1024 / 1024);
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Runs `npm start -- --once` once on `home` and measures it. */
function measureStart(kind: "cold" | "warm", home: string): Promise<StartFigures> {
  const load = loadAverage();
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [...start.nodeOptions, join(repository, "packages/embedded/src/start.ts"), "--once"],
    {
      cwd: repository,
      // As `npm start` runs it, e.g. V8's code cache (and the stripped TypeScript) kept between
      // starts in NODE_COMPILE_CACHE (relative to the repository, the cwd).
      env: { ...process.env, ...start.env, PACKRUN_HOME: home },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let readyMs = Number.NaN;
  let servicesMs = Number.NaN;
  let residentAtReady = 0;
  let cpuAtReady = 0;
  let peak = 0;
  let peakProcesses = 0;
  let peakBreakdown = "";
  const sample = () => {
    if (child.pid === undefined) return 0;
    const pids = processTree(child.pid);
    const processes = pids.map(resident);
    const total = processes.reduce((sum, process) => sum + process.bytes, 0);
    if (total > peak) {
      peak = total;
      peakBreakdown = processes
        .filter((process) => process.bytes > 0)
        .sort((a, b) => b.bytes - a.bytes)
        .map((process) => `${process.name} ${mib(process.bytes)}`)
        .join(", ");
    }
    if (pids.length > peakProcesses) peakProcesses = pids.length;
    return total;
  };
  const sampler = setInterval(sample, 20);
  let buffered = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const startedIn = /^packrun: started in (\d+) ms/.exec(line);
      if (startedIn !== null) servicesMs = Number(startedIn[1]);
      if (line.startsWith("  console ") && Number.isNaN(readyMs)) {
        readyMs = performance.now() - started;
        residentAtReady = sample();
        if (child.pid !== undefined)
          cpuAtReady = processTree(child.pid).reduce((sum, pid) => sum + cpuMs(pid), 0);
      }
      newline = buffered.indexOf("\n");
    }
  });
  return new Promise((done, fail) => {
    child.on("error", fail);
    child.on("exit", (code) => {
      clearInterval(sampler);
      done({
        kind,
        readyMs: Math.round(readyMs),
        servicesMs,
        cpuAtReadyMs: Math.round(cpuAtReady),
        residentAtReadyMiB: mib(residentAtReady),
        peakResidentMiB: mib(peak),
        peakProcesses,
        peakBreakdown,
        quickstartMs: Math.round(performance.now() - started - readyMs),
        verified: code === 0,
        load,
      });
    });
  });
}

const home = mkdtempSync(join(tmpdir(), "packrun-start-bench-"));
const results: StartFigures[] = [];
rmSync(join(repository, start.env.NODE_COMPILE_CACHE ?? "node_modules/.cache/node-compile-cache"), {
  recursive: true,
  force: true,
});
try {
  results.push(await measureStart("cold", join(home, ".packrun")));
  for (let index = 0; index < warmStarts; index++)
    results.push(await measureStart("warm", join(home, ".packrun")));
} finally {
  if (args.keep) process.stderr.write(`bench: kept ${home}\n`);
  else rmSync(home, { recursive: true, force: true });
}
const lines = [
  `Started as npm start does: ${Object.entries(start.env)
    .map(([name, value]) => `${name}=${value}`)
    .join(" ")} node ${start.nodeOptions.join(" ")}`,
  "",
  "| start | ready ms | services ms | CPU ms at ready | RSS at ready MiB | peak RSS MiB | processes | quickstart ms | verified bundle | load (1/5/15 min) |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ...results.map(
    (r) =>
      `| ${r.kind} | ${r.readyMs} | ${r.servicesMs} | ${r.cpuAtReadyMs} | ${r.residentAtReadyMiB} | ${r.peakResidentMiB} | ${r.peakProcesses} | ${r.quickstartMs} | ${r.verified ? "yes" : "NO"} | ${r.load} |`,
  ),
  "",
  "Resident MiB per process at each start's peak:",
  "",
  ...results.map((r) => `- ${r.kind}: ${r.peakBreakdown}`),
];
const report = `${lines.join("\n")}\n`;
process.stdout.write(report);
if (args.save) {
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
    cwd: repository,
    encoding: "utf8",
  }).trim();
  const saved = join(repository, "bench", "results", "latest", "npm-start.md");
  mkdirSync(dirname(saved), { recursive: true });
  writeFileSync(
    saved,
    `# \`npm start\`: ready time and memory\n\n\`npm run bench:start -- --save\` on ${new Date().toISOString()}, commit \`${commit}\`.\n\n${report}`,
  );
  formatWithBiome(saved);
  process.stderr.write(`bench: wrote ${saved}\n`);
}
if (results.some((r) => !r.verified)) process.exitCode = 1;
