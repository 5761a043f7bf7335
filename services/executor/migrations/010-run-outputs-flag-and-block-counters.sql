-- Two cuts in what a run transaction reads (issue 15).

-- False when the plan declares no run outputs: finishing such a run need not read its plan.
-- Existing runs (and reruns, which copy the flag) keep true: they read the plan as before.
ALTER TABLE runs ADD COLUMN has_outputs boolean NOT NULL DEFAULT true;

-- Per-block child counters, kept incrementally by a trigger on every child's insert and state or
-- readiness change, so that a block's next move reads one row instead of counting its children
-- (a map of 500 items counted 500 rows after each child). Classes, as the block rule counts them:
-- waiting = pending and not reached; active = running, awaiting approval, or reached and pending;
-- failed = failed, timed_out, rejected, expired or cancelled.
CREATE TABLE block_children (
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  block_id text NOT NULL,
  total integer NOT NULL DEFAULT 0,
  waiting integer NOT NULL DEFAULT 0,
  active integer NOT NULL DEFAULT 0,
  failed integer NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, block_id)
) WITH (fillfactor = 50);

CREATE FUNCTION count_block_child() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  new_waiting integer := (NEW.state = 'pending' AND NEW.ready_at IS NULL)::integer;
  new_active integer := (NEW.state IN ('running', 'awaiting-approval')
                         OR (NEW.state = 'pending' AND NEW.ready_at IS NOT NULL))::integer;
  new_failed integer := (NEW.state IN ('failed', 'timed_out', 'rejected', 'expired', 'cancelled'))::integer;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO block_children AS c (run_id, block_id, total, waiting, active, failed)
    VALUES (NEW.run_id, NEW.parent_id, 1, new_waiting, new_active, new_failed)
    ON CONFLICT (run_id, block_id) DO UPDATE
      SET total = c.total + 1, waiting = c.waiting + new_waiting,
          active = c.active + new_active, failed = c.failed + new_failed;
    RETURN NULL;
  END IF;
  UPDATE block_children
     SET waiting = waiting + new_waiting - (OLD.state = 'pending' AND OLD.ready_at IS NULL)::integer,
         active = active + new_active - (OLD.state IN ('running', 'awaiting-approval')
                  OR (OLD.state = 'pending' AND OLD.ready_at IS NOT NULL))::integer,
         failed = failed + new_failed - (OLD.state IN ('failed', 'timed_out', 'rejected', 'expired', 'cancelled'))::integer
   WHERE run_id = NEW.run_id AND block_id = NEW.parent_id;
  RETURN NULL;
END
$$;

CREATE TRIGGER steps_block_children_added AFTER INSERT ON steps
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION count_block_child();
CREATE TRIGGER steps_block_children_changed AFTER UPDATE OF state, ready_at ON steps
  FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL
                     AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.ready_at IS DISTINCT FROM NEW.ready_at))
  EXECUTE FUNCTION count_block_child();

-- Blocks of runs that existed before this migration.
INSERT INTO block_children (run_id, block_id, total, waiting, active, failed)
SELECT run_id, parent_id, count(*),
       count(*) FILTER (WHERE state = 'pending' AND ready_at IS NULL),
       count(*) FILTER (WHERE state IN ('running', 'awaiting-approval') OR (state = 'pending' AND ready_at IS NOT NULL)),
       count(*) FILTER (WHERE state IN ('failed', 'timed_out', 'rejected', 'expired', 'cancelled'))
  FROM steps WHERE parent_id IS NOT NULL GROUP BY run_id, parent_id;
