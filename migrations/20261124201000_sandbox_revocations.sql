-- Certificates the sandbox TPP CA has revoked (sandbox mode only): what its CRL lists and its OCSP
-- responder answers "revoked" for, so TPPs can rehearse a revocation end to end.
CREATE TABLE sandbox_revoked_certificate (
  serial     text        PRIMARY KEY,
  reason     text        NOT NULL,
  revoked_at timestamptz NOT NULL DEFAULT now()
);
