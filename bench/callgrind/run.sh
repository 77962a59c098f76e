#!/bin/bash
# Instructions per request of one API binary under callgrind (valgrind's package):
# `{ me { id } }`, `customer(id)` and the bench's customers page, each after 20 warm-up
# requests. Counts do not depend on the machine's speed, so two binaries compare on a
# noisy machine where req/s cannot tell 10 % apart. Run setup.sh first. KINDS may add
# `hook`: webhook reports as the live bench's (a) sends them, one at a time.
# Usage: [KINDS="me one page hook"] bench/callgrind/run.sh /tmp/<binary>/api [requests per kind, default 200]
BIN=$1; N=${2:-200}
read TID KEY < ${CG_DIR:-/tmp/cg}/key
HOOK=$(psql -Atq -h 127.0.0.1 -U postgres -d sb_cg -c "SELECT webhook_token FROM tenants WHERE id = '$TID'")
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_cg SECRETS_KEY=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
out=${CG_DIR:-/tmp/cg}/out.$(basename $(dirname $BIN))
rm -f $out.*
BIND_ADDR=127.0.0.1:18556 RUN_WORKER=false SEED_DEMO=false RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$out.%p $BIN serve > ${CG_DIR:-/tmp/cg}/vg.log 2>&1 &
PID=$!
for i in $(seq 1 300); do curl -sf http://127.0.0.1:18556/readyz >/dev/null && break; sleep 0.5; done
for kind in ${KINDS:-me one page}; do
  python3 $(dirname "$0")/drive.py $kind 20 $KEY $TID $HOOK || exit 1   # warm: caches, prepared statements
  callgrind_control -z $PID > /dev/null 2>&1
  callgrind_control -i on $PID > /dev/null 2>&1
  python3 $(dirname "$0")/drive.py $kind $N $KEY $TID $HOOK || exit 1
  callgrind_control -i off $PID > /dev/null 2>&1
  callgrind_control -d $kind $PID > /dev/null 2>&1
  sleep 1
  f=$(ls -t $out.* | head -1)
  ir=$(grep -E "^(summary|totals):" $f | tail -1 | awk '{print $2}')
  echo "$kind $(( ir / N )) Ir/request"
done
kill $PID; wait $PID 2>/dev/null
