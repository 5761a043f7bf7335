import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PackrunError } from "@packrun/errors";
import type { Database } from "./database.ts";

/** One migration file: `NNN-description.sql`. */
export interface Migration {
  id: number;
  name: string;
  sql: string;
  digest: string;
}

const fileName = /^(\d{3,})-([a-z0-9-]+)\.sql$/;

/** Reads and orders the numbered migrations in `dir`; a gap, duplicate or odd name is an error. */
export async function readMigrations(dir: string): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const file of (await readdir(dir)).sort()) {
    if (!file.endsWith(".sql")) continue;
    const match = fileName.exec(file);
    if (match === null) {
      throw new PackrunError(
        "INTERNAL",
        `${join(dir, file)}: migration files are named NNN-words.sql`,
      );
    }
    const sql = await readFile(join(dir, file), "utf8");
    migrations.push({
      id: Number(match[1]),
      name: file,
      sql,
      digest: createHash("sha256").update(sql).digest("hex"),
    });
  }
  migrations.forEach((migration, index) => {
    if (migration.id !== index + 1) {
      throw new PackrunError(
        "INTERNAL",
        `${dir}: expected migration ${index + 1}, found ${migration.name}`,
      );
    }
  });
  return migrations;
}

const schemaName = /^[a-z_][a-z0-9_]*$/;

/**
 * Brings the service's own schema up to date: applies the migrations not yet recorded in
 * `<schema>.migrations`, all in one transaction under an advisory lock so concurrent starts of
 * the same service are safe. A recorded migration whose file changed since is refused: applied
 * migrations are immutable; write a new one.
 */
export async function migrate(db: Database, schema: string, dir: string): Promise<number[]> {
  if (!schemaName.test(schema)) throw new PackrunError("INTERNAL", `bad schema name ${schema}`);
  const migrations = await readMigrations(dir);
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`packrun.migrate.${schema}`]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await tx.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.migrations (
         id integer PRIMARY KEY,
         name text NOT NULL,
         digest text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const applied = await tx.query<{ id: number; name: string; digest: string }>(
      `SELECT id, name, digest FROM ${schema}.migrations ORDER BY id`,
    );
    const done = new Map(applied.rows.map((row) => [row.id, row]));
    const newlyApplied: number[] = [];
    for (const migration of migrations) {
      const previous = done.get(migration.id);
      if (previous !== undefined) {
        if (previous.digest !== migration.digest) {
          throw new PackrunError(
            "INTERNAL",
            `${schema} migration ${migration.name} changed after it was applied; add a new migration instead`,
          );
        }
        continue;
      }
      await tx.query(`SET LOCAL search_path TO ${schema}, public`);
      await tx.query(migration.sql);
      await tx.query(`INSERT INTO ${schema}.migrations (id, name, digest) VALUES ($1, $2, $3)`, [
        migration.id,
        migration.name,
        migration.digest,
      ]);
      newlyApplied.push(migration.id);
    }
    return newlyApplied;
  });
}
