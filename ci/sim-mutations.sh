#!/usr/bin/env bash
# The simulation's mutation check, on the real node: builds the simulation with each deliberate
# bug and shows that it finds a violation within a bounded number of seeds. Prints the
# seeds-to-detection of each, and fails if any bug survives.
#   QUORUM_SIM_MUTATION_SEEDS  seeds tried per bug (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${QUORUM_SIM_MUTATION_SEEDS:-300}
BUGS=(
  bug-ack-before-fsync
  bug-no-noop
  bug-vote-without-persist
  bug-read-without-read-index
  bug-apply-before-commit
  bug-fsync-not-done
  bug-ignore-checksum
)

survivors=()
for bug in "${BUGS[@]}"; do
  out=$(QUORUM_SIM_FEATURES="$bug" ci/sim.sh --seeds "$SEEDS" --stop-at-failure 2>/dev/null || true)
  at=$(sed -n 's/^first failure at seed number \([0-9]*\).*/\1/p' <<<"$out")
  if [[ -n "$at" ]]; then
    what=$(grep -m1 -E '^  [a-z].* violated: ' <<<"$out" | sed 's/^  //' | cut -c1-110)
    echo "mutation $bug: caught after $at seeds: $what"
  else
    echo "mutation $bug: NOT caught in $SEEDS seeds"
    survivors+=("$bug")
  fi
done
if [[ ${#survivors[@]} -gt 0 ]]; then
  echo "the simulation missed: ${survivors[*]}" >&2
  exit 1
fi
echo "every planted bug was caught by the simulation"
