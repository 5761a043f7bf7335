import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { loadVerificationKey, type VerificationKey } from "@packrun/attestation";
import { PackrunError } from "@packrun/errors";
import { z } from "zod";

/** One approver's public key as configured for a tenant. */
export interface ApproverKey {
  /** Identity decisions signed with this key are recorded under (counts once per gate). */
  approver: string;
  /** Groups the approver holds, matched against a gate's `grants`. */
  groups: readonly string[];
  key: VerificationKey;
}

/** Approver keys by tenant. */
export type ApproverKeys = ReadonlyMap<string, readonly ApproverKey[]>;

const entrySchema = z
  .strictObject({
    approver: z.string().min(1).max(500),
    groups: z.array(z.string().min(1).max(200)).max(100).default([]),
    /** SPKI PEM of the approver's Ed25519 or P-256 public key... */
    publicKey: z.string().min(1).optional(),
    /** ...or a file holding it, relative to the configuration file. */
    publicKeyFile: z.string().min(1).optional(),
    /** Optional: the key id the key must have (a check against a wrong file). */
    keyId: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits")
      .optional(),
  })
  .refine((entry) => (entry.publicKey === undefined) !== (entry.publicKeyFile === undefined), {
    message: "give exactly one of publicKey and publicKeyFile",
  });

/**
 * The approver key file (PACKRUN_APPROVER_KEYS_FILE): for each tenant, the approvers whose
 * offline responses it accepts. Documented in docs/operations.md.
 */
export const approverKeysFileSchema = z.strictObject({
  tenants: z.record(z.string().min(1).max(200), z.array(entrySchema).max(10_000)),
});

/**
 * Parses an approver key file's JSON text; `baseDir` resolves relative `publicKeyFile`s.
 * @throws PackrunError CONFIG_INVALID naming the file, the entry and what is wrong
 */
export async function parseApproverKeys(
  text: string,
  baseDir: string,
  source: string,
): Promise<ApproverKeys> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new PackrunError("CONFIG_INVALID", `${source} is not JSON`, { cause });
  }
  const parsed = approverKeysFileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
    );
    throw new PackrunError("CONFIG_INVALID", `${source}: ${problems.join("; ")}`);
  }
  const byTenant = new Map<string, ApproverKey[]>();
  for (const [tenant, entries] of Object.entries(parsed.data.tenants)) {
    const keys: ApproverKey[] = [];
    const seen = new Map<string, string>();
    for (const [index, entry] of entries.entries()) {
      const where = `${source}: tenants.${tenant}[${index}] (${entry.approver})`;
      let pem = entry.publicKey;
      if (entry.publicKeyFile !== undefined) {
        const path = isAbsolute(entry.publicKeyFile)
          ? entry.publicKeyFile
          : resolve(baseDir, entry.publicKeyFile);
        try {
          pem = await readFile(path, "utf8");
        } catch (cause) {
          throw new PackrunError(
            "CONFIG_INVALID",
            `${where}: cannot read publicKeyFile ${path}: ${(cause as NodeJS.ErrnoException).code ?? "error"}`,
            { cause },
          );
        }
      }
      let key: VerificationKey;
      try {
        key = loadVerificationKey(pem as string, where);
      } catch (cause) {
        throw new PackrunError("CONFIG_INVALID", `${where}: ${(cause as Error).message}`, {
          cause,
        });
      }
      if (entry.keyId !== undefined && entry.keyId !== key.keyId)
        throw new PackrunError(
          "CONFIG_INVALID",
          `${where}: the key's id is ${key.keyId}, not the configured keyId ${entry.keyId}`,
        );
      const other = seen.get(key.keyId);
      if (other !== undefined)
        // One key must name one approver: otherwise who signed would be ambiguous.
        throw new PackrunError(
          "CONFIG_INVALID",
          `${where}: key ${key.keyId} is already configured for ${other}`,
        );
      seen.set(key.keyId, entry.approver);
      keys.push({ approver: entry.approver, groups: entry.groups, key });
    }
    byTenant.set(tenant, keys);
  }
  return byTenant;
}

/**
 * Reads the approver key file at `path`.
 * @throws PackrunError CONFIG_INVALID when it cannot be read or is invalid
 */
export async function loadApproverKeys(path: string): Promise<ApproverKeys> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new PackrunError(
      "CONFIG_INVALID",
      `cannot read the approver key file ${path}: ${(cause as NodeJS.ErrnoException).code ?? "error"}`,
      { cause },
    );
  }
  return parseApproverKeys(text, dirname(path), path);
}

/**
 * Where approver keys come from: a file read again at every import (so a revoked key stops
 * counting without a restart), fixed keys, or none (every offline response is refused).
 */
export type ApproverKeySource =
  | {
      file: string;
      /** A missing file means no approver keys (the embedded default's `.packrun` file). */
      optional?: boolean;
    }
  | { keys: ApproverKeys }
  | undefined;

/** The approver keys of `source` now. */
export async function currentApproverKeys(source: ApproverKeySource): Promise<ApproverKeys> {
  if (source === undefined) return new Map();
  if ("keys" in source) return source.keys;
  try {
    return await loadApproverKeys(source.file);
  } catch (error) {
    const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
    if (source.optional === true && cause?.code === "ENOENT") return new Map();
    throw error;
  }
}
