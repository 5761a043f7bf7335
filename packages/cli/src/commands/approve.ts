import type { Command } from "commander";
import type { ApproveRequest, ApproveResponse, Run } from "../api-types.ts";
import { findApprovalGate, mintApprovalToken, planApprovalToken } from "../approval-token.ts";
import { loadConnectionSettings, requireUrl } from "../connection-settings.ts";
import { GatewayClient } from "../gateway-client.ts";
import { addGatewayOptions, bearerToken, type GatewayOptions } from "../gateway-options.ts";
import { collect } from "../option-values.ts";
import { renderJson } from "../output.ts";
import { printable } from "../printable.ts";

interface ApproveOptions extends GatewayOptions {
  reject?: boolean;
  comment?: string;
  approvalToken?: string;
  as?: string;
  group?: string[];
}

function describeDecision(runId: string, answer: ApproveResponse, approve: boolean): string {
  const { gate } = answer;
  const approvals = gate.decisions.filter((decision) => decision.approved).length;
  const verb = approve ? "approved" : "rejected";
  const head = answer.recorded
    ? `${verb} gate ${printable(gate.gateId)} of run ${runId}`
    : `already ${verb}: gate ${printable(gate.gateId)} of run ${runId} (decision unchanged)`;
  return `${head}: ${approvals}/${gate.requiredApprovals} approvals, gate ${gate.state}, run ${answer.runState}\n`;
}

/**
 * `packrun approve RUN [GATE]`: approves (or with --reject rejects) an approval gate. The
 * gateway accepts only a token bound to the run, the gate and the run's plan hash; in dev mode
 * the CLI mints one with the configured local signing key.
 */
export function registerApproveCommand(program: Command): void {
  addGatewayOptions(
    program
      .command("approve")
      .summary("approve or reject an approval gate of a run")
      .description(
        "Decide an approval gate of a run (GATE: the approval id, or the gate's step id; " +
          "optional when exactly one gate is pending). The gateway requires a token with scope " +
          "packs.approve whose claims pack_run_id, pack_gate_id and pack_plan_hash match the " +
          "run: pass one with --approval-token (or --token / PACKRUN_TOKEN); in dev mode (the " +
          'config file has "signingKeyFile") the CLI reads the run and mints that token itself.',
      )
      .argument("<run>", "run id")
      .argument("[gate]", "approval id (spec.approvals[].id) or the gate's step id")
      .option("--reject", "reject instead of approve")
      .option("-c, --comment <text>", "a comment recorded with the decision")
      .option(
        "--approval-token <jwt>",
        "a token bound to this run, gate and plan hash (default: PACKRUN_APPROVAL_TOKEN)",
      )
      .option("--as <subject>", "dev mode: approve as this subject (default: the config's)")
      .option("--group <group>", "dev mode: a group of the approver, repeatable", collect),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  packrun approve 3f2c... release --comment 'checked the scan'\n" +
        "  packrun approve 3f2c... release --reject\n" +
        '  packrun approve 3f2c... release --approval-token "$(get-approval-token)"\n\n' +
        "JSON output: {gate, recorded, runState} as POST /api/runs/{id}/approve answers.\n",
    )
    .action(async (runId: string, gateName: string | undefined, options: ApproveOptions) => {
      const settings = await loadConnectionSettings(options);
      const baseUrl = requireUrl(settings);
      const plan = planApprovalToken(
        settings,
        options.approvalToken ?? process.env.PACKRUN_APPROVAL_TOKEN,
      );
      let gateId = gateName;
      let token: string;
      if (plan.kind !== "mint" && gateName !== undefined) {
        token = plan.token;
      } else {
        // The run names the pending gate and the plan hash the token must be bound to.
        // Read with the ordinary token when there is one: an approval token may lack packs.read.
        const reader = new GatewayClient({
          baseUrl,
          token:
            plan.kind === "mint" ? await bearerToken(settings) : (settings.token ?? plan.token),
        });
        const run: Run = await reader.getRun(runId);
        const gate = findApprovalGate(run, gateName);
        gateId = gate.gateId;
        token =
          plan.kind === "mint"
            ? await mintApprovalToken(settings, run, gate, {
                subject: options.as,
                groups: options.group,
              })
            : plan.token;
      }
      const approve = options.reject !== true;
      const body: ApproveRequest = {
        approve,
        ...(gateId === undefined ? {} : { gateId }),
        ...(options.comment === undefined ? {} : { comment: options.comment }),
      };
      const client = new GatewayClient({ baseUrl, token });
      const answer = await client.approve(runId, body, token);
      process.stdout.write(
        options.format === "json" ? renderJson(answer) : describeDecision(runId, answer, approve),
      );
    });
}
