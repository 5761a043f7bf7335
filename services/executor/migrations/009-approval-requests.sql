-- Offline approval requests: each export of a gate for an approver who cannot reach the
-- gateway. A response is accepted only for a request stored here, of the same tenant, run, gate,
-- plan, nonce and request digest, before expires_at; each approver key answers a request once
-- (spent in approval_tokens as offline:<request_id>:<key id>).
CREATE TABLE approval_requests (
  request_id uuid PRIMARY KEY,
  tenant text NOT NULL,
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  step_id text NOT NULL,
  approval_id text NOT NULL,
  plan_hash text NOT NULL,
  nonce text NOT NULL,
  -- sha256:<hex> of the signed request payload: a response must name it.
  request_digest text NOT NULL,
  requested_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

CREATE INDEX approval_requests_run ON approval_requests (run_id);
