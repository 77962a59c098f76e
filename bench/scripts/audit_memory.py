#!/usr/bin/env python3
"""syncAudit memory against a fake Bolna (hardening issue, item 4).

Starts a fake Bolna on 127.0.0.1:18099 (one agent, 50 executions with 2 KiB transcripts
per 7-day window), registers it for the server's demo tenant, runs syncAudit from
`years` back and samples the server's RSS while it runs.

  python3 bench/scripts/audit_memory.py http://127.0.0.1:8080 <server pid> <admin key> <years|days:N> [pages per window]

The server must run with ALLOW_PROVIDER_BASE_URL=true, PROVIDER_BASE_URL_ALLOWLIST=127.0.0.1
and BOLNA_REQUESTS_PER_MINUTE=0.
"""
import json, sys, threading, time, urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

TRANSCRIPT = "assistant: hello, is this a good time?\nuser: yes " * 40

class Fake(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/v2/agent/all":
            return self.reply([{"id": "agent-1", "agent_name": "one"}])
        if u.path.endswith("/executions"):
            q = parse_qs(u.query)
            start = q["from"][0]
            page = int(q.get("page_number", ["1"])[0])
            items = [{
                "id": f"{start}-{page}-{i}", "agent_id": "agent-1", "status": "completed",
                "created_at": start, "updated_at": start, "transcript": TRANSCRIPT,
                "telephony_data": {"to_number": f"+9198{(page * 50 + i) % 100000000:08d}", "call_type": "outbound"},
            } for i in range(50)]
            return self.reply({"page_number": page, "has_more": page < PAGES, "data": items})
        self.send_response(404); self.end_headers()

def gql(url, key, query, variables=None):
    req = urllib.request.Request(url + "/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())

def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1]) // 1024

url, pid, key, span = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
PAGES = int(sys.argv[5]) if len(sys.argv) > 5 else 1
server = ThreadingHTTPServer(("127.0.0.1", 18099), Fake)
threading.Thread(target=server.serve_forever, daemon=True).start()
gql(url, key, 'mutation { setProviderCredentials(input: {provider: BOLNA, apiKey: "k", baseUrl: "http://127.0.0.1:18099"}) }')
gql(url, key, 'mutation { createAgent(input: {name: "one", provider: BOLNA, providerAgentId: "agent-1"}) { id } }')
days = int(span.split(":")[1]) if span.startswith("days:") else int(span) * 365
since = (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
peak = [rss(pid)]
before = peak[0]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss(pid)); time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()
t = time.time()
out = gql(url, key, 'query($s: DateTime) { syncAudit(provider: BOLNA, since: $s) { providerCallCount storedCallCount } }', {"s": since})
done.set()
print(json.dumps({"span_days": days, "seconds": round(time.time() - t, 1), "rss_before_mb": before,
                  "rss_peak_mb": peak[0], "answer": json.dumps(out)[:200]}))
