-- SLSA Provenance v1 beside the pack-run attestation: a DSSE envelope (canonical JSON) for runs
-- that stored artifacts; NULL for runs without artifacts and for runs attested before it existed.
ALTER TABLE attestations ADD COLUMN provenance_envelope_json text;
