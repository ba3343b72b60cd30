#!/usr/bin/env bash
# Benchmarks a fresh 3-node elastickv dev cluster against a local redis-server
# (appendonly yes, appendfsync always) with redis-benchmark, in one run, and
# prints a table: ops/s, p50 and p99 per configuration, and the ratio
# elastickv/redis.
#
# Usage: scripts/bench.sh [-n REQUESTS] [-c CLIENTS] [--target leader|follower]
#                         [--read-mode lease|readindex] [--out FILE.tsv]
# --out appends the rows (with the configuration) to FILE.tsv, for
# scripts/plot-bench.sh. Needs: go, redis-server, redis-benchmark
# (Debian: apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

n=100000
c=50
target=leader
read_mode=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="$2"; shift 2 ;;
    -c) c="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --read-mode) read_mode="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for cmd in redis-server redis-benchmark redis-cli go; do
  command -v "$cmd" >/dev/null || { echo "bench.sh: $cmd not found" >&2; exit 2; }
done

work=$(mktemp -d)
off=20000
redis_port=$((6379 + off))
cleanup() {
  [ -n "${dev_pid:-}" ] && kill -TERM "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/elastickv" ./cmd/elastickv
server_args=()
[ -n "$read_mode" ] && server_args=(-- --read-mode "$read_mode")
"$work/elastickv" dev --dir "$work/dev" --port-offset "$off" "${server_args[@]}" >"$work/dev.out" 2>&1 &
dev_pid=$!
for _ in $(seq 1 150); do grep -q "cluster is up" "$work/dev.out" && break; sleep 0.2; done
grep -q "cluster is up" "$work/dev.out" || { cat "$work/dev.out"; exit 1; }

# Pick the node to drive: the leader, or a follower (writes then forwarded).
ekv_port=""
for i in 1 2 3; do
  p=$((6380 + i + off))
  role=$(redis-cli -p "$p" info replication | tr -d '\r' | sed -n 's/^role://p')
  if { [ "$target" = leader ] && [ "$role" = master ]; } || { [ "$target" = follower ] && [ "$role" = slave ]; }; then
    ekv_port=$p; break
  fi
done
[ -n "$ekv_port" ] || { echo "bench.sh: no $target found" >&2; exit 1; }

mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes --appendfsync always \
  --save "" --daemonize yes --logfile "$work/redis/log" >/dev/null
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# run PORT PIPELINE -> lines "test rps p50 p99"
run() {
  redis-benchmark -p "$1" -t set,get -c "$c" -n "$n" -P "$2" -r 100000 --csv 2>/dev/null |
    tr -d '"' | awk -F, 'NR>1 { print $1, $2, $5, $7 }'
}

printf "machine: %s, %s cores; %s\n" "$(uname -m)" "$(nproc)" "$(date -u +%Y-%m-%d)"
printf "redis-benchmark -t set,get -c %s -n %s -r 100000; elastickv node = %s, read mode = %s; load average %s\n\n" \
  "$c" "$n" "$target" "${read_mode:-default}" "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$out" ] && [ ! -s "$out" ]; then
  printf "target\tread_mode\ttest\tP\tekv_ops\tekv_p50\tekv_p99\tredis_ops\tredis_p50\tredis_p99\tratio\n" >"$out"
fi
printf "%-6s %-4s %14s %9s %9s %14s %9s %9s %8s\n" test P "elastickv ops/s" p50ms p99ms "redis ops/s" p50ms p99ms ratio
for P in 1 16; do
  run "$ekv_port" "$P" >"$work/e"
  run "$redis_port" "$P" >"$work/r"
  join <(sort "$work/e") <(sort "$work/r") | while read -r t e50 ep50 ep99 r50 rp50 rp99; do
    ratio=$(echo "$e50 / $r50" | bc -l)
    printf "%-6s %-4s %14.0f %9s %9s %14.0f %9s %9s %8.2f\n" "$t" "$P" "$e50" "$ep50" "$ep99" "$r50" "$rp50" "$rp99" "$ratio"
    if [ -n "$out" ]; then
      printf "%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%.2f\n" "$target" "${read_mode:-default}" "$t" "$P" \
        "$e50" "$ep50" "$ep99" "$r50" "$rp50" "$rp99" "$ratio" >>"$out"
    fi
  done
done
