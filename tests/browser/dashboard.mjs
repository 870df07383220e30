// Drives the gateway's dashboard in headless Chromium (Debian's package) with
// Playwright: nodes online, a job at 100%, the earnings and ledger explorer
// views with real content, the staking and governance views, no request leaving the gateway's origin, no console
// errors (a Content-Security-Policy violation is one). Screenshots: out/.
//
//   LODE_DASHBOARD_URL=http://127.0.0.1:PORT node dashboard.mjs
// (tests/browser/run.sh starts a network and calls this.)

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const base = process.env.LODE_DASHBOARD_URL || process.argv[2];
if (!base) {
  console.error('usage: LODE_DASHBOARD_URL=http://127.0.0.1:PORT node dashboard.mjs');
  process.exit(2);
}
const origin = new URL(base).origin;
const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lode-chromium-'));

const problems = [];
const step = (msg) => console.log(`· ${msg}`);

// A fresh profile (Playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1440, height: 900 },
  deviceScaleFactor: 1,
});

let page;
try {
  // Nothing may be fetched from anywhere but the gateway.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/') || url.startsWith('data:')) return route.continue();
    problems.push(`external request: ${url}`);
    return route.abort();
  });
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  step(`loading ${origin}/`);
  const resp = await page.goto(origin + '/', { waitUntil: 'domcontentloaded' });
  const csp = resp.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'self'")) problems.push(`page served without a strict CSP: ${csp}`);

  step('waiting for 2 nodes online');
  await page.waitForFunction(
    () => Number((document.querySelector('#nodes-online')?.textContent || '0').replace(/,/g, '')) >= 2,
    null, { timeout: 60_000 });
  await page.waitForSelector('#nodes-table tbody tr.node >> nth=1', { timeout: 10_000 });

  step('waiting for the job to reach 100%');
  await page.waitForSelector('#jobs-table tr.job[data-progress="100"]', { timeout: 180_000 });
  const jobText = await page.textContent('#jobs-table tr.job[data-progress="100"]');
  if (!jobText.includes('100%')) problems.push(`job row does not show 100%: ${jobText}`);
  await page.waitForSelector('#live.on', { timeout: 15_000 }); // pushed over SSE, not polled
  await page.waitForSelector('#tp-chart svg rect.bar-rect', { timeout: 15_000 });
  await page.screenshot({ path: path.join(out, 'dashboard.png'), fullPage: true });

  step('earnings: a node with non-zero earnings');
  await page.click('nav a[data-view="earnings"]');
  await page.waitForFunction(() => [...document.querySelectorAll('#leader-table tr.leader')]
    .some((tr) => !/^0 /.test(tr.cells[5].textContent)), null, { timeout: 60_000 });
  await page.evaluate(() => [...document.querySelectorAll('#leader-table tr.leader')]
    .find((tr) => !/^0 /.test(tr.cells[5].textContent)).click());
  await page.waitForSelector('#earning-table tr.earning', { timeout: 30_000 });
  const earned = await page.textContent('#earning-total');
  if (/^0 /.test(earned) || !/LODE/.test(earned)) problems.push(`earnings total is ${earned}`);
  await page.waitForSelector('#earning-chart svg path.line');
  // The node's payout address: what it can claim and how.
  await page.waitForSelector('#claim-panel:not([hidden]) #claim-cumulative', { timeout: 15_000 });
  const steps = await page.textContent('#claim-steps');
  if (!steps.includes('claim(account, cumulative, proof)') || !steps.includes('lode wallet withdraw')) {
    problems.push(`claim instructions missing: ${steps}`);
  }
  await page.screenshot({ path: path.join(out, 'earnings.png'), fullPage: true });

  step('ledger explorer: a block with entries, every check OK');
  await page.click('nav a[data-view="ledger"]');
  await page.waitForSelector('#blocks-table tr.block');
  await page.evaluate(() => [...document.querySelectorAll('#blocks-table tr.block')]
    .find((tr) => Number(tr.cells[3].textContent.replace(/,/g, '')) > 0 && tr.dataset.height !== '0').click());
  await page.waitForSelector('#entries-table tr.entry', { timeout: 15_000 });
  const status = await page.textContent('#block-status');
  for (const check of ['OK', 'link', 'sig', 'root']) {
    if (!status.includes(check)) problems.push(`block checks missing ${check}: ${status}`);
  }
  if ((await page.$$('#block-status .badge.bad')).length) problems.push(`a block check failed: ${status}`);
  const entries = await page.$$eval('#entries-table tr.entry', (rows) => rows.map((r) => r.cells[4].textContent));
  if (!entries.length || entries.some((v) => v !== 'OK')) problems.push(`entry verification: ${entries.join(',')}`);
  await page.click('#entries-table tr.entry');
  await page.waitForSelector('#entry-detail:not([hidden])');
  await page.screenshot({ path: path.join(out, 'ledger.png'), fullPage: true });

  step('tokenomics');
  await page.click('nav a[data-view="tokenomics"]');
  await page.waitForSelector('#alloc-table tr.allocation');
  const gini = await page.textContent('#gini');
  if (!/^\d\.\d{4}$/.test(gini)) problems.push(`Gini shown as ${gini}`);
  await page.screenshot({ path: path.join(out, 'tokenomics.png'), fullPage: true });

  // The devnet turns staking and governance on: both views render their
  // cards from the gateway (nothing is staked or proposed yet).
  step('staking and governance views');
  await page.click('nav a[data-view="staking"]');
  await page.waitForFunction(() => document.querySelectorAll('#staking-cards .card').length > 0);
  const stakingCards = await page.textContent('#staking-cards');
  if (!/Bonded/.test(stakingCards) || !/Stakers/.test(stakingCards)) problems.push(`staking view: ${stakingCards}`);
  const stakingRows = await page.textContent('#staking-targets tbody');
  if (!stakingRows.trim()) problems.push('staking view: the targets table is empty (not even its empty-state row)');
  await page.screenshot({ path: path.join(out, 'staking.png'), fullPage: true });
  await page.click('nav a[data-view="gov"]');
  await page.waitForFunction(() => document.querySelectorAll('#gov-cards .card').length > 0);
  const govCards = await page.textContent('#gov-cards');
  if (!/Proposals/.test(govCards)) problems.push(`governance view: ${govCards}`);
  const govRows = await page.textContent('#gov-table tbody');
  if (!/No proposals yet/.test(govRows) && !/\d/.test(govRows)) problems.push(`governance view rows: ${govRows}`);
  await page.screenshot({ path: path.join(out, 'governance.png'), fullPage: true });

  // Back to the overview for the final picture.
  await page.click('nav a[data-view="overview"]');
  await page.waitForSelector('#jobs-table tr.job[data-progress="100"]');
  await page.screenshot({ path: path.join(out, 'dashboard.png'), fullPage: true });
} catch (e) {
  problems.push(`${e.name}: ${e.message}`);
  if (page) await page.screenshot({ path: path.join(out, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

if (problems.length) {
  console.error('dashboard browser test FAILED:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log(`dashboard browser test passed; screenshots in ${out}`);
