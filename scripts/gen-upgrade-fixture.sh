#!/usr/bin/env bash
# gen-upgrade-fixture.sh: regenerate internal/upgrade/testdata/e75b20e, the
# data directory written by the previous release (commit e75b20e) that
# TestFixture* in internal/upgrade opens with the new binary.
#
# Usage: scripts/gen-upgrade-fixture.sh [--bin OLD_BINARY]
#
# Without --bin it builds commit e75b20e from this repository's history
# (git archive + go build -trimpath; about 2 minutes cold, seconds warm).
# It runs the old binary as a single-node cluster on loopback, writes the
# fixture's keys with a Redis client, leaves the last writes only in the
# Raft WAL (see internal/upgrade/genfixture), checks the result with the old
# binary, and rewrites testdata/e75b20e/data and golden.txt. Commit both.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--bin) [ $# -ge 2 ] || { echo "--bin needs a path" >&2; exit 2; }; args+=(-bin "$2"); shift 2 ;;
	-h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done
exec go run ./internal/upgrade/genfixture -out internal/upgrade/testdata/e75b20e "${args[@]+"${args[@]}"}"
