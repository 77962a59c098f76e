// Live calls: the newest calls, updated in place from `callUpdated` (no polling), a form
// to start a call, and a call's page with its transcript and analysis.

import { session, h, gql, showError, toast, table, when, duration, statusTag } from './ui.js';

const FIELDS = 'id status direction toNumber fromNumber durationSeconds createdAt customer { id name phoneNumber } agent { id name }';

function row(c) {
  const who = c.customer
    ? h('a', { href: `#/customers/${encodeURIComponent(c.customer.id)}` }, c.customer.name || c.customer.phoneNumber)
    : (c.toNumber || c.fromNumber || '—');
  return h('tr', { 'data-call': c.id },
    h('td', {}, statusTag(c.status)),
    h('td', {}, who),
    h('td', { class: 'hide-narrow' }, c.agent ? c.agent.name : '—'),
    h('td', {}, duration(c.durationSeconds)),
    h('td', { class: 'hide-narrow' }, when(c.createdAt)),
    h('td', {}, h('a', { href: `#/calls/${encodeURIComponent(c.id)}`, 'aria-label': `Transcript of the call with ${c.customer ? (c.customer.name || c.customer.phoneNumber) : 'unknown'}` }, 'Transcript')));
}

export async function list(root) {
  const { wrap, tbody } = table('Newest calls first; rows change as the provider reports.', ['Status', 'Customer', '~Agent', 'Duration', '~Created', '']);
  const formBox = h('div');
  root.append(h('h1', {}, 'Live calls'), formBox, wrap);
  // Subscribed before the list is read, so no change falls between the two.
  const stop = session.live.subscribe(
    `subscription { callUpdated { status call { ${FIELDS} } } }`, {},
    (d) => {
      const c = d.callUpdated.call;
      const fresh = row(c);
      fresh.classList.add('flash');
      const old = tbody.querySelector(`tr[data-call="${CSS.escape(c.id)}"]`);
      if (old && old.contains(document.activeElement)) {
        // Keyboard focus stays where it is: only the status and duration change.
        old.cells[0].replaceChildren(...fresh.cells[0].childNodes);
        old.cells[3].replaceChildren(...fresh.cells[3].childNodes);
      } else if (old) old.replaceWith(fresh);
      else {
        const empty = tbody.querySelector('tr.empty');
        if (empty) empty.remove();
        tbody.prepend(fresh);
        while (tbody.rows.length > 100) tbody.lastChild.remove();
      }
    },
    (msg) => toast(`Live call updates stopped: ${msg}`, true));
  try {
    const data = await gql(`{ agents { id name provider } calls(first: 30) { edges { node { ${FIELDS} } } } }`);
    for (const e of data.calls.edges) {
      // A row an update already drew is newer than the list.
      if (!tbody.querySelector(`tr[data-call="${CSS.escape(e.node.id)}"]`)) tbody.append(row(e.node));
    }
    if (!tbody.rows.length) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: 6 }, 'No calls yet.')));
    formBox.append(startForm(data.agents));
  } catch (e) {
    stop();
    throw e;
  }
  return stop;
}

function startForm(agents) {
  const agent = h('select', { id: 'call-agent', required: true },
    agents.map((a) => h('option', { value: a.id }, `${a.name} (${a.provider})`)));
  const phone = h('input', { id: 'call-phone', type: 'tel', required: true, placeholder: '+1 212 555 0100', autocomplete: 'off' });
  const out = h('div');
  const form = h('form', { class: 'inline card', 'aria-label': 'Start a call' },
    h('label', { for: 'call-agent' }, 'Agent', agent),
    h('label', { for: 'call-phone' }, 'Phone number (any format)', phone),
    h('button', { type: 'submit' }, 'Start call'),
    out);
  if (!agents.length) return h('p', { class: 'note' }, 'Create an agent to start calls.');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    try {
      const d = await gql('mutation($i: StartCallInput!) { startCall(input: $i) { id status } }',
        { i: { agentId: agent.value, phoneNumber: phone.value } });
      toast(`Call started (${d.startCall.status.toLowerCase()})`);
      phone.value = '';
    } catch (e) { showError(out, e); }
  });
  return form;
}

export async function detail(root, id) {
  const box = h('div');
  root.append(h('p', {}, h('a', { href: '#/calls' }, '← Live calls')), box);
  let status = null;
  let ended = false;
  // Subscribed first, so no change falls between reading the call and listening.
  const stop = session.live.subscribe('subscription($id: ID) { callUpdated(callId: $id) { status call { endedAt } } }', { id },
    (d) => {
      if (status) status.replaceChildren(statusTag(d.callUpdated.status));
      // Once it ends, its transcript, summary and analysis follow: read it all again.
      if (!ended && d.callUpdated.call.endedAt) draw().catch((e) => toast(e.message, true));
    },
    (msg) => toast(`Live updates of this call stopped: ${msg}`, true));
  const draw = async () => {
    const data = await gql(`query($id: ID!) { call(id: $id) { ${FIELDS} hangupReason errorMessage summary transcript recordingUrl
        startedAt endedAt provider analysis { status outcome sentiment summary error } } }`, { id });
    const c = data.call;
    if (!c) { showError(box, { message: 'No such call in this tenant.' }); return; }
    ended = !!c.endedAt;
    const facts = h('dl', { class: 'facts' });
    const fact = (k, v) => facts.append(h('dt', {}, k), h('dd', {}, v));
    status = h('span', {}, statusTag(c.status));
    fact('Status', status);
    fact('Customer', c.customer ? h('a', { href: `#/customers/${encodeURIComponent(c.customer.id)}` }, c.customer.name || c.customer.phoneNumber) : '—');
    fact('Agent', c.agent ? c.agent.name : '—');
    fact('Provider', c.provider);
    fact('Number', c.toNumber || c.fromNumber || '—');
    fact('Started', when(c.startedAt));
    fact('Ended', when(c.endedAt));
    fact('Duration', duration(c.durationSeconds));
    if (c.hangupReason) fact('Hang-up', c.hangupReason);
    if (c.errorMessage) fact('Error', c.errorMessage);
    if (c.recordingUrl && /^https?:\/\//i.test(c.recordingUrl)) fact('Recording', h('a', { href: c.recordingUrl, rel: 'noopener noreferrer', target: '_blank' }, 'Listen'));
    const analysis = c.analysis
      ? h('dl', { class: 'facts' },
        h('dt', {}, 'Analysis'), h('dd', {}, c.analysis.status),
        h('dt', {}, 'Outcome'), h('dd', {}, c.analysis.outcome || '—'),
        h('dt', {}, 'Sentiment'), h('dd', {}, c.analysis.sentiment || '—'),
        c.analysis.error ? [h('dt', {}, 'Error'), h('dd', {}, c.analysis.error)] : null)
      : h('p', { class: 'note' }, 'Not analysed yet.');
    box.replaceChildren(
      h('h1', {}, 'Call'),
      h('section', { class: 'card' }, facts),
      h('h2', {}, 'Summary'), h('p', {}, c.summary || (c.analysis && c.analysis.summary) || '—'),
      h('h2', {}, 'Analysis'), analysis,
      h('h2', {}, 'Transcript'), c.transcript ? h('pre', { class: 'transcript' }, c.transcript) : h('p', { class: 'note' }, 'No transcript yet.'));
  };
  try { await draw(); } catch (e) { stop(); throw e; }
  return stop;
}
