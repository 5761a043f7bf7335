/**
 * Issue 8, item 14: hostile input values reach a builtin:shell step as literal data, through
 * argv (directly, and as a positional parameter of `sh -c`) and through the environment. Each
 * step prints the value back; the log lines must be exactly the value's lines, and none of the
 * commands hidden in the values may have run (the files they would create must not exist).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { test } from "vitest";
import { eventsWhen, manifest, submitRun, useSecurityStack, waitForRun } from "./support/stack.ts";

const tag = randomBytes(6).toString("hex");
const pwned = (n: number) => `/tmp/pwned-${tag}-${n}`;

/** Values that would run a command (creating pwned(n)) if they were ever spliced into a shell. */
const values = [
  `$(touch ${pwned(0)})`,
  `"; touch ${pwned(1)} #`,
  `\`touch ${pwned(2)}\``,
  `'; touch ${pwned(3)}; echo '`,
  `x\ntouch ${pwned(4)}\ny`,
  `x && touch ${pwned(5)} || touch ${pwned(5)}`,
  `$(IFS=_;cmd=touch_${pwned(6)};$cmd)`,
  `; touch ${pwned(7)} | tee ${pwned(7)} > ${pwned(7)} &`,
  "-n",
  "--version",
  "%s%s%s%n",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, sent literally
  "${HOME}${PATH}$$",
  "{{ inputs.marker }}",
  "{{ 1 + 1 }}",
  'tab\there, unicode ✓, quote " and backslash \\',
];

const pack = manifest(
  "injection",
  `  inputs: [{name: values, type: array}, {name: marker, type: string, default: MARKER-EVALUATED}]
  steps:
    - id: direct
      map:
        items: "{{ inputs.values }}"
        step: {id: echo-direct, run: {uses: builtin:shell, with: {argv: [printf, "%s\\\\n", "{{ item }}"]}}}
    - id: positional
      map:
        items: "{{ inputs.values }}"
        step: {id: echo-positional, run: {uses: builtin:shell, with: {argv: [sh, -c, 'printf "%s\\\\n" "$1"', sh, "{{ item }}"]}}}
    - id: environment
      map:
        items: "{{ inputs.values }}"
        step: {id: echo-environment, run: {uses: builtin:shell, with: {env: {V: "{{ item }}"}, script: 'printf "%s\\\\n" "$V"'}}}
`,
);

const ctx = useSecurityStack();

test("hostile values reach argv and env as literal text and execute nothing", async () => {
  const run = await submitRun(ctx.alice, { manifest: pack, inputs: { values } });
  const finished = await waitForRun(ctx.alice, run.id, undefined, 60_000);
  assert.equal(
    finished.state,
    "succeeded",
    JSON.stringify(finished.steps.filter((s) => s.state !== "succeeded")),
  );
  const events = await eventsWhen(ctx.stack.url, await ctx.stack.mintToken(), run.id, (log) =>
    log.some((event) => event.type === "run.succeeded"),
  );
  for (const mode of ["direct", "positional", "environment"]) {
    for (const [index, value] of values.entries()) {
      const stepId = `${mode}[${index}]::echo-${mode}`;
      const lines = events
        .filter((event) => event.type === "log.stdout" && event.stepId === stepId)
        .map((event) => event.message);
      assert.deepEqual(lines, value.split("\n"), `${stepId} printed ${JSON.stringify(value)}`);
      const stderr = events.filter((e) => e.type === "log.stderr" && e.stepId === stepId);
      assert.deepEqual(stderr, [], `${stepId}: nothing on stderr`);
    }
  }
  for (let n = 0; n < values.length; n++)
    assert.equal(existsSync(pwned(n)), false, `${pwned(n)} was created: a value ran as code`);
});

test("a hostile value in the plan is data too: simulation shows it verbatim", async () => {
  const simulated = await ctx.alice.post<{ steps: { id: string }[] }>("/api/simulations", {
    manifest: pack,
    inputs: { values },
  });
  assert.equal(simulated.status, 200, JSON.stringify(simulated.body));
  const text = JSON.stringify(simulated.body);
  assert.ok(!text.includes("MARKER-EVALUATED"), "a template inside a value is not evaluated");
  for (let n = 0; n < values.length; n++) assert.equal(existsSync(pwned(n)), false);
});
