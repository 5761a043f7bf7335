-- Approval tokens already used: an approval token is single-use, so a decision records the
-- token's id (its jti, or a digest of the token) in the same transaction; a second decision
-- with the same token is refused. Keyed by tenant: token ids come from the tenant's identity
-- provider.
CREATE TABLE approval_tokens (
  tenant text NOT NULL,
  token_id text NOT NULL,
  run_id uuid NOT NULL,
  step_id text NOT NULL,
  approver text NOT NULL,
  used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, token_id)
);
