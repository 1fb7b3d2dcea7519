#!/bin/sh
# Runs node with the given arguments on Node 24.7+, fetching Node 24 from the npm registry first
# when the machine's Node is older (npm start / npm test work on a fresh machine either way).
set -e
QUIET_NODE_FOR_MOAT=1
. "$(dirname "$0")/use-node.sh"
# `--liftoff-only` (bench/servers/moat-process.ts says why) makes V8 abort where its baseline
# compiler gives up, which on x86-64 it does without SSE4.1 (pre-2011 CPUs, QEMU's qemu64 model):
# there the flag is left out, and V8 optimises as usual. Only where /proc/cpuinfo lists the CPU's
# flags: an x86-64 image emulated on an ARM host (Rosetta, qemu-user) sees the host's, which have none.
cpuinfo="${MOAT_CPUINFO:-/proc/cpuinfo}"
if [ "$(uname -m)" = x86_64 ] && [ -r "$cpuinfo" ] && grep -q '^flags' "$cpuinfo" && ! grep -qw sse4_1 "$cpuinfo"; then
  for arg in "$@"; do
    shift
    if [ "$arg" = --liftoff-only ]; then
      echo "moat: this CPU has no SSE4.1; running without --liftoff-only" >&2
    else
      set -- "$@" "$arg"
    fi
  done
fi
exec node "$@"
