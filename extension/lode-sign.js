// Lode's signed envelopes in plain JS (an ES module; no bundler, no dependencies).
//
// The same bytes as crates/lode-proto (envelope.rs, canonical.rs, keys.rs, did.rs):
//   payload   = postcard(Payload { nonce: u64, timestamp_ms: u64, message })
//   signature = Ed25519(seed, "lode/sig/v1" ‖ 0x00 ‖ u16be(len(kind)) ‖ kind ‖ payload)
//   envelope  = { kind, payload: hex, signer: "did:key:z…", signature: hex }  (JSON)
// postcard: integers as LEB128 varints, strings and byte strings as varint length +
// bytes, Option as 0/1 + value, enum variants as their varint index, fixed arrays
// ([u8; N]: hashes, keys, addresses) as N raw bytes.
//
// Keys live in WebCrypto (Ed25519). extension/test/sign.test.mjs checks every byte
// against envelopes the Rust side made (lode_proto::data::fixture).

const enc = new TextEncoder();

export const KINDS = {
  report: 'lode/data/report/v1',
  heartbeat: 'lode/data/heartbeat/v1',
  read: 'lode/data/read/v1',
  registerNode: 'lode/ledger/register-node/v1',
};

export const CATEGORY = { phishing: 0, scam: 1, malware: 2 };
export const SOURCE = { manual: 0, classifier: 1, community_list: 2 };
export const VERDICT = { harmful: 0, mistake: 1 };

// ------------------------------------------------------------------ bytes

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function unhex(s) {
  if (typeof s !== 'string' || s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) {
    throw new Error('not an even-length hex string');
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Unsigned LEB128 of a number or BigInt (up to 2^64 - 1). */
export function varint(v) {
  let x = BigInt(v);
  if (x < 0n || x > 0xffffffffffffffffn) throw new Error('varint out of range');
  const out = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return Uint8Array.from(out);
}

function str(s) {
  const b = enc.encode(s);
  return concat([varint(b.length), b]);
}

function fixed(bytes, n) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== n) throw new Error(`expected ${n} bytes`);
  return bytes;
}

function option(v, f) {
  return v == null ? Uint8Array.of(0) : concat([Uint8Array.of(1), f(v)]);
}

// ------------------------------------------------------------------ did:key

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

export function base58(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let s = '';
  while (n > 0n) { s = B58[Number(n % 58n)] + s; n /= 58n; }
  for (const b of bytes) { if (b !== 0) break; s = '1' + s; }
  return s;
}

export function unbase58(s) {
  let n = 0n;
  for (const c of s) {
    const i = B58.indexOf(c);
    if (i < 0) throw new Error('not base58');
    n = n * 58n + BigInt(i);
  }
  const out = [];
  while (n > 0n) { out.unshift(Number(n & 0xffn)); n >>= 8n; }
  for (const c of s) { if (c !== '1') break; out.unshift(0); }
  return Uint8Array.from(out);
}

/** did:key of a 32-byte Ed25519 public key (multicodec 0xed01, base58btc). */
export function didOf(publicKey) {
  return 'did:key:z' + base58(concat([Uint8Array.of(0xed, 0x01), fixed(publicKey, 32)]));
}

/** The 32-byte public key of a did:key. */
export function didKey(did) {
  if (typeof did !== 'string' || !did.startsWith('did:key:z')) throw new Error('not a did:key');
  const raw = unbase58(did.slice('did:key:z'.length));
  if (raw.length !== 34 || raw[0] !== 0xed || raw[1] !== 0x01) throw new Error('not an Ed25519 did:key');
  return raw.slice(2);
}

/** 20 bytes of an EVM address `0x…` (any case; the checksum is not enforced here). */
export function evmAddress(s) {
  if (typeof s !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(s)) throw new Error('an EVM address is 0x and 40 hex digits');
  return unhex(s.slice(2));
}

// ------------------------------------------------------------------ keys

const PKCS8_ED25519 = unhex('302e020100300506032b657004220420');

/** A signer from a 32-byte Ed25519 seed: { did, publicKey, sign(tag, bytes) }. */
export async function signerFromSeed(seed, subtle = globalThis.crypto.subtle) {
  fixed(seed, 32);
  const key = await subtle.importKey('pkcs8', concat([PKCS8_ED25519, seed]), { name: 'Ed25519' }, true, ['sign']);
  // The public key: sign-only keys export it through JWK (`x`, base64url).
  const jwk = await subtle.exportKey('jwk', key);
  const publicKey = b64url(jwk.x);
  return {
    did: didOf(publicKey),
    publicKey,
    async sign(bytes) {
      return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, key, bytes));
    },
  };
}

/** A fresh random 32-byte seed. */
export function newSeed(c = globalThis.crypto) {
  return c.getRandomValues(new Uint8Array(32));
}

function b64url(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

/** The exact bytes an Ed25519 signature covers (keys.rs `signing_input`). */
export function signingInput(kind, payload) {
  const k = enc.encode(kind);
  return concat([enc.encode('lode/sig/v1'), Uint8Array.of(0, k.length >> 8, k.length & 0xff), k, payload]);
}

// ------------------------------------------------------------------ messages

/** postcard of each message type (fields in declaration order). */
export const encode = {
  report(m) {
    return concat([
      fixed(m.chain, 32), str(m.domain), option(m.url, str),
      varint(CATEGORY[m.category]), varint(SOURCE[m.source]), varint(VERDICT[m.verdict]),
    ]);
  },
  heartbeat(m) { return concat([fixed(m.chain, 32), varint(m.categories)]); },
  read(m) { return fixed(m.chain, 32); },
  registerNode(m) { return concat([fixed(m.chain, 32), didKey(m.operator), evmAddress(m.payout)]); },
};

/** A random u64 nonce (as a BigInt). */
export function randomNonce(c = globalThis.crypto) {
  const b = c.getRandomValues(new Uint8Array(8));
  let n = 0n;
  for (let i = 7; i >= 0; i--) n = (n << 8n) | BigInt(b[i]);
  return n;
}

/** Seals a message of `type` (a key of `encode`) into a JSON envelope. */
export async function seal(signer, type, message, nonce, timestampMs) {
  const kind = KINDS[type];
  if (!kind) throw new Error('unknown message type ' + type);
  const payload = concat([varint(nonce), varint(timestampMs), encode[type](message)]);
  const signature = await signer.sign(signingInput(kind, payload));
  return { kind, payload: hex(payload), signer: signer.did, signature: hex(signature) };
}
