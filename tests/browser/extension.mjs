// The browser node (extension/) loaded unpacked in headless Chromium (Debian's
// package, driven by Playwright) against a live `lode devnet`:
//
//  1. onboarding shows every data category off; before opt-in nothing is reported
//     (the extension's own request log and the gateway's counter agree);
//  2. after opting in and reporting a local test site (served here under a
//     phishing-style host name, mapped to 127.0.0.1 by --host-resolver-rules), the
//     report reaches the gateway and stays unpublished below k;
//  3. with k simulated distinct reporters (other keys, signed by the same
//     lode-sign.js) the domain enters the feed (as a hash prefix), and is confirmed;
//  4. after the epoch closes the popup shows the balance `lode wallet balance`
//     shows, and the report as confirmed and paid;
//  5. the heartbeat marks the node online; the dashboard's Data view shows it all;
//  6. the upload used is measured and extrapolated to a month (heartbeats every 2 h);
//  7. protection (issue 17): with "warn me" on, the phishing-style site is replaced by
//     the warning, a benign local site is not, a community-confirmed domain the
//     classifier does not flag still warns, "this is a mistake" continues; the model
//     used is the one whose hash the ledger publishes; scoring time per URL in the
//     browser is measured;
//  8. idle: with every extension page closed, the extension's process uses no
//     steady CPU (its CPU time over 10 s, read from /proc).
//
//   LODE_GATEWAY_URL=http://127.0.0.1:PORT LODE_BIN=target/debug/lode node extension.mjs
// (tests/browser/run.sh starts the network and calls this after the dashboard test.)

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { createHash, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const extDir = path.join(root, 'extension');
const { seal, signerFromSeed, newSeed, randomNonce, unhex } = await import(path.join(extDir, 'lode-sign.js'));

const gateway = (process.env.LODE_GATEWAY_URL || process.argv[2] || '').replace(/\/+$/, '');
const lode = process.env.LODE_BIN || process.argv[3];
if (!gateway || !lode) {
  console.error('usage: LODE_GATEWAY_URL=http://127.0.0.1:PORT LODE_BIN=path/to/lode node extension.mjs');
  process.exit(2);
}
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
const step = (m) => console.log(`· ${m}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fail = (m) => { throw new Error(m); };

async function getJson(p) {
  const r = await fetch(gateway + p);
  return r.json();
}
async function metric(name) {
  const t = await (await fetch(gateway + '/metrics')).text();
  const m = t.match(new RegExp('^' + name + ' (\\d+)', 'm'));
  return m ? Number(m[1]) : 0;
}
/** CPU seconds (user + system) of Chromium's extension processes, from /proc. */
function extensionCpuSeconds() {
  let total = null;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('--extension-process')) continue;
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total = (total || 0) + (Number(f[11]) + Number(f[12])) / 100;
    } catch (_) { /* the process went away */ }
  }
  return total;
}

async function until(what, f, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) fail(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

// The local "phishing" site.
const SITE = 'secure-paypal-login-verify.top';
const BENIGN = 'docs.lode-example.org';
const LISTED = 'quiet-garden-shop.com';
const FLAGGED = 'login-paypal-account-verify.top';
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>Sign in</title><h1>Verify your account</h1><form><input name=pw type=password></form>');
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const sitePort = server.address().port;
const siteUrl = `http://${SITE}:${sitePort}/login?session=1`;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lode-ext-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--disable-extensions-except=${extDir}`, `--load-extension=${extDir}`,
    `--host-resolver-rules=MAP ${SITE} 127.0.0.1,MAP ${BENIGN} 127.0.0.1,MAP ${LISTED} 127.0.0.1,MAP ${FLAGGED} 127.0.0.1`,
  ],
  viewport: { width: 1000, height: 900 },
});

const problems = [];
try {
  const sw = context.serviceWorkers()[0] || (await context.waitForEvent('serviceworker', { timeout: 30_000 }));
  const extId = new URL(sw.url()).host;
  const ext = (p) => `chrome-extension://${extId}/${p}`;
  step(`extension loaded: ${extId}`);

  // ---- 1. onboarding: everything off, nothing reported before opt-in.
  const onboarding = await until('the onboarding page', () =>
    context.pages().find((p) => p.url().startsWith(ext('onboarding.html'))), 20_000);
  onboarding.on('pageerror', (e) => problems.push(`onboarding error: ${e.message}`));
  await onboarding.waitForSelector('#did:not(:empty)');
  for (const c of ['manual', 'classifier', 'heartbeat']) {
    if (await onboarding.isChecked('#c-' + c)) fail(`category ${c} is on before any opt-in`);
  }
  await onboarding.screenshot({ path: path.join(out, 'extension-onboarding.png'), fullPage: true });
  step('onboarding shows every category off');
  await onboarding.fill('#gateway-url', gateway);
  await onboarding.click('#gateway-save');
  await until('the gateway to be saved', async () => (await onboarding.textContent('#gateway')) === new URL(gateway).origin);

  const popup = await context.newPage();
  popup.on('pageerror', (e) => problems.push(`popup error: ${e.message}`));
  await popup.goto(ext('popup.html'));
  await popup.waitForSelector('#did:not(:empty)');
  const did = (await popup.textContent('#did')).trim();
  step(`browser node ${did}`);
  if (!(await popup.isDisabled('#report-send'))) fail('report button enabled before opt-in');
  // Even a direct request from the page is refused by the service worker.
  const refused = await popup.evaluate(async (url) => chrome.runtime.sendMessage({ type: 'report', url, includeUrl: false }), siteUrl);
  if (refused.ok || refused.error.code !== 'no_consent') fail(`report without consent: ${JSON.stringify(refused)}`);
  const before = await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'state' }));
  if (before.value.log.length) fail(`requests were sent before opt-in: ${JSON.stringify(before.value.log)}`);
  if ((await metric('lode_data_reports_total')) !== 0) fail('the gateway received a report before opt-in');
  step('before opt-in: no request at all left the browser (extension log and gateway agree)');

  // ---- 2. opt in, register with a payout address, report the local site.
  await onboarding.check('#c-manual');
  await until('consent', async () => (await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'state' }))).value.consent.manual);
  const visit = await context.newPage();
  await visit.goto(siteUrl);
  if (!(await visit.textContent('h1')).includes('Verify')) fail('the local test site did not load');
  await popup.reload();
  await popup.waitForSelector('#did:not(:empty)');
  await popup.fill('#payout', '0x00000000000000000000000000000000000000aa');
  await popup.click('#payout-save');
  await until('registration', async () => (await popup.textContent('#earn-msg')).includes('Registered'), 30_000);
  await popup.fill('#report-url', siteUrl);
  await popup.click('#report-send');
  await until('the report', async () => /Reported|error|not/i.test(await popup.textContent('#report-msg')), 30_000);
  const rmsg = await popup.textContent('#report-msg');
  if (!rmsg.includes(`Reported ${SITE}: pending`)) fail(`report answer: ${rmsg}`);
  if ((await metric('lode_data_reports_total')) !== 1) fail('the gateway did not count the report');
  const feed0 = await getJson('/v1/data/feed');
  if (feed0.count !== 0) fail(`a domain below k is published: ${JSON.stringify(feed0)}`);
  step('report reached the gateway; below k nothing is published');

  // ---- 3. k - 1 more reporters (distinct keys: distinct groups on a devnet's loopback).
  const stats = await getJson('/v1/data/stats');
  const k = stats.k;
  const ledger = await getJson('/v1/ledger');
  const chain = unhex(ledger.chain_id);
  async function simulatedReport(i, domain = SITE) {
    const sg = await signerFromSeed(newSeed(webcrypto), webcrypto.subtle);
    const reg = await seal(sg, 'registerNode', { chain, operator: sg.did, payout: '0x' + (i + 16).toString(16).padStart(40, '0') }, 0n, BigInt(Date.now()));
    let r = await fetch(gateway + '/v1/entries', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ register_node: reg }) });
    if (r.status !== 201) fail(`simulated registration ${i}: ${r.status} ${await r.text()}`);
    const env = await seal(sg, 'report', { chain, domain, url: null, category: 'phishing', source: 'manual', verdict: 'harmful' }, randomNonce(webcrypto), BigInt(Date.now()));
    r = await fetch(gateway + '/v1/data/reports', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(env) });
    if (r.status !== 201) fail(`simulated report ${i}: ${r.status} ${await r.text()}`);
    return r.json();
  }
  let last;
  for (let i = 0; i < k - 1; i++) last = await simulatedReport(i);
  if (!last.listed) fail(`k reporters did not list the domain: ${JSON.stringify(last)}`);
  const prefix = createHash('sha256').update(SITE).digest('hex').slice(0, 8);
  const feed = await getJson('/v1/data/feed');
  if (!feed.prefixes.includes(prefix)) fail(`feed lacks ${prefix}: ${JSON.stringify(feed)}`);
  const full = await getJson('/v1/data/feed/' + prefix);
  if (!full.hashes.some((h) => h.hash === createHash('sha256').update(SITE).digest('hex'))) fail('full hash missing');
  step(`with k = ${k} groups the domain is in the feed (prefix ${prefix}), status ${last.status}`);
  // Confirmation: the classifier, or 2k groups.
  for (let i = k - 1; last.status !== 'confirmed' && i < 2 * k - 1; i++) last = await simulatedReport(i);
  if (last.status !== 'confirmed') fail(`not confirmed: ${JSON.stringify(last)}`);
  step('the domain is confirmed');

  // ---- 4. the epoch closes: the popup shows what `lode wallet balance` shows.
  const wallet = () => JSON.parse(execFileSync(lode, ['wallet', 'balance', did, '--gateway', gateway, '--json'], { encoding: 'utf8' }));
  const w = await until('an epoch reward', async () => {
    const v = wallet();
    return BigInt(v.balance) > 0n ? v : null;
  }, 90_000);
  await popup.reload();
  await until('the popup balance', async () => (await popup.getAttribute('#balance', 'data-base')) === String(w.balance), 20_000);
  const row = popup.locator(`tr.report-row[data-domain="${SITE}"]`);
  if (!(await row.textContent()).includes('confirmed')) fail(`popup report row: ${await row.textContent()}`);
  if (!(await row.textContent()).includes('yes')) fail(`popup report not paid: ${await row.textContent()}`);
  step(`popup balance ${await popup.textContent('#balance')} = lode wallet balance (${w.balance} base units)`);

  // ---- 5. heartbeat, and the dashboard's Data view.
  await onboarding.check('#c-heartbeat');
  await until('a heartbeat', async () => (await getJson('/v1/data/stats')).browser_nodes_online >= 1, 20_000);
  await popup.reload();
  await popup.waitForSelector('tr.request');
  await popup.screenshot({ path: path.join(out, 'extension-popup.png'), fullPage: true });
  const dash = await context.newPage();
  await dash.goto(gateway + '/#/data');
  await dash.waitForSelector('#feed-size');
  await until('the data view', async () => Number((await dash.textContent('#feed-size').catch(() => '0')).replace(/\D/g, '')) >= 1, 20_000)
    .catch(async () => fail(`data view: ${await dash.textContent('#view-data')}`));
  if (!(await dash.textContent('#data-top')).length) fail('no top contributors');
  await dash.screenshot({ path: path.join(out, 'dashboard-data.png'), fullPage: true });
  step('heartbeat online; the dashboard Data view shows the feed and contributors');

  // ---- 6. upload budget: what this session sent, and a month of heartbeats.
  const st = (await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'state' }))).value;
  const hb = st.log.find((l) => l.path === '/v1/data/heartbeat');
  const rep = st.log.find((l) => l.path === '/v1/data/reports');
  if (!hb || !rep) fail('the request log lacks the heartbeat or the report');
  const month = hb.up * 12 * 31;
  console.log(`  upload: report ${rep.up} B, heartbeat ${hb.up} B; a month of two-hourly heartbeats ${month} B (budget ${st.budget} B, room for ${Math.floor((st.budget - month) / rep.up)} reports); this session ${st.usage.bytes} B`);
  if (month > st.budget / 2) fail('a month of heartbeats would use more than half the budget');

  // ---- 7. protection: warnings on the page, decided on this device.
  for (let i = 0, st = null; st !== 'confirmed'; i++) {
    if (i >= 2 * k) fail(`${LISTED} not confirmed`);
    st = (await simulatedReport(100 + i, LISTED)).status;
  }
  const model = JSON.parse(await (await fetch(gateway + '/v1/guard/model')).text());
  const ledgerNow = await getJson('/v1/ledger');
  if (!ledgerNow.guard_model || ledgerNow.guard_model.sha256 !== model.sha256) fail(`the ledger does not publish the served model: ${JSON.stringify(ledgerNow.guard_model)} vs ${model.sha256}`);
  await onboarding.check('#c-protect');
  await until('protection on', async () => (await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'state' }))).value.consent.protect);
  const tab = await context.newPage();
  await tab.goto(`http://${BENIGN}:${sitePort}/guide`).catch(() => null);
  await sleep(1500);
  if (tab.url().startsWith('chrome-extension://')) fail(`a benign site was flagged: ${tab.url()}`);
  if (!(await tab.textContent('h1')).includes('Verify')) fail('the benign page did not load');
  step(`no warning on ${BENIGN}`);
  const flaggedUrl = `http://${FLAGGED}:${sitePort}/signin`;
  await tab.goto(flaggedUrl).catch(() => null);
  await until('the warning page', async () => tab.url().startsWith(ext('warning.html')), 20_000);
  await tab.waitForSelector('#lode-warning');
  if ((await tab.textContent('#domain')) !== FLAGGED) fail(`warning names ${await tab.textContent('#domain')}`);
  if (!(await tab.textContent('#reason')).includes('classifier')) fail(`warning reason: ${await tab.textContent('#reason')}`);
  await tab.screenshot({ path: path.join(out, 'extension-warning.png') });
  step(`warning shown on ${FLAGGED} (classifier, never reported)`);
  const tab2 = await context.newPage();
  await tab2.goto(`http://${LISTED}:${sitePort}/`).catch(() => null);
  await until('the community warning', async () => tab2.url().startsWith(ext('warning.html')), 20_000);
  await tab2.waitForSelector('#lode-warning');
  if (!(await tab2.textContent('#reason')).includes('community')) fail(`community warning reason: ${await tab2.textContent('#reason')}`);
  step(`warning shown on ${LISTED} (community-confirmed)`);
  await tab.click('#mistake');
  await until('continuing after "this is a mistake"', async () => tab.url().startsWith(`http://${FLAGGED}`), 20_000);
  await tab.waitForSelector('h1');
  step('"this is a mistake" continues to the page (allowed for the session)');
  const perUrl = await sw.evaluate(async () => globalThis.lode.benchScore(2000));
  console.log(`  scoring in the browser: ${(perUrl * 1000).toFixed(1)} µs per URL (2,000 URLs, the published model)`);
  if (perUrl > 1) fail(`scoring takes ${perUrl} ms per URL`);

  // ---- 8. idle CPU: only the service worker is left (it sleeps between alarms).
  for (const p of context.pages()) if (p.url().startsWith(`chrome-extension://${extId}/`)) await p.close();
  const cpu = extensionCpuSeconds();
  if (cpu != null) {
    await sleep(2000);
    const a = extensionCpuSeconds();
    await sleep(10_000);
    const b = extensionCpuSeconds();
    const share = (b - a) / 10;
    console.log(`  idle: the extension's process used ${(b - a).toFixed(2)} s of CPU in 10 s (${(share * 100).toFixed(2)} % of a core)`);
    if (share > 0.02) fail(`the idle extension uses ${(share * 100).toFixed(1)} % of a core`);
  } else {
    console.log('  idle: no extension process found in /proc; CPU not measured');
  }

  if (problems.length) fail(problems.join('\n'));
  console.log('extension test passed');
} finally {
  await context.close().catch(() => {});
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
