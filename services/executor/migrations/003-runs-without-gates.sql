-- Whether a run's plan declares approvals at all. A run without any can never wait at a gate,
-- so the scheduler skips its "is the run waiting?" check for it on every step transition.
-- Runs created before this migration keep the conservative default.
ALTER TABLE runs ADD COLUMN has_approvals boolean NOT NULL DEFAULT true;
