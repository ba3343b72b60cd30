#!/usr/bin/env bash
# rolling-update.sh: restart every node of a running elastickv dev cluster,
# one at a time, without losing availability. See --help.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/rolling-update.sh [options]

Restarts every node of a running cluster started by `elastickv dev`, one at
a time: followers first, then the leader after `elastickv admin
transfer-leader` has moved leadership away. Before each restart every member
must be caught up; after it, the script waits until the restarted node is
caught up again (its lag in `elastickv admin status` is at most --max-lag
and its /readyz answers 200) before it moves on. Use it to roll out a new
binary (replace the file the command lines point at, or pass --binary) or
new environment settings (EXTRA_ENV).

Node I's command line is read from DIR/nI.cmd and its pid from DIR/nI.pid
(both written by `elastickv dev`); the script writes the restarted process's
pid back to DIR/nI.pid and appends its output to DIR/nI.log.

Options:
  --dir DIR          cluster directory (default ./data/dev)
  --binary PATH      elastickv binary to restart the nodes with, and to run
                     `admin` with (default: the binary in DIR/n1.cmd)
  --env-file FILE    read settings from FILE (see below)
  --max-lag N        entries a node may trail the leader and count as caught
                     up (default 50)
  --timeout SECONDS  how long to wait for one node to stop, come back and
                     catch up (default 120)
  -h, --help         show this text

Environment:
  EXTRA_ENV          whitespace-separated KEY=VALUE pairs added to every
                     restarted node's environment, e.g.
                     EXTRA_ENV="ELASTICKV_FSM_SYNC_MODE=nosync ELASTICKV_PEBBLE_CACHE_MB=512".
                     Each KEY must match ^[A-Za-z_][A-Za-z0-9_]*$; values
                     cannot contain whitespace.

Env file (--env-file): one KEY=VALUE per line, blank lines and lines
starting with # ignored; the file is parsed, never executed. Keys: DIR,
BINARY, EXTRA_ENV, MAX_LAG, TIMEOUT. Values may be wrapped in single or
double quotes. Options on the command line override the file, and the file
overrides the environment. Example:

  # rolling.env
  DIR=/srv/elastickv/dev
  BINARY=/usr/local/bin/elastickv-1.4.0
  EXTRA_ENV="ELASTICKV_PEBBLE_CACHE_MB=512"
  MAX_LAG=100

Exit status: 0 when every node was restarted and caught up, 1 when a step
failed (the script stops at once, leaving the remaining nodes untouched), 2
for bad options.
EOF
}

say() { printf 'rolling-update: [%s] %s\n' "$(date +%H:%M:%S.%3N)" "$*"; }
die() { printf 'rolling-update: %s\n' "$*" >&2; exit 1; }
bad() { printf 'rolling-update: %s (try --help)\n' "$*" >&2; exit 2; }

DIR=${DIR:-./data/dev}
BINARY=${BINARY:-}
EXTRA_ENV=${EXTRA_ENV:-}
MAX_LAG=${MAX_LAG:-50}
TIMEOUT=${TIMEOUT:-120}

# load_env_file FILE: KEY=VALUE lines, parsed (never sourced).
load_env_file() {
	local file=$1 line key val n=0
	[[ -r $file ]] || bad "--env-file $file is not readable"
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		line=${line#"${line%%[![:space:]]*}"}
		[[ -z $line || $line == \#* ]] && continue
		[[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || bad "$file:$n: not KEY=VALUE"
		key=${BASH_REMATCH[1]} val=${BASH_REMATCH[2]}
		if [[ $val =~ ^\"(.*)\"$ || $val =~ ^\'(.*)\'$ ]]; then
			val=${BASH_REMATCH[1]}
		fi
		case $key in
		DIR | BINARY | EXTRA_ENV | MAX_LAG | TIMEOUT) printf -v "$key" '%s' "$val" ;;
		*) bad "$file:$n: unknown key $key (DIR, BINARY, EXTRA_ENV, MAX_LAG, TIMEOUT)" ;;
		esac
	done <"$file"
}

# Command-line options win over the env file: collect them first.
opt_dir= opt_binary= opt_lag= opt_timeout= env_file=
while (($#)); do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--dir | --binary | --env-file | --max-lag | --timeout)
		(($# >= 2)) || bad "$1 needs a value"
		case $1 in
		--dir) opt_dir=$2 ;;
		--binary) opt_binary=$2 ;;
		--env-file) env_file=$2 ;;
		--max-lag) opt_lag=$2 ;;
		--timeout) opt_timeout=$2 ;;
		esac
		shift 2 ;;
	--dir=* | --binary=* | --env-file=* | --max-lag=* | --timeout=*)
		k=${1%%=*} v=${1#*=}
		set -- "$k" "$v" "${@:2}"
		continue ;;
	*) bad "unknown option $1" ;;
	esac
done
[[ -n $env_file ]] && load_env_file "$env_file"
[[ -n $opt_dir ]] && DIR=$opt_dir
[[ -n $opt_binary ]] && BINARY=$opt_binary
[[ -n $opt_lag ]] && MAX_LAG=$opt_lag
[[ -n $opt_timeout ]] && TIMEOUT=$opt_timeout

[[ $MAX_LAG =~ ^[0-9]+$ ]] || bad "--max-lag must be a non-negative integer, got '$MAX_LAG'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || bad "--timeout must be a positive integer (seconds), got '$TIMEOUT'"

# EXTRA_ENV: validated before anything is touched.
extra_env=()
read -r -a env_words <<<"$EXTRA_ENV" # split on whitespace, no globbing
for kv in "${env_words[@]}"; do
	[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || bad "EXTRA_ENV entry '$kv' is not KEY=VALUE with KEY matching ^[A-Za-z_][A-Za-z0-9_]*\$"
	extra_env+=("$kv")
done

[[ -d $DIR ]] || die "cluster directory $DIR does not exist"
shopt -s nullglob
cmds=("$DIR"/n[0-9]*.cmd)
shopt -u nullglob
((${#cmds[@]} > 0)) || die "no node command lines (nI.cmd) in $DIR; was the cluster started with elastickv dev --dir $DIR?"

# words LINE: split a command line written by `elastickv dev` (POSIX shell
# quoting) into one word per output line, without evaluating it.
words() { printf '%s\n' "$1" | xargs -n1 printf '%s\n'; }

# flag_value LINE FLAG: the value following FLAG in LINE.
flag_value() {
	# awk reads to the end: exiting early would SIGPIPE xargs (pipefail).
	words "$1" | awk -v f="$2" 'prev == f && !done { print; done = 1 } { prev = $0 }'
}

# first_word LINE: the program of a command line.
first_word() { words "$1" | sed -n 1p; }

declare -A CMD RAFT METRICS
NODES=()
for f in "${cmds[@]}"; do
	name=$(basename "$f" .cmd)
	line=$(<"$f")
	[[ -n $line ]] || die "$f is empty"
	CMD[$name]=$line
	RAFT[$name]=$(flag_value "$line" --raft-addr)
	METRICS[$name]=$(flag_value "$line" --metrics-addr)
	[[ -n ${RAFT[$name]} ]] || die "$f has no --raft-addr"
	NODES+=("$name")
done
if [[ -z $BINARY ]]; then
	BINARY=$(first_word "${CMD[${NODES[0]}]}")
fi
[[ -x $BINARY ]] || die "binary $BINARY is not executable"

# http_status URL: the HTTP status code, or 000 when unreachable.
http_status() {
	if command -v curl >/dev/null; then
		curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true
		return
	fi
	local hostport=${1#http://} path
	path=/${hostport#*/} hostport=${hostport%%/*}
	timeout 2 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" && printf "GET %s HTTP/1.0\r\n\r\n" "$2" >&3 && head -n1 <&3' _ "$hostport" "$path" 2>/dev/null |
		awk '{ print $2 }' || echo 000
}

# status [SKIP]: `admin status` from the first node (other than SKIP) whose
# answer comes from a leader.
status() {
	local n out
	for n in "${NODES[@]}"; do
		[[ $n == "${1:-}" ]] && continue
		if out=$("$BINARY" admin --endpoint "${RAFT[$n]}" --timeout 5s status 2>/dev/null) &&
			! grep -q '^no leader answered' <<<"$out"; then
			printf '%s\n' "$out"
			return 0
		fi
	done
	return 1
}

leader_of() { awk 'NR == 1 && $1 == "leader" { print $2 }' <<<"$1"; }

# lag_of STATUS NAME: "ROLE MATCH LAG ACTIVE" of NAME in the table.
lag_of() { awk -v n="$2" 'NR > 2 && $1 == n { print $4, $5, $6, $7 }' <<<"$1"; }

# all_caught_up STATUS: every member's lag <= MAX_LAG and active.
all_caught_up() {
	awk -v max="$MAX_LAG" 'NR > 2 && $1 != "*" && NF >= 7 { if ($6 == "-" || $6 + 0 > max || $7 != "yes") bad = 1; seen = 1 }
		END { exit !(seen && !bad) }' <<<"$1"
}

wait_cluster_caught_up() {
	local deadline=$((SECONDS + TIMEOUT)) st
	while ((SECONDS < deadline)); do
		if st=$(status "${1:-}") && all_caught_up "$st"; then
			return 0
		fi
		sleep 0.2
	done
	die "cluster not caught up within ${TIMEOUT}s; last status:"$'\n'"${st:-<no leader answered>}"
}

pid_alive() { kill -0 "$1" 2>/dev/null; }

# owned PID NAME: PID runs node NAME's data dir (guards against a stale pid
# file pointing at a reused pid).
owned() {
	local dd
	[[ -r /proc/$1/cmdline ]] || return 0
	dd=$(flag_value "${CMD[$2]}" --data-dir)
	tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF -- "$dd"
}

stop_node() {
	local n=$1 pid deadline
	pid=$(tr -dc '0-9' <"$DIR/$n.pid" 2>/dev/null || true)
	if [[ -z $pid ]] || ! pid_alive "$pid"; then
		say "$n: not running (pid file $DIR/$n.pid: '${pid:-missing}')"
		return 0
	fi
	owned "$pid" "$n" || die "$n: pid $pid in $DIR/$n.pid is not this node's process; fix the pid file"
	say "$n: stopping (pid $pid)"
	kill -TERM "$pid"
	deadline=$((SECONDS + TIMEOUT))
	while pid_alive "$pid"; do
		if ((SECONDS >= deadline)); then
			say "$n: still running after ${TIMEOUT}s; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.05
	done
	say "$n: stopped"
}

start_node() {
	local n=$1 line=${CMD[$1]} pid first
	# Swap the binary (the first word) for $BINARY, keep the rest.
	first=$(first_word "$line")
	if [[ $first != "$BINARY" ]]; then
		[[ $line == "$first"* ]] || die "$n: cannot replace the quoted binary path in $DIR/$n.cmd; edit the file"
		line=$(printf '%q' "$BINARY")${line:${#first}}
	fi
	# A new session, so the node outlives this script and a terminal's
	# Ctrl-C; exec keeps the pid the one we record.
	local launcher=()
	command -v setsid >/dev/null && launcher=(setsid)
	"${launcher[@]}" nohup env -u EXTRA_ENV "${extra_env[@]}" sh -c "exec $line" >>"$DIR/$n.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$DIR/$n.pid"
	say "$n: started (pid $pid)${extra_env[*]:+ with ${extra_env[*]}}"
}

wait_node_caught_up() {
	local n=$1 deadline=$((SECONDS + TIMEOUT)) st row ready pid role match lag active
	while ((SECONDS < deadline)); do
		pid=$(tr -dc '0-9' <"$DIR/$n.pid")
		pid_alive "$pid" || die "$n exited after restart; see $DIR/$n.log"
		if st=$(status) && row=$(lag_of "$st" "$n") && [[ -n $row ]]; then
			read -r role match lag active <<<"$row"
			if [[ $lag != "-" && $active == yes ]] && ((lag <= MAX_LAG)); then
				ready=200
				[[ -n ${METRICS[$n]} ]] && ready=$(http_status "http://${METRICS[$n]}/readyz")
				if [[ $ready == 200 ]]; then
					say "$n: caught up (role ${role%\*}, match $match, lag $lag)"
					return 0
				fi
			fi
		fi
		sleep 0.1
	done
	die "$n did not catch up within ${TIMEOUT}s; last status:"$'\n'"${st:-<no leader answered>}"
}

restart() {
	stop_node "$1"
	start_node "$1"
	wait_node_caught_up "$1"
}

st=$(status) || die "no leader answered through any of ${NODES[*]}; is the cluster running?"
leader=$(leader_of "$st")
[[ -n $leader && $leader != "(none)" ]] || die "no leader known"
say "cluster in $DIR: nodes ${NODES[*]}, leader $leader, binary $BINARY"

for n in "${NODES[@]}"; do
	[[ $n == "$leader" ]] && continue
	wait_cluster_caught_up
	restart "$n"
done

wait_cluster_caught_up
say "$leader: transferring leadership away"
"$BINARY" admin --endpoint "${RAFT[$leader]}" --timeout 30s transfer-leader >/dev/null ||
	die "$leader: leadership transfer failed; not restarting the leader"
st=$(status "$leader") || die "no leader answered after the transfer"
new=$(leader_of "$st")
[[ $new != "$leader" ]] || die "$leader still leads after the transfer"
say "$leader: leadership moved to $new"
restart "$leader"
wait_cluster_caught_up
say "done: restarted ${#NODES[@]} nodes"
