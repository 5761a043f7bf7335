-- Runs and their steps: the executor's source of truth. Every state change is one transaction.

CREATE TABLE runs (
  id uuid PRIMARY KEY,
  tenant text NOT NULL,
  pack_name text NOT NULL,
  pack_version text NOT NULL,
  pack_digest text NOT NULL,
  plan_hash text NOT NULL,
  -- RFC 8785 canonical JSON: exactly the bytes plan_hash covers.
  plan_json text NOT NULL,
  manifest text NOT NULL,
  inputs jsonb NOT NULL,
  -- Names only: secret values never reach the database.
  secret_names text[] NOT NULL DEFAULT '{}',
  state text NOT NULL DEFAULT 'queued'
    CHECK (state IN ('queued', 'running', 'awaiting-approval', 'succeeded', 'failed', 'cancelled')),
  priority integer NOT NULL DEFAULT 0,
  reason text NOT NULL DEFAULT '',
  submitted_by text NOT NULL DEFAULT '',
  labels jsonb NOT NULL DEFAULT '{}',
  idempotency_key text,
  outputs jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  -- Terminal and no step running any more: the terminal event has been recorded.
  settled_at timestamptz,
  -- Set once the evidence service has signed the run's attestation.
  finalized_at timestamptz,
  UNIQUE (tenant, idempotency_key)
);

CREATE INDEX runs_by_tenant ON runs (tenant, created_at DESC, id DESC);
CREATE INDEX runs_to_finalize ON runs (settled_at) WHERE settled_at IS NOT NULL AND finalized_at IS NULL;
CREATE INDEX runs_active ON runs (state) WHERE state IN ('queued', 'running', 'awaiting-approval');

CREATE TABLE steps (
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  step_id text NOT NULL,
  tenant text NOT NULL,
  parent_id text,
  -- Order among siblings (top-level steps run in this order).
  position integer NOT NULL,
  kind text NOT NULL CHECK (kind IN ('run', 'parallel', 'map', 'approval-gate', 'policy-gate')),
  state text NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled',
                     'skipped', 'awaiting-approval', 'rejected', 'expired')),
  -- The planned step without its children (those are rows of their own).
  planned jsonb NOT NULL,
  -- item/index of map children expanded at run time.
  bindings jsonb NOT NULL DEFAULT '{}',
  -- Attempts started; failed_attempts counts the step's own failures (against max_attempts),
  -- lost_attempts the ones lost with their worker (retried without using the step's budget).
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 1,
  failed_attempts integer NOT NULL DEFAULT 0,
  lost_attempts integer NOT NULL DEFAULT 0,
  -- Non-null once the step has been reached: a pending step may be claimed from this time on.
  ready_at timestamptz,
  next_attempt_at timestamptz,
  -- Fencing token: incremented by every claim; a write carrying an older token is rejected.
  fence bigint NOT NULL DEFAULT 0,
  lease_owner text,
  lease_expires_at timestamptz,
  exit_code integer,
  reason text NOT NULL DEFAULT '',
  outputs jsonb NOT NULL DEFAULT '{}',
  started_at timestamptz,
  finished_at timestamptz,
  -- Approval gates: when the request lapses.
  expires_at timestamptz,
  PRIMARY KEY (run_id, step_id)
);

CREATE INDEX steps_children ON steps (run_id, parent_id, position);
CREATE INDEX steps_ready ON steps (ready_at) WHERE state = 'pending' AND ready_at IS NOT NULL;
CREATE INDEX steps_leases ON steps (lease_expires_at) WHERE state = 'running' AND lease_owner IS NOT NULL;
CREATE INDEX steps_running_by_tenant ON steps (tenant) WHERE state = 'running' AND lease_owner IS NOT NULL;
CREATE INDEX steps_awaiting ON steps (expires_at) WHERE state = 'awaiting-approval';

-- The state machine, as a second wall behind the code: an illegal transition is an error.
CREATE FUNCTION check_step_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = OLD.state THEN
    RETURN NEW;
  END IF;
  IF (OLD.state, NEW.state) IN (
    ('pending', 'running'), ('pending', 'skipped'), ('pending', 'awaiting-approval'),
    ('pending', 'cancelled'),
    ('running', 'succeeded'), ('running', 'failed'), ('running', 'timed_out'),
    ('running', 'cancelled'), ('running', 'pending'),
    ('awaiting-approval', 'pending'), ('awaiting-approval', 'rejected'),
    ('awaiting-approval', 'expired'), ('awaiting-approval', 'cancelled')
  ) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'illegal step transition % -> % for step % of run %',
    OLD.state, NEW.state, OLD.step_id, OLD.run_id USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER steps_state_machine BEFORE UPDATE OF state ON steps
  FOR EACH ROW EXECUTE FUNCTION check_step_transition();

CREATE FUNCTION check_run_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = OLD.state THEN
    RETURN NEW;
  END IF;
  IF (OLD.state, NEW.state) IN (
    ('queued', 'running'), ('queued', 'failed'), ('queued', 'cancelled'),
    ('running', 'awaiting-approval'), ('running', 'succeeded'), ('running', 'failed'),
    ('running', 'cancelled'),
    ('awaiting-approval', 'running'), ('awaiting-approval', 'failed'),
    ('awaiting-approval', 'cancelled')
  ) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'illegal run transition % -> % for run %', OLD.state, NEW.state, OLD.id
    USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER runs_state_machine BEFORE UPDATE OF state ON runs
  FOR EACH ROW EXECUTE FUNCTION check_run_transition();

-- One row per attempt of a run step, kept for audit and the attestation.
CREATE TABLE step_attempts (
  run_id uuid NOT NULL,
  step_id text NOT NULL,
  attempt integer NOT NULL,
  state text NOT NULL,
  worker_id text NOT NULL,
  fence bigint NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  exit_code integer,
  reason text NOT NULL DEFAULT '',
  cpu_micros bigint,
  peak_memory_bytes bigint,
  PRIMARY KEY (run_id, step_id, attempt),
  FOREIGN KEY (run_id, step_id) REFERENCES steps ON DELETE CASCADE
);

-- Approval decisions: one per approver per gate, so a repeated approval counts once.
CREATE TABLE gate_decisions (
  run_id uuid NOT NULL,
  step_id text NOT NULL,
  approver text NOT NULL,
  approved boolean NOT NULL,
  comment text NOT NULL DEFAULT '',
  decided_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, step_id, approver),
  FOREIGN KEY (run_id, step_id) REFERENCES steps ON DELETE CASCADE
);

-- Work that failed permanently, for operators (the queue keeps a copy too).
CREATE TABLE dead_letters (
  run_id uuid NOT NULL,
  step_id text NOT NULL,
  attempt integer NOT NULL,
  reason text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, step_id, attempt)
);

-- Transactional outbox: events written with the transition that caused them, shipped to
-- the evidence service and deleted once acknowledged.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  run_id uuid NOT NULL,
  idempotency_key text NOT NULL UNIQUE,
  event jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workers (
  id text PRIMARY KEY,
  host text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
  in_flight integer NOT NULL DEFAULT 0,
  capacity integer NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'draining', 'stopped'))
);
