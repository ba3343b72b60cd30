#!/usr/bin/env bash
# Measures what a request costs the whole cluster in CPU, which stays
# meaningful on a machine too busy for throughput numbers to compare: it
# starts a dev cluster from BINARY, runs redis-benchmark (-c 50) against the
# leader for SET/GET at -P 1 and -P 16, and prints for each the ops/s, the
# latencies and the user+system CPU time all three servers spent per
# request (from /proc/PID/stat).
#
# Usage: scripts/bench-cpu.sh BINARY [server args...]
#   e.g. scripts/bench-cpu.sh ./elastickv --read-mode readindex
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,10p' "$0"; exit 2; }
bin=$(realpath "$1"); shift
off=22000
dir=$(mktemp -d)
"$bin" dev --dir "$dir/dev" --port-offset "$off" -- "$@" >"$dir/dev.out" 2>&1 &
dev=$!
trap 'kill -TERM $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 150); do grep -q "cluster is up" "$dir/dev.out" && break; sleep 0.2; done
leader=""
for _ in $(seq 1 50); do
  for i in 1 2 3; do
    p=$((6380 + i + off))
    redis-cli -p "$p" info replication 2>/dev/null | grep -q role:master && leader=$p
  done
  [ -n "$leader" ] && break
  sleep 0.2
done
[ -n "$leader" ] || { echo "bench-cpu.sh: no leader" >&2; exit 1; }
pids=$(cat "$dir"/dev/n*.pid)
hz=$(getconf CLK_TCK)
ticks() { local t=0; for p in $pids; do read -r u s < <(cut -d' ' -f14,15 "/proc/$p/stat"); t=$((t + u + s)); done; echo "$t"; }
printf "%-4s %-4s %10s %8s %8s %12s\n" test P ops/s p50ms p99ms cpu_us/op
for spec in "set 1 60000" "set 16 200000" "get 1 100000" "get 16 300000"; do
  read -r t P n <<<"$spec"
  a=$(ticks)
  row=$(redis-benchmark -p "$leader" -t "$t" -c 50 -n "$n" -P "$P" -r 100000 --csv | tail -1 | tr -d '"')
  b=$(ticks)
  IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"$row"
  printf "%-4s %-4s %10.0f %8s %8s %12.0f\n" "$t" "$P" "$rps" "$p50" "$p99" "$(echo "($b - $a) * 1000000 / $hz / $n" | bc -l)"
done
