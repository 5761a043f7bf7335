import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { access, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, test } from "vitest";
import { executeStep, executeStepWith } from "./execute-step.ts";
import { probeRuntimes } from "./index.ts";
import { type RuntimeSupport, runtimeSupport } from "./support.ts";
import {
  collectLogs,
  makeDirs,
  processesWithMarker,
  stepRequest,
  uniqueMarker,
  waitFor,
} from "./testing/step-fixtures.ts";

let support: RuntimeSupport;
beforeAll(async () => {
  support = await runtimeSupport();
});

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

test("probeRuntimes reports what this machine can do", async () => {
  const probed = await probeRuntimes();
  assert.equal(typeof probed.sandbox, "boolean");
  assert.equal(typeof probed.container, "boolean");
  assert.ok(probed.details.length > 0);
  assert.strictEqual(await probeRuntimes().then((again) => again.sandbox), probed.sandbox);
});

test("argv runs directly: exit code, stdout and stderr lines", async () => {
  const local = await makeDirs();
  try {
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(local, {
        with: { argv: ["/bin/sh", "-c", 'echo out; echo err >&2; printf "no newline"; exit 3'] },
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "failed");
    assert.equal(result.exitCode, 3);
    assert.equal(result.signal, null);
    assert.equal(result.reason, "exited with code 3");
    assert.deepEqual(logs.texts("stdout"), ["out", "no newline"]);
    assert.deepEqual(logs.texts("stderr"), ["err"]);
    assert.ok(result.durationMs >= 0);
  } finally {
    await local.cleanup();
  }
});

test("hostile argv elements arrive literally and execute nothing", async () => {
  const local = await makeDirs();
  try {
    const pwned = path.join(local.root, "pwned");
    const hostile = [
      `$(touch ${pwned})`,
      `\`touch ${pwned}\``,
      `"; touch ${pwned} #`,
      `'; touch ${pwned}; '`,
      `a\ntouch ${pwned}`,
      // "${IFS}" spelled so that the linter does not take it for a mistaken template.
      `$${"{IFS}"}`,
    ];
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(local, { with: { argv: ["printf", "[%s]\\n", ...hostile] }, onLog: logs.onLog }),
    );
    assert.equal(result.outcome, "succeeded");
    assert.deepEqual(
      logs.texts("stdout"),
      hostile.map((value) => `[${value}]`).flatMap((line) => line.split("\n")),
    );
    assert.equal(await exists(pwned), false);
  } finally {
    await local.cleanup();
  }
});

test("hostile env values reach a script as data, never as code", async () => {
  const local = await makeDirs();
  try {
    const pwned = path.join(local.root, "pwned");
    const value = `$(touch ${pwned}) \`touch ${pwned}\` "; touch ${pwned} # \n next`;
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(local, {
        with: { script: 'printf "%s\\n" "$VALUE"', env: { VALUE: value } },
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "succeeded");
    assert.deepEqual(logs.texts("stdout"), value.split("\n"));
    assert.equal(await exists(pwned), false);
  } finally {
    await local.cleanup();
  }
});

test("an argv starting with - is the program, not an option of a wrapper", async () => {
  const local = await makeDirs();
  try {
    const result = await executeStep(stepRequest(local, { with: { argv: ["--version"] } }));
    assert.equal(result.outcome, "failed");
    // Looked up as a program (and not found), never passed to time or prlimit as an option.
    assert.match(result.reason, /^command not found: --version /);
  } finally {
    await local.cleanup();
  }
});

test("the step sees only its own environment, HOME, PATH, TMPDIR and PACKRUN_OUTPUT", async () => {
  const local = await makeDirs();
  process.env.PACKRUN_TEST_WORKER_ONLY = "worker-secret-value";
  try {
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(local, {
        with: { argv: ["env"], env: { GREETING: "hello" } },
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "succeeded");
    const env = Object.fromEntries(
      logs
        .texts("stdout")
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    assert.equal(env.PACKRUN_TEST_WORKER_ONLY, undefined);
    assert.equal(env.GREETING, "hello");
    assert.equal(env.HOME, local.workdir);
    assert.equal(env.PACKRUN_OUTPUT, path.join(local.workdir, ".packrun", "output"));
    assert.equal(env.TMPDIR, path.join(local.workdir, ".packrun", "tmp"));
    assert.ok(env.PATH);
  } finally {
    delete process.env.PACKRUN_TEST_WORKER_ONLY;
    await local.cleanup();
  }
});

test("reserved or malformed env names and bad parameters fail before running", async () => {
  const local = await makeDirs();
  try {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ argv: ["true"], env: { PACKRUN_OUTPUT: "/etc/passwd" } }, /reserved/],
      [{ argv: ["true"], env: { "BAD-NAME": "x" } }, /invalid environment variable name/],
      [{ argv: ["true"], script: "true" }, /exactly one of argv or script/],
      [{}, /exactly one of argv or script/],
      [{ argv: [] }, /with\.argv/],
      [{ argv: ["true"], extra: 1 }, /invalid parameters for builtin:shell/],
      [{ argv: ["true"], workdir: "../x" }, /must not contain "\.\."/],
      [{ argv: ["true"], workdir: "/etc" }, /must be a relative path/],
    ];
    for (const [params, expected] of cases) {
      const result = await executeStep(stepRequest(local, { with: params }));
      assert.equal(result.outcome, "failed", JSON.stringify(params));
      assert.match(result.reason, expected, JSON.stringify(params));
      assert.equal(result.exitCode, null);
    }
  } finally {
    await local.cleanup();
  }
});

test("with.workdir is a directory inside the attempt workdir", async () => {
  const local = await makeDirs();
  try {
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(local, { with: { argv: ["pwd"], workdir: "sub/dir" }, onLog: logs.onLog }),
    );
    assert.equal(result.outcome, "succeeded");
    assert.deepEqual(logs.texts("stdout"), [path.join(local.workdir, "sub", "dir")]);
  } finally {
    await local.cleanup();
  }
});

test("outputs and artifacts are collected; secrets are masked in logs and outputs", async () => {
  const local = await makeDirs();
  try {
    const token = "tok-9f8e7d6c5b4a";
    const logs = collectLogs();
    const script = [
      'echo "token is $TOKEN"',
      'printf %s "$TOKEN" | base64',
      'echo "$TOKEN" | base64',
      'mkdir -p out && printf "report" > out/report.txt',
      'echo "answer=42" >> "$PACKRUN_OUTPUT"',
      'echo "leak=$TOKEN" >> "$PACKRUN_OUTPUT"',
      'printf "notes<<EOF\\nline a\\nline b\\nEOF\\n" >> "$PACKRUN_OUTPUT"',
    ].join("\n");
    const result = await executeStep(
      stepRequest(local, {
        with: { script, env: { TOKEN: token } },
        secrets: { token },
        artifacts: [{ name: "report", path: "out/report.txt" }],
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.deepEqual(logs.texts("stdout"), ["token is ***", "***", "***"]);
    assert.deepEqual(result.outputs, { answer: "42", leak: "***", notes: "line a\nline b" });
    assert.deepEqual(result.artifacts, [
      {
        name: "report",
        path: "out/report.txt",
        digest: `sha256:${createHash("sha256").update("report").digest("hex")}`,
        sizeBytes: 6,
      },
    ]);
  } finally {
    await local.cleanup();
  }
});

test("an invalid output line or a missing artifact fails a step that exited 0", async () => {
  const local = await makeDirs();
  try {
    const invalid = await executeStep(
      stepRequest(local, {
        with: { script: 'echo "ok=1" > "$PACKRUN_OUTPUT"; echo "oops" >> "$PACKRUN_OUTPUT"' },
      }),
    );
    assert.equal(invalid.outcome, "failed");
    assert.equal(invalid.exitCode, 0);
    assert.match(invalid.reason, /invalid \$PACKRUN_OUTPUT line 2 \("oops"\)/);

    const missing = await executeStep(
      stepRequest(local, { with: { argv: ["true"] }, artifacts: [{ name: "r", path: "r.txt" }] }),
    );
    assert.equal(missing.outcome, "failed");
    assert.equal(missing.reason, 'artifact "r" (r.txt) was not found');
  } finally {
    await local.cleanup();
  }
});

test("a double-forked setsid grandchild does not outlive the step", async (t) => {
  if (!support.pidNamespace) {
    t.skip("bubblewrap cannot create a PID namespace here: documented process-group fallback");
    return;
  }
  const local = await makeDirs();
  try {
    const marker = uniqueMarker();
    const result = await executeStep(
      stepRequest(local, {
        with: {
          script: `setsid sh -c 'sleep 1000; :' "$MARK" & echo started`,
          env: { MARK: marker },
        },
      }),
    );
    assert.equal(result.outcome, "succeeded");
    assert.ok(await waitFor(async () => (await processesWithMarker(marker)).length === 0));
  } finally {
    await local.cleanup();
  }
});

test("timeout: SIGTERM reaches the whole tree first, no descendant survives", async () => {
  const local = await makeDirs();
  try {
    const marker = uniqueMarker();
    const logs = collectLogs();
    const script = [
      `setsid sh -c 'sleep 1000; :' "$MARK" &`,
      "trap 'echo got TERM; exit 0' TERM",
      "echo started",
      "sleep 1000 & wait",
    ].join("\n");
    const result = await executeStep(
      stepRequest(local, {
        with: { script, env: { MARK: marker } },
        timeoutMs: 1_500,
        killGraceMs: 10_000,
        onLog: logs.onLog,
      }),
    );
    assert.equal(result.outcome, "timed_out");
    assert.equal(result.reason, "timed out after 1500ms");
    assert.ok(logs.texts("stdout").includes("got TERM"), logs.texts().join("|"));
    // The trap exited promptly: no need to wait for the 10 s grace period.
    assert.ok(result.durationMs < 9_000, `took ${result.durationMs} ms`);
    if (support.pidNamespace) {
      assert.ok(await waitFor(async () => (await processesWithMarker(marker)).length === 0));
    }
  } finally {
    await local.cleanup();
  }
});

test("timeout: a step ignoring SIGTERM is killed after the grace period", async () => {
  const local = await makeDirs();
  try {
    const started = Date.now();
    const result = await executeStep(
      stepRequest(local, {
        with: { script: "trap '' TERM; while :; do sleep 1; done" },
        timeoutMs: 1_000,
        killGraceMs: 1_000,
      }),
    );
    assert.equal(result.outcome, "timed_out");
    assert.equal(result.reason, "timed out after 1s");
    assert.equal(result.signal, "SIGKILL");
    assert.ok(Date.now() - started >= 2_000);
  } finally {
    await local.cleanup();
  }
});

test("cancel: aborting the signal terminates the step as cancelled", async () => {
  const local = await makeDirs();
  try {
    const marker = uniqueMarker();
    const controller = new AbortController();
    const result = await executeStep(
      stepRequest(local, {
        with: {
          script: `setsid sh -c 'sleep 1000; :' "$MARK" & echo started; sleep 1000`,
          env: { MARK: marker },
        },
        signal: controller.signal,
        onLog: (line) => {
          if (line.text === "started") controller.abort();
        },
      }),
    );
    assert.equal(result.outcome, "cancelled");
    assert.equal(result.reason, "cancelled");
    if (support.pidNamespace) {
      assert.ok(await waitFor(async () => (await processesWithMarker(marker)).length === 0));
    }
    const before = await executeStep(stepRequest(local, { signal: controller.signal }));
    assert.equal(before.outcome, "cancelled");
    assert.equal(before.reason, "cancelled before start");
  } finally {
    await local.cleanup();
  }
});

test("without bubblewrap a step fails closed; with isolation turned off, its process group is killed at step end and timeout", async () => {
  const local = await makeDirs();
  try {
    const refused = await executeStepWith(
      stepRequest(local, { with: { script: `touch ${path.join(local.root, "ran")}` } }),
      { ...support, bwrap: null, pidNamespace: false, sandbox: false },
    );
    assert.equal(refused.outcome, "failed");
    assert.equal(
      refused.reason,
      "step isolation needs bubblewrap (Debian package bubblewrap); this worker has none",
    );
    assert.equal(await exists(path.join(local.root, "ran")), false);

    const noBwrap: RuntimeSupport = {
      ...support,
      bwrap: null,
      pidNamespace: false,
      sandbox: false,
      unisolated: true,
    };
    const marker = uniqueMarker();
    const logs = collectLogs();
    const ended = await executeStepWith(
      stepRequest(local, {
        with: { script: `sh -c 'sleep 1000; :' "$MARK" & echo started`, env: { MARK: marker } },
        onLog: logs.onLog,
      }),
      noBwrap,
    );
    assert.equal(ended.outcome, "succeeded");
    assert.ok(await waitFor(async () => (await processesWithMarker(marker)).length === 0));

    const timedOut = await executeStepWith(
      stepRequest(local, {
        with: { script: `sh -c 'sleep 1000; :' "$MARK" & sleep 1000`, env: { MARK: marker } },
        timeoutMs: 1_000,
        killGraceMs: 1_000,
      }),
      noBwrap,
    );
    assert.equal(timedOut.outcome, "timed_out");
    assert.ok(await waitFor(async () => (await processesWithMarker(marker)).length === 0));

    const sealed = await executeStepWith(
      stepRequest(local, {
        with: { script: `touch ${path.join(local.root, "ran")}` },
        sandbox: { mode: "sealed", egressAllowlist: [] },
      }),
      noBwrap,
    );
    assert.equal(sealed.outcome, "failed");
    assert.equal(sealed.reason, "sealed mode requires the sandbox runtime");
    assert.equal(await exists(path.join(local.root, "ran")), false);
  } finally {
    await local.cleanup();
  }
});

test("a flood of output is capped with one marker and does not grow worker memory", async () => {
  const local = await makeDirs();
  try {
    const logs = collectLogs();
    const rssBefore = process.memoryUsage().rss;
    const result = await executeStep(
      stepRequest(local, {
        with: {
          script:
            "head -c 300000000 /dev/zero | tr '\\0' a; echo; head -c 100000000 /dev/zero | tr '\\0' '\\n'; echo done",
        },
        limits: { maxLogBytes: 64 * 1024, maxLineBytes: 1024 },
        timeoutMs: 240_000,
        onLog: logs.onLog,
      }),
    );
    const growth = process.memoryUsage().rss - rssBefore;
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.equal(result.logTruncated, true);
    const system = logs.texts("system");
    assert.equal(system.length, 1);
    assert.match(system[0] ?? "", /^\[packrun\] output truncated after \d+ bytes$/);
    assert.ok(!logs.texts("stdout").includes("done"));
    assert.ok(growth < 150 * 1024 * 1024, `worker grew by ${growth} bytes`);
  } finally {
    await local.cleanup();
  }
});

test("CPU time and peak memory are measured", async (t) => {
  if (!support.time) {
    t.skip("GNU time is not installed");
    return;
  }
  const local = await makeDirs();
  try {
    const result = await executeStep(
      stepRequest(local, {
        with: {
          script:
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; head -c 60000000 /dev/zero | tr '\\0' a | sort > /dev/null",
        },
      }),
    );
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.ok(result.cpuMicros >= 50_000, `cpu ${result.cpuMicros}`);
    assert.ok(result.peakMemoryBytes >= 50_000_000, `peak ${result.peakMemoryBytes}`);
  } finally {
    await local.cleanup();
  }
});

test("memoryBytes limits the step's address space", async (t) => {
  if (!support.prlimit) {
    t.skip("prlimit is not installed");
    return;
  }
  const local = await makeDirs();
  try {
    const result = await executeStep(
      stepRequest(local, {
        with: { script: "head -c 200000000 /dev/zero | tr '\\0' a | sort > /dev/null" },
        limits: { maxLogBytes: 65536, maxLineBytes: 1024, memoryBytes: 64 * 1024 * 1024 },
      }),
    );
    assert.equal(result.outcome, "failed");
  } finally {
    await local.cleanup();
  }
});

test("the workdir's private files are created for the step", async () => {
  const local = await makeDirs();
  try {
    await mkdir(local.workdir, { recursive: true });
    const result = await executeStep(stepRequest(local, { with: { script: 'touch "$TMPDIR/x"' } }));
    assert.equal(result.outcome, "succeeded", result.reason);
    assert.equal((await readFile(path.join(local.workdir, ".packrun", "tmp", "x"))).length, 0);
  } finally {
    await local.cleanup();
  }
});
