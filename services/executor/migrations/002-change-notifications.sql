-- Change hints over LISTEN/NOTIFY, so WatchRun and the evidence shipper wake up instead of
-- polling. Hints only: readers re-read the tables. PostgreSQL folds identical notifications of
-- one transaction into one, so a transaction touching many rows of a run sends one.

-- packrun_run_changed, payload = the run id: something WatchRun shows may have changed.
CREATE FUNCTION notify_run_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('packrun_run_changed', NEW.id::text);
  RETURN NULL;
END
$$;

-- The same for rows of a run's child tables (steps, step_attempts, gate_decisions).
CREATE FUNCTION notify_run_of_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('packrun_run_changed', NEW.run_id::text);
  RETURN NULL;
END
$$;

-- Bulk inserts (a plan's or a map's step rows, up to 500 per statement): one call per statement.
CREATE FUNCTION notify_runs_of_new_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('packrun_run_changed', run_id::text) FROM (SELECT DISTINCT run_id FROM new_rows) AS changed;
  RETURN NULL;
END
$$;

CREATE TRIGGER runs_changed AFTER UPDATE ON runs
  FOR EACH ROW EXECUTE FUNCTION notify_run_changed();

-- Lease renewals (heartbeats) and fence bumps change neither, and stay silent.
CREATE TRIGGER steps_changed AFTER UPDATE OF state, attempt ON steps
  FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.attempt IS DISTINCT FROM NEW.attempt)
  EXECUTE FUNCTION notify_run_of_row_changed();

CREATE TRIGGER steps_added AFTER INSERT ON steps
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION notify_runs_of_new_rows();

CREATE TRIGGER step_attempts_changed AFTER INSERT OR UPDATE ON step_attempts
  FOR EACH ROW EXECUTE FUNCTION notify_run_of_row_changed();

CREATE TRIGGER gate_decisions_added AFTER INSERT ON gate_decisions
  FOR EACH ROW EXECUTE FUNCTION notify_run_of_row_changed();

-- packrun_outbox, empty payload: events await shipping.
CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('packrun_outbox', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER outbox_added AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
