// Integrations: webhook endpoints with their delivery log and "redeliver", the CRM
// connection and its last runs, the tenant's analysis fields and scoring rules. Sections
// an API key's role may not read show the server's refusal.

import { h, gql, showError, toast, table, when, statusTag, button } from './ui.js';

async function endpoints(box) {
  const eps = (await gql('{ webhookEndpoints { id url description events enabled disabledReason failingSince } }')).webhookEndpoints;
  if (!eps.length) { box.replaceChildren(h('p', { class: 'note' }, 'No webhook endpoint yet (createWebhookEndpoint).')); return; }
  const log = h('div', { 'aria-live': 'polite' });
  const show = async (ep) => {
    try {
      const d = (await gql(`query($id: ID!) { webhookDeliveries(endpointId: $id, first: 25) { edges { node {
          id eventType status attemptCount lastStatusCode lastError createdAt } } } }`, { id: ep.id })).webhookDeliveries;
      const { wrap, tbody } = table(`Deliveries to ${ep.url}, newest first`, ['Event', 'Status', 'Attempts', 'Last answer', 'Created', '']);
      for (const { node: x } of d.edges) {
        tbody.append(h('tr', {}, h('td', {}, x.eventType), h('td', {}, statusTag(x.status)), h('td', {}, String(x.attemptCount)),
          h('td', {}, x.lastStatusCode ? `HTTP ${x.lastStatusCode}` : (x.lastError || '—')), h('td', {}, when(x.createdAt)),
          h('td', {}, button('Redeliver', async () => {
            await gql('mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }', { id: x.id });
            toast('Queued for redelivery');
            await show(ep);
          }, 'secondary', `Redeliver ${x.eventType} of ${when(x.createdAt)}`))));
      }
      if (!d.edges.length) tbody.append(h('tr', {}, h('td', { colspan: 6 }, 'Nothing delivered yet.')));
      log.replaceChildren(wrap);
    } catch (e) { showError(log, e); }
  };
  const { wrap, tbody } = table('Endpoints', ['URL', 'Events', 'State', '']);
  for (const ep of eps) {
    tbody.append(h('tr', {}, h('td', {}, ep.url, ep.description ? h('div', { class: 'note' }, ep.description) : null),
      h('td', {}, ep.events.join(', ') || 'all'),
      h('td', {}, ep.enabled ? (ep.failingSince ? `failing since ${when(ep.failingSince)}` : 'enabled') : `disabled: ${ep.disabledReason || ''}`),
      h('td', {}, button('Delivery log', () => show(ep), 'secondary', `Delivery log of ${ep.url}`))));
  }
  box.replaceChildren(wrap, log);
  await show(eps[0]);
}

async function crm(box) {
  const d = await gql(`{ crmConnection { provider baseUrl lastPullAt lastPushAt failingSince lastError linkedCustomers pendingPushes }
      syncRuns(first: 100) { edges { node { id crm direction status created updated skipped conflicts startedAt errors } } } }`);
  const c = d.crmConnection;
  if (!c) { box.replaceChildren(h('p', { class: 'note' }, 'No CRM connected (connectTwenty).')); return; }
  const runs = d.syncRuns.edges.map((e) => e.node).filter((r) => r.crm);
  const { wrap, tbody } = table('Last CRM runs', ['Started', 'Direction', 'Status', 'Created / updated', 'Skipped / conflicts']);
  for (const r of runs.slice(0, 10)) {
    tbody.append(h('tr', {}, h('td', {}, when(r.startedAt)), h('td', {}, r.direction || '—'), h('td', {}, statusTag(r.status)),
      h('td', {}, `${r.created} / ${r.updated}`), h('td', {}, `${r.skipped} / ${r.conflicts}`)));
  }
  if (!runs.length) tbody.append(h('tr', {}, h('td', { colspan: 5 }, 'No CRM run yet.')));
  box.replaceChildren(
    h('dl', { class: 'facts' },
      h('dt', {}, 'CRM'), h('dd', {}, `${c.provider} at ${c.baseUrl}`),
      h('dt', {}, 'Last pull'), h('dd', {}, when(c.lastPullAt)),
      h('dt', {}, 'Last push'), h('dd', {}, when(c.lastPushAt)),
      h('dt', {}, 'Linked customers'), h('dd', {}, String(c.linkedCustomers)),
      h('dt', {}, 'Changes waiting'), h('dd', {}, String(c.pendingPushes)),
      c.failingSince ? [h('dt', {}, 'Failing since'), h('dd', { class: 'error' }, `${when(c.failingSince)}: ${c.lastError || ''}`)] : null),
    wrap);
}

async function analysis(box) {
  const d = await gql(`{ analysisFields { name description type values }
      scoringRules { base sentimentWeight hotThreshold warmThreshold halfLifeDays outcomeWeights { outcome points }
        fieldRules { field op value points } } }`);
  const { wrap, tbody } = table('Fields the analysis extracts from each transcript', ['Name', 'Type', 'Description']);
  for (const f of d.analysisFields) {
    tbody.append(h('tr', {}, h('td', {}, f.name), h('td', {}, f.values.length ? `${f.type}: ${f.values.join(', ')}` : f.type), h('td', {}, f.description)));
  }
  if (!d.analysisFields.length) tbody.append(h('tr', {}, h('td', { colspan: 3 }, 'None set (setAnalysisFields).')));
  const r = d.scoringRules;
  box.replaceChildren(wrap,
    h('h3', {}, 'Scoring rules'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Base'), h('dd', {}, String(r.base)),
      h('dt', {}, 'Outcomes'), h('dd', {}, r.outcomeWeights.map((w) => `${w.outcome} ${w.points >= 0 ? '+' : ''}${w.points}`).join(', ') || '—'),
      h('dt', {}, 'Sentiment weight'), h('dd', {}, String(r.sentimentWeight)),
      h('dt', {}, 'Field rules'), h('dd', {}, r.fieldRules.map((f) => `${f.field} ${f.op} ${f.value ?? ''} → ${f.points}`).join('; ') || '—'),
      h('dt', {}, 'Hot / warm from'), h('dd', {}, `${r.hotThreshold} / ${r.warmThreshold}`),
      h('dt', {}, 'Half-life'), h('dd', {}, `${r.halfLifeDays} days`)));
}

export async function page(root) {
  const sections = [
    ['Webhook endpoints', endpoints],
    ['CRM connection', crm],
    ['Analysis fields and scoring', analysis],
  ];
  root.append(h('h1', {}, 'Integrations'));
  await Promise.all(sections.map(async ([title, load], i) => {
    const box = h('div', { 'aria-live': 'polite' });
    root.append(h('section', { class: 'card', 'aria-labelledby': `int-${i}` }, h('h2', { id: `int-${i}` }, title), box));
    try { await load(box); } catch (e) { showError(box, e); }
  }));
}
