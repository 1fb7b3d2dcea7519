#!/bin/sh
# Runs node with the given arguments on Node 24.7+, fetching Node 24 from the npm registry first
# when the machine's Node is older (npm start / npm test work on a fresh machine either way).
set -e
QUIET_NODE_FOR_MOAT=1
. "$(dirname "$0")/use-node.sh"
exec node "$@"
