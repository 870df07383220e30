//! Blocks: a signed header that chains to its predecessor and commits to its
//! entries (Merkle root) and to the state after applying them (state root).
//!
//! ```text
//! header     = { version, height, timestamp_ms, prev_hash, entries_root,
//!                entry_count, state_root, validator }
//! block_hash = sha256("lode/ledger/block/v1" ‖ 0x00 ‖ canonical(header))
//! signature  = Ed25519(validator, tagged "lode/ledger/block/v1", block_hash)
//! stored     = canonical(Block { header, signature, entries })
//! ```
//!
//! `entries_root` is the RFC 6962 (Certificate Transparency) Merkle tree hash
//! over the canonical bytes of the entries: leaf = sha256(0x00 ‖ entry), node =
//! sha256(0x01 ‖ left ‖ right), the left subtree holding the largest power of
//! two smaller than n leaves; the empty tree hashes to sha256("").

use crate::entry::Entry;
use lode_proto::canonical::{self, CanonicalError};
use lode_proto::{Did, Hash32, Keypair, Signature};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Block format version.
pub const BLOCK_VERSION: u16 = 1;

/// Domain tag of block hashes and block signatures.
pub const BLOCK_TAG: &str = "lode/ledger/block/v1";

/// Most entries a block may hold (a consensus rule: larger blocks are invalid).
pub const MAX_BLOCK_ENTRIES: usize = 200_000;

/// What a block commits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub version: u16,
    pub height: u64,
    /// Validator's clock when sealing, ms since the Unix epoch; never decreases.
    pub timestamp_ms: u64,
    /// Hash of block `height - 1` (all zero for the genesis block).
    pub prev_hash: Hash32,
    pub entries_root: Hash32,
    pub entry_count: u32,
    /// State root after applying this block (see [`crate::State::state_root`]).
    pub state_root: Hash32,
    pub validator: Did,
}

/// A sealed block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub signature: Signature,
    pub entries: Vec<Entry>,
}

impl BlockHeader {
    /// The block hash (what the next block's `prev_hash` holds and the validator signs).
    pub fn hash(&self) -> Hash32 {
        // Encoding a header (integers, fixed arrays) cannot fail.
        let bytes = canonical::encode(self).unwrap_or_default();
        Hash32::sha256_parts(&[BLOCK_TAG.as_bytes(), &[0], &bytes])
    }
}

impl Block {
    /// Builds and signs a block over already-encoded entries.
    pub fn seal(header: BlockHeader, entries: Vec<Entry>, key: &Keypair) -> Block {
        let signature = key.sign_tagged(BLOCK_TAG, header.hash().as_bytes());
        Block {
            header,
            signature,
            entries,
        }
    }

    pub fn hash(&self) -> Hash32 {
        self.header.hash()
    }

    /// The epochs this block closes.
    pub fn epochs_closed(&self) -> Vec<u64> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::EpochClose(c) => Some(c.epoch),
                _ => None,
            })
            .collect()
    }

    /// Whether the signature is the header validator's over the block hash.
    pub fn signature_valid(&self) -> bool {
        self.header
            .validator
            .verify_tagged(BLOCK_TAG, self.hash().as_bytes(), &self.signature)
    }

    /// Canonical bytes (what the block store holds).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical::encode(self)
    }

    /// Parses stored bytes, rejecting any non-canonical spelling.
    pub fn from_bytes(bytes: &[u8]) -> Result<Block, CanonicalError> {
        canonical::decode(bytes)
    }
}

/// Canonical bytes of each entry (for hashing and storage).
pub fn encode_entries(entries: &[Entry]) -> Result<Vec<Vec<u8>>, CanonicalError> {
    entries.iter().map(canonical::encode).collect()
}

/// RFC 6962 leaf hash.
pub fn leaf_hash(entry_bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry_bytes);
    h.finalize().into()
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// RFC 6962 Merkle tree hash over leaf hashes.
pub fn merkle_root_of_leaves(leaves: &[[u8; 32]]) -> Hash32 {
    fn mth(l: &[[u8; 32]]) -> [u8; 32] {
        match l.len() {
            1 => l[0],
            n => {
                let k = largest_power_of_two_below(n);
                node_hash(&mth(&l[..k]), &mth(&l[k..]))
            }
        }
    }
    if leaves.is_empty() {
        return Hash32(Sha256::digest(b"").into());
    }
    Hash32(mth(leaves))
}

fn largest_power_of_two_below(n: usize) -> usize {
    // n >= 2: the largest power of two strictly less than n.
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Entries root over canonical entry bytes.
pub fn entries_root(encoded: &[Vec<u8>]) -> Hash32 {
    let leaves: Vec<[u8; 32]> = encoded.iter().map(|b| leaf_hash(b)).collect();
    merkle_root_of_leaves(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6962_shape() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let c = leaf_hash(b"c");
        assert_eq!(merkle_root_of_leaves(&[a]).0, a);
        assert_eq!(merkle_root_of_leaves(&[a, b]).0, node_hash(&a, &b));
        // Three leaves: the left subtree takes two.
        assert_eq!(
            merkle_root_of_leaves(&[a, b, c]).0,
            node_hash(&node_hash(&a, &b), &c)
        );
        // Leaves and nodes are domain-separated: a 64-byte leaf equal to a
        // node's children does not collide with the node.
        let mut both = Vec::new();
        both.extend_from_slice(&a);
        both.extend_from_slice(&b);
        assert_ne!(leaf_hash(&both), node_hash(&a, &b));
        // Known vector: empty tree = sha256("").
        assert_eq!(
            merkle_root_of_leaves(&[]).to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sign_and_detect_tampering() {
        let k = Keypair::from_secret_bytes(&[5; 32]);
        let header = BlockHeader {
            version: BLOCK_VERSION,
            height: 1,
            timestamp_ms: 2,
            prev_hash: Hash32::sha256(b"p"),
            entries_root: entries_root(&[]),
            entry_count: 0,
            state_root: Hash32::sha256(b"s"),
            validator: k.did(),
        };
        let b = Block::seal(header, vec![], &k);
        assert!(b.signature_valid());
        let bytes = b.to_bytes().unwrap();
        assert_eq!(Block::from_bytes(&bytes).unwrap(), b);
        let mut t = b.clone();
        t.header.timestamp_ms += 1;
        assert!(!t.signature_valid());
    }
}
