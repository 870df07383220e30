#!/usr/bin/env bash
# Browser tests: the gateway's web dashboard, then the browser-node extension.
#
#   tests/browser/run.sh path/to/lode
#
# Starts `lode devnet --demo` (gateway + 2 nodes, a free port, the demo job),
# then drives headless Chromium (Debian's
# /usr/bin/chromium) with Playwright (tests/browser/dashboard.mjs): nodes online,
# the job at 100%, the earnings and ledger views. Screenshots go to
# tests/browser/out/ (dashboard.png and one per view).
# Then extension.mjs loads extension/ unpacked and drives onboarding, a report,
# the feed, the epoch reward and the popup (see its header). Everything started here
# is stopped on exit, success or not.
set -euo pipefail

LODE=$(realpath "${1:?usage: $0 LODE_BIN}")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lode-browser.XXXXXX")
PIDS=()

cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # A process that ignores SIGTERM for 10 s is killed.
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        echo "== browser test failed (exit $status); process logs:" >&2
        for f in "$WORK"/*.log "$WORK"/devnet/logs/*.log; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts `lode devnet --demo` (a gateway and two nodes on loopback, a free port,
# the demo job submitted); sets GATEWAY_URL.
start_network() {
    "$LODE" devnet --demo --nodes 2 --port 0 --epoch-ms 5000 \
        --data-dir "$WORK/devnet" --json \
        >"$WORK/devnet.out" 2>"$WORK/devnet.log" &
    PIDS+=($!)
    GATEWAY_URL=""
    for _ in $(seq 1 1200); do
        GATEWAY_URL=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$WORK/devnet.out" | head -n 1)
        [ -n "$GATEWAY_URL" ] && break
        kill -0 "${PIDS[0]}" 2>/dev/null || { echo "the devnet exited" >&2; return 1; }
        sleep 0.1
    done
    [ -n "$GATEWAY_URL" ] || { echo "the devnet did not come up" >&2; return 1; }
    # The devnet's own children log under its data dir: show them on failure too.
    ln -s "$WORK/devnet/logs" "$WORK/devnet-logs" 2>/dev/null || true
}

if [ ! -d "$HERE/node_modules/playwright-core" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund)
fi

start_network
echo "network up at $GATEWAY_URL"
LODE_DASHBOARD_URL="$GATEWAY_URL" node "$HERE/dashboard.mjs"
# The browser node: the unpacked extension against the same network.
LODE_GATEWAY_URL="$GATEWAY_URL" LODE_BIN="$LODE" node "$HERE/extension.mjs"
