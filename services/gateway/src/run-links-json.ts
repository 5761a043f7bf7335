import { RerunMode, type Run, type RunLink } from "@packrun/proto/executor/v1";
import type { RunJson } from "./api-schemas.ts";

type RunLinkJson = NonNullable<RunJson["rerunOf"]>;

function linkJson(link: RunLink): RunLinkJson {
  return { runId: link.runId, mode: link.mode === RerunMode.RESUME ? "resume" : "rerun" };
}

/** A run's rerun links as the API shows them; absent when there are none. */
export function runLinksJson(run: Run): Pick<RunJson, "rerunOf" | "reruns"> {
  return {
    ...(run.rerunOf === undefined || run.rerunOf.runId === ""
      ? {}
      : { rerunOf: linkJson(run.rerunOf) }),
    ...(run.reruns.length === 0 ? {} : { reruns: run.reruns.map(linkJson) }),
  };
}
