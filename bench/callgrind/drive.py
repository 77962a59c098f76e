"""Sends N GraphQL requests of one kind (me, one, page) one after another; exits 1 on an error."""
import http.client, json, sys, random
kind, n, key, tid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
import hashlib, uuid
c = http.client.HTTPConnection("127.0.0.1", 18556, timeout=600)
PAGE = "query($n: Int!) { customers(first: $n) { edges { node { id phoneNumber calls(first: 5) { edges { node { id status } } } } } } }"
ONE = "query($id: ID!) { customer(id: $id) { id phoneNumber name status } }"
random.seed(1)
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
