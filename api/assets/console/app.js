// The console's shell: sign-in with an API key kept in this tab's session storage (sent to
// nothing but this server), the live socket, and a hash router over the sections.

import { Live } from './ws.js';
import { session, h, gql, showError } from './ui.js';
import * as calls from './calls.js';
import * as customers from './customers.js';
import * as campaigns from './campaigns.js';
import * as sync from './sync.js';
import * as integrations from './integrations.js';

const ROUTES = [
  [/^#\/calls\/([^/]+)$/, 'calls', calls.detail],
  [/^#\/calls$/, 'calls', calls.list],
  [/^#\/customers\/([^/]+)$/, 'customers', customers.detail],
  [/^#\/customers$/, 'customers', customers.list],
  [/^#\/campaigns\/([^/]+)$/, 'campaigns', campaigns.detail],
  [/^#\/campaigns$/, 'campaigns', campaigns.list],
  [/^#\/sync$/, 'sync', sync.page],
  [/^#\/integrations$/, 'integrations', integrations.page],
];

const main = document.getElementById('main');
let cleanup = () => {};
let generation = 0;
let wasDown = false;

function socketState(state, detail) {
  if (state === 'refused') {
    // The key was revoked: back to sign-in, saying so.
    session.key = null;
    signIn(`Live updates were refused: ${detail}. Sign in again.`);
    return;
  }
  if (state === 'live' && wasDown) {
    // Whatever changed while the socket was down: the page reads everything again.
    wasDown = false;
    route();
  }
  if (state === 'reconnecting') wasDown = true;
  const el = document.getElementById('socket');
  el.className = state === 'live' ? 'socket' : 'socket down';
  el.textContent = state === 'live' ? 'Live' : state === 'refused' ? `Live updates refused: ${detail}` : 'Reconnecting…';
}

function signIn(message) {
  generation += 1;
  cleanup(); cleanup = () => {};
  if (session.live) { session.live.close(); session.live = null; }
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  document.getElementById('socket').textContent = '';
  const input = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const out = h('div');
  if (message) showError(out, { message });
  const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'),
    h('p', { class: 'note' }, 'Paste an API key (the demo key is printed when the server first starts). It stays in this tab only and is sent to nothing but this server.'),
    h('label', { for: 'api-key' }, 'API key', input),
    h('p', {}, h('button', { type: 'submit' }, 'Sign in')),
    out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    session.key = input.value.trim();
    try {
      await start();
    } catch (e) {
      session.key = null;
      showError(out, e);
    }
  });
  main.replaceChildren(form);
  input.focus();
}

async function start() {
  const data = await gql('{ me { name } }');
  document.getElementById('who').textContent = `Tenant: ${data.me.name}`;
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  session.live = new Live(session.key, socketState);
  if (!location.hash || location.hash === '#' || location.hash === '#/') location.hash = '#/calls';
  else route();
}

async function route() {
  if (!session.key || !session.live) return;
  generation += 1;
  const mine = generation;
  cleanup(); cleanup = () => {};
  const hash = location.hash || '#/calls';
  const found = ROUTES.map(([re, section, page]) => [hash.match(re), section, page]).find(([m]) => m);
  for (const a of document.querySelectorAll('nav a')) {
    if (found && a.dataset.section === found[1]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const box = h('div');
  main.replaceChildren(box);
  if (!found) { showError(box, { message: `No such page: ${hash}` }); return; }
  const [match, , page] = found;
  try {
    const stop = await page(box, ...match.slice(1).map(decodeURIComponent));
    if (mine !== generation) {
      // Another page (or sign-out) started meanwhile: this one's subscriptions end now.
      if (typeof stop === 'function') stop();
      return;
    }
    if (typeof stop === 'function') cleanup = stop;
  } catch (e) {
    if (mine !== generation) return;
    if (e.code === 'UNAUTHENTICATED') { session.key = null; signIn(e.message); return; }
    showError(box, e);
  }
  main.focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
document.getElementById('signout').addEventListener('click', () => { session.key = null; signIn(); });

if (session.key) {
  start().catch((e) => {
    // Only a refused key is forgotten; a server that is restarting is not a reason.
    if (e.code === 'UNAUTHENTICATED') session.key = null;
    signIn(e.message);
  });
} else {
  signIn();
}
