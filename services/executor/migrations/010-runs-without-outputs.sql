-- False when the plan declares no run outputs: finishing such a run need not read its plan.
-- Existing runs (and reruns, which copy the flag) keep true: they read the plan as before.
ALTER TABLE runs ADD COLUMN has_outputs boolean NOT NULL DEFAULT true;
