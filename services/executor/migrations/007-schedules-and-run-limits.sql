-- Issue 17: schedules, delayed runs, run deadlines and per-user admission.

-- A run's deadline passing ends it `timed_out`.
ALTER TABLE runs DROP CONSTRAINT runs_state_check;
ALTER TABLE runs ADD CONSTRAINT runs_state_check
  CHECK (state IN ('queued', 'running', 'awaiting-approval', 'succeeded', 'failed', 'cancelled',
                   'timed_out'));

CREATE OR REPLACE FUNCTION check_run_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = OLD.state THEN
    RETURN NEW;
  END IF;
  IF (OLD.state, NEW.state) IN (
    ('queued', 'running'), ('queued', 'failed'), ('queued', 'cancelled'), ('queued', 'timed_out'),
    ('running', 'awaiting-approval'), ('running', 'succeeded'), ('running', 'failed'),
    ('running', 'cancelled'), ('running', 'timed_out'),
    ('awaiting-approval', 'running'), ('awaiting-approval', 'failed'),
    ('awaiting-approval', 'cancelled'), ('awaiting-approval', 'timed_out')
  ) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'illegal run transition % -> % for run %', OLD.state, NEW.state, OLD.id
    USING ERRCODE = 'check_violation';
END
$$;

-- A queued run starts only once admitted: not before `not_before`, after the earlier runs of its
-- schedule when `after_schedule_runs` (overlap policy queue), and within its submitter's limit
-- of runs in flight. `waiting_reason` says which of these holds it back.
ALTER TABLE runs ADD COLUMN not_before timestamptz;
ALTER TABLE runs ADD COLUMN after_schedule_runs boolean NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN waiting_reason text NOT NULL DEFAULT '';
-- Run deadline: seconds from the run's start (0 = none), and the instant once started.
ALTER TABLE runs ADD COLUMN timeout_seconds integer NOT NULL DEFAULT 0 CHECK (timeout_seconds >= 0);
ALTER TABLE runs ADD COLUMN deadline_at timestamptz;
-- The schedule and due time that made the run (null when submitted by hand).
ALTER TABLE runs ADD COLUMN schedule_id uuid;
ALTER TABLE runs ADD COLUMN scheduled_for timestamptz;

-- A second wall behind the scheduled runs' idempotency keys: one run per schedule and due time.
CREATE UNIQUE INDEX runs_per_due_time ON runs (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL;
CREATE INDEX runs_waiting ON runs (created_at, id) WHERE state = 'queued';
CREATE INDEX runs_deadlines ON runs (deadline_at) WHERE state IN ('running', 'awaiting-approval') AND deadline_at IS NOT NULL;
CREATE INDEX runs_in_flight_by_subject ON runs (tenant, submitted_by) WHERE state IN ('running', 'awaiting-approval');

CREATE TABLE schedules (
  id uuid PRIMARY KEY,
  tenant text NOT NULL,
  name text NOT NULL,
  pack_name text NOT NULL,
  -- A version, or 'latest' (resolved at each due time).
  pack_version text NOT NULL,
  inputs jsonb NOT NULL DEFAULT '{}',
  cron text NOT NULL,
  time_zone text NOT NULL,
  missed_policy text NOT NULL CHECK (missed_policy IN ('skip', 'runOnce')),
  overlap_policy text NOT NULL CHECK (overlap_policy IN ('allow', 'skip', 'queue')),
  paused boolean NOT NULL DEFAULT false,
  created_by text NOT NULL,
  priority integer NOT NULL DEFAULT 0,
  timeout_seconds integer NOT NULL DEFAULT 0,
  labels jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Null while paused.
  next_due_at timestamptz,
  last_due_at timestamptz,
  last_run_id uuid,
  -- Why the last due time made no run, when it failed (a pack removed, inputs no longer valid).
  last_error text NOT NULL DEFAULT '',
  UNIQUE (tenant, name)
);

CREATE INDEX schedules_due ON schedules (next_due_at) WHERE NOT paused;
