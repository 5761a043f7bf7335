-- Reruns and resumes: a run made from an earlier run of the same tenant by RerunRun names it
-- and how it was made ('rerun': every step again; 'resume': the original's succeeded steps
-- kept). The original's view lists the runs made from it through the index.
ALTER TABLE runs
  ADD COLUMN rerun_of uuid,
  ADD COLUMN rerun_mode text CHECK (rerun_mode IN ('rerun', 'resume')),
  ADD CONSTRAINT runs_rerun_link CHECK ((rerun_of IS NULL) = (rerun_mode IS NULL));

CREATE INDEX runs_reruns ON runs (rerun_of, created_at) WHERE rerun_of IS NOT NULL;

-- A step a resume copied from the original run (not run again in this one).
ALTER TABLE steps ADD COLUMN kept_from uuid;

-- Dead letters get an id operators can name, and record their re-drive: the run that resumed
-- the dead letter's run from the failed step, who asked and when.
ALTER TABLE dead_letters
  ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
  ADD COLUMN retried_at timestamptz,
  ADD COLUMN retried_by text,
  ADD COLUMN retry_run_id uuid;

CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE retried_at IS NULL;
CREATE INDEX dead_letters_retry_run ON dead_letters (retry_run_id) WHERE retry_run_id IS NOT NULL;
