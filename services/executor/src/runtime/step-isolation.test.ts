/**
 * Every step is hostile: these tests play it from inside an ordinary open `process` step (the
 * default runtime and mode) and check what it can reach. Issue 19: such a step used to run as
 * root with the host's files and network, read the services' keys and call the control plane.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import path from "node:path";
import { readTestEnv } from "@packrun/testing";
import { afterAll, beforeAll, describe, test } from "vitest";
import { ensureBusyboxImage } from "../../../../test/fixtures/images/busybox-image.ts";
import { executeStep } from "./execute-step.ts";
import { stepUser } from "./step-user.ts";
import { runtimeSupport } from "./support.ts";
import { collectLogs, makeDirs, stepRequest } from "./testing/step-fixtures.ts";
import type { StepExecutionRequest } from "./types.ts";

const support = await runtimeSupport();
const isRoot = process.getuid?.() === 0;
const isolated = support.sandbox && support.network !== null && support.network !== undefined;

/** Runs a script as an open process step; returns the outcome and its log lines. */
async function inStep(
  script: string,
  overrides: Partial<StepExecutionRequest> = {},
  env: Record<string, string> = {},
) {
  const dirs = await makeDirs();
  try {
    const logs = collectLogs();
    const result = await executeStep(
      stepRequest(dirs, {
        with: { script, env },
        onLog: logs.onLog,
        timeoutMs: 30_000,
        ...overrides,
      }),
    );
    assert.equal(result.outcome, "succeeded", `${result.reason}: ${logs.texts().join(" | ")}`);
    return { stdout: logs.texts("stdout") };
  } finally {
    await dirs.cleanup();
  }
}

const containers = isolated && support.container && isRoot;
const image = containers ? await ensureBusyboxImage() : "";

/** Runs a script in the busybox image as an open container step; returns its log lines. */
function inContainer(script: string, overrides: Partial<StepExecutionRequest> = {}) {
  return inStep(script, {
    uses: "builtin:container",
    runtime: "container",
    with: { image, command: ["/bin/sh", "-c", script] },
    ...overrides,
  });
}

/** busybox nc: one line "<label> open|refused" per target, 3 s each at most. */
function busyboxProbeScript(targets: readonly { label: string; host: string; port: number }[]) {
  return targets
    .map(
      ({ label, host, port }) =>
        `timeout 3 nc ${host} ${port} </dev/null >/dev/null 2>&1 && echo "${label} open" || echo "${label} refused"`,
    )
    .join("\n");
}

/** bash's /dev/tcp: one line "<label> open|refused" per target, 3 s each at most. */
function probeScript(targets: readonly { label: string; host: string; port: number }[]): string {
  return targets
    .map(
      ({ label, host, port }) =>
        `timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>/dev/null && echo "${label} open" || echo "${label} refused"`,
    )
    .join("\n");
}

function listen(host: string): Promise<Server> {
  const server = createServer((socket) => socket.end("hello\n"));
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

/** Every IPv4 address of the host as iproute2 lists them, interfaces up or down. */
function everyHostAddress(): string[] {
  const listed = JSON.parse(
    execFileSync("ip", ["-j", "-4", "addr", "show"], { encoding: "utf8" }),
  ) as {
    addr_info?: { local?: string }[];
  }[];
  return listed
    .flatMap((link) => (link.addr_info ?? []).map((info) => info.local ?? ""))
    .filter(Boolean);
}

const portOf = (server: Server): number => (server.address() as { port: number }).port;

type Target = { label: string; host: string; port: number };

/**
 * Probes, from inside a step, every control-plane address there is on this host: PostgreSQL,
 * Redis, a service on loopback, slirp's gateway to the host, and a service on 0.0.0.0 through
 * each of the host's addresses (those of interfaces that are down, such as podman's idle bridge,
 * included). The worker itself reaches every one of them; the step must reach none.
 */
async function assertControlPlaneRefused(
  probe: (targets: readonly Target[]) => Promise<{ stdout: string[] }>,
): Promise<void> {
  const env = readTestEnv();
  const loopbackService = await listen("127.0.0.1");
  const anyAddressService = await listen("0.0.0.0");
  try {
    const targets: Target[] = [
      { label: "postgres", host: "127.0.0.1", port: Number(new URL(env.databaseUrl).port) },
      { label: "redis", host: "127.0.0.1", port: Number(new URL(env.redisUrl).port) },
      { label: "grpc-on-loopback", host: "127.0.0.1", port: portOf(loopbackService) },
      { label: "slirp-host-gateway", host: "10.0.2.2", port: portOf(anyAddressService) },
      ...everyHostAddress()
        .filter((address) => !address.startsWith("127."))
        .map((address) => ({
          label: `host-address ${address}`,
          host: address,
          port: portOf(anyAddressService),
        })),
    ];
    assert.ok(targets.length > 4, "the host has an address besides loopback");
    const { stdout } = await probe(targets);
    assert.deepEqual(
      stdout,
      targets.map(({ label }) => `${label} refused`),
    );
  } finally {
    loopbackService.close();
    anyAddressService.close();
  }
}

describe.skipIf(!isolated)("an open process step", () => {
  test("runs as an unprivileged user without capabilities and with no_new_privs", async () => {
    const { stdout } = await inStep(
      'id -u; grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs):" /proc/self/status | tr -s "\\t " " "',
    );
    const [uid, ...status] = stdout;
    if (isRoot) assert.notEqual(uid, "0");
    assert.deepEqual(status, [
      "CapPrm: 0000000000000000",
      "CapEff: 0000000000000000",
      "CapBnd: 0000000000000000",
      "NoNewPrivs: 1",
    ]);
  });

  test("sees its workdir and a read-only system, nothing of the service, its keys or other runs", async () => {
    const outside = await makeDirs();
    try {
      // Stand-ins for the worker's state: a key file beside the workdirs, another run's workdir.
      await mkdir(outside.workdir, { recursive: true });
      await writeFile(path.join(outside.root, "evidence-signing-key.pem"), "PRIVATE");
      await writeFile(path.join(outside.workdir, "other-run.txt"), "OTHER");
      const { stdout } = await inStep(
        [
          'for f in "$KEY" "$OTHER" "$REPO/package.json" /etc/shadow; do cat "$f" >/dev/null 2>&1 && echo "read $f" || echo "no $f"; done',
          'for d in /etc /usr "$REPO"; do touch "$d/x" 2>/dev/null && echo "wrote $d" || echo "no write $d"; done',
          'echo data > mine.txt && echo "wrote workdir"',
        ].join("\n"),
        {},
        {
          KEY: path.join(outside.root, "evidence-signing-key.pem"),
          OTHER: path.join(outside.workdir, "other-run.txt"),
          REPO: process.cwd(),
        },
      );
      assert.deepEqual(stdout, [
        `no ${path.join(outside.root, "evidence-signing-key.pem")}`,
        `no ${path.join(outside.workdir, "other-run.txt")}`,
        `no ${process.cwd()}/package.json`,
        "no /etc/shadow",
        "no write /etc",
        "no write /usr",
        `no write ${process.cwd()}`,
        "wrote workdir",
      ]);
    } finally {
      await outside.cleanup();
    }
  });

  test("cannot reach the control plane: PostgreSQL, Redis, services on loopback or the host's addresses", async () => {
    await assertControlPlaneRefused((targets) => inStep(probeScript(targets)));
  });
});

describe.skipIf(!containers)("an open container step", () => {
  test("runs as the step user without capabilities, with no_new_privs and a read-only root", async () => {
    const { stdout } = await inContainer(
      [
        "id -u",
        "grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status | tr -s ' \\t' ' '",
        "touch /etc/probe 2>/dev/null && echo root-writable || echo root-read-only",
        "touch /workspace/probe && echo workspace-writable",
      ].join("\n"),
    );
    assert.deepEqual(stdout, [
      String(stepUser().uid),
      "CapPrm: 0000000000000000",
      "CapEff: 0000000000000000",
      "NoNewPrivs: 1",
      "root-read-only",
      "workspace-writable",
    ]);
  });

  test("cannot reach the control plane: PostgreSQL, Redis, services on loopback or the host's addresses", async () => {
    await assertControlPlaneRefused((targets) => inContainer(busyboxProbeScript(targets)));
  });
});

/**
 * A test host in a network namespace of its own, joined to this one by a veth pair: two TCP
 * servers on 10.231.<n>.2, as if somewhere on the outside network.
 */
describe.skipIf(!isolated || !isRoot)("egressAllowlist", () => {
  const net = randomInt(1, 250);
  const namespace = `prt-egress-${process.pid}`;
  const hostSide = `prh${process.pid % 100_000}`;
  const address = `10.231.${net}.2`;
  const servers: ChildProcess[] = [];
  const ports: number[] = [];

  const ip = (...args: string[]): void => {
    execFileSync("ip", args, { stdio: "pipe" });
  };

  beforeAll(async () => {
    ip("netns", "add", namespace);
    ip("link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", namespace);
    ip("addr", "add", `10.231.${net}.1/30`, "dev", hostSide);
    ip("link", "set", hostSide, "up");
    ip("-n", namespace, "addr", "add", `${address}/30`, "dev", "eth0");
    ip("-n", namespace, "link", "set", "eth0", "up");
    ip("-n", namespace, "link", "set", "lo", "up");
    for (let i = 0; i < 2; i++) {
      const server = spawn(
        "ip",
        [
          "netns",
          "exec",
          namespace,
          process.execPath,
          "-e",
          `const s = require("node:net").createServer((c) => c.end("hello\\n"));
           s.listen(0, "${address}", () => console.log(s.address().port));`,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      servers.push(server);
      const port = await new Promise<number>((resolve) =>
        server.stdout?.once("data", (chunk: Buffer) => resolve(Number(chunk.toString()))),
      );
      ports.push(port);
    }
  });

  afterAll(() => {
    for (const server of servers) server.kill("SIGKILL");
    try {
      ip("netns", "del", namespace);
      ip("link", "del", hostSide);
    } catch {
      // the veth pair goes away with the namespace
    }
  });

  const targets = () => [
    { label: "allowed", host: address, port: ports[0] ?? 0 },
    { label: "other", host: address, port: ports[1] ?? 0 },
  ];

  test("an allowlisted destination is reachable and every other one is refused", async () => {
    const { stdout } = await inStep(probeScript(targets()), {
      sandbox: { mode: "open", egressAllowlist: [`${address}:${ports[0]}`] },
    });
    assert.deepEqual(stdout, ["allowed open", "other refused"]);
  });

  test("a CIDR entry without a port allows the whole range", async () => {
    const { stdout } = await inStep(probeScript(targets()), {
      sandbox: { mode: "open", egressAllowlist: [`10.231.${net}.0/30`] },
    });
    assert.deepEqual(stdout, ["allowed open", "other open"]);
  });

  test("without an allowlist an open step reaches the outside, but an allowlist cannot reopen the host", async () => {
    const { stdout } = await inStep(probeScript(targets()));
    assert.deepEqual(stdout, ["allowed open", "other open"]);
    const listener = await listen("0.0.0.0");
    try {
      const { stdout: host } = await inStep(
        probeScript([{ label: "host", host: `10.231.${net}.1`, port: portOf(listener) }]),
        { sandbox: { mode: "open", egressAllowlist: [`10.231.${net}.0/30`] } },
      );
      assert.deepEqual(host, ["host refused"]);
    } finally {
      listener.close();
    }
  });

  test.runIf(containers)("a container step's allowlist is enforced the same way", async () => {
    const { stdout } = await inContainer(busyboxProbeScript(targets()), {
      sandbox: { mode: "open", egressAllowlist: [`${address}:${ports[0]}`] },
    });
    assert.deepEqual(stdout, ["allowed open", "other refused"]);
    const { stdout: unrestricted } = await inContainer(busyboxProbeScript(targets()));
    assert.deepEqual(unrestricted, ["allowed open", "other open"]);
  });

  test("a sealed step reaches nothing at all", async () => {
    const { stdout } = await inStep(probeScript(targets()), {
      sandbox: { mode: "sealed", egressAllowlist: [] },
    });
    assert.deepEqual(stdout, ["allowed refused", "other refused"]);
  });
});

/** Perl forks until it may not (a shell would die at the first refused fork). */
const forkUpTo = (n: number): string =>
  `perl -e 'my $n = 0; for (1..${n}) { my $p = fork; last unless defined $p; if ($p == 0) { sleep 5; exit 0 } $n++ } print "forked $n\\n"'`;

/** Four processes of 40 MB each: under any per-process limit, over a 64 MiB step limit. */
const fourHogs =
  'for i in 1 2 3 4; do perl -e \'$x = "a" x 40_000_000; sleep 2; print "kept\\n"\' & done; wait';

const limits = (extra: { pids?: number; memoryBytes?: number }) => ({
  maxLogBytes: 1 << 20,
  maxLineBytes: 4096,
  ...extra,
});

describe.skipIf(!isolated || !support.cgroups)("per-step limits (cgroups)", () => {
  test("a fork bomb meets its own step's process limit while another step keeps forking", async () => {
    const [bomb, other] = await Promise.all([
      inStep(forkUpTo(200), { limits: limits({ pids: 16 }), timeoutMs: 20_000 }),
      inStep(forkUpTo(10), { limits: limits({ pids: 16 }) }),
    ]);
    const forked = Number(/forked (\d+)/.exec(bomb.stdout.join(" "))?.[1]);
    assert.ok(forked > 0 && forked < 16, `the bomb forked ${forked} processes with a limit of 16`);
    assert.deepEqual(other.stdout, ["forked 10"]);
  });

  test("a memory hog is killed at its step's memory limit, however many processes it spreads over", async () => {
    const limited = await inStep(`${fourHogs}; echo done`, {
      limits: limits({ memoryBytes: 64 * 1024 * 1024 }),
      timeoutMs: 30_000,
    });
    const kept = limited.stdout.filter((line) => line === "kept").length;
    assert.ok(kept < 4, `${kept} of 4 hogs kept 40 MB each under a 64 MiB step limit`);
    // Control: with the default limit (2 GiB) all four keep their memory.
    const control = await inStep(`${fourHogs}; echo done`, { timeoutMs: 30_000 });
    assert.equal(control.stdout.filter((line) => line === "kept").length, 4);
  });
});
