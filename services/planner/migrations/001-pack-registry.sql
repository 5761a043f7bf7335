-- The per-tenant pack registry: one row per published, immutable pack version.
-- Applied with search_path set to the planner's own schema.

CREATE TABLE pack_versions (
  tenant text COLLATE "C" NOT NULL,
  name text COLLATE "C" NOT NULL,
  version text COLLATE "C" NOT NULL,
  -- Semver precedence, parsed once at publish time so ordering happens in SQL.
  major bigint NOT NULL CHECK (major >= 0),
  minor bigint NOT NULL CHECK (minor >= 0),
  patch bigint NOT NULL CHECK (patch >= 0),
  -- Pre-release as written ('' for a release) and an encoding of its identifiers whose byte
  -- order (collation "C") is semver precedence: numeric identifiers are '0' + 3-digit length +
  -- digits, alphanumeric ones '1' + text (see src/version-order.ts).
  prerelease text COLLATE "C" NOT NULL,
  prerelease_key text[] COLLATE "C" NOT NULL,
  is_release boolean GENERATED ALWAYS AS (prerelease = '') STORED,
  -- 'sha256:' + lowercase hex of the manifest's exact UTF-8 bytes.
  digest text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  manifest text NOT NULL,
  description text NOT NULL DEFAULT '',
  tags text[] NOT NULL DEFAULT '{}',
  published_by text NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, name, version),
  CHECK ((prerelease = '') = (cardinality(prerelease_key) = 0))
);

-- Newest-first version listings and "latest" lookups per pack.
CREATE INDEX pack_versions_precedence
  ON pack_versions (tenant, name, major DESC, minor DESC, patch DESC, is_release DESC,
                    prerelease_key DESC);

-- A published version never changes and never disappears: the registry code only inserts, and
-- this trigger is the second wall against anything else that writes to the table. A deliberate
-- purge has to disable the trigger explicitly.
CREATE FUNCTION pack_versions_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'published pack versions are immutable: TRUNCATE refused'
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RAISE EXCEPTION 'published pack versions are immutable: % of %/%@% refused',
    TG_OP, OLD.tenant, OLD.name, OLD.version
    USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER pack_versions_no_update_or_delete
  BEFORE UPDATE OR DELETE ON pack_versions
  FOR EACH ROW EXECUTE FUNCTION pack_versions_immutable();

CREATE TRIGGER pack_versions_no_truncate
  BEFORE TRUNCATE ON pack_versions
  FOR EACH STATEMENT EXECUTE FUNCTION pack_versions_immutable();
