import { scopes } from "@packrun/auth";
import type { Gate, Run } from "./api-types.ts";
import { CliError } from "./cli-error.ts";
import type { ConnectionSettings } from "./connection-settings.ts";
import { ExitCode } from "./exit-codes.ts";
import { profileFromConfig } from "./gateway-options.ts";
import { mintLocalToken } from "./local-token.ts";
import { printable } from "./printable.ts";

/** Where the token of an approval comes from. */
export type ApprovalTokenPlan =
  | { kind: "explicit"; token: string }
  | { kind: "mint" }
  | { kind: "configured"; token: string };

/**
 * Decides which token decides a gate. A token given explicitly (--approval-token,
 * PACKRUN_APPROVAL_TOKEN, --token or PACKRUN_TOKEN) is used as is: it must already carry the
 * approval binding claims. Otherwise, in dev mode (a config file with `signingKeyFile`), a token
 * bound to the run, gate and plan hash is minted; otherwise the config file's token is used.
 * @throws CliError (exit 3) when there is no token at all
 */
export function planApprovalToken(
  settings: ConnectionSettings,
  approvalToken: string | undefined,
): ApprovalTokenPlan {
  if (approvalToken !== undefined && approvalToken !== "")
    return { kind: "explicit", token: approvalToken };
  if (settings.token !== undefined && settings.tokenSource !== "file")
    return { kind: "explicit", token: settings.token };
  if (settings.config.signingKeyFile !== undefined) return { kind: "mint" };
  if (settings.token !== undefined) return { kind: "configured", token: settings.token };
  throw new CliError(
    `no approval token: pass --approval-token (a token bound to the run, gate and plan hash), --token, or configure "signingKeyFile" (dev mode) in ${settings.configPath}`,
    ExitCode.auth,
  );
}

/**
 * The approval gate `name` names, by approval id or by step id; without a name, the one gate
 * pending now.
 * @throws CliError: exit 4 for an unknown gate, 2 when the choice is ambiguous, 1 when no gate
 * is pending
 */
export function findApprovalGate(run: Run, name: string | undefined): Gate {
  const approvals = run.gates.filter((gate) => gate.kind === "approval");
  if (name === undefined) {
    if (run.pendingGates.length === 1) {
      const gate =
        approvals.find(
          (candidate) =>
            candidate.gateId === run.pendingGates[0] && candidate.state === "awaiting-approval",
        ) ?? approvals.find((candidate) => candidate.gateId === run.pendingGates[0]);
      if (gate !== undefined) return gate;
    }
    if (run.pendingGates.length > 1) {
      throw new CliError(
        `run ${run.id} has several pending gates (${run.pendingGates.map(printable).join(", ")}): name one`,
        ExitCode.invalidInput,
      );
    }
    throw new CliError(
      `run ${run.id} has no approval gate awaiting a decision (state ${run.state})`,
      ExitCode.error,
    );
  }
  // A step id names one gate; an approval id may be shared by several (a staging and a prod
  // gate, a map's gates): then the one awaiting a decision, and only if it is the only one.
  const byApproval = approvals.filter((candidate) => candidate.gateId === name);
  const pending = byApproval.filter((candidate) => candidate.state === "awaiting-approval");
  if (byApproval.length > 1 && pending.length > 1) {
    throw new CliError(
      `approval ${printable(name)} of run ${run.id} is awaited at several gates (${pending.map((g) => printable(g.stepId)).join(", ")}): name one by its step id`,
      ExitCode.invalidInput,
    );
  }
  const gate =
    approvals.find((candidate) => candidate.stepId === name) ??
    (byApproval.length > 1 ? pending[0] : byApproval[0]) ??
    byApproval[0];
  if (gate === undefined) {
    const known = approvals.map((candidate) => printable(candidate.gateId)).join(", ");
    throw new CliError(
      `run ${run.id} has no approval gate ${printable(name)}${known === "" ? "" : ` (gates: ${known})`}`,
      ExitCode.notFound,
    );
  }
  return gate;
}

/**
 * Mints (dev mode) a short-lived token with scope packs.approve bound to `run`'s id and plan
 * hash and to `gate`. The subject and groups default to the config file's; without configured
 * groups the gate's grants are used: whoever holds the signing key can mint any claim anyway.
 */
export function mintApprovalToken(
  settings: ConnectionSettings,
  run: Run,
  gate: Gate,
  overrides: { subject?: string | undefined; groups?: readonly string[] | undefined },
): Promise<string> {
  const profile = profileFromConfig(settings.config);
  return mintLocalToken(
    {
      ...profile,
      subject: overrides.subject ?? profile.subject,
      groups: overrides.groups ?? profile.groups ?? gate.grants,
    },
    {
      scopes: [scopes.approve, scopes.read],
      // The gate's step id: binds the token to this one gate, also where several gates share
      // an approval id.
      approval: { runId: run.id, gateId: gate.stepId, planHash: run.planHash },
      expiresInSeconds: 300,
    },
    settings.configPath,
  );
}
