#!/usr/bin/env bash
# End-to-end network benchmark: 1 gateway + 4 nodes (separate processes, loopback).
# Prints verified units/s at quorum 1 and 2, and single-unit latency p50/p99.
#   bench/network.sh [--nodes 4] [--units 20000] [--latency-jobs 50]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lode --bin lode
cargo run --release -p lode --example netbench -- "$@"
