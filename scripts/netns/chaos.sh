#!/usr/bin/env bash
# Faults between real processes: every `raft-kv serve` in its own network namespace, joined by
# veth links to a bridge in a namespace of its own, with the clients in one more namespace.
# The harness (raft-sim's `netns-chaos` binary, run in the client namespace) starts the nodes,
# runs a nemesis of symmetric and one-way partitions (blackhole routes inside the nodes'
# namespaces), an isolated leader, links going down, SIGSTOP/SIGCONT and SIGKILL/restart, while
# its clients record a history that raft-sim's linearizability checker judges, with
# exactly-once counters. Nothing is added to the host's own network: every interface, address
# and route lives in the namespaces this script makes, and all of them (with the processes in
# them) are removed on exit, failure and Ctrl-C included.
#
# Needs root and `ip` (iproute2) with network namespaces, veth and bridge support.
#
#   scripts/netns/chaos.sh [--secs N] [--nodes 3|5] [--clients K] [--seed S] [--runs R]
#                          [--debug] [--no-build] [--skip-if-unavailable] [--keep]
#                          [--out DIR] [-- MORE_HARNESS_FLAGS]
#
#   --secs N      seconds of faults per run (default 60); then healing, resolution and checks
#   --runs R      R runs one after the other, seeds S, S+1, ... (default 1)
#   --debug       use the debug builds (target/debug) instead of release ones
#   --no-build    do not run cargo; the binaries must exist
#   --skip-if-unavailable
#                 exit 0 with a SKIP message when namespaces cannot be made (not root, no ip)
#   --keep        keep everything, the nodes' data included, even when the runs pass
#   --out DIR     where each run's logs, histories and data go (default: a new /tmp directory,
#                 removed when every run passes); with --out, a run that passes keeps its logs
#                 and histories but not the nodes' data
#   after --, flags for the harness: see `netns-chaos --help` (--faults, --lease-reads,
#   --hold-ms, --quiet-ms, --registers, --counters, --op-timeout-ms, ...)
#
# Exit status: 0 every run clean (or skipped), 1 a violation, 2 the harness or the cluster
# failed (no recovery, setup error).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

SECS=60
NODES=3
CLIENTS=6
SEED=""
RUNS=1
PROFILE=release
BUILD=1
SKIP_IF_UNAVAILABLE=0
KEEP=0
OUT=""
EXTRA=()

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --nodes) NODES=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        --no-build) BUILD=0; shift ;;
        --skip-if-unavailable) SKIP_IF_UNAVAILABLE=1; shift ;;
        --keep) KEEP=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "chaos.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [[ ! $NODES =~ ^[1-9]$ ]]; then
    echo "chaos.sh: --nodes takes 1..9" >&2
    exit 2
fi

unavailable() {
    if [[ $SKIP_IF_UNAVAILABLE == 1 ]]; then
        echo "SKIP netns chaos test: $1"
        exit 0
    fi
    echo "chaos.sh: cannot run: $1" >&2
    exit 2
}

# Everything this run makes is named after this tag, so runs side by side do not collide.
TAG="rkv-$$"
HUB="$TAG-hub"
CLIENT_NS="$TAG-c"
NODE_NS=()
for ((i = 1; i <= NODES; i++)); do
    NODE_NS+=("$TAG-n$i")
done
SUBNET=10.77.0

# --- prerequisites -------------------------------------------------------------------------
if [[ $(id -u) != 0 ]]; then
    unavailable "needs root to make network namespaces (id -u is $(id -u))"
fi
if ! command -v ip >/dev/null 2>&1; then
    unavailable "the ip command (iproute2) is not installed"
fi
if ! ip netns add "$TAG-probe" 2>/dev/null; then
    unavailable "ip netns add fails here (no network namespaces in this container?)"
fi
ip netns del "$TAG-probe"

# --- cleanup, whatever happens -------------------------------------------------------------
HARNESS_PID=""
TAIL_PID=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $TAIL_PID ]]; then
        kill "$TAIL_PID" 2>/dev/null || true
    fi
    if [[ -n $HARNESS_PID ]] && kill -0 "$HARNESS_PID" 2>/dev/null; then
        kill -TERM "$HARNESS_PID" 2>/dev/null || true
        sleep 1
        kill -KILL "$HARNESS_PID" 2>/dev/null || true
    fi
    local ns pid
    for ns in "${NODE_NS[@]}" "$CLIENT_NS" "$HUB"; do
        if [[ -e /run/netns/$ns ]]; then
            # Only processes running inside the namespaces this script made: its raft-kv nodes
            # (stopped ones included: SIGKILL ends them too) and the harness.
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
        fi
    done
    for ns in "${NODE_NS[@]}" "$CLIENT_NS" "$HUB"; do
        if [[ -e /run/netns/$ns ]]; then
            # Removing a namespace removes its interfaces: veth pairs and the bridge.
            ip netns del "$ns" 2>/dev/null || echo "chaos.sh: could not remove namespace $ns" >&2
        fi
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ---------------------------------------------------------------------------------
CARGO_PROFILE=()
if [[ $PROFILE == release ]]; then
    CARGO_PROFILE=(--release)
fi
if [[ $BUILD == 1 ]]; then
    cargo build "${CARGO_PROFILE[@]}" --locked -p raft-kv --bin raft-kv
    cargo build "${CARGO_PROFILE[@]}" --locked -p raft-sim --bin netns-chaos
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RAFT_KV="$TARGET_DIR/$PROFILE/raft-kv"
HARNESS="$TARGET_DIR/$PROFILE/netns-chaos"
for binary in "$RAFT_KV" "$HARNESS"; do
    if [[ ! -x $binary ]]; then
        echo "chaos.sh: $binary is missing (drop --no-build)" >&2
        exit 2
    fi
done

# --- the network ---------------------------------------------------------------------------
# hub: a bridge br0 with a port v<i> per node and vc for the clients; node i: eth0 with
# SUBNET.i/24; clients: eth0 with SUBNET.254/24. Each veth pair is made straight inside the
# two namespaces it joins, so no interface ever appears on the host.
setup_network() {
    ip netns add "$HUB"
    ip -n "$HUB" link set lo up
    ip -n "$HUB" link add br0 type bridge
    ip -n "$HUB" link set br0 up
    local i ns
    for ((i = 1; i <= NODES; i++)); do
        ns=${NODE_NS[i - 1]}
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$HUB" link add "v$i" type veth peer name eth0 netns "$ns"
        ip -n "$HUB" link set "v$i" master br0 up
        ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
    ip netns add "$CLIENT_NS"
    ip -n "$CLIENT_NS" link set lo up
    ip -n "$HUB" link add vc type veth peer name eth0 netns "$CLIENT_NS"
    ip -n "$HUB" link set vc master br0 up
    ip -n "$CLIENT_NS" addr add "$SUBNET.254/24" dev eth0
    ip -n "$CLIENT_NS" link set eth0 up
}

# Removes what the previous run left in the namespaces (routes, downed links) without
# rebuilding them: the harness heals before it exits, this is for a harness that crashed.
reset_network() {
    local i ns
    for ((i = 1; i <= NODES; i++)); do
        ns=${NODE_NS[i - 1]}
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip -n "$ns" route flush type blackhole 2>/dev/null || true
        ip -n "$HUB" link set "v$i" up
    done
}

setup_network

if [[ -z $SEED ]]; then
    SEED=$(( (RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM ^ $(date +%s) ))
fi
TEMP_OUT=0
if [[ -z $OUT ]]; then
    OUT=$(mktemp -d /tmp/rkv-chaos.XXXXXX)
    TEMP_OUT=1
fi
mkdir -p "$OUT"
echo "chaos.sh: namespaces $TAG-*, ${NODES} nodes on $SUBNET.1..$NODES, clients at $SUBNET.254; output in $OUT"

FAILED=0
VIOLATED=0
for ((run = 0; run < RUNS; run++)); do
    seed=$((SEED + run))
    dir="$OUT/run-$seed"
    rm -rf "$dir"
    mkdir -p "$dir"
    if ((run > 0)); then
        reset_network
    fi
    echo "chaos.sh: run $((run + 1))/$RUNS, seed $seed"
    : >"$dir/harness.log"
    ip netns exec "$CLIENT_NS" "$HARNESS" \
        --secs "$SECS" --nodes "$NODES" --clients "$CLIENTS" --seed "$seed" \
        --raft-kv "$RAFT_KV" --ns-prefix "$TAG" --hub "$HUB" --subnet "$SUBNET" \
        --data-dir "$dir" "${EXTRA[@]}" >"$dir/harness.log" 2>&1 &
    HARNESS_PID=$!
    tail -n +1 -f --pid="$HARNESS_PID" "$dir/harness.log" &
    TAIL_PID=$!
    status=0
    wait "$HARNESS_PID" || status=$?
    wait "$TAIL_PID" || true
    TAIL_PID=""
    HARNESS_PID=""
    if ((status != 0)); then
        FAILED=$((FAILED + 1))
        if ((status == 1)); then
            VIOLATED=1
        fi
        echo "chaos.sh: run with seed $seed FAILED; its logs, histories and data are in $dir"
    elif [[ $KEEP == 0 ]]; then
        # Keep the logs and histories, drop the nodes' data.
        rm -rf "$dir"/node-[0-9]*/
    fi
done

if ((FAILED == 0)) && [[ $TEMP_OUT == 1 && $KEEP == 0 ]]; then
    rm -rf "$OUT"
    echo "chaos.sh: $RUNS run(s), all passed"
else
    echo "chaos.sh: $RUNS run(s), $FAILED failed; output in $OUT"
fi
if ((VIOLATED == 1)); then
    exit 1
elif ((FAILED > 0)); then
    exit 2
fi
