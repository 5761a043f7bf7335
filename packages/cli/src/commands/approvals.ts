import {
  type ApprovalRequest,
  loadSigningKey,
  maxApprovalEnvelopeBytes,
  parseApprovalRequest,
  parseApprovalResponse,
  type SigningKey,
  serializeEnvelope,
  signApprovalResponse,
  verifyEnvelope,
} from "@packrun/attestation";
import type { Command } from "commander";
import type {
  ExportApprovalRequestResponse,
  ImportApprovalResponseResponse,
} from "../api-types.ts";
import { CliError } from "../cli-error.ts";
import { ExitCode } from "../exit-codes.ts";
import { apiPath } from "../gateway-client.ts";
import { addGatewayOptions, connect, type GatewayOptions } from "../gateway-options.ts";
import { collect } from "../option-values.ts";
import { emitOutput, renderJson } from "../output.ts";
import { printable } from "../printable.ts";
import { readTextFile } from "../read-text-file.ts";
import { trustedKeys } from "../trusted-keys.ts";

interface ExportOptions extends GatewayOptions {
  output?: string;
  ttl?: string;
}

interface SignOptions {
  key: string;
  trust?: string[];
  reject?: boolean;
  comment?: string;
  output?: string;
  allowUnverified?: boolean;
}

/** `--ttl`: seconds, or a number with s, m, h or d. */
function ttlSeconds(text: string): number {
  const match = /^(\d{1,7})([smhd]?)$/.exec(text.trim());
  if (match === null)
    throw new CliError(
      `--ttl ${text}: expected seconds or a number with s, m, h or d (e.g. 3600, 90m, 12h, 7d)`,
      ExitCode.invalidInput,
    );
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as "" | "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}

/** What the approver is asked, in lines safe to print. */
function describeRequest(request: ApprovalRequest): string {
  const inputs = request.inputs.map(
    (input) =>
      `    ${printable(input.name)} = ${input.value === undefined ? `(${input.digest})` : printable(JSON.stringify(input.value))}`,
  );
  return [
    `approval request ${request.requestId}`,
    `  run      ${request.runId} (tenant ${printable(request.tenant)})`,
    `  pack     ${printable(request.pack.name)}@${printable(request.pack.version)} ${request.pack.digest}`,
    `  plan     ${request.planHash}`,
    `  gate     ${printable(request.gate.stepId)} (approval ${printable(request.gate.approvalId)})${request.gate.grants.length > 0 ? `, needs one of: ${request.gate.grants.map(printable).join(", ")}` : ""}`,
    ...(request.gate.message === "" ? [] : [`  message  ${printable(request.gate.message)}`]),
    `  quorum   ${request.quorum.approvedBy.length}/${request.quorum.required} approvals${request.quorum.approvedBy.length > 0 ? ` (${request.quorum.approvedBy.map(printable).join(", ")})` : ""}`,
    `  expires  ${request.expiresAt}`,
    ...(inputs.length > 0 ? ["  inputs", ...inputs] : []),
    "",
  ].join("\n");
}

async function readApproverKey(path: string): Promise<SigningKey> {
  const pem = await readTextFile(path, "approver key", 64 * 1024);
  try {
    return loadSigningKey(pem, path);
  } catch (error) {
    throw new CliError(
      `${path}: ${(error as Error).message} (an Ed25519 or ECDSA P-256 private key in PEM)`,
      ExitCode.invalidInput,
      { cause: error },
    );
  }
}

/**
 * `packrun approvals export|sign|import`: offline approvals for approvers who cannot reach the
 * gateway. `sign` needs no gateway at all.
 */
export function registerApprovalsCommand(program: Command): void {
  const approvals = program
    .command("approvals")
    .summary("approve gates offline: export a request, sign it air-gapped, import the answer")
    .description(
      "Offline approvals. `export` writes a signed approval request for a gate awaiting " +
        "approval; carry it to the approver, who runs `sign` (no network needed) with their own " +
        "Ed25519 or P-256 key; `import` applies the signed response. The executor accepts it " +
        "only when the key is an approver key configured for the tenant, the response answers " +
        "that request (once), the plan hash is the run's and the request has not expired.",
    );

  addGatewayOptions(
    approvals
      .command("export")
      .summary("write a signed approval request for a gate")
      .argument("<run>", "run id")
      .argument("<gate>", "the gate's step id, or an approval id only one gate uses")
      .option("-o, --output <file>", "where to write the request (default: stdout)")
      .option(
        "--ttl <duration>",
        "how long the request is valid: 3600, 90m, 12h, 7d (default 24h)",
      ),
  )
    .addHelpText(
      "after",
      "\nExample:\n  packrun approvals export 3f2c... release -o request.json --ttl 12h\n",
    )
    .action(async (runId: string, gate: string, options: ExportOptions) => {
      const body = options.ttl === undefined ? {} : { ttlSeconds: ttlSeconds(options.ttl) };
      const { client } = await connect(options);
      const answer = await client.json<ExportApprovalRequestResponse>(
        "POST",
        apiPath("api", "runs", runId, "gates", gate, "approval-request"),
        { json: body },
      );
      const { envelope } = answer;
      const signatures = envelope.signatures.map(({ keyid, sig }) => ({ keyid: keyid ?? "", sig }));
      await emitOutput(serializeEnvelope({ ...envelope, signatures }), options.output);
      const summary =
        options.format === "json"
          ? renderJson({
              requestId: answer.requestId,
              expiresAt: answer.expiresAt,
              file: options.output ?? null,
            })
          : `exported approval request ${answer.requestId} for gate ${printable(gate)} of run ${runId}, valid until ${answer.expiresAt}${options.output === undefined ? "" : `: ${printable(options.output)}`}\n`;
      // The request itself goes to stdout without -o: the summary must not mix into it.
      (options.output === undefined ? process.stderr : process.stdout).write(summary);
    });

  approvals
    .command("sign")
    .summary("sign a decision on an approval request, offline")
    .description(
      "Reads an approval request, shows what it asks, checks its signature with the trusted " +
        "packrun keys (--trust, else PACKRUN_TRUSTED_KEYS, else trustedKeys in the config file) " +
        "and writes the decision signed with the approver's private key. Needs no gateway. " +
        "Without a trusted key it refuses unless --allow-unverified is given.",
    )
    .argument("<request>", "the request file `approvals export` wrote")
    .requiredOption("--key <pem>", "the approver's private key (Ed25519 or ECDSA P-256 PEM)")
    .option(
      "--trust <pem>",
      "a trusted packrun public key (PEM or JWK Set); repeat for several",
      collect,
    )
    .option("--allow-unverified", "sign without checking the request's signature (not advised)")
    .option("--reject", "reject instead of approve")
    .option("-c, --comment <text>", "a comment recorded with the decision", "")
    .option("-o, --output <file>", "where to write the response (default: stdout)")
    .addHelpText(
      "after",
      "\nExamples:\n  packrun approvals sign request.json --key alice.key.pem --trust packrun.pub.pem -o response.json\n" +
        "  packrun approvals sign request.json --key alice.key.pem --reject -c 'scan not clean' -o response.json\n\n" +
        "Exit 2 for an unreadable or expired request, 6 without a trusted key, 7 when the request\n" +
        "is not signed by a trusted key.\n",
    )
    .action(async (requestPath: string, options: SignOptions) => {
      const text = await readTextFile(requestPath, "approval request", maxApprovalEnvelopeBytes);
      const request = parseApprovalRequest(text);
      if (!request.ok)
        throw new CliError(`${requestPath}: ${request.reason}`, ExitCode.invalidInput);
      const keys = await trustedKeys(options.trust ?? []);
      if (keys.length === 0 && options.allowUnverified !== true)
        throw new CliError(
          `${requestPath}: no trusted packrun key to check the request with: pass --trust (the evidence service's public key, published at /.well-known/packrun/signing-keys), set PACKRUN_TRUSTED_KEYS, or --allow-unverified`,
          ExitCode.noTrustedKey,
        );
      let verifiedBy: string | undefined;
      if (keys.length > 0) {
        const verified = verifyEnvelope(request.envelope, keys);
        if (!verified.ok)
          throw new CliError(
            `${requestPath}: the request is not signed by a trusted packrun key (${verified.reason}); do not sign it`,
            ExitCode.untrustedSignature,
          );
        verifiedBy = verified.keyId;
      }
      if (Date.parse(request.value.expiresAt) < Date.now())
        throw new CliError(
          `${requestPath}: the request expired at ${request.value.expiresAt}; ask for a new one`,
          ExitCode.invalidInput,
        );
      const key = await readApproverKey(options.key);
      const approve = options.reject !== true;
      const response = signApprovalResponse(
        request,
        { approve, comment: options.comment ?? "" },
        key,
      );
      await emitOutput(response, options.output);
      process.stderr.write(
        `${describeRequest(request.value)}request signature: ${verifiedBy === undefined ? "NOT VERIFIED (--allow-unverified)" : `verified, packrun key ${verifiedBy}`}\n${approve ? "approved" : "rejected"} with approver key ${key.keyId}${options.output === undefined ? "" : `: ${printable(options.output)}`}\n`,
      );
    });

  addGatewayOptions(
    approvals
      .command("import")
      .summary("apply an offline approver's signed response")
      .argument("<response>", "the response file `approvals sign` wrote"),
  )
    .addHelpText(
      "after",
      "\nExample:\n  packrun approvals import response.json\n\n" +
        "JSON output: {runId, approver, gate, recorded, runState} as POST /api/approvals/import answers.\n",
    )
    .action(async (responsePath: string, options: GatewayOptions) => {
      const text = await readTextFile(responsePath, "approval response", maxApprovalEnvelopeBytes);
      const response = parseApprovalResponse(text);
      if (!response.ok)
        throw new CliError(`${responsePath}: ${response.reason}`, ExitCode.invalidInput);
      const { client } = await connect(options);
      const answer = await client.json<ImportApprovalResponseResponse>(
        "POST",
        "/api/approvals/import",
        { json: response.envelope },
      );
      if (options.format === "json") {
        process.stdout.write(renderJson(answer));
        return;
      }
      const { gate } = answer;
      const approvals = gate.decisions.filter((decision) => decision.approved).length;
      const verb = response.value.decision === "approve" ? "approved" : "rejected";
      process.stdout.write(
        `${answer.recorded ? "" : "already "}${verb} gate ${printable(gate.stepId)} of run ${answer.runId} as ${printable(answer.approver)}: ${approvals}/${gate.requiredApprovals} approvals, gate ${gate.state}, run ${answer.runState}\n`,
      );
    });
}
