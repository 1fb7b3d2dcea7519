/** Client authentication: FAPI 2.0 SP §5.3.2.1 — mTLS or private_key_jwt, never secrets or `none`. */
export const CLIENT_AUTH_METHODS = ['tls_client_auth', 'self_signed_tls_client_auth', 'private_key_jwt'] as const;
