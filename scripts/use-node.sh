# Sourced by .ci/run and scripts/with-node.sh: puts Node 24.7+ on PATH.
# oidc-provider 9 and undici 8 need a current Node LTS, and customers' passwords are hashed with
# node:crypto's Argon2id (Node 24.7); machines that ship an older Node get Node 24 from the npm
# registry's `node` package (a prebuilt binary inside a registry package).
node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>24||(a===24&&b>=7)?0:1)'
}
if ! node_ok; then
  NODE_FOR_MOAT="${NODE_FOR_MOAT:-$HOME/.cache/moat/node24}"
  export PATH="$NODE_FOR_MOAT/node_modules/.bin:$PATH"
  # Installed when missing, and again when the one fetched earlier is older than Moat now needs
  # (a cache filled when the floor was 22.19 may hold a 24.0–24.6).
  if ! node_ok; then
    echo "moat: installing Node 24 from the npm registry into $NODE_FOR_MOAT" >&2
    npm install --silent --no-save --no-audit --no-fund --prefix "$NODE_FOR_MOAT" "node@>=24.7 <25" >&2
    # node_ok ran the old `node` above, so bash remembers its path; forget it, or this shell (and
    # all of .ci/run) would go on with the machine's old Node on a machine without the cache.
    hash -r
  fi
  if ! node_ok; then
    echo "moat: Node 24.7 or later is needed and could not be put on PATH (found $(node --version 2>/dev/null || echo none))" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
[ -n "${QUIET_NODE_FOR_MOAT:-}" ] || echo "moat: node $(node --version), npm $(npm --version)" >&2
