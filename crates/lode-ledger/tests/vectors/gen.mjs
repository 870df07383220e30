// Generates tests/vectors/openzeppelin.json with the official
// @openzeppelin/merkle-tree library, so that lode-ledger's claim trees are
// checked byte for byte against it (roots, proofs, and the standard-v1 dump).
//
// Run once, from a directory where the library is installed (outside the repo):
//
//   cd "$(mktemp -d)" && npm init -y && npm install @openzeppelin/merkle-tree
//   node /path/to/crates/lode-ledger/tests/vectors/gen.mjs \
//        /path/to/crates/lode-ledger/tests/vectors/openzeppelin.json
//
// Modules are resolved from the current directory (createRequire), not from
// this file's location, so the repository never needs a node_modules folder.

import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const require = createRequire(pathToFileURL(process.cwd() + '/').href);
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const { keccak256 } = require('ethereum-cryptography/keccak');
const pkg = require('@openzeppelin/merkle-tree/package.json');

const hex = (bytes) => Buffer.from(bytes).toString('hex');

// EIP-55 checksum of a lower-case 40-hex-digit address.
function checksum(lower) {
  const h = hex(keccak256(Buffer.from(lower, 'ascii')));
  let out = '0x';
  for (let i = 0; i < 40; i++) {
    const c = lower[i];
    out += parseInt(h[i], 16) >= 8 ? c.toUpperCase() : c;
  }
  return out;
}

// A deterministic address: the last 20 bytes of keccak256("lode-vector-<i>").
function addr(i) {
  return checksum(hex(keccak256(Buffer.from(`lode-vector-${i}`, 'utf8'))).slice(24));
}

const byAddress = (a, b) => (a[0].toLowerCase() < b[0].toLowerCase() ? -1 : 1);

const U128_MAX = (2n ** 128n - 1n).toString();

const cases = [
  { name: 'one leaf', values: [[addr(1), '1000000000000000000']] },
  { name: 'two leaves', values: [[addr(2), '5'], [addr(3), '7']].sort(byAddress) },
  {
    name: 'edge amounts',
    values: [
      [addr(4), '0'],
      [addr(5), '1'],
      [addr(6), U128_MAX],
      [addr(7), '1000000000000000000'],
      [addr(8), '123456789012345678901234567890'],
    ].sort(byAddress),
  },
  {
    name: 'seventeen sorted by address',
    values: Array.from({ length: 17 }, (_, i) => [addr(100 + i), String((i + 1) * 1_000_003)]).sort(byAddress),
  },
  {
    name: 'unsorted input order',
    values: [
      [addr(40), '9'],
      [addr(41), '8'],
      [addr(42), '7'],
      [addr(43), '6'],
      [addr(44), '5'],
      [addr(45), '4'],
    ],
  },
  {
    name: 'equal amounts',
    values: Array.from({ length: 8 }, (_, i) => [addr(200 + i), '42']).sort(byAddress),
  },
  {
    // Reproduced through the ledger by withdrawals (tests/ledger.rs).
    name: 'ledger withdrawals',
    values: [
      [addr(300), '1000000000000000000'],
      [addr(301), '2500000000000000000'],
      [addr(302), '7'],
      [addr(303), '123456789'],
    ].sort(byAddress),
  },
];

const out = {
  generator: `${pkg.name}@${pkg.version}`,
  leafEncoding: ['address', 'uint256'],
  cases: cases.map(({ name, values }) => {
    const tree = StandardMerkleTree.of(values, ['address', 'uint256']);
    return {
      name,
      values,
      root: tree.root,
      dump_json: JSON.stringify(tree.dump()),
      proofs: values.map((_, i) => tree.getProof(i)),
    };
  }),
};

const path = process.argv[2] ?? 'openzeppelin.json';
writeFileSync(path, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${out.cases.length} cases to ${path} (${out.generator})`);
