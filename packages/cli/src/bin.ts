#!/usr/bin/env node
/** The `packrun` executable. */
import { main } from "./main.ts";

// `packrun simulate ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

// `npm run packrun -- ...` runs from the repository root; resolve the user's relative paths
// against the directory they typed the command in.
if (process.env.INIT_CWD !== undefined && process.env.npm_lifecycle_event === "packrun") {
  process.chdir(process.env.INIT_CWD);
}

process.exitCode = await main(process.argv);
