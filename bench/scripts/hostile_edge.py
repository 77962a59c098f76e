#!/usr/bin/env python3
"""Hostile-edge measurements against a running server: parse-cache RSS (item 1) and metric labels (item 8)."""
import json, sys, urllib.request, os, time
url = sys.argv[1]; pid = int(sys.argv[2]); what = sys.argv[3]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
def post(body, headers={}):
    req = urllib.request.Request(url + "/graphql", data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req) as r: return r.read()
    except urllib.error.HTTPError as e: return e.read()
if what == "parse":
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 950
    before = rss(); t = time.time()
    for i in range(n):
        fields = " ".join(f"f{i}_{j}: me {{ id }}" for j in range(1400))
        q = "{ " + fields + " }"
        q = q[:16*1024-2] if len(q) > 16*1024 else q
        q = q[:q.rfind(" f")] + " }"
        post({"query": q})
    print(json.dumps({"documents": n, "rss_before_mb": before, "rss_after_mb": rss(), "seconds": round(time.time()-t, 1), "last": post({"query": q})[:200].decode()}))
elif what == "labels":
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    for i in range(n):
        post({"query": "{ __typename }", "operationName": f"op{i}"})
    for m in ["PATCH", "FOO", "BAR"]:
        req = urllib.request.Request(url + "/graphql", method=m)
        try: urllib.request.urlopen(req)
        except Exception: pass
    m = urllib.request.urlopen(url + "/metrics").read()
    series = [l for l in m.decode().splitlines() if l and not l.startswith("#")]
    print(json.dumps({"requests": n, "metrics_bytes": len(m), "series": len(series), "graphql_series": sum(1 for l in series if l.startswith("graphql_operations_total"))}))
