#!/usr/bin/env bash
# Benchmarks a fresh 3-node elastickv dev cluster against a local redis-server
# (appendonly yes, appendfsync always) with redis-benchmark, in one run, and
# prints a table: ops/s, p50 and p99 per configuration, and the ratio
# elastickv/redis.
#
# Usage: scripts/bench.sh [-n REQUESTS] [-c CLIENTS] [-t TESTS] [--target leader|follower]
#                         [--read-mode lease|readindex] [--repeat N] [--out FILE.tsv]
#                         [--port-offset N]
# -t takes redis-benchmark's test names (default: set,get and the
# collection tests hset,sadd,zadd,lpush,rpush,lpop,rpop,lrange_100,spop,
# zpopmin), and two of scripts/txbench's, which redis-benchmark cannot
# express: multi3 (MULTI; INCR a; INCR b; GET a; EXEC) and evalsha (EVALSHA
# of a one-INCR script), run without pipelining only; a test whose command
# elastickv does not have yet is skipped, and said so. --repeat runs elastickv and Redis N times each, alternating,
# and reports medians and the ratio of each pair (Redis alone moves by up to
# 1.5x between runs on a shared machine). --out appends the rows (with the
# configuration) to FILE.tsv, for scripts/plot-bench.sh. --port-offset
# (default 20000) moves every port, so runs can share a machine. Needs: go,
# redis-benchmark, redis-cli, and redis-server or the redis-check-rdb
# binary it ships as (Debian: apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

n=100000
c=50
tests=set,get,hset,sadd,zadd,lpush,rpush,lpop,rpop,lrange_100,spop,zpopmin
reps=1
target=leader
read_mode=""
out=""
off=20000
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="$2"; shift 2 ;;
    -c) c="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --read-mode) read_mode="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --repeat) reps="$2"; shift 2 ;;
    -t) tests="$2"; shift 2 ;;
    --port-offset) off="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --repeat needs a positive integer" >&2; exit 2; }
for cmd in redis-benchmark redis-cli go; do
  command -v "$cmd" >/dev/null || { echo "bench.sh: $cmd not found" >&2; exit 2; }
done

work=$(mktemp -d)
# Debian's redis-tools ships the server as redis-check-rdb: the binary
# decides what it is from argv[0], so a link named redis-server is one.
if ! command -v redis-server >/dev/null; then
  rdb=$(command -v redis-check-rdb || true)
  [ -n "$rdb" ] || { echo "bench.sh: neither redis-server nor redis-check-rdb found" >&2; rm -rf "$work"; exit 2; }
  mkdir -p "$work/bin"
  ln -s "$rdb" "$work/bin/redis-server"
  PATH="$work/bin:$PATH"
fi
off=20000
redis_port=$((6379 + off))
cleanup() {
  [ -n "${dev_pid:-}" ] && kill -TERM "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/elastickv" ./cmd/elastickv
go build -o "$work/txbench" ./scripts/txbench
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

# The command each test needs from elastickv (lrange_100 also needs LPUSH,
# spop SADD, zpopmin ZADD, which their own tests need anyway).
test_command() {
  case "$1" in
    lrange_*) echo lrange ;;
    multi3) echo exec ;;
    *) echo "$1" ;;
  esac
}
# Keep the tests whose command elastickv has: COMMAND INFO answers nil for
# one it does not.
run_tests=""
skipped=""
for t in ${tests//,/ }; do
  t=$(echo "$t" | tr '[:upper:]' '[:lower:]')
  cmd=$(test_command "$t")
  if [ -n "$(redis-cli -p "$ekv_port" command info "$cmd" | tr -d '\r')" ]; then
    run_tests="${run_tests:+$run_tests,}$t"
  else
    skipped="${skipped:+$skipped,}$t"
  fi
done
[ -n "$run_tests" ] || { echo "bench.sh: elastickv has none of the commands of $tests" >&2; exit 1; }

# run PORT PIPELINE -> lines "test rps p50 p99". A test's name is the first
# word of redis-benchmark's ("LRANGE_100 (first 100 elements)"); the LPUSH
# that only fills the list for LRANGE is not a result.
run() {
  local rb="" tx="" t
  for t in ${run_tests//,/ }; do
    case "$t" in
      multi3|evalsha) tx="${tx:+$tx,}$t" ;;
      *) rb="${rb:+$rb,}$t" ;;
    esac
  done
  {
    [ -z "$rb" ] || redis-benchmark -p "$1" -t "$rb" -c "$c" -n "$n" -P "$2" -r 100000 --csv 2>/dev/null
    if [ -n "$tx" ] && [ "$2" = 1 ]; then
      echo '"test"'
      "$work/txbench" -addr "127.0.0.1:$1" -t "$tx" -c "$c" -n "$n" -r 100000
    fi
  } | tr -d '"' | awk -F, '$1 != "test" && $1 !~ /needed to benchmark/ { split($1, name, " "); print name[1], $2, $5, $7 }'
}

printf "machine: %s, %s cores; %s\n" "$(uname -m)" "$(nproc)" "$(date -u +%Y-%m-%d)"
printf "redis-benchmark -t %s -c %s -n %s -r 100000; elastickv node = %s, read mode = %s; %s run(s) each; load average %s\n" \
  "$run_tests" "$c" "$n" "$target" "${read_mode:-default}" "$reps" "$(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "$skipped" ] && printf "skipped (elastickv lacks the command): %s\n" "$skipped"
printf "\n"
if [ -n "$out" ] && [ ! -s "$out" ]; then
  printf "target\tread_mode\ttest\tP\tekv_ops\tekv_p50\tekv_p99\tredis_ops\tredis_p50\tredis_p99\tratio\n" >"$out"
fi
# median FILE TEST COLUMN -> the median of COLUMN over FILE's rows for TEST
median() {
  awk -v t="$2" -v c="$3" '$1 == t { print $c }' "$1" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}
# The test column is as wide as its longest name (6 for set,get alone).
tw=6
for t in ${run_tests//,/ }; do [ ${#t} -gt "$tw" ] && tw=${#t}; done
printf "%-${tw}s %-4s %14s %9s %9s %14s %9s %9s %8s" test P "elastickv ops/s" p50ms p99ms "redis ops/s" p50ms p99ms ratio
[ "$reps" -gt 1 ] && printf "  %s" "ratio of each pair"
printf "\n"
for P in 1 16; do
  # elastickv and Redis alternate, so a slow spell of the machine hits both.
  : >"$work/e"
  : >"$work/r"
  for _ in $(seq 1 "$reps"); do
    run "$ekv_port" "$P" >>"$work/e"
    run "$redis_port" "$P" >>"$work/r"
  done
  for t in $(awk '{ print $1 }' "$work/e" | sort -u); do
    e50=$(median "$work/e" "$t" 2) ep50=$(median "$work/e" "$t" 3) ep99=$(median "$work/e" "$t" 4)
    r50=$(median "$work/r" "$t" 2) rp50=$(median "$work/r" "$t" 3) rp99=$(median "$work/r" "$t" 4)
    ratio=$(echo "$e50 / $r50" | bc -l)
    printf "%-${tw}s %-4s %14.0f %9s %9s %14.0f %9s %9s %8.2f" "$t" "$P" "$e50" "$ep50" "$ep99" "$r50" "$rp50" "$rp99" "$ratio"
    if [ "$reps" -gt 1 ]; then
      printf "  %s" "$(paste <(awk -v t="$t" '$1 == t { print $2 }' "$work/e") <(awk -v t="$t" '$1 == t { print $2 }' "$work/r") |
        awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / $2 }')"
    fi
    printf "\n"
    if [ -n "$out" ]; then
      printf "%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%.2f\n" "$target" "${read_mode:-default}" "$t" "$P" \
        "$e50" "$ep50" "$ep99" "$r50" "$rp50" "$rp99" "$ratio" >>"$out"
    fi
  done
done
