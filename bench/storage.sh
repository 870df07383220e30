#!/usr/bin/env bash
# Storage on loopback: put and get throughput of one file on 9 storage nodes
# (k = 4, n = 8, one spare for repair; separate processes) next to plain copying the same bytes
# through a loopback TCP socket, and the time to repair a holder killed with -9.
#   bench/storage.sh [MB]            (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-50}
cargo build --release -p lode --bin lode
LODE=${CARGO_TARGET_DIR:-$PWD/target}/release/lode
D=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$D"; }
trap cleanup EXIT INT TERM
now() { date +%s.%N; }
GRACE_MS=5000

$LODE keys new --out "$D/req.key" >/dev/null
REQ=$($LODE keys show "$D/req.key" | head -1)
$LODE gateway --data-dir "$D/gw" --listen 127.0.0.1:0 --fund "$REQ=1000000" \
  --storage-audit-ms 10000 --storage-grace-ms $GRACE_MS --storage-max-mib 256 \
  >"$D/gw.out" 2>"$D/gw.log" &
PIDS+=($!)
until grep -q 'listening on' "$D/gw.out"; do sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$D/gw.out" | head -1)
for i in $(seq 0 8); do
  $LODE keys new --out "$D/n$i.key" --payout 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed >/dev/null
  $LODE node --gateway "$URL" --key "$D/n$i.key" --data-dir "$D/n$i" --slots 1 --no-nice \
    --storage-dir "$D/s$i" --storage-gb 1 2>"$D/n$i.log" &
  PIDS+=($!)
done
count() { curl -s "$URL/v1/nodes" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))' 2>/dev/null; }
until [ "$(count)" = 9 ]; do sleep 0.2; done
sleep 2
head -c $((MB << 20)) /dev/urandom >"$D/file"
BYTES=$((MB << 20))

t0=$(now)
ID=$($LODE storage put "$D/file" --shares 8 --needed 4 --days 1 --wait-s 0 --key "$D/req.key" --gateway "$URL")
t1=$(now)
status() { curl -s "$URL/v1/storage/$ID"; }
live() { status | python3 -c 'import json,sys; print(json.load(sys.stdin)["live_shares"])' 2>/dev/null; }
until [ "$(live)" = 8 ]; do sleep 0.05; done
t2=$(now)
$LODE storage get "$ID" --out "$D/back" --key "$D/req.key" --gateway "$URL" 2>/dev/null
t3=$(now)
cmp "$D/file" "$D/back"

# Plain copy of the same bytes through a loopback socket.
PLAIN=$(python3 - "$D/file" <<'PY'
import socket, sys, threading, time
data = open(sys.argv[1], 'rb').read()
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
got = [0]
def serve():
    c, _ = srv.accept()
    while True:
        b = c.recv(1 << 20)
        if not b: break
        got[0] += len(b)
t = threading.Thread(target=serve); t.start()
s = socket.socket(); s.connect(srv.getsockname())
t0 = time.perf_counter(); s.sendall(data); s.close(); t.join(); t1 = time.perf_counter()
assert got[0] == len(data)
print(t1 - t0)
PY
)

# Repair: kill -9 the holder of share 0 and time until 8 shares are live again.
H0=$(status | python3 -c 'import json,sys; print(json.load(sys.stdin)["shares"][0]["holder"])')
for i in $(seq 0 8); do
  if [ "$($LODE keys show "$D/n$i.key" | head -1)" = "$H0" ]; then kill -9 "${PIDS[$((i + 1))]}"; fi
done
t4=$(now)
back_to_8() { status | python3 -c "import json,sys; v=json.load(sys.stdin); print(v['live_shares']==8 and v['shares'][0]['holder']!='$H0')"; }
until [ "$(back_to_8)" = True ]; do sleep 0.05; done
t5=$(now)

python3 - "$BYTES" "$t0" "$t1" "$t2" "$t3" "$PLAIN" "$t4" "$t5" "$GRACE_MS" <<'PY'
import sys
b, t0, t1, t2, t3, plain, t4, t5, grace = map(float, sys.argv[1:])
mb = b / 1e6
put, placed, get = t1 - t0, t2 - t0, t3 - t2
print(f"file {mb:.1f} MB, k = 4, n = 8, 9 nodes on loopback")
print(f"put (encode, upload, check roots, contract sealed): {put:.2f} s = {mb / put:.1f} MB/s")
print(f"put until all 8 shares held by nodes:               {placed:.2f} s = {mb / placed:.1f} MB/s")
print(f"get (4 shares read, every chunk checked, decoded):  {get:.2f} s = {mb / get:.1f} MB/s")
print(f"plain copy through a loopback socket:               {plain:.3f} s = {mb / plain:.0f} MB/s")
print(f"ratio plain/put {put / plain:.0f}x, plain/get {get / plain:.0f}x")
print(f"repair of a killed holder: {t5 - t4:.2f} s after the kill ({grace / 1000:.0f} s grace + {t5 - t4 - grace / 1000:.2f} s to rebuild and place)")
PY
