-- The TPP registry that dynamic client registration fills and the certificate-lifecycle work
-- extends: organisations vouched for by a directory, the certificates they present, and which
-- client belongs to which organisation through which transport certificate.
CREATE TABLE tpp_organisation (
  org_id           text        PRIMARY KEY,
  name             text        NOT NULL,
  directory_issuer text        NOT NULL,
  status           text        NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- A certificate is identified by its SHA-256 thumbprint (RFC 8705 x5t#S256, base64url).
CREATE TABLE tpp_certificate (
  thumbprint text        PRIMARY KEY,
  org_id     text        NOT NULL REFERENCES tpp_organisation (org_id),
  subject_dn text        NOT NULL,
  issuer_dn  text        NOT NULL,
  serial     text        NOT NULL,
  not_before timestamptz NOT NULL,
  not_after  timestamptz NOT NULL,
  pem        text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz
);
CREATE INDEX tpp_certificate_org_idx ON tpp_certificate (org_id);
CREATE INDEX tpp_certificate_not_after_idx ON tpp_certificate (not_after) WHERE retired_at IS NULL;

CREATE TABLE client_tpp (
  client_id                 text        PRIMARY KEY,
  org_id                    text        NOT NULL REFERENCES tpp_organisation (org_id),
  software_id               text        NOT NULL,
  transport_cert_thumbprint text        NOT NULL REFERENCES tpp_certificate (thumbprint),
  created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX client_tpp_org_idx ON client_tpp (org_id);
