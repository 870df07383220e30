//! LtHash: an incremental, order-independent hash of a set of state items.
//!
//! Construction (Bellare–Micciancio's lattice hash as specified for
//! production use by Lewi et al., "Securing Update Propagation with
//! Homomorphic Hashing", 2019, parameters n = 1024, q = 2^16): each item
//! `x` expands to 1024 lanes of 16 bits, `H(x) = BLAKE3-XOF(x)[0..2048]` read
//! as little-endian `u16`s; the hash of a set is the lane-wise sum modulo
//! 2^16 of the hashes of its items. Adding an item adds its vector, removing
//! it subtracts it, so the ledger updates the state commitment in
//! O(changed items) per block, and the result depends only on the final set,
//! not on the order or history of changes.
//!
//! Items are `tag ‖ canonical(key) ‖ canonical(value)` (see `state.rs`).

use sha2::{Digest, Sha256};

/// Number of 16-bit lanes.
pub const LANES: usize = 1024;

/// An LtHash accumulator.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash {
    lanes: Box<[u16; LANES]>,
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.digest().to_hex())
    }
}

impl Default for LtHash {
    fn default() -> Self {
        Self::new()
    }
}

impl LtHash {
    /// The hash of the empty set (all lanes zero).
    pub fn new() -> Self {
        Self {
            lanes: Box::new([0u16; LANES]),
        }
    }

    /// The 1024-lane vector of one item.
    pub fn item(bytes: &[u8]) -> Box<[u16; LANES]> {
        let mut out = [0u8; LANES * 2];
        let mut h = blake3::Hasher::new();
        h.update(bytes);
        h.finalize_xof().fill(&mut out);
        let mut lanes = Box::new([0u16; LANES]);
        for (i, l) in lanes.iter_mut().enumerate() {
            *l = u16::from_le_bytes([out[2 * i], out[2 * i + 1]]);
        }
        lanes
    }

    /// Adds one item.
    pub fn insert(&mut self, bytes: &[u8]) {
        let v = Self::item(bytes);
        self.add_vector(&v);
    }

    /// Removes one item (the inverse of [`LtHash::insert`]).
    pub fn remove(&mut self, bytes: &[u8]) {
        let v = Self::item(bytes);
        self.sub_vector(&v);
    }

    pub fn add_vector(&mut self, v: &[u16; LANES]) {
        for (a, b) in self.lanes.iter_mut().zip(v.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    pub fn sub_vector(&mut self, v: &[u16; LANES]) {
        for (a, b) in self.lanes.iter_mut().zip(v.iter()) {
            *a = a.wrapping_sub(*b);
        }
    }

    /// Combines another accumulator (set union of disjoint sets).
    pub fn add(&mut self, other: &LtHash) {
        self.add_vector(&other.lanes);
    }

    /// The lanes as 2048 little-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LANES * 2);
        for l in self.lanes.iter() {
            out.extend_from_slice(&l.to_le_bytes());
        }
        out
    }

    /// Rebuilds an accumulator from [`LtHash::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LANES * 2 {
            return None;
        }
        let mut lanes = Box::new([0u16; LANES]);
        for (i, l) in lanes.iter_mut().enumerate() {
            *l = u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]);
        }
        Some(Self { lanes })
    }

    /// A 32-byte digest of the accumulator: sha256 of its bytes.
    pub fn digest(&self) -> lode_proto::Hash32 {
        lode_proto::Hash32(Sha256::digest(self.to_bytes()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_invertible() {
        let mut a = LtHash::new();
        a.insert(b"x");
        a.insert(b"y");
        a.insert(b"z");
        let mut b = LtHash::new();
        b.insert(b"z");
        b.insert(b"x");
        b.insert(b"y");
        assert_eq!(a, b);
        b.remove(b"y");
        assert_ne!(a, b);
        b.insert(b"y");
        assert_eq!(a, b);
        let mut c = LtHash::new();
        c.insert(b"q");
        c.remove(b"q");
        assert_eq!(c, LtHash::new());
        assert_eq!(LtHash::from_bytes(&a.to_bytes()).unwrap(), a);
        // A multiset, not a set: inserting twice differs from once.
        let mut d = LtHash::new();
        d.insert(b"x");
        let once = d.clone();
        d.insert(b"x");
        assert_ne!(d, once);
    }
}
