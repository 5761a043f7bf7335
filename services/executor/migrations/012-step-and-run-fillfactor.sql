-- A step's row is rewritten by every transition (ready, claimed, ended) and a run's at its
-- start, end and finalisation. None of these can be HOT updates (the sweeps' partial indexes
-- name `state`), but a new row version that fits in its old page is logged as only the bytes
-- that changed, while one that moves to another page is logged whole (and its page's
-- initialisation too). Inserts leave room in each page for those versions.
ALTER TABLE steps SET (fillfactor = 70);
ALTER TABLE runs SET (fillfactor = 80);

-- No query reads runs by state alone: the sweeps and admission use runs_waiting,
-- runs_deadlines and runs_in_flight_by_subject, the statistics count every run. This index
-- only cost a B-tree entry at a run's insert and at its start.
DROP INDEX runs_active;
