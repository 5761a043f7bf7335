import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { CliError } from "./cli-error.ts";
import { describeFsError, fsErrorExitCode } from "./fs-errors.ts";

/**
 * Writes `text` to `target` through a temp file in the same directory, flushed and then
 * renamed over the target: readers see the old file or the whole new one, never a partial
 * write, even if packrun is killed midway. Failures become a CliError naming the file.
 */
export async function writeFileAtomic(target: string, text: string): Promise<void> {
  const temp = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`,
  );
  try {
    // "wx": never reuse or follow something already at the temp name.
    const handle = await open(temp, "wx", 0o666);
    try {
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw new CliError(
      `cannot write output ${target}: ${describeFsError(error)}`,
      fsErrorExitCode(error),
      {
        cause: error,
      },
    );
  }
}
