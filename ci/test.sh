#!/usr/bin/env bash
# quorum's test command: formatting, lints, every test (the fuzz corpora replay as plain tests),
# then a short run of each fuzz target. Runs on a clean clone on a fresh machine and installs
# what it needs (redis-tools and tmux for the redis-cli tests, cargo-fuzz for the fuzz run).
#
# Knobs (environment):
#   QUORUM_FUZZ_SECONDS  seconds per fuzz target (default 30; 0 skips fuzzing)
#   QUORUM_CORE_CASES    seeded chaos runs of the in-memory cluster (default 300)
#   QUORUM_MUTATIONS     0 skips the mutation check (one rebuild per planted bug)
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${QUORUM_FUZZ_SECONDS:-30}

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

missing=()
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v tmux >/dev/null || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt_install "${missing[@]}"
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
# The node adapter is written against the tokio API madsim provides: keep it compiling under
# `--cfg madsim` (the `simtest` alias: own target dir) so the simulation can drive it.
echo "== simulation build (cargo simtest --no-run)"
cargo simtest --locked --no-run
if [ "${QUORUM_MUTATIONS:-1}" != 0 ]; then
  echo "== mutation check (ci/mutations.sh; QUORUM_MUTATIONS=0 skips)"
  ci/mutations.sh
fi
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  echo "== fuzz, ${FUZZ_SECONDS}s per target"
  ci/fuzz.sh "$FUZZ_SECONDS"
fi
echo "== all passed"
