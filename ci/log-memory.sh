#!/usr/bin/env bash
# What a follower that is down costs the leader: a 3-node cluster on loopback, one follower
# killed, REQUESTS SETs of 100 bytes through the leader (redis-benchmark -P 16), then the
# follower restarted. Prints the leader's RSS while the follower is away, its peak RSS while
# the follower catches up, and how long that takes. Linux only (reads /proc).
#   LOG_MEMORY_REQUESTS  SETs while the follower is down (default 1000000)
#   QUORUM_BIN           the binary to measure (default: build and use target/release/quorum)
#   QUORUM_ARGS          more `quorum node` flags, e.g. "--log-memory-max 16000000"
#   LOG_MEMORY_PORT      the first node's client port (default 6811; the others follow)
set -euo pipefail
if [ -n "${QUORUM_BIN:-}" ]; then
  QUORUM_BIN=$(realpath "$QUORUM_BIN")
fi
cd "$(dirname "$0")/.."
requests=${LOG_MEMORY_REQUESTS:-1000000}
if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-tools
fi
if [ -z "${QUORUM_BIN:-}" ]; then
  cargo build --release --locked --quiet
  QUORUM_BIN=target/release/quorum
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/quorum-log-memory.XXXXXX")
first=${LOG_MEMORY_PORT:-6811}
ports=("$first" $((first + 1)) $((first + 2)))
members="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
start() { # node index
  # shellcheck disable=SC2086
  "$QUORUM_BIN" node --port "${ports[$1]}" --dir "$work/$1" --cluster "$members" ${QUORUM_ARGS:-} \
    >>"$work/$1.log" 2>&1 &
  pids[$1]=$!
}
field() { # port name (empty while nothing answers there)
  { redis-cli -p "$1" info replication 2>/dev/null || true; } | tr -d '\r' | sed -n "s/^$2://p"
}
kb() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }
for i in 0 1 2; do start "$i"; done
leader=""
for _ in $(seq 200); do
  for i in 0 1 2; do
    [ "$(redis-cli -p "${ports[$i]}" role 2>/dev/null | head -1)" = master ] && leader=$i
  done
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { echo "no leader elected" >&2; exit 1; }
follower=$(((leader + 1) % 3))
lpid=${pids[$leader]}
kill -9 "${pids[$follower]}"
wait "${pids[$follower]}" 2>/dev/null || true
echo "leader RSS before: $(kb "$lpid" VmRSS) kB"
redis-benchmark -p "${ports[$leader]}" -c 50 -n "$requests" -d 100 -t set -P 16 --csv | tail -1
echo "after $requests SETs with a follower down: leader RSS $(kb "$lpid" VmRSS) kB," \
  "log bytes (estimate) $(field "${ports[$leader]}" quorum_log_bytes_in_memory)," \
  "entries dropped over the bound $(field "${ports[$leader]}" quorum_log_entries_dropped_over_bound)"
echo 5 >"/proc/$lpid/clear_refs" # resets the peak RSS (VmHWM)
started_ms=$(($(date +%s%N) / 1000000))
start "$follower"
commit=$(field "${ports[$leader]}" quorum_commit_index)
[ -n "$commit" ] || { echo "the leader no longer answers" >&2; exit 1; }
applied=0
for _ in $(seq 1200); do
  applied=$(field "${ports[$follower]}" quorum_applied_index)
  applied=${applied:-0}
  [ "$applied" -ge "$commit" ] && break
  sleep 0.1
done
[ "$applied" -ge "$commit" ] || { echo "the follower did not catch up in 120 s ($applied of $commit)" >&2; exit 1; }
elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
echo "follower caught up to $applied of $commit in $((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000))) s" \
  "(start-up and 100 ms polling included);" \
  "leader peak RSS meanwhile $(kb "$lpid" VmHWM) kB, now $(kb "$lpid" VmRSS) kB;" \
  "WAL reads $(field "${ports[$leader]}" quorum_log_reads_from_wal)"
