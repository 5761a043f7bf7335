-- An attempt's row is inserted at its claim and updated once at its end (state, times, usage),
-- none of them indexed columns: with room left in its page the update is a HOT update (no new
-- primary-key entry, less WAL). Inserts leave 30% of each page for those updates.
ALTER TABLE step_attempts SET (fillfactor = 70);
