#!/bin/bash
# CPU per request of the API process and of all postgres processes, for requests sent one
# after another by one client (no contention). Run setup.sh first. KINDS as in run.sh.
# Usage: [KINDS="one page hook"] bench/callgrind/cpu.sh /tmp/<binary>/api [requests per kind, default 1000]
BIN=$1; N=${2:-1000}
read TID KEY < ${CG_DIR:-/tmp/cg}/key
HOOK=$(psql -Atq -h 127.0.0.1 -U postgres -d sb_cg -c "SELECT webhook_token FROM tenants WHERE id = '$TID'")
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_cg SECRETS_KEY=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
BIND_ADDR=127.0.0.1:18556 RUN_WORKER=false SEED_DEMO=false RUST_LOG=warn $BIN serve > ${CG_DIR:-/tmp/cg}/cpu.log 2>&1 &
PID=$!
for i in $(seq 1 300); do curl -sf http://127.0.0.1:18556/readyz >/dev/null && break; sleep 0.2; done
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
pgticks() { s=0; for p in $(pgrep -x postgres); do t=$(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null); s=$((s+${t:-0})); done; echo $s; }
for kind in ${KINDS:-one page}; do
  python3 $(dirname "$0")/drive.py $kind 50 $KEY $TID $HOOK || exit 1
  a0=$(ticks $PID); p0=$(pgticks); t0=$(date +%s.%N)
  python3 $(dirname "$0")/drive.py $kind $N $KEY $TID $HOOK || exit 1
  a1=$(ticks $PID); p1=$(pgticks); t1=$(date +%s.%N)
  echo "$kind api $(( (a1-a0)*10000000/N/1000 )) us/req  postgres $(( (p1-p0)*10000000/N/1000 )) us/req  wall $(echo "($t1-$t0)*1000000/$N" | bc) us/req"
done
kill $PID; wait $PID 2>/dev/null
