-- Threat detection: what the detector flagged, and the restrictions it (or an operator) put on a
-- client. A quarantine lasts until an operator releases it; a step-up until its time runs out.
CREATE TABLE threat_flag (
  id          bigserial   PRIMARY KEY,
  at          timestamptz NOT NULL,
  entity      text        NOT NULL,
  client_id   text,
  signal      text        NOT NULL,
  severity    text        NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
  kind        text        NOT NULL CHECK (kind IN ('baseline', 'rule')),
  expected    double precision NOT NULL,
  seen        double precision NOT NULL,
  score       double precision,
  explanation text        NOT NULL,
  response    text        NOT NULL
);
CREATE INDEX threat_flag_client_idx ON threat_flag (client_id, at);
CREATE INDEX threat_flag_at_idx ON threat_flag (at);

CREATE TABLE client_restriction (
  id          bigserial   PRIMARY KEY,
  client_id   text        NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('quarantine', 'step-up')),
  reason      text        NOT NULL,
  flag_id     bigint      REFERENCES threat_flag (id),
  since       timestamptz NOT NULL,
  -- A step-up ends by itself; a quarantine only when released.
  until       timestamptz,
  created_by  text        NOT NULL,
  released_at timestamptz,
  released_by text
);
-- At most one restriction of each kind in force per client.
CREATE UNIQUE INDEX client_restriction_active_idx ON client_restriction (client_id, kind) WHERE released_at IS NULL;
