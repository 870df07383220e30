#!/usr/bin/env bash
# Gateway restart cost against history size, and /healthz latency during large
# result downloads (1 gateway + 4 nodes, separate processes, loopback).
#   bench/restart.sh [--nodes 4] [--big 50000] [--small-jobs 20] [--downloads 4]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lode --bin lode
cargo run --release -p lode --example restartbench -- "$@"
