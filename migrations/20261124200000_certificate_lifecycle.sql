-- The TPP certificate registry grows into a lifecycle: what each certificate is (SANs, key, PSD2
-- QCStatement roles and NCA), what it is used for, its status (active, retired by rotation, revoked)
-- with the source and reason of a revocation, when it was last checked, and which clients use it.
ALTER TABLE tpp_certificate
  ADD COLUMN usage             text        NOT NULL DEFAULT 'transport',
  ADD COLUMN sans              jsonb       NOT NULL DEFAULT '[]',
  ADD COLUMN key_type          text,
  ADD COLUMN key_size          integer,
  ADD COLUMN organization_identifier text,
  ADD COLUMN psd2_roles        jsonb,
  ADD COLUMN nca_name          text,
  ADD COLUMN nca_id            text,
  ADD COLUMN ocsp_urls         jsonb       NOT NULL DEFAULT '[]',
  ADD COLUMN crl_urls          jsonb       NOT NULL DEFAULT '[]',
  ADD COLUMN issuer_pem        text,
  ADD COLUMN status            text        NOT NULL DEFAULT 'active',
  ADD COLUMN revoked_at        timestamptz,
  ADD COLUMN revocation_source text,
  ADD COLUMN revocation_reason text,
  ADD COLUMN last_checked_at   timestamptz,
  ADD COLUMN last_check_result text;
CREATE INDEX tpp_certificate_status_idx ON tpp_certificate (status);

-- Which clients use which certificate; a client has its current one and, during a rotation, the next.
CREATE TABLE client_certificate (
  client_id  text        NOT NULL,
  thumbprint text        NOT NULL REFERENCES tpp_certificate (thumbprint),
  added_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (client_id, thumbprint)
);
CREATE INDEX client_certificate_thumbprint_idx ON client_certificate (thumbprint);
INSERT INTO client_certificate (client_id, thumbprint) SELECT client_id, transport_cert_thumbprint FROM client_tpp;

-- History: every registration, check result that changed something, rotation and revocation.
CREATE TABLE tpp_certificate_event (
  id         bigserial   PRIMARY KEY,
  thumbprint text        NOT NULL REFERENCES tpp_certificate (thumbprint),
  event      text        NOT NULL,
  detail     jsonb       NOT NULL DEFAULT '{}',
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tpp_certificate_event_thumbprint_idx ON tpp_certificate_event (thumbprint, id);
