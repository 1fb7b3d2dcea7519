# Kept for callers of the old path; the logic lives in scripts/use-node.sh.
. "$(dirname "${BASH_SOURCE[0]:-$0}")/../scripts/use-node.sh"
