#!/usr/bin/env bash
# Pipelined against streaming replication (raft-core's `Config::replication`), on this machine,
# in the same minutes: `raft-bench http` and `durable` (3 nodes in one process over loopback
# raft-http; in-memory or fsync'd file logs) at each client count, the two modes alternating
# within each round (the order flips from round to round), then a bulk load (64 KiB payloads)
# with `--gaps`: how long followers go without a message from their leader.
# The end: the medians of the rounds as markdown tables, with the streaming/pipelined ratio
# of each round's pair (median and range).
#
# Usage: benches/replication-modes.sh     (from anywhere; builds the release binary first)
# Environment: ROUNDS (3), SECS (5), CLIENTS ("1 256 1024"), WORKLOADS ("http durable"),
#   BULK_PAYLOAD (65536), BULK_CLIENTS (64), NO_BUILD=1 (use target/release/raft-bench as is).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CLIENTS=${CLIENTS:-"1 256 1024"}
WORKLOADS=${WORKLOADS:-"http durable"}
BULK_PAYLOAD=${BULK_PAYLOAD:-65536}
BULK_CLIENTS=${BULK_CLIENTS:-64}

root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/target/release/raft-bench"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap "exit 130" INT TERM
results="$work/results"
: > "$results"

if [ -z "${NO_BUILD:-}" ]; then
    (cd "$root" && cargo build --release -p raft-bench)
fi

# One run: appends "key mode ops p50 p99 gap_p99 gap_max" to the results.
run() {
    local key=$1 mode=$2
    shift 2
    local line
    # A run that fails or outlives its time is reported and left out, not fatal.
    if ! line=$(timeout $((SECS * 4 + 60)) "$bench" "$@" --replication "$mode" --secs "$SECS" --dir "$work" | grep '^bench:'); then
        echo "round $round $key $mode: FAILED or timed out (left out)" >&2
        return
    fi
    field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
    echo "$key $mode $(field ops_per_sec) $(field p50_us) $(field p99_us) $(field gap_p99_us) $(field gap_max_us)" >> "$results"
    echo "round $round $key $mode: $line" >&2
}

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then modes="pipelined streaming"; else modes="streaming pipelined"; fi
    for workload in $WORKLOADS; do
        for clients in $CLIENTS; do
            for mode in $modes; do
                run "$workload-$clients" "$mode" "$workload" --clients "$clients"
            done
        done
        for mode in $modes; do
            run "$workload-bulk" "$mode" "$workload" --clients "$BULK_CLIENTS" --payload "$BULK_PAYLOAD" --gaps
        done
    done
done

python3 - "$results" "$ROUNDS" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
keys = []
for row in rows:
    if row[0] not in keys:
        keys.append(row[0])
def col(key, mode, i):
    return [int(r[i]) for r in rows if r[0] == key and r[1] == mode and len(r) > i and r[i]]
def med(values):
    return int(statistics.median(values)) if values else 0
print("| workload | clients | pipelined ops/s | streaming ops/s | streaming/pipelined (range) | p50 µs pipelined → streaming | p99 µs pipelined → streaming |")
print("|---|---:|---:|---:|---|---|---|")
for key in keys:
    if key.endswith("-bulk"):
        continue
    workload, clients = key.split("-")
    p, s = col(key, "pipelined", 2), col(key, "streaming", 2)
    ratios = sorted(b / a for a, b in zip(p, s) if a)
    ratio = f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})" if ratios else "-"
    print(f"| {workload} | {clients} | {med(p):,} | {med(s):,} | {ratio} | "
          f"{med(col(key, 'pipelined', 3)):,} → {med(col(key, 'streaming', 3)):,} | "
          f"{med(col(key, 'pipelined', 4)):,} → {med(col(key, 'streaming', 4)):,} |")
print()
print("| workload (bulk load) | mode | ops/s | gap p99 µs | largest gap µs |")
print("|---|---|---:|---:|---:|")
for key in keys:
    if not key.endswith("-bulk"):
        continue
    for mode in ("pipelined", "streaming"):
        print(f"| {key.split('-')[0]} | {mode} | {med(col(key, mode, 2)):,} | "
              f"{med(col(key, mode, 5)):,} | {med(col(key, mode, 6)):,} |")
EOF
