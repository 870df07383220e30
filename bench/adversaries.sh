#!/usr/bin/env bash
# Adversarial benchmark: per scenario a gateway (--group-loopback) plus honest and
# adversarial node processes on loopback (each from its own 127.0.0.x; a Sybil
# swarm from one), one sha256 job, the ledger read back. Prints a Markdown table:
# wrong results accepted vs the derived bound, adversaries' share of fees and
# rewards vs their share of the real verified work, fees paid for wrong results.
#   bench/adversaries.sh [--honest 8] [--units 1000] [--epoch-ms 2000] [--swarm 10] [--only TEXT]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p lode --bin lode
cargo run --release -p lode --example advbench -- "$@"
