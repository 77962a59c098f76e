// Campaigns: the list with live stats from `campaignProgress`, a CSV upload whose
// line-numbered report is shown before anything is created (a dry run first), start /
// pause / resume / cancel, and the reason a campaign paused itself.

import { session, h, gql, showError, toast, table, when, statusTag, button, ServerError } from './ui.js';

const STATS = 'total pending dispatching inProgress completed failed skipped canceled';
/** Campaigns of the list that get live stats (the socket carries at most 20 subscriptions). */
const LIVE_CAMPAIGNS = 15;

function statsLine(s) {
  const part = (label, n) => h('span', {}, `${label} `, h('b', {}, String(n)));
  return h('div', { class: 'stats', 'aria-label': 'Items by state' },
    part('total', s.total), part('pending', s.pending), part('in flight', s.dispatching + s.inProgress),
    part('completed', s.completed), part('failed', s.failed), part('skipped', s.skipped), part('canceled', s.canceled));
}

function actions(c, refresh) {
  const act = (verb, label, cls) => button(label, async () => {
    // eslint-disable-next-line no-alert
    if (verb === 'cancel' && !window.confirm(`Cancel “${c.name}”? Its pending recipients will not be contacted.`)) return;
    const d = await gql(`mutation($id: ID!) { ${verb}Campaign(id: $id) { id status } }`, { id: c.id });
    toast(`${c.name}: ${d[`${verb}Campaign`].status.toLowerCase()}`);
    await refresh();
  }, cls, `${label} ${c.name}`);
  const out = [];
  if (c.status === 'DRAFT') out.push(act('start', 'Start'));
  if (c.status === 'RUNNING') out.push(act('pause', 'Pause', 'secondary'));
  if (c.status === 'PAUSED') out.push(act('resume', 'Resume'));
  if (['DRAFT', 'RUNNING', 'PAUSED'].includes(c.status)) out.push(act('cancel', 'Cancel', 'danger'));
  return h('div', { class: 'actions' }, out);
}

export async function list(root) {
  const listBox = h('div');
  const formBox = h('section', { class: 'card', 'aria-labelledby': 'new-campaign' });
  root.append(h('h1', {}, 'Campaigns'), formBox, h('h2', {}, 'All campaigns'), listBox);
  let stops = [];
  let alive = true;
  const refresh = async () => {
    const d = await gql(`{ campaigns(first: 50) { edges { node { id name status channel pausedReason createdAt stats { ${STATS} } } } } }`);
    // The page may have been left while this was read.
    if (!alive) return;
    stops.forEach((s) => s()); stops = [];
    const active = d.campaigns.edges.filter((e) => ['RUNNING', 'PAUSED', 'DRAFT'].includes(e.node.status)).length;
    const caption = active > LIVE_CAMPAIGNS
      ? `Newest first; the ${LIVE_CAMPAIGNS} newest unfinished campaigns update live, the others as of loading.`
      : 'Newest first; stats update live while a campaign runs.';
    const { wrap, tbody } = table(caption, ['Campaign', 'Status', 'Items', 'Actions']);
    for (const { node: c } of d.campaigns.edges) {
      const stats = h('td', {}, statsLine(c.stats));
      const status = h('td', {}, statusTag(c.status), c.pausedReason ? h('div', { class: 'note' }, `Paused: ${c.pausedReason}`) : null);
      const act = h('td', {}, actions(c, refresh));
      let shown = c.status;
      tbody.append(h('tr', { 'data-campaign': c.id },
        h('td', {}, h('a', { href: `#/campaigns/${encodeURIComponent(c.id)}` }, c.name), h('div', { class: 'note' }, `${c.channel} · ${when(c.createdAt)}`)),
        status, stats, act));
      if (['RUNNING', 'PAUSED', 'DRAFT'].includes(c.status) && stops.length < LIVE_CAMPAIGNS) {
        stops.push(session.live.subscribe(
          'subscription($id: ID!) { campaignProgress(campaignId: $id) { campaign { id name status pausedReason } stats { ' + STATS + ' } } }',
          { id: c.id },
          (p) => {
            const x = p.campaignProgress;
            stats.replaceChildren(statsLine(x.stats));
            // Buttons are rebuilt only when the status changes, so keyboard focus stays put.
            if (x.campaign.status !== shown) {
              shown = x.campaign.status;
              status.replaceChildren(statusTag(x.campaign.status),
                x.campaign.pausedReason ? h('div', { class: 'note' }, `Paused: ${x.campaign.pausedReason}`) : '');
              act.replaceChildren(actions({ ...x.campaign, id: c.id }, refresh));
            }
          },
          (msg) => toast(`Live stats of “${c.name}” stopped: ${msg}`, true)));
      }
    }
    if (!d.campaigns.edges.length) tbody.append(h('tr', {}, h('td', { colspan: 4 }, 'No campaigns yet.')));
    listBox.replaceChildren(wrap);
  };
  const agents = (await gql('{ agents { id name provider } }')).agents;
  formBox.append(...newCampaignForm(agents, refresh));
  await refresh();
  return () => { alive = false; stops.forEach((s) => s()); };
}

function newCampaignForm(agents, refresh) {
  const name = h('input', { id: 'campaign-name', required: true, maxlength: 200, autocomplete: 'off' });
  const agent = h('select', { id: 'campaign-agent' }, agents.map((a) => h('option', { value: a.id }, `${a.name} (${a.provider})`)));
  const cap = h('input', { id: 'campaign-cap', type: 'number', min: 1, max: 1000, placeholder: 'tenant limit' });
  const file = h('input', { id: 'campaign-file', type: 'file', accept: '.csv,text/csv', required: true });
  const report = h('div', { 'aria-live': 'polite' });
  const create = h('button', { type: 'button', hidden: true }, 'Create campaign');
  const form = h('form', { class: 'inline' },
    h('label', { for: 'campaign-name' }, 'Name', name),
    h('label', { for: 'campaign-agent' }, 'Agent', agent),
    h('label', { for: 'campaign-cap' }, 'Calls at once', cap),
    h('label', { for: 'campaign-file' }, 'CSV file (a phone column; name, email, timezone and any variables)', file),
    h('button', { type: 'submit' }, 'Check the file'));
  const send = async (dryRun) => {
    const f = file.files[0];
    if (!f) throw new ServerError('Choose a CSV file first.');
    const fields = { name: name.value, agentId: agent.value, dryRun };
    if (cap.value) fields.concurrencyLimit = Number(cap.value);
    // The upload route takes files of any size up to its own limit, as they are.
    const q = new URLSearchParams(Object.entries(fields).map(([k, v]) => [k, String(v)]));
    let res;
    try {
      res = await fetch(`/campaigns/import?${q}`, {
        method: 'POST', headers: { 'content-type': 'text/csv', authorization: `Bearer ${session.key}` }, body: f,
      });
    } catch (e) {
      throw new ServerError(`The server could not be reached: ${e.message}`, 'NETWORK');
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = (body.errors && body.errors[0]) || { message: res.status === 413 ? 'The file is too large (at most 20 MiB).' : `HTTP ${res.status}` };
      const field = e.extensions && e.extensions.field ? ` (${e.extensions.field})` : '';
      throw new ServerError(`${e.message}${field}`, e.extensions && e.extensions.code);
    }
    return body;
  };
  const show = (r, dry) => {
    const { wrap, tbody } = table(`Rejected rows (the header is line 1)${r.rejectedCount > r.rejected.length ? `; the first ${r.rejected.length} of ${r.rejectedCount}` : ''}`,
      ['Line', 'Phone as written', 'Why']);
    for (const e of r.rejected) tbody.append(h('tr', {}, h('td', {}, String(e.line)), h('td', {}, e.phoneNumber || '—'), h('td', {}, e.reason)));
    report.replaceChildren(
      h('p', { class: 'report-summary' }, h('b', {}, `${r.accepted} row(s) ${dry ? 'would be' : 'were'} accepted`),
        `, ${r.rejectedCount} rejected (${r.duplicates} duplicate, ${r.doNotCall} do-not-call).`),
      r.rejected.length ? wrap : h('p', { class: 'note' }, 'No row was rejected.'));
  };
  // A report is for the file and settings it was made with: any change asks for a new one.
  const stale = () => { create.hidden = true; };
  form.addEventListener('input', stale);
  form.addEventListener('change', stale);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    create.hidden = true;
    try {
      const r = await send(true);
      show(r, true);
      create.hidden = r.accepted === 0;
    } catch (e) { showError(report, e); }
  });
  create.addEventListener('click', async () => {
    create.disabled = true;
    try {
      const r = await send(false);
      show(r, false);
      create.hidden = true;
      toast(`Campaign “${r.campaign.name}” created (draft): start it from the list.`);
      await refresh();
    } catch (e) { showError(report, e); } finally { create.disabled = false; }
  });
  return [h('h2', { id: 'new-campaign' }, 'New campaign'), form, report, create];
}

export async function detail(root, id) {
  const q = `query($id: ID!) { campaign(id: $id) { id name status channel pausedReason concurrencyLimit maxAttempts timezone
      createdAt startedAt finishedAt agent { name } template { name language }
      stats { ${STATS} outcomes { outcome count } }
      items(first: 100) { totalCount edges { node { phoneNumber line status attempts lastError customer { id name }
        call { id status } } } } } }`;
  const box = h('div');
  root.append(h('p', {}, h('a', { href: '#/campaigns' }, '← Campaigns')), box);
  const draw = async () => {
    const c = (await gql(q, { id })).campaign;
    if (!c) { showError(box, { message: 'No such campaign in this tenant.' }); return; }
    const { wrap, tbody } = table(`Recipients in file order (${c.items.totalCount}; the first 100 shown)`, ['Line', 'Recipient', 'Status', 'Attempts', 'Last error', 'Call']);
    for (const { node: i } of c.items.edges) {
      tbody.append(h('tr', {}, h('td', {}, String(i.line)),
        h('td', {}, i.customer ? h('a', { href: `#/customers/${encodeURIComponent(i.customer.id)}` }, i.customer.name || i.phoneNumber) : i.phoneNumber),
        h('td', {}, statusTag(i.status)), h('td', {}, String(i.attempts)), h('td', {}, i.lastError || '—'),
        h('td', {}, i.call ? h('a', { href: `#/calls/${encodeURIComponent(i.call.id)}` }, i.call.status) : '—')));
    }
    box.replaceChildren(
      h('h1', {}, c.name),
      h('section', { class: 'card' },
        h('p', {}, statusTag(c.status), c.pausedReason ? ` — paused: ${c.pausedReason}` : ''),
        statsLine(c.stats),
        c.stats.outcomes.length ? h('p', { class: 'note' }, `Outcomes: ${c.stats.outcomes.map((o) => `${o.outcome} ${o.count}`).join(', ')}`) : null,
        h('p', { class: 'note' }, `${c.channel}${c.agent ? ` · agent ${c.agent.name}` : ''}${c.template ? ` · template ${c.template.name} (${c.template.language})` : ''} · up to ${c.concurrencyLimit} at once · ${c.maxAttempts} attempt(s) · ${c.timezone}`),
        actions(c, draw)),
      wrap);
  };
  let pending = null;
  let dirty = false;
  const schedule = () => {
    // Progress can come many times a second: one redraw at a time, and none while the
    // keyboard is on the page's controls (it would lose its place).
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      if (box.contains(document.activeElement)) { dirty = true; return; }
      draw().catch((e) => toast(e.message, true));
    }, 500);
  };
  box.addEventListener('focusout', () => { if (dirty) { dirty = false; schedule(); } });
  const stop = session.live.subscribe(`subscription($id: ID!) { campaignProgress(campaignId: $id) { at } }`, { id }, schedule,
    (msg) => toast(`Live progress stopped: ${msg}`, true));
  try { await draw(); } catch (e) { stop(); throw e; }
  return () => { stop(); clearTimeout(pending); };
}
