-- Evidence service schema: per-run event log, artifacts, attestations.
-- search_path is the evidence schema while this runs.

-- One row per run: who owns it, and the sequence counter. Writers lock this row
-- (SELECT ... FOR UPDATE) so concurrent ingestion into one run serialises and sequences stay
-- gapless; the counter moves in the same transaction as the inserted events.
CREATE TABLE runs (
  run_id text PRIMARY KEY,
  tenant text NOT NULL,
  last_sequence bigint NOT NULL DEFAULT 0 CHECK (last_sequence >= 0),
  -- Sequence of run.succeeded / run.failed / run.cancelled once stored; nothing follows it.
  terminal_sequence bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE TABLE events (
  run_id text NOT NULL REFERENCES runs (run_id),
  sequence bigint NOT NULL CHECK (sequence > 0),
  idempotency_key text NOT NULL,
  time timestamptz NOT NULL,
  -- 1 trace, 2 debug, 3 info, 4 warn, 5 error
  level smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
  type text NOT NULL CHECK (type ~ '^(run|step|log|artifact|gate)\.'),
  step_id text NOT NULL DEFAULT '',
  message text NOT NULL DEFAULT '',
  metadata jsonb NOT NULL DEFAULT '{}',
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, sequence),
  -- A resent event finds its original row instead of creating another.
  UNIQUE (run_id, idempotency_key)
);

CREATE INDEX events_by_step ON events (run_id, step_id, sequence);

-- Content lives in the filesystem store under sha256/<aa>/<hex>; rows are written only after
-- the content was renamed into place, so a row never points at partial content.
CREATE TABLE artifacts (
  run_id text NOT NULL REFERENCES runs (run_id),
  step_id text NOT NULL DEFAULT '',
  name text NOT NULL,
  type text NOT NULL CHECK (type IN ('file', 'object')),
  digest text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  source_path text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'stored' CHECK (status IN ('stored', 'failed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, step_id, name)
);

CREATE INDEX artifacts_by_digest ON artifacts (run_id, digest);

-- Exactly one attestation per run: the primary key makes retried or raced finalisation
-- return the stored one.
CREATE TABLE attestations (
  run_id text PRIMARY KEY REFERENCES runs (run_id),
  key_id text NOT NULL,
  envelope_json text NOT NULL,
  public_key_pem text NOT NULL,
  -- What the bundle is rebuilt from, byte for byte.
  plan_json text NOT NULL,
  run_record jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
