-- What a run with an idempotency key was submitted with (a digest of the pack source and the
-- inputs), so that the same key with a different request is refused instead of silently
-- answered with the first run. Runs created before this migration have none and keep the old
-- behaviour (the key alone decides).
ALTER TABLE runs ADD COLUMN request_digest text;
