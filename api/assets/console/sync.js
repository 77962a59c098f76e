// Sync: "Sync now" per provider with live progress from `syncRunUpdated` and a result
// summary, the run history, and the audit (missing, stale, orphaned) with a repair that
// syncs the audited window again.

import { session, h, gql, showError, toast, table, when, statusTag, button } from './ui.js';

const RUN = `id provider crm direction status trigger dryRun since until totalCalls syncedCalls newCustomers updatedCustomers
  duplicateCalls skippedUnknownAgent skippedNoPhone created updated skipped conflicts errors startedAt finishedAt`;

function summary(r) {
  const done = r.status !== 'RUNNING';
  const bar = h('progress', { max: Math.max(r.totalCalls, 1), value: r.syncedCalls + r.duplicateCalls, 'aria-label': 'Sync progress' });
  return h('div', { class: 'sync-summary', 'data-status': r.status },
    h('p', {}, statusTag(r.status), ` ${r.provider || r.crm || ''} · ${done ? 'finished' : 'running'} · ${when(r.startedAt)}`),
    done ? null : bar,
    h('div', { class: 'stats' },
      h('span', {}, 'executions ', h('b', {}, String(r.totalCalls))),
      h('span', {}, 'synced ', h('b', {}, String(r.syncedCalls))),
      h('span', {}, 'duplicates ', h('b', {}, String(r.duplicateCalls))),
      h('span', {}, 'new customers ', h('b', {}, String(r.newCustomers))),
      h('span', {}, 'updated customers ', h('b', {}, String(r.updatedCustomers))),
      h('span', {}, 'skipped (unknown agent) ', h('b', {}, String(r.skippedUnknownAgent))),
      h('span', {}, 'skipped (no phone) ', h('b', {}, String(r.skippedNoPhone)))),
    r.errors.length ? h('ul', {}, r.errors.slice(0, 20).map((e) => h('li', { class: 'error' }, e))) : null);
}

export async function page(root) {
  const d = await gql('{ agents { provider } }');
  const providers = [...new Set(['SIMULATOR', ...d.agents.map((a) => a.provider)])];
  const provider = h('select', { id: 'sync-provider' }, providers.map((p) => h('option', { value: p }, p)));
  const current = h('div', { 'aria-live': 'polite' });
  const history = h('div');
  const audit = h('div', { 'aria-live': 'polite' });
  let stopRun = () => {};
  const loadHistory = async () => {
    const runs = (await gql(`{ syncRuns(first: 20) { edges { node { ${RUN} } } } }`)).syncRuns.edges.map((e) => e.node);
    const { wrap, tbody } = table('Newest first', ['Started', 'Source', 'Status', 'Synced', 'New / updated customers', 'Skipped']);
    for (const r of runs) {
      // CRM runs count records, provider runs count executions.
      const crm = !!r.crm;
      tbody.append(h('tr', {}, h('td', {}, when(r.startedAt)),
        h('td', {}, `${crm ? `${r.crm} ${r.direction || ''}` : r.provider}${r.dryRun ? ' (dry run)' : ''}`),
        h('td', {}, statusTag(r.status)),
        h('td', {}, crm ? `${r.created} created, ${r.updated} updated` : `${r.syncedCalls} of ${r.totalCalls}`),
        h('td', {}, crm ? '—' : `${r.newCustomers} / ${r.updatedCustomers}`),
        h('td', {}, crm ? `${r.skipped} skipped, ${r.conflicts} conflicts` : String(r.skippedUnknownAgent + r.skippedNoPhone))));
    }
    if (!runs.length) tbody.append(h('tr', {}, h('td', { colspan: 6 }, 'No sync has run yet.')));
    history.replaceChildren(wrap);
  };
  const follow = (run) => {
    stopRun();
    let finished = false;
    const update = (r) => {
      if (finished) return;
      current.replaceChildren(summary(r));
      if (r.status === 'RUNNING') return;
      finished = true;
      stopRun(); stopRun = () => {};
      toast(`Sync ${r.status.toLowerCase()}: ${r.syncedCalls} calls, ${r.newCustomers} new and ${r.updatedCustomers} updated customers`);
      loadHistory().catch((e) => toast(e.message, true));
    };
    current.replaceChildren(summary(run));
    if (run.status !== 'RUNNING') { update(run); return; }
    stopRun = session.live.subscribe(`subscription($id: ID) { syncRunUpdated(id: $id) { ${RUN} } }`, { id: run.id },
      (x) => update(x.syncRunUpdated), (msg) => toast(`Sync progress stopped: ${msg}`, true));
    // A run can finish before the subscription is in place: read it once more.
    setTimeout(() => {
      gql(`query($id: ID!) { syncRun(id: $id) { ${RUN} } }`, { id: run.id })
        .then((d) => { if (d.syncRun) update(d.syncRun); })
        .catch((e) => toast(e.message, true));
    }, 1000);
  };
  const syncNow = async (since, which = provider.value) => {
    const input = { provider: which };
    if (since) input.since = since;
    const r = (await gql(`mutation($i: TriggerSyncInput!) { triggerSync(input: $i) { ${RUN} } }`, { i: input })).triggerSync;
    follow(r);
    await loadHistory();
  };
  const runAudit = async () => {
    audit.replaceChildren(h('p', { class: 'note' }, 'Comparing the provider’s executions with the store…'));
    try {
      const a = (await gql(`query($p: Provider!) { syncAudit(provider: $p) { provider since providerCallCount storedCallCount
          missingInStore missingCount staleCount staleCalls { id status toNumber } orphanedCount orphanedCustomers { id name phoneNumber } } }`,
      { p: provider.value })).syncAudit;
      const list = (title, items) => h('div', {}, h('h3', {}, title),
        items.length ? h('ul', {}, items.slice(0, 50).map((x) => h('li', {}, x))) : h('p', { class: 'note' }, 'None.'));
      audit.replaceChildren(
        h('p', {}, `Since ${when(a.since)}: the provider has ${a.providerCallCount} executions, the store ${a.storedCallCount} calls.`),
        list(`Missing here (${a.missingCount})`, a.missingInStore),
        list(`Stale, not finished here (${a.staleCount})`, a.staleCalls.map((c) => h('a', { href: `#/calls/${encodeURIComponent(c.id)}` }, `${c.toNumber || c.id} (${c.status})`))),
        list(`Orphaned customers (${a.orphanedCount})`, a.orphanedCustomers.map((c) => {
          const who = c.name || c.phoneNumber;
          const item = h('span', {}, h('a', { href: `#/customers/${encodeURIComponent(c.id)}` }, who), ' ');
          item.append(button('Delete', async () => {
            // eslint-disable-next-line no-alert
            if (!window.confirm(`Delete ${who}? Sync created this customer and no call is left.`)) return;
            await gql('mutation($id: ID!) { deleteCustomer(id: $id) }', { id: c.id });
            item.replaceChildren(`${who}: deleted`);
          }, 'danger', `Delete orphaned customer ${who}`));
          return item;
        })),
        a.missingCount + a.staleCount > 0
          ? button(`Repair: sync ${a.provider} since ${when(a.since)} again`, () => syncNow(a.since, a.provider))
          : h('p', { class: 'note' }, 'No call to repair.'));
    } catch (e) { showError(audit, e); }
  };
  root.append(
    h('h1', {}, 'Sync'),
    h('section', { class: 'card', 'aria-labelledby': 'sync-now' },
      h('h2', { id: 'sync-now' }, 'Sync from a provider'),
      h('div', { class: 'inline actions' }, h('label', { for: 'sync-provider' }, 'Provider', provider),
        button('Sync now', () => syncNow()), button('Audit', runAudit, 'secondary')),
      current),
    h('h2', {}, 'Audit'), audit,
    h('h2', {}, 'Run history'), history);
  try { await loadHistory(); } catch (e) { showError(history, e); }
  return () => stopRun();
}
