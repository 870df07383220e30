//! Claim trees in the exact OpenZeppelin `StandardMerkleTree` format
//! (`@openzeppelin/merkle-tree`, leaf encoding `["address", "uint256"]`), so
//! that an unmodified claim contract using OpenZeppelin's `MerkleProof` can
//! verify a claim of `cumulative − already_claimed`.
//!
//! The format, as the npm library implements it (v1.0.x):
//! * leaf = `keccak256(keccak256(abi.encode(address, uint256)))`: the 64-byte
//!   ABI encoding (address left-padded to 32 bytes, amount as a 32-byte
//!   big-endian word), hashed twice (second-preimage protection);
//! * node = `keccak256(min(a, b) ‖ max(a, b))` (sorted pair, bytewise);
//! * leaves are sorted by hash (ascending) and stored at the END of a
//!   heap-shaped array of `2n − 1` nodes in reverse: sorted leaf `i` sits at
//!   `tree[2n − 2 − i]`; node `i` has children `2i + 1`, `2i + 2`; root = `tree[0]`;
//! * a proof lists sibling hashes from the leaf up to (excluding) the root;
//! * the `standard-v1` dump is `{format, leafEncoding, tree, values}` where
//!   `values[k] = {value, treeIndex}` keeps the caller's value order and
//!   `value` holds the values exactly as given (here the EIP-55 address and
//!   the decimal amount string); hashes are `0x`-prefixed lower-case hex.
//!
//! Tests check roots, proofs and the dump byte for byte against vectors made
//! by the npm library (`tests/vectors/`).

use crate::amount::Amount;
use crate::par;
use lode_proto::EvmAddress;
use lode_proto::evm::keccak256;
use serde::{Deserialize, Serialize};

/// The leaf encoding of claim trees.
pub const LEAF_ENCODING: [&str; 2] = ["address", "uint256"];

/// The dump format name.
pub const FORMAT: &str = "standard-v1";

/// Why a tree could not be built or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("a Merkle tree needs at least one leaf")]
    Empty,
    #[error("tree dump is invalid: {0}")]
    InvalidDump(String),
}

/// `keccak256(keccak256(abi.encode(address, uint256)))`.
pub fn leaf_hash(address: &EvmAddress, amount: Amount) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[12..32].copy_from_slice(&address.0);
    buf[48..64].copy_from_slice(&amount.to_be_bytes());
    keccak256(&keccak256(&buf))
}

/// `keccak256(sorted(a, b))`.
pub fn node_hash(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    if a <= b {
        buf[..32].copy_from_slice(a);
        buf[32..].copy_from_slice(b);
    } else {
        buf[..32].copy_from_slice(b);
        buf[32..].copy_from_slice(a);
    }
    keccak256(&buf)
}

/// Recomputes the root from a leaf and its proof (OpenZeppelin `processProof`).
pub fn process_proof(leaf: [u8; 32], proof: &[[u8; 32]]) -> [u8; 32] {
    proof.iter().fold(leaf, |acc, p| node_hash(&acc, p))
}

/// Whether `proof` proves (address, amount) under `root`.
pub fn verify(root: &[u8; 32], address: &EvmAddress, amount: Amount, proof: &[[u8; 32]]) -> bool {
    process_proof(leaf_hash(address, amount), proof) == *root
}

/// `0x`-prefixed lower-case hex.
pub fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A built tree over (address, amount) values.
#[derive(Debug, Clone)]
pub struct StandardMerkleTree {
    tree: Vec<[u8; 32]>,
    values: Vec<(EvmAddress, Amount)>,
    tree_index: Vec<usize>,
    sorted_by_address: bool,
}

/// The `standard-v1` JSON dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    pub format: String,
    #[serde(rename = "leafEncoding")]
    pub leaf_encoding: Vec<String>,
    pub tree: Vec<String>,
    pub values: Vec<DumpValue>,
}

/// One value of a dump: `{"value": [address, amount], "treeIndex": i}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpValue {
    pub value: (String, String),
    #[serde(rename = "treeIndex")]
    pub tree_index: usize,
}

/// Below this many leaves, hashing runs on one thread (small in unit tests so
/// that they exercise the parallel paths quickly).
const PARALLEL_MIN: usize = if cfg!(test) { 64 } else { 1 << 14 };

impl StandardMerkleTree {
    /// Builds the tree like `StandardMerkleTree.of(values, ["address","uint256"])`
    /// (leaves sorted by hash). Values keep their order in the dump.
    pub fn of(values: Vec<(EvmAddress, Amount)>) -> Result<Self, MerkleError> {
        if values.is_empty() {
            return Err(MerkleError::Empty);
        }
        let leaves: Vec<[u8; 32]> = par::map(&values, PARALLEL_MIN, |(a, v)| leaf_hash(a, *v));
        Ok(Self::from_leaves(values, leaves))
    }

    /// Like [`StandardMerkleTree::of`], reusing the leaf hashes of `prev` for
    /// every (address, amount) it already held: only new or changed values are
    /// hashed (both value lists must be sorted by address, as claim trees are;
    /// otherwise everything is hashed). The result is identical to `of`.
    pub fn of_reusing(
        values: Vec<(EvmAddress, Amount)>,
        prev: Option<&StandardMerkleTree>,
    ) -> Result<Self, MerkleError> {
        let Some(prev) = prev.filter(|p| p.sorted_by_address) else {
            return Self::of(values);
        };
        if values.is_empty() {
            return Err(MerkleError::Empty);
        }
        if !values.windows(2).all(|w| w[0].0 < w[1].0) {
            return Self::of(values);
        }
        let mut leaves = vec![[0u8; 32]; values.len()];
        let mut todo = Vec::new();
        let mut j = 0;
        for (i, (a, v)) in values.iter().enumerate() {
            while j < prev.values.len() && prev.values[j].0 < *a {
                j += 1;
            }
            if j < prev.values.len() && prev.values[j] == (*a, *v) {
                leaves[i] = prev.tree[prev.tree_index[j]];
            } else {
                todo.push(i);
            }
        }
        let fresh = par::map(&todo, PARALLEL_MIN, |i| {
            let (a, v) = &values[*i];
            leaf_hash(a, *v)
        });
        for (i, h) in todo.into_iter().zip(fresh) {
            leaves[i] = h;
        }
        Ok(Self::from_leaves(values, leaves))
    }

    fn from_leaves(values: Vec<(EvmAddress, Amount)>, leaves: Vec<[u8; 32]>) -> Self {
        let n = values.len();
        let mut order: Vec<([u8; 32], u32)> = leaves
            .into_iter()
            .enumerate()
            .map(|(i, h)| (h, i as u32))
            .collect();
        // Hash, then original index: the same order as the library's stable sort.
        order.sort_unstable();
        let len = 2 * n - 1;
        let mut tree = vec![[0u8; 32]; len];
        let mut tree_index = vec![0usize; n];
        for (i, (h, vi)) in order.iter().enumerate() {
            tree[len - 1 - i] = *h;
            tree_index[*vi as usize] = len - 1 - i;
        }
        build_internal(&mut tree, n);
        let sorted_by_address = values.windows(2).all(|w| w[0].0 < w[1].0);
        Self {
            tree,
            values,
            tree_index,
            sorted_by_address,
        }
    }

    pub fn root(&self) -> [u8; 32] {
        self.tree[0]
    }

    /// Number of values (leaves).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values in dump order.
    pub fn values(&self) -> &[(EvmAddress, Amount)] {
        &self.values
    }

    /// Index of the value for `address` (binary search when values are sorted
    /// by address, as in ledger claim trees).
    pub fn find(&self, address: &EvmAddress) -> Option<usize> {
        if self.sorted_by_address {
            self.values.binary_search_by(|(a, _)| a.cmp(address)).ok()
        } else {
            self.values.iter().position(|(a, _)| a == address)
        }
    }

    /// Proof of value `index` (like `tree.getProof(index)`).
    pub fn proof(&self, index: usize) -> Option<Vec<[u8; 32]>> {
        let mut i = *self.tree_index.get(index)?;
        let mut proof = Vec::with_capacity(usize::BITS as usize);
        while i > 0 {
            let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
            proof.push(self.tree[sibling]);
            i = (i - 1) / 2;
        }
        Some(proof)
    }

    /// Writes the proof of value `index` into `out` (cleared first), without allocating.
    pub fn proof_into(&self, index: usize, out: &mut Vec<[u8; 32]>) -> bool {
        out.clear();
        let Some(&start) = self.tree_index.get(index) else {
            return false;
        };
        let mut i = start;
        while i > 0 {
            let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
            out.push(self.tree[sibling]);
            i = (i - 1) / 2;
        }
        true
    }

    /// Calls `f(value_index, proof)` for every value, walking the leaves in
    /// tree order so that consecutive proofs share their upper path (cache
    /// friendly: publishing every proof of a large tree costs little more
    /// than copying them).
    pub fn for_each_proof(&self, mut f: impl FnMut(usize, &[[u8; 32]])) {
        let n = self.values.len();
        let mut value_of = vec![0usize; n];
        let first_leaf = self.tree.len() - n;
        for (vi, ti) in self.tree_index.iter().enumerate() {
            value_of[ti - first_leaf] = vi;
        }
        let mut buf = Vec::with_capacity(usize::BITS as usize);
        for (k, vi) in value_of.iter().enumerate() {
            buf.clear();
            let mut i = first_leaf + k;
            while i > 0 {
                let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
                buf.push(self.tree[sibling]);
                i = (i - 1) / 2;
            }
            f(*vi, &buf);
        }
    }

    /// The `standard-v1` dump.
    pub fn dump(&self) -> Dump {
        Dump {
            format: FORMAT.to_string(),
            leaf_encoding: LEAF_ENCODING.iter().map(|s| s.to_string()).collect(),
            tree: self.tree.iter().map(|h| hex0x(h)).collect(),
            values: self
                .values
                .iter()
                .zip(&self.tree_index)
                .map(|((a, v), ti)| DumpValue {
                    value: (a.to_checksummed(), v.to_string()),
                    tree_index: *ti,
                })
                .collect(),
        }
    }

    /// The dump as compact JSON, byte-identical to `JSON.stringify(tree.dump())`.
    pub fn dump_json(&self) -> String {
        serde_json::to_string(&self.dump()).unwrap_or_default()
    }

    /// Loads and fully validates a dump (like `StandardMerkleTree.load`):
    /// every node must hash from its children and every value to its leaf.
    pub fn load(dump: &Dump) -> Result<Self, MerkleError> {
        let bad = |m: &str| MerkleError::InvalidDump(m.to_string());
        if dump.format != FORMAT {
            return Err(bad("unknown format"));
        }
        if dump.leaf_encoding != LEAF_ENCODING {
            return Err(bad("leaf encoding must be [\"address\",\"uint256\"]"));
        }
        let mut tree = Vec::with_capacity(dump.tree.len());
        for h in &dump.tree {
            let s = h.strip_prefix("0x").ok_or_else(|| bad("node without 0x"))?;
            let mut b = [0u8; 32];
            hex::decode_to_slice(s, &mut b).map_err(|_| bad("node is not 32 bytes of hex"))?;
            tree.push(b);
        }
        if tree.is_empty() || dump.values.is_empty() || tree.len() != 2 * dump.values.len() - 1 {
            return Err(bad("tree size does not match the number of values"));
        }
        for i in 0..tree.len() {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            if r < tree.len() {
                if tree[i] != node_hash(&tree[l], &tree[r]) {
                    return Err(bad("a node does not hash from its children"));
                }
            } else if l < tree.len() {
                return Err(bad("malformed tree shape"));
            }
        }
        let mut values = Vec::with_capacity(dump.values.len());
        let mut tree_index = Vec::with_capacity(dump.values.len());
        for v in &dump.values {
            let a: EvmAddress = v.value.0.parse().map_err(|_| bad("bad address"))?;
            let amount: Amount = v.value.1.parse().map_err(|_| bad("bad amount"))?;
            let ti = v.tree_index;
            if ti >= tree.len() || 2 * ti + 1 < tree.len() || tree[ti] != leaf_hash(&a, amount) {
                return Err(bad("a value does not match its leaf"));
            }
            values.push((a, amount));
            tree_index.push(ti);
        }
        let sorted_by_address = values.windows(2).all(|w| w[0].0 < w[1].0);
        Ok(Self {
            tree,
            values,
            tree_index,
            sorted_by_address,
        })
    }
}

/// Fills internal nodes `0..n-1` of a heap-shaped tree whose leaves are set,
/// level by level from the deepest, each level in parallel when large.
fn build_internal(tree: &mut [[u8; 32]], n: usize) {
    if n < 2 {
        return;
    }
    let internal = n - 1; // nodes 0..internal are internal
    let max_depth = usize::BITS - 1 - internal.leading_zeros(); // depth of node internal-1
    for d in (0..=max_depth).rev() {
        let lo = (1usize << d) - 1;
        if lo >= internal {
            continue;
        }
        let hi = ((1usize << (d + 1)) - 2).min(internal - 1);
        let (head, children) = tree.split_at_mut(hi + 1);
        let level = &mut head[lo..=hi];
        let child_base = hi + 1;
        par::for_each_chunk_mut(level, PARALLEL_MIN, |off, chunk| {
            for (j, node) in chunk.iter_mut().enumerate() {
                let i = lo + off + j;
                let l = 2 * i + 1 - child_base;
                *node = node_hash(&children[l], &children[l + 1]);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> EvmAddress {
        EvmAddress([i; 20])
    }

    /// The straightforward sequential construction, as in the library.
    fn reference_tree(values: &[(EvmAddress, Amount)]) -> Vec<[u8; 32]> {
        let mut leaves: Vec<[u8; 32]> = values.iter().map(|(a, v)| leaf_hash(a, *v)).collect();
        leaves.sort();
        let len = 2 * leaves.len() - 1;
        let mut tree = vec![[0u8; 32]; len];
        for (i, l) in leaves.iter().enumerate() {
            tree[len - 1 - i] = *l;
        }
        for i in (0..len - leaves.len()).rev() {
            tree[i] = node_hash(&tree[2 * i + 1], &tree[2 * i + 2]);
        }
        tree
    }

    #[test]
    fn matches_reference_and_proofs_verify() {
        for n in [1usize, 2, 3, 4, 5, 7, 8, 9, 31, 100] {
            let values: Vec<_> = (0..n).map(|i| (addr(i as u8), i as u128 * 7)).collect();
            let t = StandardMerkleTree::of(values.clone()).unwrap();
            assert_eq!(t.tree, reference_tree(&values), "n = {n}");
            for (i, (a, v)) in values.iter().enumerate() {
                let p = t.proof(i).unwrap();
                assert!(verify(&t.root(), a, *v, &p));
                assert!(!verify(&t.root(), a, *v + 1, &p));
                assert_eq!(t.find(a), Some(i));
            }
            let loaded = StandardMerkleTree::load(&t.dump()).unwrap();
            assert_eq!(loaded.root(), t.root());
        }
        assert_eq!(
            StandardMerkleTree::of(vec![]).unwrap_err(),
            MerkleError::Empty
        );
    }

    #[test]
    fn parallel_build_matches_reference_on_a_large_tree() {
        let n = PARALLEL_MIN * 2 + 3;
        let values: Vec<_> = (0..n)
            .map(|i| {
                let mut a = [0u8; 20];
                a[..8].copy_from_slice(&(i as u64).to_be_bytes());
                (EvmAddress(a), i as u128)
            })
            .collect();
        let t = StandardMerkleTree::of(values.clone()).unwrap();
        assert_eq!(t.tree, reference_tree(&values));
    }

    #[test]
    fn reusing_leaves_gives_the_same_tree() {
        let base: Vec<_> = (0..50u8)
            .map(|i| (addr(2 * i), u128::from(i) + 1))
            .collect();
        let prev = StandardMerkleTree::of(base.clone()).unwrap();
        let mut next = base.clone();
        next[3].1 += 10; // changed amount
        next.push((addr(7), 9)); // new address in the middle
        next.push((addr(201), 1)); // new address at the end
        next.remove(0); // gone (never happens for claims, still handled)
        next.sort();
        let fresh = StandardMerkleTree::of(next.clone()).unwrap();
        let reused = StandardMerkleTree::of_reusing(next, Some(&prev)).unwrap();
        assert_eq!(reused.tree, fresh.tree);
        assert_eq!(reused.tree_index, fresh.tree_index);
        assert_eq!(reused.dump_json(), fresh.dump_json());
    }

    #[test]
    fn for_each_proof_covers_every_value_once() {
        let values: Vec<_> = (0..37u8).map(|i| (addr(i), u128::from(i) * 3)).collect();
        let t = StandardMerkleTree::of(values.clone()).unwrap();
        let mut seen = vec![false; values.len()];
        t.for_each_proof(|i, p| {
            assert!(!seen[i]);
            seen[i] = true;
            assert_eq!(p, t.proof(i).unwrap().as_slice());
            assert!(verify(&t.root(), &values[i].0, values[i].1, p));
        });
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn load_rejects_tampered_dumps() {
        let t = StandardMerkleTree::of(vec![(addr(1), 5), (addr(2), 6), (addr(3), 7)]).unwrap();
        let mut d = t.dump();
        d.values[0].value.1 = "6".into();
        assert!(StandardMerkleTree::load(&d).is_err());
        let mut d = t.dump();
        d.tree[1] = hex0x(&[0u8; 32]);
        assert!(StandardMerkleTree::load(&d).is_err());
        let mut d = t.dump();
        d.format = "standard-v2".into();
        assert!(StandardMerkleTree::load(&d).is_err());
    }
}
