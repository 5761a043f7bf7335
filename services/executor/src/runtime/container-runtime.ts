import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import { readCgroupUsage, removeCgroupTree } from "./cgroup-usage.ts";
import { type ContainerNetwork, openContainerNetwork } from "./container-network.ts";
import { type LaunchedProcess, launch } from "./launcher.ts";
import type { LogSink } from "./log-sink.ts";
import { containerCgroup, LABELS, podmanGlobalArgs, podmanUlimits } from "./podman.ts";
import { lastLine, runTool } from "./run-tool.ts";
import type { EgressPolicy, NetworkTools } from "./step-network.ts";
import type { StepUser } from "./step-user.ts";
import type { StepWatch } from "./types.ts";

/** Where the attempt workdir is mounted inside the container. */
export const CONTAINER_WORKSPACE = "/workspace";

/**
 * Values longer than this, or containing a newline, cannot go through podman's env-file
 * (line-based, 64 KiB line buffer); they are passed by name from podman's own environment.
 */
const ENV_FILE_MAX_VALUE = 32 * 1024;
/** Names podman itself reads from its environment: a step value must not reach podman under them. */
const PODMAN_SENSITIVE =
  /^(CONTAINERS_|PODMAN_|BUILDAH_|STORAGE_|REGISTRY_|XDG_|DOCKER_|TMPDIR$|HOME$|PATH$|SSL_CERT_)/;
/** Bound on podman housekeeping commands (create, stop, inspect, rm). */
const PODMAN_COMMAND_TIMEOUT_MS = 120_000;

/** One container step. */
export interface ContainerSpec {
  /** Path of the podman binary. */
  podman: string;
  image: string;
  command: readonly string[] | undefined;
  /** Container environment (the step's env plus PACKRUN_OUTPUT). */
  env: Readonly<Record<string, string>>;
  /** Host path of the attempt workdir, mounted read-write at /workspace. */
  workdir: string;
  /** Working directory inside the container. */
  containerCwd: string;
  /** Mounted read-only at the same path. */
  stagingRoot: string;
  sealed: boolean;
  memoryBytes: number | undefined;
  pids: number | undefined;
  timeoutMs: number | null;
  killGraceMs: number;
  signal: AbortSignal;
  /**
   * Open steps' network: a namespace of their own with slirp4netns and the egress rules (see
   * container-network.ts). Null for an open step: no network at all when `user` is set (the
   * worker lacks the tools), podman's own network when isolation is off.
   */
  network: { tools: NetworkTools; policy: EgressPolicy } | null;
  /**
   * The step user: the container runs as it, without capabilities, with no_new_privs and a
   * read-only root (tmpfs /tmp, /run). Null only when the operator turned isolation off.
   */
  user: StepUser | null;
  /** The worker's lease watchdog: `podman kill` runs from there when the lease runs out. */
  watch?: StepWatch | undefined;
  labels: { workerId: string; runId: string; stepId: string; attempt: number };
}

/** How a container step ended. */
export interface ContainerExit {
  /** Set when podman could not create or start the container (the step never ran). */
  setupError: string | null;
  exitCode: number | null;
  oomKilled: boolean;
  stoppedFor: "timeout" | "cancel" | null;
  cpuMicros: number;
  peakMemoryBytes: number;
  /** The image the container ran, by manifest digest (`sha256:<hex>`), as podman resolved it. */
  imageDigest?: string;
}

/**
 * Runs one container through its whole lifecycle: `podman create` (labelled with worker, run,
 * step and attempt so `reapOrphans` can find it), `podman start --attach` streaming stdout and
 * stderr into the sink, on timeout or cancel `podman stop -t <grace>` (SIGTERM, then SIGKILL
 * after the grace period), exit code from `podman inspect`, usage from the container's cgroup,
 * and `podman rm -f` whatever happened. A `--timeout` backstop makes conmon kill the container
 * even if this worker dies before it can.
 */
export async function runContainer(spec: ContainerSpec, sink: LogSink): Promise<ContainerExit> {
  const podman = spec.podman;
  const global = podmanGlobalArgs();
  const name = `packrun-${randomUUID()}`;
  const cgroupParent = containerCgroup(spec.labels.workerId, name);
  const secretsDir = await mkdtemp(path.join(tmpdir(), "packrun-env-"));
  let network: ContainerNetwork | null = null;
  const result: ContainerExit = {
    setupError: null,
    exitCode: null,
    oomKilled: false,
    stoppedFor: null,
    cpuMicros: 0,
    peakMemoryBytes: 0,
  };
  try {
    const envArgs = await environmentArgs(spec.env, secretsDir);
    if (typeof envArgs === "string") return { ...result, setupError: envArgs };
    if (!spec.sealed && spec.network) {
      try {
        network = await openContainerNetwork(spec.network.tools, spec.network.policy);
      } catch (error) {
        return { ...result, setupError: (error as Error).message };
      }
    }
    const createArgs = [
      ...global,
      "create",
      "--name",
      name,
      "--label",
      `${LABELS.worker}=${spec.labels.workerId}`,
      "--label",
      `${LABELS.run}=${spec.labels.runId}`,
      "--label",
      `${LABELS.step}=${spec.labels.stepId}`,
      "--label",
      `${LABELS.attempt}=${spec.labels.attempt}`,
      // Output is streamed through the attach socket; a log file would store GBs on disk again.
      "--log-driver",
      "none",
      // Host proxy variables must not leak into step containers.
      "--http-proxy=false",
      "--pull",
      spec.sealed ? "never" : "missing",
      ...networkArgs(spec, network),
      ...(spec.user
        ? [
            "--user",
            `${spec.user.uid}:${spec.user.gid}`,
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--read-only",
          ]
        : []),
      ...(await podmanUlimits()),
      ...(spec.memoryBytes !== undefined
        ? ["--memory", `${spec.memoryBytes}b`, "--memory-swap", `${spec.memoryBytes}b`]
        : []),
      ...(spec.pids !== undefined ? ["--pids-limit", String(spec.pids)] : []),
      "--cgroup-parent",
      cgroupParent,
      ...(spec.timeoutMs !== null
        ? ["--timeout", String(Math.ceil((spec.timeoutMs + spec.killGraceMs) / 1000) + 60)]
        : []),
      "--volume",
      `${spec.workdir}:${CONTAINER_WORKSPACE}:rw`,
      "--volume",
      `${spec.stagingRoot}:${spec.stagingRoot}:ro`,
      "--workdir",
      spec.containerCwd,
      ...envArgs.args,
      spec.image,
      ...(spec.command ?? []),
    ];
    const created = await runTool(podman, createArgs, {
      timeoutMs: PODMAN_COMMAND_TIMEOUT_MS,
      env: envArgs.podmanEnv,
    });
    // The env file held secret values: gone as soon as podman has read it.
    await rm(secretsDir, { recursive: true, force: true });
    if (created.code !== 0) {
      return { ...result, setupError: `podman create failed: ${describe(created)}` };
    }

    const attached = await attachAndWait(podman, global, name, spec, sink);
    result.stoppedFor = attached.stoppedFor;
    if (attached.setupError) return { ...result, setupError: attached.setupError };

    const inspected = await runTool(
      podman,
      [
        ...global,
        "inspect",
        "--format",
        "{{.State.ExitCode}} {{.State.OOMKilled}} {{.ImageDigest}}",
        name,
      ],
      { timeoutMs: PODMAN_COMMAND_TIMEOUT_MS },
    );
    const [code, oom, imageDigest] = inspected.stdout.trim().split(" ");
    // What ran, whatever the reference said (a tag can move): provenance names these bytes.
    if (imageDigest !== undefined && /^sha256:[0-9a-f]{64}$/.test(imageDigest))
      result.imageDigest = imageDigest;
    result.exitCode = inspected.code === 0 && code !== undefined ? Number(code) : attached.exitCode;
    result.oomKilled = oom === "true";
    const usage = await readCgroupUsage(cgroupParent);
    result.cpuMicros = usage.cpuMicros;
    result.peakMemoryBytes = usage.peakMemoryBytes;
    return result;
  } finally {
    network?.close();
    await rm(secretsDir, { recursive: true, force: true });
    await runTool(podman, [...global, "rm", "--force", "--time", "0", name], {
      timeoutMs: PODMAN_COMMAND_TIMEOUT_MS,
    });
    await removeCgroupTree(cgroupParent);
  }
}

/** Sealed: none. Open: the namespace made for the step, else none, unless isolation is off. */
function networkArgs(spec: ContainerSpec, network: ContainerNetwork | null): string[] {
  if (spec.sealed) return ["--network", "none"];
  if (network)
    return [
      "--network",
      `ns:${network.namespacePath}`,
      "--volume",
      `${network.resolvConf}:/etc/resolv.conf:ro`,
    ];
  return spec.user ? ["--network", "none"] : [];
}

/**
 * `--env-file` for ordinary values (so no secret appears in podman's argv, which every local
 * user can read in /proc) and `--env NAME` (taken from podman's own environment) for values the
 * env-file format cannot carry; PACKRUN_OUTPUT is not secret and goes inline.
 */
async function environmentArgs(
  env: Readonly<Record<string, string>>,
  secretsDir: string,
): Promise<{ args: string[]; podmanEnv: NodeJS.ProcessEnv } | string> {
  const fileLines: string[] = [];
  const args: string[] = [];
  const podmanEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(env)) {
    if (!value.includes("\n") && !value.includes("\r") && value.length <= ENV_FILE_MAX_VALUE) {
      fileLines.push(`${key}=${value}`);
      continue;
    }
    if (PODMAN_SENSITIVE.test(key) || key in process.env) {
      return `environment variable ${key} has a multi-line or very long value, which builtin:container can only pass under a name podman itself does not use`;
    }
    podmanEnv[key] = value;
    args.push("--env", key);
  }
  await chmod(secretsDir, 0o700);
  const envFile = path.join(secretsDir, "env");
  await writeFile(envFile, fileLines.map((line) => `${line}\n`).join(""), { mode: 0o600 });
  return { args: ["--env-file", envFile, ...args], podmanEnv };
}

async function attachAndWait(
  podman: string,
  global: string[],
  name: string,
  spec: ContainerSpec,
  sink: LogSink,
): Promise<{
  exitCode: number | null;
  stoppedFor: "timeout" | "cancel" | null;
  setupError: string | null;
}> {
  const stdout = sink.stream("stdout");
  const stderr = sink.stream("stderr");
  const untrack = spec.watch?.track({
    kind: "command",
    argv: [podman, ...global, "kill", "--signal", "KILL", name],
  });
  let child: LaunchedProcess;
  try {
    child = await launch(podman, [...global, "start", "--attach", name], {
      stdio: ["ignore", "read", "read"],
      // conmon writes an `oom` marker into its working directory when the container is
      // OOM-killed: keep that out of the worker's own directory.
      cwd: tmpdir(),
    });
  } catch (error) {
    untrack?.();
    stdout.end();
    stderr.end();
    return {
      exitCode: null,
      stoppedFor: null,
      setupError: `podman start failed: ${(error as Error).message}`,
    };
  }
  const [outPipe, errPipe] = [child.stdio[1], child.stdio[2]] as [Readable, Readable];
  outPipe.on("data", (chunk: Buffer) => stdout.write(chunk));
  errPipe.on("data", (chunk: Buffer) => stderr.write(chunk));
  outPipe.on("error", () => {});
  errPipe.on("error", () => {});

  let stoppedFor: "timeout" | "cancel" | null = null;
  let stopping: Promise<unknown> | null = null;
  const stop = (reason: "timeout" | "cancel"): void => {
    if (stoppedFor !== null) return;
    stoppedFor = reason;
    const grace = Math.ceil(spec.killGraceMs / 1000);
    // podman stop sends the stop signal (SIGTERM), waits `grace` seconds, then SIGKILLs.
    stopping = runTool(podman, [...global, "stop", "--time", String(grace), name], {
      timeoutMs: PODMAN_COMMAND_TIMEOUT_MS,
    }).then((stopped) =>
      stopped.code === 0
        ? stopped
        : runTool(podman, [...global, "kill", "--signal", "KILL", name], {
            timeoutMs: PODMAN_COMMAND_TIMEOUT_MS,
          }),
    );
  };
  const onAbort = (): void => stop("cancel");
  spec.signal.addEventListener("abort", onAbort, { once: true });
  if (spec.signal.aborted) stop("cancel");
  const timer =
    spec.timeoutMs !== null
      ? setTimeout(() => stop("timeout"), Math.min(spec.timeoutMs, 2_147_483_647))
      : undefined;

  const code = await new Promise<number | null>((resolve) => {
    child.on("close", (exitCode: number | null) => resolve(exitCode));
  });
  untrack?.();
  clearTimeout(timer);
  spec.signal.removeEventListener("abort", onAbort);
  stdout.end();
  stderr.end();
  if (stopping) await stopping;
  return { exitCode: code, stoppedFor, setupError: null };
}

function describe(result: { code: number | null; stderr: string; error: string | null }): string {
  return result.error ?? (lastLine(result.stderr) || `exit code ${result.code}`);
}
