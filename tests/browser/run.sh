#!/usr/bin/env bash
# Browser test of the gateway's web dashboard.
#
#   tests/browser/run.sh path/to/lode
#
# Starts a network on loopback (gateway + 2 nodes, free ports), submits
# examples/jobs/sha256.toml, then drives headless Chromium (Debian's
# /usr/bin/chromium) with Playwright (tests/browser/dashboard.mjs): nodes online,
# the job at 100%, the earnings and ledger views. Screenshots go to
# tests/browser/out/ (dashboard.png and one per view). Everything started here
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
        for f in "$WORK"/*.log; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a gateway and two nodes on loopback and submits a job; sets GATEWAY_URL.
# (The one place that knows how to start a network: `lode devnet --demo` can
# replace the body of this function.)
start_network() {
    "$LODE" keys new --out "$WORK/requester.key" >/dev/null 2>&1
    local requester
    # (No `| head`: a closed pipe makes `lode keys show` fail.)
    requester=$("$LODE" keys show "$WORK/requester.key")
    requester=${requester%%$'\n'*}

    "$LODE" gateway --data-dir "$WORK/gw" --listen 127.0.0.1:0 \
        --fund "$requester=1000000" --epoch-ms 5000 \
        >"$WORK/gateway.out" 2>"$WORK/gateway.log" &
    PIDS+=($!)
    GATEWAY_URL=""
    for _ in $(seq 1 300); do
        GATEWAY_URL=$(sed -n '1s/^listening on //p' "$WORK/gateway.out")
        [ -n "$GATEWAY_URL" ] && break
        kill -0 "${PIDS[0]}" 2>/dev/null || { echo "the gateway exited" >&2; return 1; }
        sleep 0.1
    done
    [ -n "$GATEWAY_URL" ] || { echo "the gateway did not start listening" >&2; return 1; }

    local payouts=(0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed 0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359)
    local regions=(eu-west us-east)
    for i in 0 1; do
        "$LODE" keys new --out "$WORK/node$i.key" --payout "${payouts[$i]}" >/dev/null 2>&1
        "$LODE" node --gateway "$GATEWAY_URL" --key "$WORK/node$i.key" --slots 2 \
            --region "${regions[$i]}" --data-dir "$WORK/node$i" \
            >"$WORK/node$i.log" 2>&1 &
        PIDS+=($!)
    done

    (cd "$ROOT" && "$LODE" job submit examples/jobs/sha256.toml \
        --key "$WORK/requester.key" --gateway "$GATEWAY_URL" --no-wait) >"$WORK/submit.log" 2>&1
}

if [ ! -d "$HERE/node_modules/playwright-core" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund)
fi

start_network
echo "network up at $GATEWAY_URL"
LODE_DASHBOARD_URL="$GATEWAY_URL" node "$HERE/dashboard.mjs"
