#!/usr/bin/env bash
# raft-kv against etcd, on this machine, in the same minutes.
#
# raft-kv: `raft-bench kv` (3 `raft-kv serve` processes on loopback with durable logs, driven by
# raft-kv-client) over HTTP/2 and HTTP/1.1 at each client count, and batches of $BATCH PUTs.
# etcd (when `etcd` and `wrk` are installed): a fresh 3-member cluster on loopback per run,
# PUTs of the same size through etcd's HTTP JSON gateway (POST /v3/kv/put) with wrk, one
# request in flight per connection (as raft-kv's HTTP/1.1 clients), sent to the leader.
# Each round runs every configuration once, raft-kv and etcd alternating (the order flips
# from round to round); every run starts its own cluster with empty data directories.
# The end: the medians of the rounds as a markdown table.
#
# Usage: benches/kv-vs-etcd.sh            (from anywhere; builds the release binaries first)
# Environment: ROUNDS (3), SECS (5), WARMUP (2), CLIENTS ("1 64 256"), BATCH (100),
#   BATCH_CLIENTS ("1 64 256"; empty: no batches), VALUE_BYTES (256), KEYS (10000), NO_BUILD=1 (use the binaries
#   in target/release as they are), ETCD_PORT (23790: clients on +1..+3, peers on +11..+13).
# Installing etcd and wrk (Debian/Ubuntu): apt-get install etcd-server etcd-client wrk.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-"1 64 256"}
BATCH=${BATCH:-100}
BATCH_CLIENTS=${BATCH_CLIENTS-"1 64 256"}
VALUE_BYTES=${VALUE_BYTES:-256}
KEYS=${KEYS:-10000}
ETCD_PORT=${ETCD_PORT:-23790}

root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/target/release/raft-bench"
work=$(mktemp -d)
etcd_pids=()
cleanup() {
    for pid in "${etcd_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM
results="$work/results"
: >"$results"

if [[ "${NO_BUILD:-}" != 1 ]]; then
    (cd "$root" && cargo build --release -p raft-kv -p raft-bench)
fi

have_etcd=1
if ! command -v etcd >/dev/null || ! command -v wrk >/dev/null; then
    have_etcd=0
    echo "kv-vs-etcd: SKIPPING etcd: needs both etcd and wrk on PATH" \
        "(etcd: $(command -v etcd || echo missing), wrk: $(command -v wrk || echo missing));" \
        "apt-get install etcd-server etcd-client wrk. Measuring raft-kv alone."
fi

# Field $2 of a `bench:` line $1.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# One raft-bench kv run; appends "name ops_per_sec p50 p99 errors" to the results.
run_kv() {
    local name=$1
    shift
    local out line
    out=$("$bench" kv --secs "$SECS" --warmup-secs "$WARMUP" --value-bytes "$VALUE_BYTES" \
        --keys "$KEYS" "$@" 2>&1) || true
    line=$(grep '^bench:' <<<"$out" | tail -1 || true)
    if [[ -z "$line" ]]; then
        echo "$name: FAILED: $(tail -3 <<<"$out")"
        echo "$name - - - failed" >>"$results"
        return
    fi
    echo "$name: $line"
    echo "$name $(field "$line" ops_per_sec) $(field "$line" p50_us) $(field "$line" p99_us) $(field "$line" errors)" >>"$results"
}

# The wrk script: POST /v3/kv/put with base64 keys spread over $KEYS and a value of
# $VALUE_BYTES bytes.
cat >"$work/put.lua" <<'EOF'
local chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
local nkeys = tonumber(os.getenv('KEYS') or '10000')
local value = b64(string.rep('x', tonumber(os.getenv('VALUE_BYTES') or '256')))
local bodies = {}
for n = 0, nkeys - 1 do
  bodies[n] = '{"key":"' .. b64(string.format('bench/%08d', n)) .. '","value":"' .. value .. '"}'
end
local headers = { ['Content-Type'] = 'application/json' }
local seq = math.random(0, nkeys - 1)
request = function()
  seq = (seq + 1) % nkeys
  return wrk.format('POST', '/v3/kv/put', headers, bodies[seq])
end
EOF

# wrk's latency ("812.00us", "1.23ms", "1.01s") in microseconds.
to_us() {
    awk -v t="$1" 'BEGIN {
        if (t ~ /us$/) { sub(/us$/, "", t); printf "%d", t }
        else if (t ~ /ms$/) { sub(/ms$/, "", t); printf "%d", t * 1000 }
        else if (t ~ /m$/) { sub(/m$/, "", t); printf "%d", t * 60000000 }
        else { sub(/s$/, "", t); printf "%d", t * 1000000 } }'
}

# A fresh 3-member etcd cluster; sets etcd_leader to the leader's client address. (Not run in
# a subshell: etcd_pids must reach stop_etcd.)
start_etcd() {
    local dir=$1 cluster="" i
    for i in 1 2 3; do cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_PORT + 10 + i))"; done
    etcd_pids=()
    for i in 1 2 3; do
        etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:$((ETCD_PORT + i))" \
            --advertise-client-urls "http://127.0.0.1:$((ETCD_PORT + i))" \
            --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10 + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10 + i))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token raft-bench --logger zap --log-level error \
            >"$dir/m$i.log" 2>&1 &
        etcd_pids+=($!)
    done
    local endpoints="127.0.0.1:$((ETCD_PORT + 1)),127.0.0.1:$((ETCD_PORT + 2)),127.0.0.1:$((ETCD_PORT + 3))"
    for _ in $(seq 1 100); do
        if ETCDCTL_API=3 etcdctl --endpoints "$endpoints" put bench/ready 1 >/dev/null 2>&1; then
            etcd_leader=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json 2>/dev/null |
                python3 -c 'import json,sys
for s in json.load(sys.stdin):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
        print(s["Endpoint"])' || true)
            [[ -n "$etcd_leader" ]] && return 0
        fi
        sleep 0.2
    done
    echo "etcd did not start: $(tail -3 "$dir/m1.log")" >&2
    return 1
}

stop_etcd() {
    for pid in "${etcd_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    etcd_pids=()
}

# One etcd run at $1 connections; appends its figures to the results.
run_etcd() {
    local clients=$1 name="etcd-http1-put-c=$1" dir leader threads out
    dir=$(mktemp -d "$work/etcd.XXXX")
    etcd_leader=""
    if ! start_etcd "$dir"; then
        stop_etcd
        echo "$name: FAILED to start"
        echo "$name - - - failed" >>"$results"
        return
    fi
    leader=$etcd_leader
    threads=$((clients < 2 ? 1 : 2))
    export KEYS VALUE_BYTES
    wrk -t"$threads" -c"$clients" -d"${WARMUP}s" -s "$work/put.lua" "http://$leader" >/dev/null 2>&1 || true
    out=$(wrk -t"$threads" -c"$clients" -d"${SECS}s" --latency -s "$work/put.lua" "http://$leader" 2>&1) || true
    # The puts must have landed: count the keys written.
    local stored
    stored=$(ETCDCTL_API=3 etcdctl --endpoints "$leader" get bench/0 --prefix --limit 1 -w json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", 0))' 2>/dev/null || echo 0)
    stop_etcd
    rm -rf "$dir"
    local rps p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    errors=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$out")
    if [[ -z "$rps" || "$stored" == 0 ]]; then
        echo "$name: FAILED (wrk: $(tail -2 <<<"$out" | tr '\n' ' '); keys stored: $stored)"
        echo "$name - - - failed" >>"$results"
        return
    fi
    echo "$name: bench: workload=etcd nodes=3 clients=$clients ops_per_sec=$rps p50_us=$p50 p99_us=$p99 protocol=http1 op=put errors=$errors"
    echo "$name ${rps:--} ${p50:--} ${p99:--} $errors" >>"$results"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round of $ROUNDS"
    for c in $CLIENTS; do
        kv_runs=("run_kv kv-http2-put-c=$c --protocol http2 --clients $c"
            "run_kv kv-http1-put-c=$c --protocol http1 --clients $c")
        if ((have_etcd)); then kv_runs+=("run_etcd $c"); fi
        # Alternate: odd rounds raft-kv first, even rounds etcd first.
        if ((round % 2 == 0)); then
            for ((i = ${#kv_runs[@]} - 1; i >= 0; i--)); do ${kv_runs[$i]}; done
        else
            for run in "${kv_runs[@]}"; do $run; done
        fi
    done
    for c in $BATCH_CLIENTS; do
        run_kv "kv-http2-batch$BATCH-c=$c" --protocol http2 --batch "$BATCH" --clients "$c"
    done
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

echo
echo "Medians of $ROUNDS rounds ($SECS s measured after $WARMUP s of warm-up, $VALUE_BYTES-byte values, 3 nodes on loopback, durable logs; ops/s counts a batch's operations):"
echo
echo "| configuration | ops/s | p50 (us) | p99 (us) | errors (all rounds) |"
echo "|---|---:|---:|---:|---:|"
awk '!seen[$1]++ { print $1 }' "$results" | while IFS= read -r name; do
    rows=$(awk -v name="$name" '$1 == name { print $2, $3, $4, $5 }' "$results")
    ops=$(awk '$1 != "-" { print $1 }' <<<"$rows" | median)
    p50=$(awk '$2 != "-" { print $2 }' <<<"$rows" | median)
    p99=$(awk '$3 != "-" { print $3 }' <<<"$rows" | median)
    errors=$(awk '{ if ($4 == "failed") f++; else e += $4 } END { printf "%d%s", e, f ? " (" f " runs failed)" : "" }' <<<"$rows")
    echo "| $name | $ops | $p50 | $p99 | $errors |"
done
