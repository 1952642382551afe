#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time on the stable toolchain (`-s none`: the
# default address sanitizer needs nightly). New inputs go to a scratch directory, so a run does
# not change the committed corpus; a crash is saved under fuzz/artifacts/TARGET/ and fails the
# run. To keep a crash as a regression, copy it into fuzz/regressions/TARGET/ (with a name that
# says what it found): `cargo test` replays every file there and in fuzz/corpus/TARGET/
# (tests/fuzz_corpora.rs).
#
# Usage: ci/fuzz.sh [SECONDS_PER_TARGET]   (default: $QUORUM_FUZZ_SECONDS or 60)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-${QUORUM_FUZZ_SECONDS:-60}}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in resp_decode wal_recovery peer_decode core_schedule; do
  echo "== fuzz $target for ${SECONDS_PER_TARGET}s"
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! (cd fuzz && cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz $target FAILED (crash inputs, if any, are in fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E "stat::(number_of_executed_units|new_units_added|peak_rss_mb)" "$log" || true
done
