#!/usr/bin/env bash
# The README's TPP quick start, literally: sandbox credentials → registration → PAR → the customer's
# login and consent (through the documented form contract) → token → introspection → an API call.
# Needs a running sandbox (npm start), curl, openssl and node.
#   scripts/sandbox-quick-start.sh [ISSUER] [OUT_DIR]
set -euo pipefail
ISSUER="${1:-https://localhost:8443}"
OUT="${2:-./acme}"
REDIRECT_URI=https://localhost:3000/callback
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"; }

# 1. Credentials (no server needed).
npm run -s moat -- sandbox tpp --name "Acme Fintech" --out "$OUT" > /dev/null
TLS=(--cacert "$OUT/server-ca.pem" --cert "$OUT/transport.pem" --key "$OUT/transport.key" -s)

# 2. Dynamic client registration over mTLS with the software statement.
CLIENT_ID=$(curl "${TLS[@]}" -H 'content-type: application/json' --data @"$OUT/registration.json" "$ISSUER/register" | json client_id)
echo "registered client_id $CLIENT_ID"

# 3. PAR with PKCE S256.
VERIFIER=$(openssl rand -base64 48 | tr -d '=+/\n' | cut -c1-64)
CHALLENGE=$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
REQUEST_URI=$(curl "${TLS[@]}" -d client_id="$CLIENT_ID" -d response_type=code -d scope='openid accounts' \
  -d redirect_uri="$REDIRECT_URI" -d code_challenge="$CHALLENGE" -d code_challenge_method=S256 "$ISSUER/par" | json request_uri)

# 4. The customer (alice) signs in with password and code and approves: what a browser does, with a cookie jar. Every form
#    carries the hidden csrf field of the page it came from; the consent form also sends the
#    accounts to share (the page's ticked accounts checkboxes: here all of them).
JAR=$(mktemp)
PAGE=(--cacert "$OUT/server-ca.pem" -b "$JAR" -c "$JAR" -s)
BROWSER=("${PAGE[@]}" -o /dev/null -w '%{redirect_url}')
csrf() { sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n 1; }
LOGIN=$(curl "${BROWSER[@]}" "$ISSUER/authorize?client_id=$CLIENT_ID&request_uri=$REQUEST_URI")
LOGIN_CSRF=$(curl "${PAGE[@]}" "$LOGIN" | csrf)
curl "${BROWSER[@]}" -d csrf="$LOGIN_CSRF" -d username=alice -d password=alice-sandbox "$LOGIN/login" > /dev/null
#    Then the second factor (strong customer authentication): the 6-digit code an authenticator app
#    shows, computed from alice's published TOTP secret (RFC 6238: SHA-1, 6 digits, 30 s; any TOTP
#    library or `oathtool --totp -b SECRET` gives the same), posted as `code` with the page's csrf.
CODE_CSRF=$(curl "${PAGE[@]}" "$LOGIN" | csrf)
TOTP=$(node -e 'const { TOTP, Secret } = require("otpauth"); console.log(TOTP.generate({ secret: Secret.fromBase32(process.argv[1]) }))' MOATSANDBOXALICETOTPSECRET234567)
CONSENT=$(curl "${BROWSER[@]}" "$(curl "${BROWSER[@]}" -d csrf="$CODE_CSRF" -d code="$TOTP" "$LOGIN/totp")")
CONSENT_PAGE=$(curl "${PAGE[@]}" "$CONSENT")
CONSENT_CSRF=$(printf %s "$CONSENT_PAGE" | csrf)
ACCOUNTS=()
for ACCOUNT in $(printf %s "$CONSENT_PAGE" | sed -n 's/.*name="accounts" id="[^"]*" value="\([^"]*\)".*/\1/p'); do ACCOUNTS+=(-d accounts="$ACCOUNT"); done
CALLBACK=$(curl "${BROWSER[@]}" "$(curl "${BROWSER[@]}" -d csrf="$CONSENT_CSRF" "${ACCOUNTS[@]}" -d decision=approve "$CONSENT/consent")")
rm -f "$JAR"
CODE=$(node -e 'console.log(new URL(process.argv[1]).searchParams.get("code"))' "$CALLBACK")

# 5. The token, bound to the transport certificate.
TOKENS=$(curl "${TLS[@]}" -d grant_type=authorization_code -d client_id="$CLIENT_ID" -d code="$CODE" \
  -d redirect_uri="$REDIRECT_URI" -d code_verifier="$VERIFIER" "$ISSUER/token")
ACCESS_TOKEN=$(printf %s "$TOKENS" | json access_token)

# 6. Introspection shows cnf.x5t#S256; the sandbox API answers over the same certificate.
echo "introspection: $(curl "${TLS[@]}" -d client_id="$CLIENT_ID" -d token="$ACCESS_TOKEN" "$ISSUER/introspect")"
echo "sandbox API:   $(curl "${TLS[@]}" -H "authorization: Bearer $ACCESS_TOKEN" "$ISSUER/sandbox-api/accounts")"
