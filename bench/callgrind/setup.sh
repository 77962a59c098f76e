#!/bin/bash
# Fresh PostgreSQL database sb_cg with one tenant, 2,000 customers with 5 calls each, for
# run.sh and cpu.sh; keeps the tenant id and its API key in $CG_DIR/key.
# Usage: bench/callgrind/setup.sh target/release/api
set -e
mkdir -p "${CG_DIR:-/tmp/cg}"
BIN=${1:-/tmp/base/api}
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS sb_cg WITH (FORCE)" -c "CREATE DATABASE sb_cg"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_cg SECRETS_KEY=0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
ADMIN_TOKEN=cg-admin-token-0123456789abcdef BIND_ADDR=127.0.0.1:18555 RUN_WORKER=false SEED_DEMO=false RUST_LOG=warn $BIN serve > ${CG_DIR:-/tmp/cg}/setup.log 2>&1 &
PID=$!
for i in $(seq 1 100); do curl -sf http://127.0.0.1:18555/readyz >/dev/null && break; sleep 0.3; done
KEY=$(curl -s http://127.0.0.1:18555/graphql -H 'content-type: application/json' -H 'authorization: Bearer cg-admin-token-0123456789abcdef' \
  -d '{"query":"mutation { createTenant(input: {name: \"CG\"}) { tenant { id } apiKey } }"}' | python3 -c 'import sys,json; d=json.load(sys.stdin)["data"]["createTenant"]; print(d["tenant"]["id"], d["apiKey"])')
kill $PID; wait $PID 2>/dev/null || true
TID=${KEY%% *}; APIKEY=${KEY#* }
psql -q -h 127.0.0.1 -U postgres -d sb_cg <<SQL
INSERT INTO agents (id, tenant_id, name, provider, provider_agent_id, business_name, created_at, updated_at)
VALUES ('00000000-0000-7000-8000-000000000001', '$TID', 'Agent', 'SIMULATOR', 'sim-1', 'Bench Co', now(), now()),
       ('00000000-0000-7000-8000-000000000002', '$TID', 'Bolna agent', 'BOLNA', 'cg-agent', 'Bench Co', now(), now());
INSERT INTO customers (id, tenant_id, phone_number, name, email, status, tags, lead_score, segment, notes, source, last_contacted_at, created_at, updated_at)
SELECT md5('$TID' || g)::uuid, '$TID', '+1650' || lpad(g::text, 7, '0'), 'Customer ' || g, NULL,
       (ARRAY['NEW','CONTACTED','INTERESTED','CALLBACK'])[1 + g % 4], '["bench"]'::jsonb, (g % 100)::float8, NULL, NULL, 'BENCH', now(), now(), now()
FROM generate_series(1, 2000) g;
INSERT INTO calls (id, tenant_id, agent_id, customer_id, provider, provider_execution_id, direction, status, from_number, to_number, started_at, ended_at, duration_seconds, cost, transcript, summary, extracted_data, created_at, updated_at)
SELECT gen_random_uuid(), c.tenant_id, '00000000-0000-7000-8000-000000000001', c.id, 'SIMULATOR', gen_random_uuid()::text, 'OUTBOUND',
       (ARRAY['COMPLETED','BUSY','NO_ANSWER','COMPLETED','COMPLETED'])[n], '+15550000000', c.phone_number, now(), now(), 60, 1.5,
       'assistant: Hello.\nuser: Hi.', 'A short call.', '{"interested": true}'::jsonb, now() - (n || ' minutes')::interval, now()
FROM customers c CROSS JOIN generate_series(1, 5) n;
ANALYZE;
SQL
echo "$TID $APIKEY" > ${CG_DIR:-/tmp/cg}/key
cat ${CG_DIR:-/tmp/cg}/key
