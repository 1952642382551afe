#!/usr/bin/env bash
# quorum's test command: formatting, lints, every test (the fuzz corpora replay as plain tests),
# then a short run of each fuzz target. Runs on a clean clone on a fresh machine and installs
# what it needs (redis-tools and tmux for the redis-cli tests, cargo-fuzz for the fuzz run).
#
# Knobs (environment):
#   QUORUM_FUZZ_SECONDS  seconds per fuzz target (default 30; 0 skips fuzzing)
#   QUORUM_CORE_CASES    seeded chaos runs of the in-memory cluster (default 300)
#   QUORUM_MUTATIONS     0 skips the mutation checks (one rebuild per planted bug)
#   QUORUM_SIM_SEEDS     seeds of the madsim simulation, 3 nodes (default 300; 0 skips it)
#   QUORUM_SIM_SEEDS_5   seeds of the 5-node simulation (default 100)
#   QUORUM_SIM_MUTATION_SEEDS  seeds tried per planted bug in the simulation (default 300)
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
SIM_SEEDS=${QUORUM_SIM_SEEDS:-300}
if [ "$SIM_SEEDS" -gt 0 ]; then
  echo "== simulation lints (quorum-sim under --cfg madsim)"
  cargo clippy --locked -p quorum-sim --config "build.rustflags=['--cfg','madsim']" \
    --config "build.target-dir='target/sim'" -- -D warnings
  echo "== simulation: $SIM_SEEDS seeds of 3 nodes, the regression seeds, determinism of 20"
  ci/sim.sh --seeds "$SIM_SEEDS" --regressions sim/regressions.txt --check-determinism 20
  echo "== simulation: ${QUORUM_SIM_SEEDS_5:-100} seeds of 5 nodes"
  ci/sim.sh --nodes 5 --seed 100001 --seeds "${QUORUM_SIM_SEEDS_5:-100}" \
    --regressions sim/regressions.txt --check-determinism 5
fi
if [ "${QUORUM_MUTATIONS:-1}" != 0 ]; then
  echo "== mutation check (ci/mutations.sh; QUORUM_MUTATIONS=0 skips)"
  ci/mutations.sh
  if [ "$SIM_SEEDS" -gt 0 ]; then
    echo "== mutation check of the simulation (ci/sim-mutations.sh)"
    ci/sim-mutations.sh
  fi
fi
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  echo "== fuzz, ${FUZZ_SECONDS}s per target"
  ci/fuzz.sh "$FUZZ_SECONDS"
fi
echo "== all passed"
