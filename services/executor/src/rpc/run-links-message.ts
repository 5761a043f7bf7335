import { create } from "@bufbuild/protobuf";
import { RerunMode, type Run, RunLinkSchema } from "@packrun/proto/executor/v1";
import type { RunLinks } from "../run/rerun-run.ts";

const modes = { rerun: RerunMode.RERUN, resume: RerunMode.RESUME } as const;

/** `run` with its rerun links set (the run it was made from, the runs made from it). */
export function withRunLinks(run: Run, links: RunLinks): Run {
  if (links.rerunOf !== null)
    run.rerunOf = create(RunLinkSchema, {
      runId: links.rerunOf.runId,
      mode: modes[links.rerunOf.mode],
    });
  run.reruns = links.reruns.map((link) =>
    create(RunLinkSchema, { runId: link.runId, mode: modes[link.mode] }),
  );
  return run;
}
