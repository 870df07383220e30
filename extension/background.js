// The Lode browser node: identity, consent, reports, heartbeat, request log.
//
// Privacy by default: every category is off until the user switches it on; "pause
// all" stops everything; every request this extension makes goes through send(),
// which refuses it when its category is off or the monthly upload budget is spent,
// and logs it (method, path, bytes up and down, status) for the popup to show.
// Nothing here reads history, page content, cookies or form data. The service
// worker wakes only for the popup, the onboarding page and the two-hourly heartbeat
// alarm (when switched on): no timers, so no CPU use when idle.

import {
  seal, signerFromSeed, newSeed, randomNonce, hex, unhex, didKey, evmAddress,
} from './lode-sign.js';
import { registrableDomain, loadModel, score } from './guard.js';

export const DEFAULT_GATEWAY = 'http://127.0.0.1:7700';
export const DEFAULT_BUDGET_BYTES = 1_000_000;
const HEARTBEAT_MINUTES = 120;
const LOG_KEEP = 200;
const SENT_KEEP = 500;
// Request headers a fetch adds (method line, host, origin, content-type, accept,
// user agent…): counted against the budget with the body.
const HEADER_ESTIMATE = 400;

/** The consent categories, each off by default. */
export const CATEGORIES = ['manual', 'classifier', 'heartbeat', 'protect'];

const DEFAULTS = {
  gateway: DEFAULT_GATEWAY,
  consent: { manual: false, classifier: false, heartbeat: false, protect: false },
  paused: false,
  onboarded: false,
  budget: DEFAULT_BUDGET_BYTES,
  usage: { month: '', bytes: 0 },
  log: [],
  sent: [],
  payout: null,
  registered: null,
};

const store = chrome.storage.local;

async function load() {
  const s = await store.get(null);
  return { ...DEFAULTS, ...s, consent: { ...DEFAULTS.consent, ...(s.consent || {}) } };
}

async function signer(s) {
  let seedHex = s.seed;
  if (!seedHex) {
    seedHex = hex(newSeed());
    await store.set({ seed: seedHex });
  }
  const sg = await signerFromSeed(unhex(seedHex));
  if (s.did !== sg.did) await store.set({ did: sg.did });
  return sg;
}

function month(ts) {
  return new Date(ts).toISOString().slice(0, 7);
}

class LodeError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * The only way out of the extension. `category` is the consent it needs (null:
 * a read the user asked for from the popup); uploads count against the budget.
 */
async function send(method, path, body, category, raw = false) {
  const s = await load();
  if (s.paused) throw new LodeError('paused', 'Lode is paused: nothing is sent.');
  if (category && !s.consent[category]) {
    throw new LodeError('no_consent', `"${category}" is off: nothing was sent.`);
  }
  const text = body == null ? null : JSON.stringify(body);
  const up = (text ? new TextEncoder().encode(text).length : 0) + HEADER_ESTIMATE + path.length;
  const now = Date.now();
  const usage = s.usage.month === month(now) ? { ...s.usage } : { month: month(now), bytes: 0 };
  if (usage.bytes + up > s.budget) {
    throw new LodeError('budget', `This month's upload budget (${s.budget} bytes) is spent; nothing was sent.`);
  }
  usage.bytes += up;
  let status = 0;
  let down = 0;
  let json = null;
  try {
    const r = await fetch(s.gateway.replace(/\/+$/, '') + path, {
      method,
      headers: text ? { 'content-type': 'application/json' } : {},
      body: text,
      cache: 'no-store',
      credentials: 'omit',
    });
    status = r.status;
    const t = await r.text();
    down = t.length;
    try { json = JSON.parse(t); } catch (_) { json = null; }
    if (raw && r.ok) json = t;
  } catch (e) {
    status = 0;
    json = { error: { code: 'unreachable', message: `cannot reach the gateway at ${s.gateway}: ${e.message}` } };
  }
  const log = [{ ts: now, method, path: path.replace(/\?.*$/, ''), up, down, status, category: category || 'read' }, ...s.log].slice(0, LOG_KEEP);
  await store.set({ usage, log });
  if (status < 200 || status >= 300) {
    const err = json && json.error ? json.error : { code: 'http_' + status, message: `the gateway answered ${status}` };
    throw new LodeError(err.code, err.message);
  }
  return json;
}

let chainCache = null;
async function chain() {
  if (chainCache) return chainCache;
  const l = await send('GET', '/v1/ledger', null, null);
  chainCache = { id: unhex(l.chain_id), hex: l.chain_id };
  return chainCache;
}

// ------------------------------------------------------------------ actions

/** Registers the node on the ledger with its payout address (operator = itself). */
async function register(payout) {
  evmAddress(payout);
  const s = await load();
  const sg = await signer(s);
  const c = await chain();
  const acct = await send('GET', `/v1/accounts/${sg.did}`, null, null);
  const env = await seal(sg, 'registerNode', { chain: c.id, operator: sg.did, payout }, BigInt(acct.next_nonce), Date.now());
  await send('POST', '/v1/entries', { register_node: env }, null);
  const registered = { chain: c.hex, payout };
  await store.set({ payout, registered });
  return registered;
}

async function ensureRegistered(s, sg) {
  const c = await chain();
  if (s.registered && s.registered.chain === c.hex) return;
  const acct = await send('GET', `/v1/accounts/${sg.did}`, null, null);
  if (acct.node) {
    await store.set({ registered: { chain: c.hex, payout: s.payout } });
    return;
  }
  if (!s.payout) throw new LodeError('no_payout', 'Set a payout address first: confirmed reports are paid to it.');
  await register(s.payout);
}

/** The registrable domain of a URL, or an error for what cannot be reported. */
export function domainOf(url) {
  let u;
  try { u = new URL(url); } catch (_) { throw new LodeError('bad_url', 'That is not a web address.'); }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LodeError('bad_url', 'Only web pages (http, https) can be reported.');
  const host = u.hostname.replace(/\.$/, '');
  if (!host.includes('.') || /^[0-9.]+$/.test(host) || host.startsWith('[')) {
    throw new LodeError('bad_url', 'Only sites with a domain name can be reported.');
  }
  return registrableDomain(host);
}

async function report({ url, includeUrl, category, verdict, source }) {
  const s = await load();
  const cat = source === 'classifier' || source === 'community_list' ? 'classifier' : 'manual';
  if (!s.consent[cat]) throw new LodeError('no_consent', `Switch on "${cat === 'manual' ? 'Reports you make' : 'Sites the classifier flags'}" first.`);
  const domain = domainOf(url);
  const sg = await signer(s);
  await ensureRegistered(await load(), sg);
  const c = await chain();
  const msg = {
    chain: c.id,
    domain,
    url: includeUrl ? String(url).slice(0, 2048) : null,
    category: category || 'phishing',
    source: source || 'manual',
    verdict: verdict || 'harmful',
  };
  const env = await seal(sg, 'report', msg, randomNonce(), Date.now());
  const r = await send('POST', '/v1/data/reports', env, cat);
  const now = Date.now();
  const s2 = await load();
  const sent = [{ ts: now, domain, url_included: !!includeUrl, verdict: msg.verdict, status: r.status }, ...s2.sent].slice(0, SENT_KEEP);
  await store.set({ sent });
  return r;
}

async function heartbeat() {
  const s = await load();
  if (!s.consent.heartbeat || s.paused) return null;
  const sg = await signer(s);
  const c = await chain();
  const bits = (s.consent.manual ? 1 : 0) | (s.consent.classifier ? 2 : 0) | (s.consent.heartbeat ? 4 : 0);
  const env = await seal(sg, 'heartbeat', { chain: c.id, categories: bits }, randomNonce(), Date.now());
  return send('POST', '/v1/data/heartbeat', env, 'heartbeat');
}

// ------------------------------------------------------------------ protection (opt-in)

let modelCache = null;
let feedCache = null;
const FEED_TTL_MS = 3_600_000;

/** The community classifier, checked against the hash the ledger records for it: a
 * model whose hash differs from the published one is never used. */
async function guardModel(category) {
  if (modelCache) return modelCache;
  const text = await send('GET', '/v1/guard/model', null, category, true);
  const { model, sha256 } = await loadModel(text);
  const ledger = await send('GET', '/v1/ledger', null, category);
  const published = ledger.guard_model && ledger.guard_model.sha256;
  if (published !== sha256) {
    throw new LodeError('model_not_published', `the gateway's model (sha256 ${sha256}) is not the one the ledger publishes (${published || 'none'}): not used`);
  }
  modelCache = { model, sha256 };
  return modelCache;
}

async function sha256Hex(text) {
  const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return hex(new Uint8Array(d));
}

/** Whether the community feed confirms `domain`: the 4-byte prefix list is fetched
 * whole (hourly); only on a prefix match is that prefix (not the domain) asked about. */
async function communityConfirms(domain, category) {
  const now = Date.now();
  if (!feedCache || now - feedCache.at > FEED_TTL_MS) {
    const f = await send('GET', '/v1/data/feed', null, category);
    feedCache = { at: now, prefixes: new Set(f.prefixes || []), full: new Map() };
  }
  const h = await sha256Hex(domain);
  const prefix = h.slice(0, 8);
  if (!feedCache.prefixes.has(prefix)) return false;
  if (!feedCache.full.has(prefix)) {
    const r = await send('GET', '/v1/data/feed/' + prefix, null, category);
    feedCache.full.set(prefix, r.hashes || []);
  }
  return feedCache.full.get(prefix).some((x) => x.hash === h && x.status === 'confirmed');
}

/** Scores a top-level navigation on this device: a warning verdict, or null. */
export async function check(url, domain, category) {
  if (await communityConfirms(domain, category).catch(() => false)) return { why: 'community', score: 1, threshold: 1 };
  const { model } = await guardModel(category);
  let sc;
  try { sc = score(model, url); } catch (_) { return null; }
  return sc >= model.threshold ? { why: 'classifier', score: sc, threshold: model.threshold } : null;
}

/** A top-level navigation (webNavigation). With "protect" on, a flagged page is
 * replaced by the warning; with "classifier" on, a page the classifier flags is
 * reported (its domain only). Nothing else about the navigation leaves the device. */
async function onNavigation(d) {
  if (d.frameId !== 0 || !/^https?:/.test(d.url)) return;
  const s = await load();
  if (s.paused || (!s.consent.protect && !s.consent.classifier)) return;
  let domain;
  try { domain = domainOf(d.url); } catch (_) { return; }
  const allowed = (await chrome.storage.session.get('allowed')).allowed || [];
  if (allowed.includes(domain)) return;
  const v = await check(d.url, domain, s.consent.protect ? 'protect' : 'classifier');
  if (!v) return;
  if (s.consent.protect) {
    const q = new URLSearchParams({ url: d.url, domain, why: v.why, score: String(v.score), threshold: String(v.threshold) });
    await chrome.tabs.update(d.tabId, { url: chrome.runtime.getURL('warning.html') + '#' + q.toString() });
  }
  if (v.why === 'classifier' && s.consent.classifier && !s.sent.some((x) => x.domain === domain)) {
    await report({ url: d.url, includeUrl: false, source: 'classifier', category: 'phishing' }).catch(() => null);
  }
}

chrome.webNavigation.onBeforeNavigate.addListener((d) => { onNavigation(d).catch(() => null); });

async function setConsent(category, on) {
  if (!CATEGORIES.includes(category)) throw new LodeError('bad_category', 'unknown category ' + category);
  const s = await load();
  const consent = { ...s.consent, [category]: !!on };
  await store.set({ consent, onboarded: true });
  if (category === 'heartbeat') {
    if (on) {
      await chrome.alarms.create('heartbeat', { periodInMinutes: HEARTBEAT_MINUTES });
      await heartbeat().catch(() => null);
    } else {
      await chrome.alarms.clear('heartbeat');
    }
  }
  return consent;
}

/** Everything the popup shows: identity, consent, earnings, reports and their fate. */
async function refresh() {
  const s = await load();
  const sg = await signer(s);
  const out = { did: sg.did, earnings: null, reports: null, error: null };
  // Before any opt-in the node does not even introduce itself to the gateway.
  if (!s.registered && !s.consent.manual && !s.consent.classifier && !s.consent.heartbeat) {
    out.error = { code: 'not_started', message: 'Nothing is shared yet: switch on a category (what you share) to connect to the gateway.' };
    return out;
  }
  try {
    const ledger = await send('GET', '/v1/ledger', null, null);
    chainCache = { id: unhex(ledger.chain_id), hex: ledger.chain_id };
    const c = chainCache;
    const acct = await send('GET', `/v1/accounts/${sg.did}`, null, null);
    const hist = await send('GET', `/v1/accounts/${sg.did}/history?limit=50`, null, null);
    const events = Array.isArray(hist.events) ? hist.events : [];
    const pick = (name) => events.filter((e) => e.kind && e.kind[name]).map((e) => ({ height: e.height, ...e.kind[name] }));
    out.earnings = {
      balance: acct.balance,
      pending: acct.pending,
      epoch: ledger.epoch,
      epoch_ends_at_ms: ledger.epoch_ends_at_ms,
      rewards: pick('reward'),
      credits: pick('report_credited'),
      penalties: pick('penalized'),
      registered: acct.node,
    };
    if (s.payout) {
      const a = await send('GET', `/v1/addresses/${s.payout}`, null, null);
      out.earnings.claimable = a.claimable_cumulative;
      out.earnings.withdrawn = a.withdrawn_cumulative;
    }
    const read = await seal(sg, 'read', { chain: c.id }, randomNonce(), Date.now());
    out.reports = await send('POST', '/v1/data/mine', read, null);
  } catch (e) {
    out.error = { code: e.code || 'error', message: e.message };
  }
  return out;
}

async function exportKey() {
  const s = await load();
  const sg = await signer(s);
  const file = { lode_key_version: 1, did: sg.did, secret_key: (await load()).seed };
  if (s.payout) file.payout_address = s.payout;
  return file;
}

async function importKey(text) {
  let f;
  try { f = JSON.parse(text); } catch (_) { throw new LodeError('bad_key_file', 'The key file is not JSON.'); }
  if (!f || f.lode_key_version !== 1 || typeof f.secret_key !== 'string' || !/^[0-9a-f]{64}$/i.test(f.secret_key)) {
    throw new LodeError('bad_key_file', 'Not a Lode key file (lode_key_version 1 with a 64-hex-digit secret_key).');
  }
  const sg = await signerFromSeed(unhex(f.secret_key));
  if (f.did && f.did !== sg.did) throw new LodeError('bad_key_file', 'The key file\'s did does not match its secret key.');
  if (f.payout_address) evmAddress(f.payout_address);
  await store.set({ seed: f.secret_key.toLowerCase(), did: sg.did, payout: f.payout_address || null, registered: null, sent: [] });
  chainCache = null;
  return { did: sg.did };
}

async function state() {
  const s = await load();
  const sg = await signer(s);
  const now = Date.now();
  return {
    did: sg.did,
    gateway: s.gateway,
    consent: s.consent,
    paused: s.paused,
    onboarded: s.onboarded,
    payout: s.payout,
    registered: s.registered,
    budget: s.budget,
    usage: s.usage.month === month(now) ? s.usage : { month: month(now), bytes: 0 },
    log: s.log,
    sent: s.sent,
  };
}

const handlers = {
  state: () => state(),
  setConsent: (m) => setConsent(m.category, m.on),
  pause: async (m) => { await store.set({ paused: !!m.paused }); return state(); },
  setGateway: async (m) => {
    const u = new URL(m.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LodeError('bad_url', 'The gateway URL must be http or https.');
    await store.set({ gateway: u.origin, registered: null });
    chainCache = null;
    modelCache = null;
    feedCache = null;
    return state();
  },
  setPayout: (m) => register(m.payout),
  report: (m) => report(m),
  heartbeat: () => heartbeat(),
  refresh: () => refresh(),
  exportKey: () => exportKey(),
  importKey: (m) => importKey(m.text),
  clearLog: async () => { await store.set({ log: [] }); return state(); },
  allowOnce: async (m) => {
    const allowed = (await chrome.storage.session.get('allowed')).allowed || [];
    if (!allowed.includes(m.domain)) allowed.push(String(m.domain).slice(0, 253));
    await chrome.storage.session.set({ allowed: allowed.slice(-500) });
    return true;
  },
  check: async (m) => {
    const s = await load();
    const cat = s.consent.protect ? 'protect' : s.consent.classifier ? 'classifier' : null;
    if (!cat) throw new LodeError('no_consent', 'Switch on "Warn me about scam sites" first.');
    return check(m.url, domainOf(m.url), cat);
  },
};

chrome.runtime.onMessage.addListener((msg, _sender, reply) => {
  const h = msg && handlers[msg.type];
  if (!h) { reply({ ok: false, error: { code: 'unknown', message: 'unknown request' } }); return false; }
  Promise.resolve()
    .then(() => h(msg))
    .then((value) => reply({ ok: true, value }))
    .catch((e) => reply({ ok: false, error: { code: e.code || 'error', message: e.message } }));
  return true;
});

chrome.alarms.onAlarm.addListener((a) => {
  if (a.name === 'heartbeat') heartbeat().catch(() => null);
});

chrome.runtime.onInstalled.addListener(async (d) => {
  if (d.reason === 'install') {
    const s = await load();
    await signer(s);
    if (!s.onboarded) chrome.tabs.create({ url: chrome.runtime.getURL('onboarding.html') });
  }
});

/** Milliseconds per URL to score `n` varied URLs with the published model (the
 * browser test prints it; nothing is sent but the model download). */
async function benchScore(n) {
  const s = await load();
  const { model } = await guardModel(s.consent.protect ? 'protect' : 'classifier');
  const urls = [];
  for (let i = 0; i < n; i++) urls.push(`https://login-${i % 97}.secure-${i % 13}-verify.example${i % 7}.com/account/${i}?session=${i * 7919}`);
  const t0 = performance.now();
  let sum = 0;
  for (const u of urls) sum += score(model, u);
  const ms = (performance.now() - t0) / n;
  return sum >= 0 ? ms : ms;
}

// Exposed for tests in the service worker's console.
globalThis.lode = { handlers, domainOf, didKey, benchScore };
