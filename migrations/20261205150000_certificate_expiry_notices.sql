-- Expiry notices to TPPs: one row per certificate, client and warning horizon. The primary key is
-- what makes a notice go out once however many instances cross the horizon; `claimed_until` lets one
-- instance at a time attempt a delivery, `next_attempt_at` spaces retries out (back-off). Status:
-- pending, delivered, failed (attempts exhausted) or no_endpoint (the client registered none).
CREATE TABLE certificate_expiry_notice (
  thumbprint      text        NOT NULL REFERENCES tpp_certificate (thumbprint),
  client_id       text        NOT NULL,
  horizon_days    integer     NOT NULL,
  endpoint        text,
  status          text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'no_endpoint')),
  jti             text        NOT NULL,
  days_left       integer     NOT NULL,
  attempts        integer     NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  claimed_until   timestamptz,
  last_error      text,
  delivered_at    timestamptz,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (thumbprint, client_id, horizon_days)
);
CREATE INDEX certificate_expiry_notice_due_idx ON certificate_expiry_notice (status, next_attempt_at);
CREATE INDEX certificate_expiry_notice_client_idx ON certificate_expiry_notice (client_id);
