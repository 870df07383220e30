// Parity of the JS scorer (extension/guard.js) with the Rust one (crates/lode-guard):
// the fixture guard-parity.json is written by the Rust side (a Rust test keeps it
// current); every feature, registrable domain, error code and score must match.
// Run: node --test extension/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  loadModel, parseUrl, extract, score, verdict, GuardUrlError, GuardModelError, fnv1a, entropy,
  levenshtein, oneEditApart, deconfuse,
} from '../guard.js';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const modelText = readFileSync(here('../../crates/lode-guard/model/default.json'), 'utf8');
const fixture = JSON.parse(readFileSync(here('./guard-parity.json'), 'utf8'));
const TOL = 1e-9;

test('the default model loads and its hash is the one the fixture was made with', async () => {
  const { model, sha256 } = await loadModel(modelText);
  assert.equal(sha256, fixture.model_sha256);
  assert.equal(model.ngram.length, model.buckets);
});

test('JS and Rust agree on every fixture URL (features, domain, score within 1e-9)', async () => {
  const { model } = await loadModel(modelText);
  assert.ok(fixture.cases.length >= 250, `only ${fixture.cases.length} cases`);
  let scored = 0;
  for (const c of fixture.cases) {
    const where = JSON.stringify(c.url.slice(0, 120));
    if (c.error) {
      assert.throws(() => parseUrl(c.url), (e) => e instanceof GuardUrlError && e.code === c.error, where);
      assert.throws(() => score(model, c.url), GuardUrlError, where);
      continue;
    }
    const parts = parseUrl(c.url);
    assert.equal(parts.registrable, c.registrable, `registrable domain of ${where}`);
    const f = extract(parts, model.vocab, model.buckets);
    assert.deepEqual(f.buckets, c.buckets, `buckets of ${where}`);
    assert.equal(f.dense.length, c.dense.length);
    f.dense.forEach((x, i) => assert.ok(Math.abs(x - c.dense[i]) <= TOL, `dense[${i}] of ${where}: ${x} vs ${c.dense[i]}`));
    const s = score(model, c.url);
    assert.ok(Math.abs(s - c.score) <= TOL, `score of ${where}: ${s} vs ${c.score}`);
    scored++;
  }
  assert.ok(scored >= 200);
});

test('verdicts use the model threshold', async () => {
  const { model } = await loadModel(modelText);
  const bad = verdict(model, 'http://paypal.com.account-verify.secure-login.xyz/signin/update.php');
  const good = verdict(model, 'https://www.wikipedia.org/wiki/Lode');
  assert.equal(bad.verdict, 'phishing');
  assert.equal(good.verdict, 'benign');
  assert.ok(bad.score >= model.threshold && good.score < model.threshold);
});

test('a model with a wrong hash, a wrong layout or a wrong shape is refused', async () => {
  const tampered = modelText.replace('"bias":', '"bias":1');
  await assert.rejects(loadModel(tampered), (e) => e instanceof GuardModelError && e.code === 'hash_mismatch');
  await assert.rejects(loadModel('{"model":{}}'), (e) => e.code === 'layout');
  await assert.rejects(loadModel(''), (e) => e.code === 'layout');
  // A consistent file (hash recomputed) whose model has the wrong number of weights.
  const body = modelText.slice('{"sha256":"'.length + 64 + '","model":'.length).replace(/}\n?$/, '');
  const m = JSON.parse(body);
  m.dense.pop();
  const newBody = JSON.stringify(m);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(newBody));
  const hex = Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, '0')).join('');
  await assert.rejects(loadModel(`{"sha256":"${hex}","model":${newBody}}\n`), (e) => e.code === 'shape');
});

test('helpers match their reference values', () => {
  assert.equal(fnv1a('', ''), 0x811c9dc5);
  assert.equal(fnv1a('', 'a'), 0xe40c292c);
  assert.equal(fnv1a('fo', 'obar'), 0xbf9cf968);
  assert.equal(entropy('abcd'), 2);
  assert.equal(levenshtein('paypal', 'paypa1'), 1);
  for (const [a, b] of [['paypal', 'paypa1'], ['paypal', 'payal'], ['paypal', 'paypall'], ['ab', 'ba'], ['abc', 'abc'], ['', 'a'], ['abc', 'acbd']]) {
    assert.equal(oneEditApart(a, b), levenshtein(a, b) === 1, `${a} ${b}`);
  }
  assert.equal(deconfuse('rnicr0s0ft'), 'microsoft');
});
