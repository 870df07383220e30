#!/usr/bin/env bash
# Idle resident memory and self-benchmark speed of a real `lode node` process.
#
#   crates/lode-node/bench/idle_rss.sh [UNITS]
#
# Builds `lode` and the `peer_gateway` example (release), starts the peer (a minimal
# gateway speaking the node-channel contract), creates a throw-away key with a payout
# address, starts `lode node` against it with 2 slots, and reads VmRSS / VmHWM from
# /proc/<pid>/status:
#   1. idle: 5 s after the node connected, before any unit ran;
#   2. after work: the peer then hands out UNITS sha256 units (default 2000); VmRSS
#      is read once all are reported and the node has been idle for 5 s again.
# Finally SIGTERM, and the node's exit status must be 0.
set -euo pipefail
UNITS=${1:-2000}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -q -p lode --bin lode
cargo build --release -q -p lode-node --example peer_gateway
BIN=$CARGO_TARGET_DIR/release
TMP=$(mktemp -d)
cleanup() { kill "$PEER_PID" "$NODE_PID" 2>/dev/null || true; rm -rf "$TMP"; }
PEER_PID=; NODE_PID=
trap cleanup EXIT

rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
parts() { awk '/^(RssAnon|RssFile|Threads)/{printf "%s %s ", $1, $2}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
wait_for() { # file pattern seconds
  for _ in $(seq 1 $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}

# Phase 1: a peer with no work.
"$BIN/examples/peer_gateway" 0 0 >"$TMP/peer1.out" &
PEER_PID=$!
wait_for "$TMP/peer1.out" "listening on" 30
URL=$(sed -n 's/^listening on //p' "$TMP/peer1.out")
"$BIN/lode" keys new --out "$TMP/node.key" --payout 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed >/dev/null 2>&1
RUST_LOG=info "$BIN/lode" node --gateway "$URL" --key "$TMP/node.key" --data-dir "$TMP/data" --slots 2 2>"$TMP/node1.log" &
NODE_PID=$!
wait_for "$TMP/node1.log" "connected" 60
sleep 5
IDLE_RSS=$(rss $NODE_PID); IDLE_HWM=$(hwm $NODE_PID); IDLE_PARTS=$(parts $NODE_PID)
SPEED=$(grep -o 'fuel_per_s=[0-9]*' "$TMP/node1.log" | head -1 | cut -d= -f2)
kill -TERM $NODE_PID; if wait $NODE_PID; then RC1=0; else RC1=$?; fi
kill $PEER_PID; wait $PEER_PID 2>/dev/null || true

# Phase 2: the same node state directory, a peer with UNITS units.
"$BIN/examples/peer_gateway" 0 "$UNITS" >"$TMP/peer2.out" &
PEER_PID=$!
wait_for "$TMP/peer2.out" "listening on" 30
URL=$(sed -n 's/^listening on //p' "$TMP/peer2.out")
START=$(date +%s.%N)
RUST_LOG=info "$BIN/lode" node --gateway "$URL" --key "$TMP/node.key" --data-dir "$TMP/data" --slots 2 2>"$TMP/node2.log" &
NODE_PID=$!
wait_for "$TMP/peer2.out" "^reports $UNITS " 300
END=$(date +%s.%N)
sleep 5
WORK_RSS=$(rss $NODE_PID); WORK_HWM=$(hwm $NODE_PID); WORK_PARTS=$(parts $NODE_PID)
kill -TERM $NODE_PID; if wait $NODE_PID; then RC2=0; else RC2=$?; fi

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "self-benchmark: ${SPEED} fuel/s per slot"
echo "idle (connected, no unit run yet): VmRSS ${IDLE_RSS} kB, VmHWM ${IDLE_HWM} kB (${IDLE_PARTS})"
echo "after ${UNITS} sha256 units, idle again: VmRSS ${WORK_RSS} kB, VmHWM ${WORK_HWM} kB (${WORK_PARTS})"
echo "${UNITS} units reported in $(echo "$END - $START" | bc) s (includes start-up and self-benchmark)"
echo "exit status on SIGTERM: $RC1, $RC2"
