#!/usr/bin/env bash
# 4 validator processes; kill -9 one (power 2 of 10) mid-run, restart it; compare block ids.
set -u
BIN=/work/target-spike/release/lode-malachite-spike
D=$(mktemp -d /tmp/spike-restart.XXXX); PORT=${PORT:-27700}; H=${H:-2000}
export RUST_LOG=off
for i in 0 1 2 3; do $BIN 4 $H $PORT $i $D > $D/log$i 2>&1 & echo $! > $D/pid$i; done
sleep ${KILL_AT:-5}
kill -9 $(cat $D/pid${VICTIM:-1}); echo "killed v${VICTIM:-1} at $(grep -c DECIDED $D/log${VICTIM:-1}) decisions"
sleep ${DOWN:-4}
$BIN 4 $H $PORT ${VICTIM:-1} $D > $D/log${VICTIM:-1}.b 2>&1 & echo $! > $D/pid${VICTIM:-1}
sleep ${AFTER:-10}
for i in 0 1 2 3; do kill -9 $(cat $D/pid$i) 2>/dev/null; done
echo "dir $D"
for f in $D/log*; do echo "$f: $(grep -c DECIDED $f) decisions, last: $(grep DECIDED $f | tail -1 | grep -o 'h=[0-9]*')"; done
grep -h 'loaded\|restarting' $D/log* | head
# every (height -> id) must agree across all logs
cat $D/log* | grep DECIDED | sed -E 's/.* h=([0-9]+) round=[0-9]+ id=([0-9a-f]+).*/\1 \2/' | sort -u | awk '{c[$1]++} END {n=0; for (h in c) if (c[h]>1) n++; print "heights with conflicting ids:", n}'
