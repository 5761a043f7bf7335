/**
 * Fails when packages/proto/src/gen differs from what `buf generate` produces from proto/,
 * so stale generated code never lands. Fix with `npm run generate`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const generatedDir = "packages/proto/src/gen";

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else out.push(relative(root, full));
    }
  };
  walk(root);
  return out.sort();
}

const scratch = mkdtempSync(join(tmpdir(), "packrun-gen-"));
try {
  execFileSync("buf", ["generate", "--output", scratch], { stdio: "inherit" });
  const fresh = join(scratch, generatedDir);
  const expected = listFiles(fresh);
  const actual = listFiles(generatedDir);
  const problems: string[] = [];
  for (const file of expected) {
    if (!actual.includes(file)) problems.push(`missing: ${file}`);
    else if (!readFileSync(join(fresh, file)).equals(readFileSync(join(generatedDir, file)))) {
      problems.push(`stale: ${file}`);
    }
  }
  for (const file of actual) if (!expected.includes(file)) problems.push(`extra: ${file}`);
  if (problems.length > 0) {
    console.error(`${generatedDir} is out of date with proto/ (run \`npm run generate\`):`);
    for (const problem of problems) console.error(`  ${problem}`);
    process.exit(1);
  }
  console.error(`${generatedDir} is up to date (${expected.length} files)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
