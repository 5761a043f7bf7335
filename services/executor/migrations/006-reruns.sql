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
