-- Events written once on the hot path: the events an executor committed together (one of its
-- transactions) arrive as one batch and are stored as one log_chunks row, like a chunk of log
-- lines. Each event keeps its own sequence, key and step ("s" in its element, when it has one;
-- the row's step_id is ''); readers expand the row into one event per sequence.
COMMENT ON TABLE log_chunks IS 'Consecutive sequences of one run stored as one row: a chunk of one step''s log lines, or a batch of events committed together (step_id '''', each element''s own step in "s").';

-- Every index costs WAL on every insert. Readers find chunks by the last sequence they hold
-- (resume after a sequence), so that is the key; the first sequence needs no index of its own.
ALTER TABLE log_chunks DROP CONSTRAINT log_chunks_pkey;
DROP INDEX log_chunks_by_last;
ALTER TABLE log_chunks ADD PRIMARY KEY (run_id, last_sequence);

-- Step-filtered reads of a run's events scan its primary key range: with log lines in chunks a
-- run holds few event rows, and this index cost a B-tree insert per event.
DROP INDEX events_by_step;
