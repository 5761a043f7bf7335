import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "vitest";
import { parseOutputFile, readOutputFile } from "./output-file.ts";
import { makeDirs } from "./testing/step-fixtures.ts";

test("name=value and heredoc values are parsed (GitHub Actions format)", () => {
  const parsed = parseOutputFile(
    "a=1\r\nempty=\nwith_eq=x=y\n\nmulti<<EOF\nline 1\nline 2\nEOF\nb-2=<<not heredoc\na=2\n",
  );
  assert.deepEqual(parsed, {
    ok: true,
    outputs: {
      a: "2",
      empty: "",
      with_eq: "x=y",
      multi: "line 1\nline 2",
      "b-2": "<<not heredoc",
    },
  });
});

test("an empty heredoc value is allowed", () => {
  assert.deepEqual(parseOutputFile("v<<END\nEND\n"), { ok: true, outputs: { v: "" } });
});

test("invalid lines fail with their line number", () => {
  const cases: [string, RegExp][] = [
    ["ok=1\njust text\n", /line 2 \("just text"\): expected "name=value"/],
    ["1abc=x\n", /line 1 .*invalid output name/],
    ["bad name=x\n", /line 1 .*invalid output name/],
    ["=x\n", /line 1 .*invalid output name/],
    ["v<<EOF\nno end\n", /line 1 .*no closing delimiter line "EOF"/],
    ["v<<\nx\n", /line 1 .*empty delimiter/],
  ];
  for (const [content, expected] of cases) {
    const parsed = parseOutputFile(content);
    assert.equal(parsed.ok, false, content);
    if (!parsed.ok) assert.match(parsed.error, expected);
  }
});

test("reading: absent file means no outputs; oversized files and symlink escapes fail", async () => {
  const dirs = await makeDirs();
  try {
    await mkdir(path.join(dirs.workdir, ".packrun"), { recursive: true });
    const file = path.join(dirs.workdir, ".packrun", "output");
    assert.deepEqual(await readOutputFile(dirs.workdir, file, 100), { ok: true, outputs: {} });

    await writeFile(file, `big=${"x".repeat(200)}\n`);
    const big = await readOutputFile(dirs.workdir, file, 100);
    assert.equal(big.ok, false);
    if (!big.ok) assert.match(big.error, /over the limit of 100 bytes/);

    await writeFile(path.join(dirs.root, "outside"), "stolen=yes\n");
    const link = path.join(dirs.workdir, ".packrun", "link");
    await symlink(path.join(dirs.root, "outside"), link);
    const escaped = await readOutputFile(dirs.workdir, link, 100);
    assert.equal(escaped.ok, false);
    if (!escaped.ok) assert.match(escaped.error, /outside the workdir/);
  } finally {
    await dirs.cleanup();
  }
});
