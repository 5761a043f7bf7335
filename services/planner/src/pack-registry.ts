import { createHash } from "node:crypto";
import type { Queryable } from "@packrun/db";
import { PackrunError } from "@packrun/errors";
import { type PlanningPool, sharedPlanningPool } from "@packrun/planning";
import { decodePageToken, encodePageToken, pageSize } from "./page-token.ts";
import { checkPackName, checkPublisher, checkTenant, checkVersion } from "./request-arguments.ts";
import { isCanonicalVersion, versionOrder } from "./version-order.ts";

/** One published pack version, without its manifest. */
export interface PackVersionRecord {
  tenant: string;
  name: string;
  version: string;
  /** `sha256:` + lowercase hex of the manifest's exact UTF-8 bytes. */
  digest: string;
  description: string;
  tags: string[];
  publishedBy: string;
  publishedAt: Date;
}

/** A published pack version with its manifest text. */
export interface PublishedPack extends PackVersionRecord {
  manifest: string;
}

/** Outcome of {@link PackRegistry.register}. */
export interface RegisterResult {
  version: PackVersionRecord;
  /** False when the identical manifest was already published (idempotent re-publish). */
  created: boolean;
}

/** A pack in a listing: its latest version and how many versions it has. */
export interface PackListing {
  name: string;
  latest: PackVersionRecord;
  versionCount: number;
}

/** One page of a listing; `nextPageToken` is "" on the last page. */
export interface Page<Item> {
  items: Item[];
  nextPageToken: string;
}

/** Page request: size 0 means the default; token "" means the first page. */
export interface PageRequest {
  pageSize?: number;
  pageToken?: string;
}

/**
 * The per-tenant pack registry. Versions are immutable once published; every method is scoped
 * to one tenant and never sees another tenant's packs.
 *
 * "Latest" is the highest release by semver precedence; pre-releases are chosen only when a pack
 * has no release at all, so a `2.0.0-rc.1` does not displace `1.4.0` for callers asking for the
 * latest.
 */
export interface PackRegistry {
  /**
   * Validates and publishes a manifest as `metadata.name`@`metadata.version`. Publishing the
   * identical bytes again returns the existing version with `created: false`.
   * @throws PackValidationError when the manifest is invalid
   * @throws PackrunError PACK_VERSION_CONFLICT when that version exists with other content
   */
  register(request: {
    tenant: string;
    manifest: string;
    publishedBy: string;
  }): Promise<RegisterResult>;
  /**
   * One version with its manifest; `version` "" selects the latest.
   * @throws PackrunError PACK_NOT_FOUND
   */
  get(request: { tenant: string; name: string; version?: string }): Promise<PublishedPack>;
  /** The tenant's packs by name, each with its latest version. */
  listPacks(request: { tenant: string } & PageRequest): Promise<Page<PackListing>>;
  /**
   * The versions of one pack, highest semver first.
   * @throws PackrunError PACK_NOT_FOUND when the pack has no version in the tenant
   */
  listVersions(
    request: { tenant: string; name: string } & PageRequest,
  ): Promise<Page<PackVersionRecord>>;
}

const table = "planner.pack_versions";
const recordColumnNames = [
  "tenant",
  "name",
  "version",
  "digest",
  "description",
  "tags",
  "published_by",
  "published_at",
];

/** The columns of a {@link VersionRow}, optionally qualified (`v.`). */
function columns(alias = ""): string {
  return recordColumnNames.map((column) => `${alias}${column}`).join(", ");
}

/** Latest first: releases above pre-releases, then semver precedence. */
function latestFirst(alias = ""): string {
  return `${alias}is_release DESC, ${alias}major DESC, ${alias}minor DESC, ${alias}patch DESC, ${alias}prerelease_key COLLATE "C" DESC`;
}

/** Pure semver precedence, highest first (a release outranks its own pre-releases). */
const highestFirst =
  'major DESC, minor DESC, patch DESC, is_release DESC, prerelease_key COLLATE "C" DESC';

interface VersionRow {
  tenant: string;
  name: string;
  version: string;
  digest: string;
  description: string;
  tags: string[];
  published_by: string;
  published_at: Date;
}

function toRecord(row: VersionRow): PackVersionRecord {
  return {
    tenant: row.tenant,
    name: row.name,
    version: row.version,
    digest: row.digest,
    description: row.description,
    tags: row.tags,
    publishedBy: row.published_by,
    publishedAt: row.published_at,
  };
}

/** `sha256:<hex>` of the exact UTF-8 bytes of a manifest. */
export function manifestDigest(manifest: string): string {
  return `sha256:${createHash("sha256").update(manifest, "utf8").digest("hex")}`;
}

function notFound(tenant: string, name: string, version: string): PackrunError {
  const what = version === "" ? `pack ${name}` : `pack ${name}@${version}`;
  return new PackrunError("PACK_NOT_FOUND", `${what} is not published in tenant ${tenant}`, {
    details: { name, version },
  });
}

/** A {@link PackRegistry} over the planner schema (see migrations/001-pack-registry.sql). */
export function createPackRegistry(
  db: Queryable,
  planning: PlanningPool = sharedPlanningPool(),
): PackRegistry {
  async function register(request: {
    tenant: string;
    manifest: string;
    publishedBy: string;
  }): Promise<RegisterResult> {
    const tenant = checkTenant(request.tenant);
    const publishedBy = checkPublisher(request.publishedBy);
    if (request.manifest === "") {
      throw new PackrunError("REQUEST_INVALID", "manifest is required");
    }
    const metadata = await planning.inspect(request.manifest);
    // loadManifest has refused non-canonical versions: one spelling per version.
    const order = versionOrder(metadata.version);
    const digest = manifestDigest(request.manifest);
    const inserted = await db.query<VersionRow>(
      `INSERT INTO ${table}
         (tenant, name, version, major, minor, patch, prerelease, prerelease_key, digest,
          manifest, description, tags, published_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       ON CONFLICT (tenant, name, version) DO NOTHING
       RETURNING ${columns()}`,
      [
        tenant,
        metadata.name,
        metadata.version,
        order.major,
        order.minor,
        order.patch,
        order.prerelease,
        order.prereleaseKey,
        digest,
        request.manifest,
        metadata.description ?? "",
        metadata.tags ?? [],
        publishedBy,
      ],
    );
    const created = inserted.rows[0];
    if (created !== undefined) return { version: toRecord(created), created: true };

    // Versions are never deleted, so the row that won the conflict is still there.
    const existing = await db.query<VersionRow>(
      `SELECT ${columns()} FROM ${table} WHERE tenant = $1 AND name = $2 AND version = $3`,
      [tenant, metadata.name, metadata.version],
    );
    const row = existing.rows[0];
    if (row === undefined) {
      throw new PackrunError("INTERNAL", "pack version vanished after a publish conflict");
    }
    if (row.digest !== digest) {
      throw new PackrunError(
        "PACK_VERSION_CONFLICT",
        `pack ${metadata.name}@${metadata.version} is already published with digest ${row.digest}; ` +
          `this manifest has digest ${digest}. Published versions are immutable: publish it under a new version`,
        {
          details: {
            name: metadata.name,
            version: metadata.version,
            publishedDigest: row.digest,
            digest,
          },
        },
      );
    }
    return { version: toRecord(row), created: false };
  }

  async function get(request: {
    tenant: string;
    name: string;
    version?: string;
  }): Promise<PublishedPack> {
    const tenant = checkTenant(request.tenant);
    const name = checkPackName(request.name);
    const version = checkVersion(request.version ?? "", { allowLatest: true });
    const result =
      version === ""
        ? await db.query<VersionRow & { manifest: string }>(
            `SELECT ${columns()}, manifest FROM ${table}
             WHERE tenant = $1 AND name = $2
             ORDER BY ${latestFirst()}
             LIMIT 1`,
            [tenant, name],
          )
        : await db.query<VersionRow & { manifest: string }>(
            `SELECT ${columns()}, manifest FROM ${table}
             WHERE tenant = $1 AND name = $2 AND version = $3`,
            [tenant, name, version],
          );
    const row = result.rows[0];
    if (row === undefined) throw notFound(tenant, name, version);
    return { ...toRecord(row), manifest: row.manifest };
  }

  async function listPacks(request: { tenant: string } & PageRequest): Promise<Page<PackListing>> {
    const tenant = checkTenant(request.tenant);
    const limit = pageSize(request.pageSize ?? 0);
    const scope = JSON.stringify(["packs", tenant]);
    const after = decodePageToken(request.pageToken ?? "", scope);
    const result = await db.query<VersionRow & { version_count: number }>(
      `WITH page AS (
         SELECT name, count(*)::integer AS version_count
         FROM ${table}
         WHERE tenant = $1 AND ($2::text IS NULL OR name > $2::text)
         GROUP BY name
         ORDER BY name
         LIMIT $3
       )
       SELECT DISTINCT ON (v.name) ${columns("v.")}, page.version_count
       FROM page JOIN ${table} v ON v.tenant = $1 AND v.name = page.name
       ORDER BY v.name, ${latestFirst("v.")}`,
      [tenant, after ?? null, limit + 1],
    );
    const rows = result.rows.slice(0, limit);
    const last = rows.at(-1);
    return {
      items: rows.map((row) => ({
        name: row.name,
        latest: toRecord(row),
        versionCount: row.version_count,
      })),
      nextPageToken:
        result.rows.length > limit && last !== undefined
          ? encodePageToken({ scope, after: last.name })
          : "",
    };
  }

  async function listVersions(
    request: { tenant: string; name: string } & PageRequest,
  ): Promise<Page<PackVersionRecord>> {
    const tenant = checkTenant(request.tenant);
    const name = checkPackName(request.name);
    const limit = pageSize(request.pageSize ?? 0);
    const scope = JSON.stringify(["versions", tenant, name]);
    const after = decodePageToken(request.pageToken ?? "", scope);
    if (after !== undefined && !isCanonicalVersion(after)) {
      throw new PackrunError(
        "REQUEST_INVALID",
        "pageToken (page_token) is not a token this service issued",
      );
    }
    const cursor = after === undefined ? undefined : versionOrder(after);
    const result = await db.query<VersionRow>(
      `SELECT ${columns()} FROM ${table}
       WHERE tenant = $1 AND name = $2
         AND ($3::bigint IS NULL
              OR (major, minor, patch, is_release, prerelease_key COLLATE "C")
                 < ($3::bigint, $4::bigint, $5::bigint, $6::boolean, $7::text[] COLLATE "C"))
       ORDER BY ${highestFirst}
       LIMIT $8`,
      [
        tenant,
        name,
        cursor?.major ?? null,
        cursor?.minor ?? null,
        cursor?.patch ?? null,
        cursor === undefined ? null : cursor.prerelease === "",
        cursor?.prereleaseKey ?? null,
        limit + 1,
      ],
    );
    if (result.rows.length === 0 && cursor === undefined) throw notFound(tenant, name, "");
    const rows = result.rows.slice(0, limit);
    const last = rows.at(-1);
    return {
      items: rows.map(toRecord),
      nextPageToken:
        result.rows.length > limit && last !== undefined
          ? encodePageToken({ scope, after: last.version })
          : "",
    };
  }

  return { register, get, listPacks, listVersions };
}
