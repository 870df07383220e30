// lode guard: the phishing URL scorer for the browser (plain ES module, no bundler).
//
// A line-by-line mirror of crates/lode-guard (features.rs, model.rs): the same WHATWG URL
// parsing (the browser's URL), the same registrable domain (the same Public Suffix List
// snapshot, ./psl-rules.js, that the Rust side embeds), the same features in the same
// order, the same
// FNV-1a buckets and the same summation order, so a score equals the Rust score within
// 1e-9 (extension/test/guard.test.mjs checks it on a fixture the Rust side writes).
// Nothing here does IO: the caller fetches the model file and passes its text.

import PSL_RULES from './psl-rules.js';

export const FEATURE_VERSION = 1;
export const MAX_URL_BYTES = 8192;
export const MODEL_FORMAT = 'lode-guard-model';

export const DENSE_NAMES = [
  'len_href', 'len_host', 'len_path', 'len_query', 'host_dots', 'host_hyphens',
  'host_digits', 'path_digits', 'path_special', 'userinfo', 'double_slash_in_path',
  'host_entropy', 'subdomain_depth', 'ip_host', 'punycode', 'explicit_port', 'scheme_http',
  'risky_tld', 'brand_outside_domain', 'brand_in_label', 'typosquat', 'bait_words',
  'label_len', 'label_hyphens', 'host_is_domain_or_www', 'path_segments',
  'script_extension', 'label_digits', 'longest_host_label',
];

/** A URL that cannot be scored; `code` is one of empty, too_long, malformed,
 * unsupported_scheme, no_host (the same codes as the Rust side). */
export class GuardUrlError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'GuardUrlError';
    this.code = code;
  }
}

/** A model file that cannot be used; `code`: layout, hash_mismatch, json, format,
 * feature_version, shape. */
export class GuardModelError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'GuardModelError';
    this.code = code;
  }
}

const encoder = new TextEncoder();
const IPV4 = /^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/;

function sanitizeLabel(label) {
  let s = label.slice(0, 32).replace(/[^a-z0-9-]/g, 'a');
  if (s === '') s = 'a';
  if (s.startsWith('-')) s = 'a' + s.slice(1);
  if (s.endsWith('-')) s = s.slice(0, -1) + 'a';
  return s;
}

let ruleSet = null;

/** Number of labels of the public suffix of `labels` by the PSL algorithm: an exception
 * rule (`!x.y`) wins and counts one label less; otherwise the matching rule (exact or
 * `*.` wildcard) with the most labels; otherwise the implicit `*` (one label). */
function publicSuffixLabels(labels) {
  ruleSet ??= new Set(PSL_RULES);
  const n = labels.length;
  let best = 1;
  for (let k = 1; k <= n; k++) {
    const name = labels.slice(n - k).join('.');
    if (ruleSet.has(`!${name}`)) return k - 1;
    if (ruleSet.has(name)) best = k;
    else if (k >= 2 && ruleSet.has(`*.${labels.slice(n - k + 1).join('.')}`)) best = k;
  }
  return best;
}

/** Registrable domain (eTLD+1) of a lower-case ASCII host, or the host itself when it has
 * none (a public suffix, a single label). Only the last 8 labels, sanitized, are looked
 * up, as on the Rust side; the answer's label count is mapped back onto the host. */
export function registrableDomain(host) {
  const labels = host.split('.');
  const tail = labels.slice(Math.max(0, labels.length - 8)).map(sanitizeLabel);
  const suffix = publicSuffixLabels(tail);
  if (suffix >= tail.length) return host;
  return labels.slice(labels.length - suffix - 1).join('.');
}

/** Parses and normalizes a URL as features.rs's parse_url does. Throws GuardUrlError. */
export function parseUrl(input) {
  const bytes = encoder.encode(input).length;
  if (bytes > MAX_URL_BYTES) {
    throw new GuardUrlError('too_long', `URL is ${bytes} bytes long; the limit is ${MAX_URL_BYTES} bytes`);
  }
  if (input.trim() === '') throw new GuardUrlError('empty', 'empty URL');
  let u;
  try {
    u = new URL(input);
  } catch (e) {
    throw new GuardUrlError('malformed', `malformed URL: ${e.message}`);
  }
  let https;
  if (u.protocol === 'https:') https = true;
  else if (u.protocol === 'http:') https = false;
  else {
    throw new GuardUrlError('unsupported_scheme', `unsupported scheme ${JSON.stringify(u.protocol.slice(0, -1))}: only http and https URLs are scored`);
  }
  let host = u.hostname;
  const ip = IPV4.test(host) || host.startsWith('[');
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === '') throw new GuardUrlError('no_host', 'URL has no host');
  u.hash = '';
  return {
    href: u.href,
    https,
    host,
    registrable: ip ? host : registrableDomain(host),
    ip,
    explicitPort: u.port !== '',
    userinfo: u.username !== '' || u.password !== '',
    path: u.pathname,
    query: u.search.startsWith('?') ? u.search.slice(1) : u.search,
  };
}

/** 32-bit FNV-1a over the bytes of `prefix` then `s` (both ASCII). */
export function fnv1a(prefix, s) {
  let h = 0x811c9dc5;
  for (const str of [prefix, s]) {
    for (let i = 0; i < str.length; i++) {
      h = Math.imul(h ^ str.charCodeAt(i), 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

/** Shannon entropy in bits per byte, summed over byte values in ascending order. */
export function entropy(s) {
  if (s.length === 0) return 0;
  const counts = new Uint32Array(256);
  for (let i = 0; i < s.length; i++) counts[s.charCodeAt(i) & 0xff]++;
  const n = s.length;
  let h = 0;
  for (let b = 0; b < 256; b++) {
    const c = counts[b];
    if (c > 0) {
      const p = c / n;
      h -= p * Math.log2(p);
    }
  }
  return h;
}

/** Whether levenshtein(a, b) === 1, in linear time (as features.rs's one_edit_apart). */
export function oneEditApart(a, b) {
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  const d = long.length - short.length;
  if (d === 0) {
    let diff = 0;
    for (let i = 0; i < short.length; i++) if (short[i] !== long[i]) diff++;
    return diff === 1;
  }
  if (d !== 1) return false;
  let i = 0;
  while (i < short.length && short[i] === long[i]) i++;
  return short.slice(i) === long.slice(i + 1);
}

export function levenshtein(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array(b.length + 1).fill(0);
  for (let i = 0; i < a.length; i++) {
    cur[0] = i + 1;
    for (let j = 0; j < b.length; j++) {
      const sub = prev[j] + (a[i] !== b[j] ? 1 : 0);
      cur[j + 1] = Math.min(sub, prev[j + 1] + 1, cur[j] + 1);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

const LOOKALIKE = { 0: 'o', 1: 'l', 3: 'e', 4: 'a', 5: 's', 7: 't' };

export function deconfuse(label) {
  let mapped = '';
  for (const c of label) mapped += LOOKALIKE[c] ?? c;
  return mapped.replaceAll('rn', 'm').replaceAll('vv', 'w');
}

/** Whether `text` names `brand` (as features.rs's `mentions`); `runs` are the text's
 * alphanumeric runs (`alnumRuns(text)`), split once per URL. */
export function mentions(runs, brand) {
  return runs.some((t) => t === brand || (brand.length >= 6 && t.includes(brand)));
}

export function alnumRuns(text) {
  return text.split(/[^a-z0-9A-Z]/);
}

const SPECIAL = "@~_%=&!*,;:+$'()";
const SCRIPT_EXTENSIONS = ['.php', '.html', '.htm', '.asp', '.aspx', '.cgi', '.js'];
const ln1p = (n) => Math.log1p(n);
const flag = (b) => (b ? 1 : 0);

function count(s, pred) {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (pred(s[i])) n++;
  return n;
}

const isDigit = (c) => c >= '0' && c <= '9';

function tokens(s) {
  return s.split(/[^a-zA-Z0-9]/).filter((t) => t.length >= 2 && t.length <= 24);
}

/** Features of a parsed URL: {dense: number[29], buckets: sorted number[]}. */
export function extract(parts, vocab, buckets) {
  const { host, registrable: reg, href } = parts;
  const pathQuery = `${parts.path}?${parts.query}`.toLowerCase();
  const sub = host.length > reg.length ? host.slice(0, host.length - reg.length - 1) : '';
  const label = parts.ip ? '' : reg.split('.')[0];
  const hostLabels = host.split('.');
  const tld = parts.ip ? '' : hostLabels[hostLabels.length - 1];
  const outside = `${sub} ${pathQuery}`;
  const lowerHref = href.toLowerCase();
  const at = lowerHref.indexOf('://');
  const afterScheme = at < 0 ? lowerHref : lowerHref.slice(at + 3);

  let brandOutside = false;
  let brandInLabel = false;
  let typosquat = false;
  if (label !== '') {
    const deconfused = deconfuse(label);
    const outsideRuns = alnumRuns(outside);
    const labelRuns = alnumRuns(label);
    for (const b of vocab.brands) {
      if (label === b) continue;
      if (mentions(outsideRuns, b)) brandOutside = true;
      if (mentions(labelRuns, b)) brandInLabel = true;
      if ((b.length >= 5 && oneEditApart(label, b)) || deconfused === b) typosquat = true;
    }
  }
  let bait = 0;
  for (const w of vocab.bait_words) if (afterScheme.includes(w)) bait++;
  const subdomainDepth = sub === '' ? 0 : sub.split('.').length;
  const pathLower = parts.path.toLowerCase();

  const dense = [
    ln1p(href.length),
    ln1p(host.length),
    ln1p(parts.path.length),
    ln1p(parts.query.length),
    ln1p(count(host, (c) => c === '.')),
    ln1p(count(host, (c) => c === '-')),
    ln1p(count(host, isDigit)),
    ln1p(count(pathQuery, isDigit)),
    ln1p(count(pathQuery, (c) => SPECIAL.includes(c))),
    flag(parts.userinfo),
    flag(parts.path.includes('//')),
    entropy(host),
    ln1p(subdomainDepth),
    flag(parts.ip),
    flag(hostLabels.some((l) => l.startsWith('xn--'))),
    flag(parts.explicitPort),
    flag(!parts.https),
    flag(vocab.risky_tlds.includes(tld)),
    flag(brandOutside),
    flag(brandInLabel),
    flag(typosquat),
    ln1p(bait),
    ln1p(label.length),
    ln1p(count(label, (c) => c === '-')),
    flag(sub === '' || sub === 'www'),
    ln1p(parts.path.split('/').filter((s) => s !== '').length),
    flag(SCRIPT_EXTENSIONS.some((e) => pathLower.endsWith(e))),
    ln1p(count(label, isDigit)),
    ln1p(Math.max(0, ...hostLabels.map((l) => l.length))),
  ];

  const mask = buckets - 1;
  const set = new Set();
  const marked = `^${host}$`;
  for (const n of [3, 4]) {
    const prefix = `h${n}`;
    for (let i = 0; i + n <= marked.length; i++) set.add((fnv1a(prefix, marked.slice(i, i + n)) & mask) >>> 0);
  }
  for (const t of tokens(sub)) set.add((fnv1a('s', t) & mask) >>> 0);
  for (const t of tokens(pathQuery)) set.add((fnv1a('p', t) & mask) >>> 0);
  set.add((fnv1a('t', tld) & mask) >>> 0);
  return { dense, buckets: [...set].sort((a, b) => a - b) };
}

export function sigmoid(z) {
  return 1 / (1 + Math.exp(-z));
}

/** Log-odds: bias, dense weights in order, then active buckets ascending. */
export function logit(model, f) {
  let z = model.bias;
  for (let i = 0; i < model.dense.length; i++) z += model.dense[i] * f.dense[i];
  for (const b of f.buckets) z += model.ngram[b];
  return z;
}

/** Checks a parsed model body as model.rs's validate does. */
export function validateModel(m) {
  if (m.format !== MODEL_FORMAT) throw new GuardModelError('format', `model format ${JSON.stringify(m.format)} is not ${MODEL_FORMAT}`);
  if (m.feature_version !== FEATURE_VERSION) {
    throw new GuardModelError('feature_version', `model uses feature version ${m.feature_version}; this scorer computes version ${FEATURE_VERSION}`);
  }
  if (!Array.isArray(m.dense) || m.dense.length !== DENSE_NAMES.length
      || JSON.stringify(m.dense_names) !== JSON.stringify(DENSE_NAMES)) {
    throw new GuardModelError('shape', 'dense weights do not match this scorer\'s features');
  }
  const b = m.buckets;
  if (!Number.isInteger(b) || b <= 0 || (b & (b - 1)) !== 0 || !Array.isArray(m.ngram) || m.ngram.length !== b) {
    throw new GuardModelError('shape', `${m.ngram?.length} n-gram weights for ${b} buckets (a power of two)`);
  }
  const finite = [m.bias, m.threshold, ...m.dense, ...m.ngram].every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!finite) throw new GuardModelError('shape', 'non-finite weight or threshold');
  return m;
}

const PREFIX = '{"sha256":"';
const MIDDLE = '","model":';

async function sha256Hex(text) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', encoder.encode(text));
  return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Parses a model file, verifying its layout and its recorded SHA-256 (WebCrypto).
 * Resolves to {model, sha256}; rejects with GuardModelError. */
export async function loadModel(text) {
  if (!text.startsWith(PREFIX)) throw new GuardModelError('layout', 'not a lode-guard model file');
  const recorded = text.slice(PREFIX.length, PREFIX.length + 64);
  let rest = text.slice(PREFIX.length + 64);
  if (!rest.startsWith(MIDDLE)) throw new GuardModelError('layout', 'not a lode-guard model file');
  let body = rest.slice(MIDDLE.length);
  if (body.endsWith('\n')) body = body.slice(0, -1);
  if (!body.endsWith('}')) throw new GuardModelError('layout', 'not a lode-guard model file');
  body = body.slice(0, -1);
  const actual = await sha256Hex(body);
  if (actual !== recorded) {
    throw new GuardModelError('hash_mismatch', `model hash mismatch: the file says sha256 ${recorded} but its model hashes to ${actual}`);
  }
  let model;
  try {
    model = JSON.parse(body);
  } catch (e) {
    throw new GuardModelError('json', `model JSON: ${e.message}`);
  }
  return { model: validateModel(model), sha256: actual };
}

/** Score in [0, 1] that `url` is phishing under `model` (a loaded model body).
 * Throws GuardUrlError for URLs that cannot be scored. */
export function score(model, url) {
  const parts = parseUrl(url);
  return sigmoid(logit(model, extract(parts, model.vocab, model.buckets)));
}

/** {url, score, verdict} as `lode guard score --json` prints it. */
export function verdict(model, url) {
  const s = score(model, url);
  return { url, score: s, verdict: s >= model.threshold ? 'phishing' : 'benign' };
}
