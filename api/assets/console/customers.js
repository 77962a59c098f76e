// Customers: search by name or by phone in any format; a customer's page with its calls,
// interactions (call summaries and outcomes, WhatsApp messages), lead score with its
// explanation, and segment.

import { h, gql, showError, table, when, duration, statusTag } from './ui.js';

export async function list(root) {
  const search = h('input', { id: 'customer-search', type: 'search', placeholder: 'Name or phone number', autocomplete: 'off' });
  const out = h('div');
  const form = h('form', { class: 'inline card', role: 'search', 'aria-label': 'Search customers' },
    h('label', { for: 'customer-search' }, 'Search', search),
    h('button', { type: 'submit' }, 'Search'));
  root.append(h('h1', {}, 'Customers'), form, out);
  const load = async () => {
    const term = search.value.trim();
    try {
      const d = await gql(`query($f: CustomerFilter) { customers(first: 50, filter: $f) { totalCount edges { node {
          id name phoneNumber status leadScore segment lastContactedAt } } } }`, { f: term ? { search: term } : null });
      const { wrap, tbody } = table(`${d.customers.totalCount} customer(s)${term ? ` matching “${term}”` : ''}`,
        ['Name', 'Phone', 'Status', 'Score', '~Segment', '~Last contact']);
      for (const { node: c } of d.customers.edges) {
        tbody.append(h('tr', {},
          h('td', {}, h('a', { href: `#/customers/${encodeURIComponent(c.id)}` }, c.name || '(no name)')),
          h('td', {}, c.phoneNumber),
          h('td', {}, c.status),
          h('td', {}, c.leadScore === null ? '—' : c.leadScore.toFixed(0)),
          h('td', { class: 'hide-narrow' }, c.segment || '—'),
          h('td', { class: 'hide-narrow' }, when(c.lastContactedAt))));
      }
      out.replaceChildren(wrap);
    } catch (e) { showError(out, e); }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  await load();
}

export async function detail(root, id) {
  const d = await gql(`query($id: ID!) { customer(id: $id) { id name phoneNumber email status tags leadScore segment notes source
      scoreExplanation { rule detail points } whatsappWindowEndsAt
      interactions { channel callId at summary outcome message { direction kind text status } }
      calls(first: 20) { edges { node { id status durationSeconds createdAt agent { name } } } } } }`, { id });
  const c = d.customer;
  if (!c) { showError(root, { message: 'No such customer in this tenant.' }); return; }
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, 'Phone'), h('dd', {}, c.phoneNumber),
    h('dt', {}, 'Email'), h('dd', {}, c.email || '—'),
    h('dt', {}, 'Status'), h('dd', {}, c.status),
    h('dt', {}, 'Lead score'), h('dd', {}, c.leadScore === null ? '—' : c.leadScore.toFixed(1)),
    h('dt', {}, 'Segment'), h('dd', {}, c.segment || '—'),
    h('dt', {}, 'Tags'), h('dd', {}, c.tags.length ? c.tags.join(', ') : '—'),
    h('dt', {}, 'Source'), h('dd', {}, c.source || '—'),
    h('dt', {}, 'WhatsApp window'), h('dd', {}, c.whatsappWindowEndsAt ? `until ${when(c.whatsappWindowEndsAt)}` : 'closed'));
  const explain = c.scoreExplanation.length
    ? h('ul', { class: 'plain' }, c.scoreExplanation.map((x) =>
      h('li', {}, h('b', {}, `${x.points >= 0 ? '+' : ''}${x.points.toFixed(1)} `), `${x.rule}: ${x.detail}`)))
    : h('p', { class: 'note' }, 'No score yet.');
  const history = c.interactions.length
    ? h('ul', { class: 'plain' }, c.interactions.map((i) => h('li', {},
      h('b', {}, i.channel === 'WHATSAPP' ? 'WhatsApp' : 'Call'), ` · ${when(i.at)} `,
      i.outcome ? h('span', { class: 'status live' }, i.outcome) : null,
      i.message ? h('p', {}, `${i.message.direction === 'INBOUND' ? '← ' : '→ '}${i.message.text || `(${i.message.kind})`} `, statusTag(i.message.status)) : null,
      i.summary ? h('p', {}, i.summary) : null,
      i.callId ? h('a', { href: `#/calls/${encodeURIComponent(i.callId)}`, 'aria-label': `Transcript of the call of ${when(i.at)}` }, 'Transcript') : null)))
    : h('p', { class: 'note' }, 'No interactions yet.');
  const { wrap, tbody } = table('Latest calls', ['Status', 'Agent', 'Duration', 'Created', '']);
  for (const { node: x } of c.calls.edges) {
    tbody.append(h('tr', {}, h('td', {}, statusTag(x.status)), h('td', {}, x.agent ? x.agent.name : '—'),
      h('td', {}, duration(x.durationSeconds)), h('td', {}, when(x.createdAt)),
      h('td', {}, h('a', { href: `#/calls/${encodeURIComponent(x.id)}`, 'aria-label': `Transcript of the call of ${when(x.createdAt)}` }, 'Transcript'))));
  }
  root.append(
    h('p', {}, h('a', { href: '#/customers' }, '← Customers')),
    h('h1', {}, c.name || c.phoneNumber),
    h('section', { class: 'card' }, facts),
    c.notes ? h('p', {}, c.notes) : '',
    h('h2', {}, 'Lead score, explained'), explain,
    h('h2', {}, 'Interactions'), history,
    h('h2', {}, 'Calls'), wrap);
}
