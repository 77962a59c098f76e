#!/usr/bin/env node
// GraphQL-over-HTTP spec audit, using graphql-http's `serverAudits`.
//
// Usage: node audit.mjs <url>
//
// Env:
//   AUDIT_AUTHORIZATION  value sent as the `Authorization` header of every
//                        request (e.g. "Bearer <key>").
//   AUDIT_ALLOW_WARN=1   exit 0 even if some SHOULD audits warn.
//   AUDIT_TIMEOUT_MS     per-request timeout (default 10000).
//   AUDIT_VERBOSE=1      also print the start of the response body of each
//                        failed audit.
//
// graphql-http result shape (lib/audits/utils.mjs, `audit()`):
//   { id, name, status: 'ok' }
//   { id, name, status: 'error' | 'warn' | 'notice', reason, response }
// where the status of a failed audit follows the prefix of its name:
// MUST -> 'error', SHOULD -> 'warn', anything else (MAY) -> 'notice'.
// An audit's fn() only throws (instead of resolving to a failure) on fatal
// problems such as a refused connection; those are reported here as 'error'.
//
// Output: one line per audit `<status> <id> <name>` (with ` -- <reason>` and
// the response status / content-type for failed ones), then one JSON line:
//   {"ok":N,"notice":N,"warn":N,"error":N,"failed":[{id,name,status,reason}...],
//    "notices":[{id,name,reason}...]}
// `failed` holds the 'warn' and 'error' audits; MAY failures ('notice') are
// listed apart and never affect the exit code.
//
// Exit code: 0 if no audit is 'error' and none is 'warn' (or AUDIT_ALLOW_WARN=1
// and none is 'error'); 1 otherwise; 2 on bad usage.

import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url || process.argv.length > 3) {
  console.error('usage: node audit.mjs <url>');
  process.exit(2);
}
try {
  new URL(url);
} catch {
  console.error(`audit: not a valid URL: ${url}`);
  process.exit(2);
}

const authorization = process.env.AUDIT_AUTHORIZATION;
const allowWarn = process.env.AUDIT_ALLOW_WARN === '1';
const verbose = process.env.AUDIT_VERBOSE === '1';
const timeoutMs = Number(process.env.AUDIT_TIMEOUT_MS) || 10000;

/** global fetch (Node >= 18) plus the Authorization header and a timeout. */
function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  if (authorization !== undefined && authorization !== '') {
    headers.set('authorization', authorization);
  }
  return fetch(input, {
    ...init,
    headers,
    signal: init.signal ?? AbortSignal.timeout(timeoutMs),
  });
}

function oneLine(s) {
  return String(s).replace(/\s+/g, ' ').trim();
}

async function describeResponse(res) {
  if (!res || typeof res.status !== 'number') return '';
  let out = `HTTP ${res.status}, content-type ${res.headers.get('content-type') ?? '(none)'}`;
  if (verbose) {
    try {
      // the audit may already have consumed the body; then skip it
      const body = await res.clone().text();
      out += `, body ${oneLine(body).slice(0, 300)}`;
    } catch {
      /* body already read */
    }
  }
  return out;
}

const audits = serverAudits({ url, fetchFn });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
const failed = [];
const notices = [];

// Sequentially: deterministic output, and gentle on rate limits.
for (const { id, name, fn } of audits) {
  let result;
  try {
    result = await fn();
  } catch (err) {
    const cause = err && err.cause ? ` (${err.cause.code ?? err.cause.message ?? err.cause})` : '';
    result = {
      id,
      name,
      status: 'error',
      reason: `fatal: ${err && err.message ? err.message : err}${cause}`,
    };
  }
  const status = result.status in counts ? result.status : 'error';
  counts[status]++;
  if (status === 'ok') {
    console.log(`${status} ${id} ${name}`);
    continue;
  }
  const reason = result.reason ?? '(no reason given)';
  const resp = await describeResponse(result.response);
  console.log(`${status} ${id} ${name} -- ${reason}${resp ? ` [${resp}]` : ''}`);
  if (status === 'notice') notices.push({ id, name, reason });
  else failed.push({ id, name, status, reason });
}

console.log(JSON.stringify({ ...counts, failed, notices }));

const pass = counts.error === 0 && (counts.warn === 0 || allowWarn);
process.exit(pass ? 0 : 1);
