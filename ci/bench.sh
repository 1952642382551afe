#!/usr/bin/env bash
# Single-node benchmark: quorum against Redis with `appendonly yes, appendfsync always` (every
# write fsynced before its reply, as quorum does), side by side on loopback, with the same
# redis-benchmark matrix, and the ratio quorum/redis for each row. Installs redis-server and
# redis-tools from Debian's packages if they are missing.
#
# Knobs (environment):
#   BENCH_REQUESTS  requests per row (default 200000)
#   BENCH_CLIENTS   connections (default 50)
#   BENCH_TESTS     redis-benchmark tests (default "set get incr lpush hset")
#   BENCH_PIPELINES pipeline depths (default "1 16")
#   BENCH_ROUNDS    runs per row; the best of each side is kept (default 1). The sides
#                   take turns round by round, each going first in turn
#   BENCH_KEYSPACE  spread keys over this many random names (redis-benchmark -r); the default,
#                   0, is the matrix of the issue (one key per test, as redis-benchmark does
#                   without -r)
#   BENCH_SINGLE    0 skips the single-node section
#   BENCH_REPLICATED 0 skips the replicated section: a 3-node quorum cluster (through its
#                   leader) against Redis primary + 2 replicas, every write followed by
#                   `WAIT 2 0` (examples/set_wait.rs), and against the standalone Redis above
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${BENCH_REQUESTS:-200000}
CLIENTS=${BENCH_CLIENTS:-50}
TESTS=${BENCH_TESTS:-"set get incr lpush hset"}
PIPELINES=${BENCH_PIPELINES:-"1 16"}
ROUNDS=${BENCH_ROUNDS:-1}
KEYSPACE=${BENCH_KEYSPACE:-0}
random_keys=()
[ "$KEYSPACE" -gt 0 ] && random_keys=(-r "$KEYSPACE")
REDIS_PORT=${BENCH_REDIS_PORT:-6501}
QUORUM_PORT=${BENCH_QUORUM_PORT:-6502}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools
fi
cargo build --release --locked --quiet

cargo build --release --locked --quiet --example set_wait
replicated_ports=()
cluster_pids=()
work=$(mktemp -d "${TMPDIR:-/tmp}/quorum-bench.XXXXXX")
cleanup() {
  for port in "$REDIS_PORT" "${replicated_ports[@]}"; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  for pid in ${quorum_pid:-} "${cluster_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/redis" "$work/quorum"
redis-server --port "$REDIS_PORT" --dir "$work/redis" --appendonly yes --appendfsync always \
  --save '' --daemonize yes --logfile "$work/redis.log"
target/release/quorum node --port "$QUORUM_PORT" --dir "$work/quorum" ${QUORUM_ARGS:-} >"$work/quorum.log" 2>&1 &
quorum_pid=$!
for port in "$REDIS_PORT" "$QUORUM_PORT"; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

# ops/s and p50/p99 (ms) of one redis-benchmark run, as "rps p50 p99".
run() {
  local port=$1 test=$2 pipeline=$3
  redis-benchmark -p "$port" -c "$CLIENTS" -n "$REQUESTS" -d 100 "${random_keys[@]}" -t "$test" \
    -P "$pipeline" --csv 2>/dev/null |
    awk -F'","' 'NR==2 { print $2, $5, $7 }'
}

higher() { # of two runs, the one with the higher ops/s
  if awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] > y[1]) }'; then
    echo "$1"
  else
    echo "$2"
  fi
}

# The best of ROUNDS runs on each of two ports, the runs interleaved (a b, b a, a b, ...):
# the machine's speed drifts over seconds, and back-to-back rounds of one side would hand
# one of them a faster stretch. Prints "a_rps a_p50 a_p99 b_rps b_p50 b_p99".
best_interleaved() {
  local a=$1 b=$2 test=$3 pipeline=$4 first=$5 top_a="0 0 0" top_b="0 0 0"
  for round in $(seq "$ROUNDS"); do
    if [ $(((round + first) % 2)) = 0 ]; then
      top_a=$(higher "$(run "$a" "$test" "$pipeline")" "$top_a")
      top_b=$(higher "$(run "$b" "$test" "$pipeline")" "$top_b")
    else
      top_b=$(higher "$(run "$b" "$test" "$pipeline")" "$top_b")
      top_a=$(higher "$(run "$a" "$test" "$pipeline")" "$top_a")
    fi
  done
  echo "$top_a $top_b"
}

echo "quorum $(target/release/quorum --version | awk '{print $2}') vs $(redis-server --version | awk '{print $3}') (appendfsync always)," \
  "$CLIENTS clients, $REQUESTS requests, 100-byte values, keyspace ${KEYSPACE/#0/1 key}, $(nproc) cores"
printf '%-6s %3s | %12s %7s %7s | %12s %7s %7s | %6s %6s %s\n' \
  test P redis_ops/s p50_ms p99_ms quorum_ops/s p50_ms p99_ms ratio target ok
failures=0
row=0
[ "${BENCH_SINGLE:-1}" = 0 ] && PIPELINES_SINGLE="" || PIPELINES_SINGLE=$PIPELINES
for pipeline in $PIPELINES_SINGLE; do
  for test in $TESTS; do
    # Alternate who goes first so that neither always runs on a warmer machine.
    row=$((row + 1))
    read -r q_rps q_p50 q_p99 r_rps r_p50 r_p99 < \
      <(best_interleaved "$QUORUM_PORT" "$REDIS_PORT" "$test" "$pipeline" "$row")
    target=1.00
    [ "$test" = get ] && target=0.90
    ratio=$(awk -v q="$q_rps" -v r="$r_rps" 'BEGIN { printf "%.2f", (r > 0 ? q / r : 0) }')
    ok=yes
    awk -v x="$ratio" -v t="$target" 'BEGIN { exit !(x + 0 >= t + 0) }' || { ok=NO; failures=$((failures + 1)); }
    printf '%-6s %3s | %12.0f %7s %7s | %12.0f %7s %7s | %6s %6s %s\n' \
      "$test" "$pipeline" "$r_rps" "$r_p50" "$r_p99" "$q_rps" "$q_p50" "$q_p99" "$ratio" "$target" "$ok"
  done
done
echo "rows below target: $failures"

[ "${BENCH_REPLICATED:-1}" = 0 ] && exit 0
kill "$quorum_pid" 2>/dev/null || true
quorum_pid=""
# Redis: a primary and two replicas, every one fsyncing every write.
R1=$((REDIS_PORT + 10)); R2=$((REDIS_PORT + 11)); R3=$((REDIS_PORT + 12))
replicated_ports=("$R1" "$R2" "$R3")
for port in "$R1" "$R2" "$R3"; do
  mkdir -p "$work/r$port"
  extra=()
  [ "$port" != "$R1" ] && extra=(--replicaof 127.0.0.1 "$R1")
  redis-server --port "$port" --dir "$work/r$port" --appendonly yes --appendfsync always \
    --save '' --daemonize yes --logfile "$work/r$port.log" "${extra[@]}"
done
for port in "$R2" "$R3"; do
  for _ in $(seq 200); do
    redis-cli -p "$port" info replication 2>/dev/null | grep -q master_link_status:up && break
    sleep 0.1
  done
done
# quorum: three nodes.
Q1=$((QUORUM_PORT + 20))
members="127.0.0.1:$Q1,127.0.0.1:$((Q1 + 1)),127.0.0.1:$((Q1 + 2))"
for i in 0 1 2; do
  target/release/quorum node --port $((Q1 + i)) --dir "$work/q$i" --cluster "$members" \
    >"$work/q$i.log" 2>&1 &
  cluster_pids+=($!)
done
leader=""
for _ in $(seq 200); do
  for i in 0 1 2; do
    [ "$(redis-cli -p $((Q1 + i)) role 2>/dev/null | head -1)" = master ] && leader=$((Q1 + i))
  done
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { echo "the quorum cluster elected no leader" >&2; exit 1; }

echo
echo "replicated: quorum 3 nodes (through the leader; majority fsync before every ack) vs Redis primary + 2 replicas"
echo "(appendfsync always everywhere; writes followed by WAIT 2 0) vs standalone Redis (appendfsync always)"
printf '%-6s %3s | %10s %7s %7s | %10s %7s %7s | %10s %7s %7s | %8s %8s %s\n' \
  test P alone_ops/s p50 p99 repl_ops/s p50 p99 quorum_ops/s p50 p99 q/alone q/repl ok
repl_failures=0
# The three sides take turns in every round, each going first in turn, for the reason given
# at best_interleaved.
replicated_run() { # side test pipeline
  case $1 in
    alone) run "$REDIS_PORT" "$2" "$3" ;;
    repl)
      if [ "$2" = get ]; then
        run "$R1" get "$3"
      else
        target/release/examples/set_wait "$R1" "$CLIENTS" "$REQUESTS" "$3" 2 "$2"
      fi
      ;;
    quorum) run "$leader" "$2" "$3" ;;
  esac
}
for pipeline in $PIPELINES; do
  for test in set get incr; do
    row=$((row + 1))
    declare -A top=([alone]="0 0 0" [repl]="0 0 0" [quorum]="0 0 0")
    sides=(alone repl quorum)
    for round in $(seq "$ROUNDS"); do
      for i in 0 1 2; do
        side=${sides[$(((i + round + row) % 3))]}
        top[$side]=$(higher "$(replicated_run "$side" "$test" "$pipeline")" "${top[$side]}")
      done
    done
    read -r a_rps a_p50 a_p99 <<<"${top[alone]}"
    read -r r_rps r_p50 r_p99 <<<"${top[repl]}"
    read -r q_rps q_p50 q_p99 <<<"${top[quorum]}"
    q_alone=$(awk -v q="$q_rps" -v r="$a_rps" 'BEGIN { printf "%.2f", (r > 0 ? q / r : 0) }')
    q_repl=$(awk -v q="$q_rps" -v r="$r_rps" 'BEGIN { printf "%.2f", (r > 0 ? q / r : 0) }')
    # Targets: writes >= 1.5x Redis+WAIT and >= 0.7x standalone; GET >= 0.7x Redis GET.
    ok=yes
    if [ "$test" = get ]; then
      awk -v x="$q_repl" 'BEGIN { exit !(x >= 0.7) }' || ok=NO
    else
      awk -v x="$q_repl" -v y="$q_alone" 'BEGIN { exit !(x >= 1.5 && y >= 0.7) }' || ok=NO
    fi
    [ "$ok" = NO ] && repl_failures=$((repl_failures + 1))
    printf '%-6s %3s | %10.0f %7s %7s | %10.0f %7s %7s | %10.0f %7s %7s | %8s %8s %s\n' \
      "$test" "$pipeline" "$a_rps" "$a_p50" "$a_p99" "$r_rps" "$r_p50" "$r_p99" \
      "$q_rps" "$q_p50" "$q_p99" "$q_alone" "$q_repl" "$ok"
  done
done
echo "replicated rows below target: $repl_failures"
