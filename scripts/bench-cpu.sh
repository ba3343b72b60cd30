#!/usr/bin/env bash
# Measures what a request costs the whole cluster in CPU, which stays
# meaningful on a machine too busy for throughput numbers to compare: it
# starts a dev cluster from BINARY, runs redis-benchmark against the
# leader for SET/GET at -P 1 and -P 16, and prints for each the ops/s, the
# latencies and the user+system CPU time all three servers spent per
# request (from /proc/PID/stat), in total and split into the leader's and
# the two followers' share; then, if redis-server is installed, the same for
# a redis-server with appendfsync always (rows marked "redis"), for scale.
# CLIENTS (default 50) sets redis-benchmark -c.
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
trap 'kill -TERM $dev 2>/dev/null; wait $dev 2>/dev/null; [ -f "$dir/redis/pid" ] && kill "$(cat "$dir/redis/pid")" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 150); do grep -q "cluster is up" "$dir/dev.out" && break; sleep 0.2; done
leader=""
for _ in $(seq 1 50); do
  for i in 1 2 3; do
    p=$((6380 + i + off))
    redis-cli -p "$p" info replication 2>/dev/null | grep -q role:master && leader=$i
  done
  [ -n "$leader" ] && break
  sleep 0.2
done
[ -n "$leader" ] || { echo "bench-cpu.sh: no leader" >&2; exit 1; }
lpid=$(cat "$dir/dev/n$leader.pid")
fpids=$(for i in 1 2 3; do [ "$i" = "$leader" ] || cat "$dir/dev/n$i.pid"; done)
hz=$(getconf CLK_TCK)
ticks() { local t=0; for p in "$@"; do read -r u s < <(cut -d' ' -f14,15 "/proc/$p/stat"); t=$((t + u + s)); done; echo "$t"; }
perop() { echo "$1 * 1000000 / $hz / $2" | bc -l; }
# The same requests against both servers: test, pipeline depth, count.
specs=("set 1 60000" "set 16 200000" "get 1 100000" "get 16 300000")
# bench PORT TEST P N -> "ops/s p50 p99"
bench() {
  redis-benchmark -p "$1" -t "$2" -c "${CLIENTS:-50}" -n "$4" -P "$3" -r 100000 --csv |
    tail -1 | tr -d '"' | awk -F, '{ print $2, $5, $7 }'
}
printf "%-4s %-4s %10s %8s %8s %12s %10s %12s\n" test P ops/s p50ms p99ms cpu_us/op leader followers
for spec in "${specs[@]}"; do
  read -r t P n <<<"$spec"
  la=$(ticks "$lpid"); fa=$(ticks $fpids)
  read -r rps p50 p99 < <(bench $((6380 + leader + off)) "$t" "$P" "$n")
  lb=$(ticks "$lpid"); fb=$(ticks $fpids)
  printf "%-4s %-4s %10.0f %8s %8s %12.0f %10.0f %12.0f\n" "$t" "$P" "$rps" "$p50" "$p99" \
    "$(perop $((lb - la + fb - fa)) "$n")" "$(perop $((lb - la)) "$n")" "$(perop $((fb - fa)) "$n")"
done
# The same load against redis-server (appendfsync always), for scale.
if command -v redis-server >/dev/null; then
  rport=$((6390 + off))
  mkdir -p "$dir/redis"
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes --appendfsync always \
    --save '' --daemonize yes --pidfile "$dir/redis/pid" >/dev/null
  for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  rpid=$(cat "$dir/redis/pid")
  for spec in "${specs[@]}"; do
    read -r t P n <<<"$spec"
    a=$(ticks "$rpid")
    read -r rps p50 p99 < <(bench "$rport" "$t" "$P" "$n")
    b=$(ticks "$rpid")
    printf "%-4s %-4s %10.0f %8s %8s %12.0f %10s %12s\n" "$t" "$P" "$rps" "$p50" "$p99" "$(perop $((b - a)) "$n")" redis -
  done
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
fi
