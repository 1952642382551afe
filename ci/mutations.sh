#!/usr/bin/env bash
# The mutation check: builds the core with each deliberate bug (a `bug-...` feature) and shows
# that the seeded cluster harness catches it (tests/mutations.rs). Each build recompiles only
# the quorum crate.
set -euo pipefail
cd "$(dirname "$0")/.."

BUGS=(
  bug-ack-before-fsync
  bug-no-noop
  bug-vote-without-persist
  bug-read-without-read-index
  bug-apply-before-commit
)

for bug in "${BUGS[@]}"; do
  echo "== mutation: $bug"
  cargo test --locked --features "$bug" --test mutations -- --nocapture 2>&1 \
    | grep -E "caught at seed|caught by|missed|none of the|test result|panicked at tests" || true
  # The grep above only trims the noise; the exit status is cargo's.
  cargo test --locked --quiet --features "$bug" --test mutations >/dev/null 2>&1 || {
    echo "mutation $bug: the harness did not catch it" >&2
    exit 1
  }
done
echo "every planted bug was caught"
