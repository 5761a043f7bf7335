import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, test } from "vitest";
import { openEmbeddedPostgres } from "./pglite-database.ts";
import { preparePgliteTemplate, seedFromTemplate } from "./pglite-template.ts";

let scratch: string;
let template: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "packrun-pglite-template-"));
  // As `npm install` does (a no-op when it did already).
  template = await preparePgliteTemplate(async (dataDir) => {
    const db = await PGlite.create({ dataDir });
    await db.close();
  });
}, 120_000);
afterAll(() => rm(scratch, { recursive: true, force: true }));

test("a new database is a copy of the template, and works as one initdb made", async () => {
  const dataDir = join(scratch, "fresh", "postgres");
  const postgres = await openEmbeddedPostgres({ dataDir });
  try {
    const executor = await postgres.database("executor");
    await executor.query("CREATE TABLE runs (id text PRIMARY KEY)");
    await executor.query("INSERT INTO runs VALUES ($1)", ["r1"]);
    assert.deepEqual((await executor.query("SELECT id FROM runs")).rows, [{ id: "r1" }]);
  } finally {
    await postgres.close();
  }
  assert.equal(
    await readFile(join(dataDir, "PG_VERSION"), "utf8"),
    await readFile(join(template, "PG_VERSION"), "utf8"),
  );
  // Nothing of the copy is left beside it, and the template did not get the new table.
  assert.deepEqual(await readdir(join(scratch, "fresh")), ["postgres"]);
  const again = await openEmbeddedPostgres({ dataDir: join(scratch, "other") });
  try {
    const executor = await again.database("executor");
    await assert.rejects(executor.query("SELECT id FROM runs"), /runs/);
  } finally {
    await again.close();
  }
}, 60_000);

test("an existing database, or anything else in the directory, is never replaced", async () => {
  const dataDir = join(scratch, "kept");
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, "note.txt"), "the user's\n");
  assert.equal(await seedFromTemplate(dataDir), false);
  assert.deepEqual(await readdir(dataDir), ["note.txt"]);
  const empty = join(scratch, "empty");
  await mkdir(empty);
  assert.equal(await seedFromTemplate(empty), true, "an empty directory is seeded");
  assert.ok((await readdir(empty)).includes("PG_VERSION"));
});

test("the template is built beside its place and renamed in: once, and never left half made", async () => {
  const place = join(scratch, "cache", "pglite-test");
  let builds = 0;
  const initialise = async (dataDir: string) => {
    builds += 1;
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, "PG_VERSION"), "15\n");
  };
  // A build that fails part way leaves neither the template nor its building directory.
  await assert.rejects(
    preparePgliteTemplate(async (dataDir) => {
      await mkdir(dataDir, { recursive: true });
      await writeFile(join(dataDir, "half"), "");
      throw new Error("initdb failed");
    }, place),
    /initdb failed/,
  );
  assert.deepEqual(await readdir(join(scratch, "cache")), []);
  assert.equal(await preparePgliteTemplate(initialise, place), place);
  assert.equal(await readFile(join(place, "PG_VERSION"), "utf8"), "15\n");
  // Made already: not built again.
  assert.equal(await preparePgliteTemplate(initialise, place), place);
  assert.equal(builds, 1);
  assert.deepEqual(await readdir(join(scratch, "cache")), ["pglite-test"]);
});
