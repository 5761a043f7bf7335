-- The container image an attempt ran: the step's reference and the manifest digest podman
-- resolved it to (NULL for other modules). The run record, and so the run's SLSA provenance,
-- names images by these digests.
ALTER TABLE step_attempts ADD COLUMN image_reference text;
ALTER TABLE step_attempts ADD COLUMN image_digest text
  CHECK (image_digest IS NULL OR image_digest ~ '^sha256:[0-9a-f]{64}$');
