"""Sends N requests of one kind one after another; exits 1 on an error. GraphQL: me, one,
page. hook: Bolna webhook reports as the live bench's (a) sends them (five statuses per
call, ~2 KB transcript), to the tenant's webhook token (the fifth argument)."""
import http.client, json, sys, random
kind, n, key, tid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
import hashlib, uuid
c = http.client.HTTPConnection("127.0.0.1", 18556, timeout=600)
PAGE = "query($n: Int!) { customers(first: $n) { edges { node { id phoneNumber calls(first: 5) { edges { node { id status } } } } } } }"
ONE = "query($id: ID!) { customer(id: $id) { id phoneNumber name status } }"
random.seed(1)
STATUSES = ["initiated", "ringing", "in-progress", "call-disconnected", "completed"]
if kind == "hook":
    token = sys.argv[5]
    tag = uuid.uuid4().hex[:8]
    for i in range(n):
        body = {
            "id": "cg-%s-%d" % (tag, i // 5), "agent_id": "cg-agent", "status": STATUSES[i % 5],
            "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:01:00Z",
            "conversation_duration": 61.5, "total_cost": 5.5,
            "transcript": "assistant: hello\nuser: yes\n" * 77,
            "telephony_data": {"to_number": "+9198%08d" % (i // 5), "from_number": "+918045671234",
                               "call_type": "outbound", "duration": "62"},
            "context_details": {"recipient_data": {"customer_name": "Bench Lead"}},
        }
        c.request("POST", "/webhooks/bolna/" + token, json.dumps(body), {"content-type": "application/json"})
        r = c.getresponse(); data = r.read()
        if r.status != 200:
            print("bad", r.status, data[:300]); sys.exit(1)
    sys.exit(0)
for i in range(n):
    if kind == "page":
        body = {"query": PAGE, "variables": {"n": 50}}
    elif kind == "one":
        g = random.randint(1, 2000)
        cid = str(uuid.UUID(hashlib.md5((tid + str(g)).encode()).hexdigest()))
        body = {"query": ONE, "variables": {"id": cid}}
    else:
        body = {"query": "{ me { id } }"}
    c.request("POST", "/graphql", json.dumps(body), {"content-type": "application/json", "authorization": "Bearer " + key})
    r = c.getresponse(); data = r.read()
    if r.status != 200 or b'"errors"' in data:
        print("bad", r.status, data[:300]); sys.exit(1)
