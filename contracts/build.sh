#!/usr/bin/env bash
# Rebuilds build/*.json from src/*.sol with the pinned solc-js and OpenZeppelin
# (package-lock.json). Needs node and npm; no compiler download.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/solc ] || npm ci --no-audit --no-fund
node compile.js
