import assert from "node:assert/strict";
import { test } from "vitest";
import { containerRuntime, hostSupport, runtimeSupport } from "./support.ts";

test("steps start without podman's check: hostSupport leaves it to the first container step", async () => {
  const host = await hostSupport();
  assert.equal("container" in host, false);
  assert.equal(
    host.details.some((line) => /container runtime|podman/.test(line)),
    false,
    `the host probe ran podman: ${host.details.join("; ")}`,
  );
  // The full probe (a separate executor's start-up report) adds the one container check.
  const container = await containerRuntime();
  const full = await runtimeSupport();
  assert.equal(full.container, container.works);
  assert.deepEqual(full.details, [...host.details, container.detail]);
  assert.equal(await containerRuntime(), container, "podman is checked once per process");
});
