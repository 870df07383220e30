// The browser node's signer makes the same bytes as Rust: every envelope in
// sign-fixture.json (sealed by crates/lode-ledger/tests/js_fixture.rs with a fixed
// seed, nonces and times) is reproduced byte for byte. Ed25519 is deterministic, so
// equal payloads give equal signatures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import {
  signerFromSeed, seal, unhex, didOf, didKey, varint, hex, base58, unbase58, signingInput,
} from '../lode-sign.js';

const fixture = JSON.parse(readFileSync(new URL('./sign-fixture.json', import.meta.url), 'utf8'));
const subtle = webcrypto.subtle;

test('did:key from the seed matches Rust', async () => {
  const s = await signerFromSeed(unhex(fixture.seed), subtle);
  assert.equal(s.did, fixture.did);
  assert.deepEqual(didKey(s.did), s.publicKey);
  assert.equal(didOf(s.publicKey), fixture.did);
});

test('every fixture envelope is reproduced byte for byte', async () => {
  const s = await signerFromSeed(unhex(fixture.seed), subtle);
  const chain = unhex(fixture.chain);
  const cases = [
    ['report', 'report', { chain, domain: 'secure-login-example.top', url: 'https://secure-login-example.top/verify?id=1', category: 'phishing', source: 'manual', verdict: 'harmful' }, 1n, 1700000000000n],
    ['report_no_url', 'report', { chain, domain: 'secure-login-example.top', url: null, category: 'scam', source: 'classifier', verdict: 'mistake' }, 0xffffffffffffffffn, 1700000000001n],
    ['heartbeat', 'heartbeat', { chain, categories: 5 }, 300n, 1700000000002n],
    ['read', 'read', { chain }, 0n, 5n],
    ['register_node', 'registerNode', { chain, operator: fixture.did, payout: fixture.payout }, 0n, 1700000000003n],
  ];
  for (const [name, type, msg, nonce, ts] of cases) {
    const env = await seal(s, type, msg, nonce, ts);
    assert.deepEqual(env, fixture[name], name);
    // And the signature verifies over the documented signing input.
    const pub = await subtle.importKey('raw', s.publicKey, { name: 'Ed25519' }, false, ['verify']);
    assert.ok(await subtle.verify({ name: 'Ed25519' }, pub, unhex(env.signature), signingInput(env.kind, unhex(env.payload))), name);
  }
});

test('encoding helpers reject bad input', () => {
  assert.equal(hex(varint(300)), 'ac02');
  assert.equal(hex(varint(0xffffffffffffffffn)), 'ffffffffffffffffff01');
  assert.throws(() => varint(-1));
  assert.throws(() => varint(2n ** 64n));
  assert.throws(() => unhex('abc'));
  assert.throws(() => unhex('zz'));
  assert.throws(() => didKey('did:web:example.com'));
  assert.throws(() => unbase58('0OIl'));
  assert.deepEqual(unbase58(base58(Uint8Array.of(0, 0, 1, 2))), Uint8Array.of(0, 0, 1, 2));
});
