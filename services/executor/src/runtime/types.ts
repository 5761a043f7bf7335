/** The built-in modules a step can use. */
export type ModuleName =
  | "builtin:shell"
  | "builtin:container"
  | "builtin:bundle.ingest"
  | "builtin:noop";

/** Where a step's process runs (see docs/runtimes.md for the isolation each one gives). */
export type RuntimeKind = "process" | "sandbox" | "container";

/** One complete, masked output line delivered to the caller. */
export interface LogLine {
  stream: "stdout" | "stderr" | "system";
  text: string;
}

/** Everything needed to run one attempt of one step on this machine. */
export interface StepExecutionRequest {
  runId: string;
  stepId: string;
  attempt: number;
  uses: ModuleName;
  /** Module parameters, fully resolved: every leaf is a string (argv elements, env values, paths). */
  with: Record<string, unknown>;
  /**
   * Secret values by name: injected ONLY as environment variables the step's `with.env` maps to
   * them (the caller already resolved `{{ secrets.x }}` in env values), and masked in every log
   * line.
   */
  secrets: Readonly<Record<string, string>>;
  /** Private writable directory for this attempt (the caller creates and later removes it). */
  workdir: string;
  /** Where builtin:bundle.ingest stages files (bundles/<sha256>/<filename>), shared by the run. */
  stagingRoot: string;
  /**
   * Directories builtin:bundle.ingest may read bundles from besides the attempt workdir
   * (e.g. an import drop directory). Default: the worker's PACKRUN_BUNDLE_ROOTS environment
   * variable (colon-separated absolute paths), else none.
   */
  bundleRoots?: readonly string[];
  sandbox: { mode: "open" | "sealed"; egressAllowlist: readonly string[] };
  /**
   * "process" (own process group / PID namespace), "sandbox" (bubblewrap), "container" (podman).
   * builtin:container always uses "container".
   */
  runtime: RuntimeKind;
  timeoutMs: number | null;
  /** SIGTERM → wait this long → SIGKILL. */
  killGraceMs: number;
  limits: {
    maxLogBytes: number;
    maxLineBytes: number;
    /** Most output lines kept (default 100,000); the rest is read and discarded like bytes over maxLogBytes. */
    maxLogLines?: number;
    memoryBytes?: number;
    pids?: number;
    /** Size of the attempt's workdir (a tmpfs on a root worker); 0 = unlimited. Default 1 GiB. */
    diskBytes?: number;
    /** Largest accepted `$PACKRUN_OUTPUT` file; default 1 MiB. */
    maxOutputFileBytes?: number;
    /** Largest artifact hashed and stored (checked with fstat before reading); default 4 GiB. */
    maxArtifactBytes?: number;
  };
  /** Declared artifacts (paths relative to workdir) to hash after the step. */
  artifacts: readonly { name: string; path: string }[];
  /** Aborted = cancel: terminate like a timeout, result outcome "cancelled". */
  signal: AbortSignal;
  /**
   * The worker's lease watchdog: the runtime registers the step's processes (or its container)
   * here so that they die when the worker's lease runs out, even while its event loop is frozen.
   */
  watch?: StepWatch;
  /**
   * Called for every complete output line, in order, already masked; stream "system" for
   * runtime notes (e.g. truncation marker).
   */
  onLog: (line: LogLine) => void;
  /**
   * Id of the worker running the step. Containers are labelled with it and processes are tagged
   * with it so that `reapOrphans(workerId)` can find leftovers after a crash. Default:
   * `<hostname>-<pid>`.
   */
  workerId?: string;
}

/** What to kill when a step must die at once: a process (a negative pid is a process group), or a command to run (e.g. `podman kill`). */
export type KillTarget =
  | { kind: "process"; pid: number }
  | { kind: "command"; argv: readonly [string, ...string[]] };

/** Where a runtime registers what must die with a step's lease (see LeaseWatchdog). */
export interface StepWatch {
  /** Registers a target; the returned function unregisters it once it ended by itself. */
  track(target: KillTarget): () => void;
}

/** How one step attempt ended. */
export type StepOutcome = "succeeded" | "failed" | "timed_out" | "cancelled";

/** A declared artifact after hashing. */
export interface ArtifactRecord {
  name: string;
  path: string;
  /** `sha256:<lowercase hex>` */
  digest: string;
  sizeBytes: number;
}

/** The result of one step attempt. */
export interface StepExecutionResult {
  outcome: StepOutcome;
  exitCode: number | null;
  signal: string | null;
  /** Human readable, e.g. "exited with code 3", "timed out after 30s". */
  reason: string;
  durationMs: number;
  cpuMicros: number;
  peakMemoryBytes: number;
  /**
   * Parsed from the $PACKRUN_OUTPUT file: text, until the worker applies the step's declared
   * output types (a `json` output then holds its parsed value).
   */
  outputs: Record<string, unknown>;
  artifacts: ArtifactRecord[];
  logTruncated: boolean;
  /** Container steps: the image that ran, by reference and resolved digest. */
  image?: { reference: string; digest: string };
}

/** What this machine supports, as found by `probeRuntimes`. */
export interface RuntimeCapabilities {
  /** bubblewrap runs sandboxes here (needed by the "sandbox" runtime and by sealed steps). */
  sandbox: boolean;
  /** podman runs containers here. */
  container: boolean;
  /** Human-readable findings, one per line (versions, fallbacks, what is not enforced). */
  details: string[];
  /** The "process" runtime gets a PID namespace (bubblewrap without filesystem isolation). */
  pidNamespace?: boolean;
  /** GNU time is present, so CPU time and peak memory are measured for process/sandbox steps. */
  metrics?: boolean;
}
