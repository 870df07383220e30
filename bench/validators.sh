#!/usr/bin/env bash
# Replicated-chain benchmark (issue 14): 4 `lode validator` processes on loopback.
# Prints finalized receipts/s and submit→commit latency (p50/p99) of gateway
# batches, then end-to-end verified units/s on a single-validator chain and on
# the 4-validator chain, same nodes and units, in one run.
#   bench/validators.sh [--batches 40] [--receipts 5000] [--units 4000] [--nodes 4]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lode --bin lode
NETBENCH_RUST_LOG="${NETBENCH_RUST_LOG:-warn,arc_malachitebft_network=off,libp2p_swarm=off}" \
    cargo run --release -p lode --example chainbench -- "$@"
