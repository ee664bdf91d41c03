#!/usr/bin/env bash
# Mutation testing of the engine: cargo-mutants changes raft-core/src/engine one mutation at a
# time (a `>` into `>=`, a `+` into `-`, a function body into a default value, ...) and runs
# the engine's tests and the simulator's (raft-core and raft-sim test suites) against each. A
# mutant the suites do not catch ("missed") is either a gap in the checks or a change that
# alters nothing observable; the report lists every one to be explained or killed.
#
# Not run in CI: a full run takes hours on two cores. Run it after changing the engine:
#
#   scripts/mutants.sh                      # everything (hours)
#   scripts/mutants.sh --shard 1/8          # one eighth; run 8 shards on 8 machines
#   scripts/mutants.sh -f raft-core/src/engine/leader.rs   # one file
#   scripts/mutants.sh --list               # only list the mutants
#
# Output: target/mutants/mutants.out/{caught,missed,timeout,unviable}.txt and
# target/mutants/report.md (counts and the missed mutants).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants > /dev/null; then
    cargo install cargo-mutants --locked
fi

OUT=target/mutants
mkdir -p "$OUT"

FILE_ARGS=(--file 'raft-core/src/engine/**/*.rs')
for arg in "$@"; do
    if [[ "$arg" == -f || "$arg" == --file ]]; then
        FILE_ARGS=()
    fi
done

status=0
cargo mutants --package raft-core "${FILE_ARGS[@]}" \
    --exclude 'raft-core/src/engine/tests/**' \
    --test-package raft-core --test-package raft-sim \
    --timeout 900 --output "$OUT" "$@" || status=$?

for arg in "$@"; do
    if [[ "$arg" == --list ]]; then
        exit "$status"
    fi
done

results="$OUT/mutants.out"
count() { if [[ -f "$results/$1.txt" ]]; then wc -l < "$results/$1.txt"; else echo 0; fi; }
{
    echo "# Mutation testing of raft-core/src/engine"
    echo
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ) at $(git rev-parse --short HEAD), arguments: ${*:-(none)}"
    echo
    echo "| caught | missed | timeout | unviable |"
    echo "|---|---|---|---|"
    echo "| $(count caught) | $(count missed) | $(count timeout) | $(count unviable) |"
    echo
    echo "## Missed mutants (each needs a check that kills it, or a note why it is equivalent)"
    echo
    if [[ -s "$results/missed.txt" ]]; then
        sed 's/^/- /' "$results/missed.txt"
    else
        echo "none"
    fi
} > "$OUT/report.md"
echo "report: $OUT/report.md"
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: pass that on.
exit "$status"
