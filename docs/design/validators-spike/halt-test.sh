#!/usr/bin/env bash
# kill -9 two of four (powers 3 and 4 of 10): nothing is decided; restart one: chain resumes.
set -u
BIN=/work/target-spike/release/lode-malachite-spike
D=$(mktemp -d /tmp/spike-halt.XXXX); PORT=${PORT:-27800}; H=5000
export RUST_LOG=off
for i in 0 1 2 3; do $BIN 4 $H $PORT $i $D > $D/log$i 2>&1 & echo $! > $D/pid$i; done
sleep 4
kill -9 $(cat $D/pid2) $(cat $D/pid3)
sleep 1; a=$(grep -c DECIDED $D/log0); sleep 5; b=$(grep -c DECIDED $D/log0)
echo "v0 decisions during 5 s with 3/10 power online: $((b-a)) (at $b)"
$BIN 4 $H $PORT 3 $D > $D/log3.b 2>&1 & echo $! > $D/pid3
sleep ${AFTER:-6}; c=$(grep -c DECIDED $D/log0)
echo "v0 decisions in ${AFTER:-6} s after restarting v3 (power 4): $((c-b))"
for i in 0 1 3; do kill -9 $(cat $D/pid$i) 2>/dev/null; done
cat $D/log* | grep DECIDED | sed -E 's/.* h=([0-9]+) round=[0-9]+ id=([0-9a-f]+).*/\1 \2/' | sort -u | awk '{c[$1]++} END {n=0; for (h in c) if (c[h]>1) n++; print "heights with conflicting ids:", n}'
grep -h 'loaded\|restarting' $D/log* | head -3
