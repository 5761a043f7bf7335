-- Log lines stored in chunks: one row per batch of consecutive log lines of one step, instead
-- of one events row per line. Each line keeps its own sequence: a chunk holds the run's
-- sequences first_sequence..last_sequence, taken from the same gapless counter as events (under
-- the same lock on runs), so events and chunks together cover 1..runs.last_sequence exactly once.
-- Readers expand chunks into one event per line (event-store.ts readEvents).
CREATE TABLE log_chunks (
  run_id text NOT NULL REFERENCES runs (run_id),
  first_sequence bigint NOT NULL CHECK (first_sequence > 0),
  last_sequence bigint NOT NULL,
  -- The producer's key of the whole chunk: a resent chunk finds this row.
  idempotency_key text NOT NULL,
  step_id text NOT NULL DEFAULT '',
  -- One element per line, in sequence order: {"k": key, "t": ISO time, "l": level 1-5,
  -- "y": type, "m": message, "d": metadata object}.
  lines jsonb NOT NULL CHECK (jsonb_typeof(lines) = 'array'),
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, first_sequence),
  UNIQUE (run_id, idempotency_key),
  CHECK (last_sequence - first_sequence + 1 = jsonb_array_length(lines))
);

-- Readers ask for the chunks ending after a sequence (resume in the middle of a chunk).
CREATE INDEX log_chunks_by_last ON log_chunks (run_id, last_sequence);
