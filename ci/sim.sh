#!/usr/bin/env bash
# Builds and runs the chaos simulation of real quorum nodes under madsim.
#   ci/sim.sh [--seeds N] [--seed S] [--nodes 3|5] [--seconds T] [--regressions FILE]
#             [--check-determinism K] [--verbose] [--stop-at-failure]
# Environment: QUORUM_SIM_FEATURES (for example bug-no-noop: a mutation to turn on),
#              QUORUM_SIM_PROFILE (release by default; dev for a debug build).
# The build uses `--cfg madsim` and its own target directory (target/sim), since switching
# RUSTFLAGS rebuilds everything.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${QUORUM_SIM_PROFILE:-release}"
features=()
if [[ -n "${QUORUM_SIM_FEATURES:-}" ]]; then
  features=(--features "$QUORUM_SIM_FEATURES")
fi
target_dir="target/sim"
if [[ -n "${QUORUM_SIM_FEATURES:-}" ]]; then
  # Each mutation gets its own directory, so the clean build stays cached.
  target_dir="target/sim-mutants"
fi
cargo build --locked --quiet --profile "$profile" -p quorum-sim "${features[@]}" \
  --config "build.rustflags=['--cfg','madsim']" --config "build.target-dir='$target_dir'"
dir="$profile"
[[ "$profile" == dev ]] && dir=debug
exec "$target_dir/$dir/quorum-sim" "$@"
