-- The pack source (pack.yaml as published) of an attested run, shipped in its evidence bundle.
-- Its SHA-256 is the attested pack digest; NULL for runs attested before it was kept.
ALTER TABLE attestations ADD COLUMN pack_source text;
