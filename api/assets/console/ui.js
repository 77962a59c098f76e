// What every page shares: building elements without ever parsing data as HTML, the
// GraphQL client (the server's own error messages, never a blank page), formatting.

const KEY = 'switchboard.apiKey';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(v) { if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY); },
  live: null,
};

/** An element: `h('a', {href: '#/x', class: 'y'}, 'text', child)`. Text is always text. */
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

export class ServerError extends Error {
  constructor(message, code) { super(message); this.code = code; }
}

/** Runs a GraphQL operation with the session's key; throws the server's first error. */
export async function gql(query, variables = {}) {
  let res;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${session.key || ''}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    throw new ServerError(`The server could not be reached: ${e.message}`, 'NETWORK');
  }
  let body;
  try { body = await res.json(); } catch {
    throw new ServerError(`The server answered HTTP ${res.status} without a readable body`, 'HTTP');
  }
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    const field = e.extensions && e.extensions.field ? ` (${e.extensions.field})` : '';
    throw new ServerError(`${e.message}${field}`, e.extensions && e.extensions.code);
  }
  return body.data;
}

/** Replaces a box's content with the error, as the server said it. */
export function showError(box, err) {
  box.replaceChildren(h('p', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err)));
}

export function toast(message, bad = false) {
  const t = h('div', { class: bad ? 'toast bad' : 'toast' }, message);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), bad ? 9000 : 6000);
}

export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} m ${s % 60} s` : `${s} s`;
}

const GOOD = new Set(['COMPLETED', 'SUCCEEDED', 'DELIVERED', 'READ']);
const BAD = new Set(['FAILED', 'ERROR', 'BUSY', 'NO_ANSWER', 'CANCELED', 'BALANCE_LOW', 'STOPPED', 'PARTIAL']);

export function statusTag(status) {
  const cls = GOOD.has(status) ? 'status good' : BAD.has(status) ? 'status bad' : 'status live';
  return h('span', { class: cls }, String(status || '—').replaceAll('_', ' '));
}

/** A table with a caption, header cells and a body to fill. Headers starting with `~` are
 * hidden on narrow screens (give their cells the class `hide-narrow` too). */
export function table(caption, headers) {
  const tbody = h('tbody');
  const th = (x) => (x.startsWith('~')
    ? h('th', { scope: 'col', class: 'hide-narrow' }, x.slice(1))
    : h('th', { scope: 'col' }, x));
  const t = h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map(th))),
    tbody);
  return { wrap: h('div', { class: 'table-wrap' }, t), tbody };
}

/** A button that runs `action`, disabled while it runs; errors become toasts. */
export function button(label, action, cls = '', ariaLabel = null) {
  const b = h('button', { type: 'button', class: cls, 'aria-label': ariaLabel });
  b.textContent = label;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await action(); } catch (e) { toast(e.message || String(e), true); } finally { b.disabled = false; }
  });
  return b;
}
