// The node's panel: identity, consent summary, "report this site", earnings, each
// report's fate, and every request the extension sent with its bytes.
import { call, $, el, tokens } from './ui.js';

function msg(id, text, kind) {
  $(id).textContent = text;
  $(id).className = 'msg small ' + (kind || '');
}

function when(ts) {
  return new Date(ts).toLocaleString();
}

function statusBadge(r) {
  const kind = { confirmed: 'ok', corroborated: 'warn', pending: '', rejected: 'bad' }[r.status] || '';
  return el('span', { class: 'badge ' + kind, text: r.status, title: r.reason || '' });
}

async function renderState() {
  const s = await call({ type: 'state' });
  $('did').textContent = s.did;
  $('gateway').textContent = s.gateway;
  $('pause').textContent = s.paused ? 'Resume' : 'Pause all';
  document.body.classList.toggle('paused', s.paused);
  const on = Object.entries(s.consent).filter(([, v]) => v).map(([k]) => k);
  $('consent-summary').textContent = s.paused ? 'Paused: nothing is sent.'
    : on.length ? `Sharing: ${on.join(', ')}.` : 'Nothing is shared (every category is off).';
  $('report-send').disabled = !s.consent.manual || s.paused;
  if (!s.consent.manual) msg('report-msg', 'Switch on "Reports you make" (what you share) to report sites.');
  if (s.payout && !$('payout').value) $('payout').value = s.payout;
  $('usage').textContent = `${(s.usage.bytes / 1000).toFixed(1)} of ${(s.budget / 1000).toFixed(0)} KB this month`;
  const rows = s.log.slice(0, 30).map((l) => el('tr', { class: 'request' },
    el('td', { text: new Date(l.ts).toLocaleTimeString() }),
    el('td', { class: 'mono', text: `${l.method} ${l.path}` }),
    el('td', { class: 'num', text: String(l.up) }),
    el('td', { class: 'num', text: String(l.status || '–') })));
  $('log').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '4', class: 'muted', text: 'Nothing sent yet.' }))]));
  return s;
}

async function renderNetwork() {
  const r = await call({ type: 'refresh' });
  if (r.error) { msg('earn-msg', r.error.message, 'err'); return r; }
  const e = r.earnings;
  $('balance').textContent = tokens(e.balance, 4);
  $('balance').dataset.base = e.balance;
  $('pending').textContent = tokens(e.pending && (e.pending.estimated_reward || e.pending.reward || 0), 4);
  $('epoch').textContent = `${e.epoch} · ends ${new Date(Number(e.epoch_ends_at_ms)).toLocaleTimeString()}`;
  $('claimable-line').textContent = e.claimable != null
    ? `Claimable on the EVM chain for your payout address: ${tokens(e.claimable, 6)} (withdrawn so far ${tokens(e.withdrawn, 6)}). Withdraw with \`lode wallet withdraw --key\` and the exported key file.`
    : 'Set a payout address to see what it can claim on the EVM chain.';
  const rows = e.rewards.map((w) => el('tr', { class: 'reward' }, el('td', { text: String(w.epoch) }), el('td', { class: 'num', text: tokens(w.amount, 6) })));
  $('rewards').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: '2', class: 'muted', text: 'No rewards yet.' }))]));
  msg('earn-msg', e.registered ? '' : 'Not registered yet: set a payout address (or report a site) to register.');
  const reps = (r.reports && r.reports.reports) || [];
  const rrows = reps.map((x) => el('tr', { class: 'report-row', 'data-domain': x.domain },
    el('td', { class: 'mono', text: x.domain + (x.verdict === 'mistake' ? ' (mistake)' : '') }),
    el('td', {}, statusBadge(x), x.reason ? el('div', { class: 'small muted', text: x.reason }) : null),
    el('td', { text: x.credited ? 'yes' : x.penalized ? 'penalized' : '–' })));
  $('reports-table').tBodies[0].replaceChildren(...(rrows.length ? rrows : [el('tr', {}, el('td', { colspan: '3', class: 'muted', text: 'No reports yet.' }))]));
  return r;
}

async function fillActiveTab() {
  try {
    const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
    if (tab && tab.url && /^https?:/.test(tab.url) && !$('report-url').value) $('report-url').value = tab.url;
  } catch (_) { /* no tab access: the user types the address */ }
  showDomain();
}

function showDomain() {
  const v = $('report-url').value.trim();
  let d = '';
  try { d = v ? new URL(v).hostname : ''; } catch (_) { d = ''; }
  $('report-domain').textContent = d ? `sends: ${$('report-full').checked ? 'the full address' : 'the domain of ' + d}` : '';
}

$('report-url').addEventListener('input', showDomain);
$('report-full').addEventListener('change', showDomain);

$('report-send').addEventListener('click', async () => {
  const url = $('report-url').value.trim();
  if (!url) { msg('report-msg', 'Enter the address of the site.', 'err'); return; }
  $('report-send').disabled = true;
  try {
    const r = await call({ type: 'report', url, includeUrl: $('report-full').checked, category: $('report-category').value });
    msg('report-msg', `Reported ${r.domain}: ${r.duplicate ? 'you had already reported it' : r.status}.`, 'ok');
  } catch (e) {
    msg('report-msg', e.message, 'err');
  }
  $('report-send').disabled = false;
  await renderState();
  await renderNetwork();
});

$('payout-save').addEventListener('click', async () => {
  try {
    await call({ type: 'setPayout', payout: $('payout').value.trim() });
    msg('earn-msg', 'Registered with this payout address.', 'ok');
  } catch (e) {
    msg('earn-msg', e.message, 'err');
  }
  await renderState();
});

$('pause').addEventListener('click', async () => {
  const s = await call({ type: 'state' });
  await call({ type: 'pause', paused: !s.paused });
  renderState();
});

$('export').addEventListener('click', async () => {
  const f = await call({ type: 'exportKey' });
  const blob = new Blob([JSON.stringify(f, null, 2) + '\n'], { type: 'application/json' });
  const a = el('a', { href: URL.createObjectURL(blob), download: 'lode-browser-node.key' });
  a.click();
  msg('key-msg', 'Keep this file secret: it controls your earnings. `lode wallet --key` reads it.', 'ok');
});

$('import').addEventListener('change', async (ev) => {
  const f = ev.target.files && ev.target.files[0];
  if (!f) return;
  try {
    const r = await call({ type: 'importKey', text: await f.text() });
    msg('key-msg', `Imported ${r.did}.`, 'ok');
  } catch (e) {
    msg('key-msg', e.message, 'err');
  }
  await renderState();
  await renderNetwork();
});

renderState().then(fillActiveTab).then(renderNetwork).catch((e) => msg('earn-msg', e.message, 'err'));
