//! A BLAKE3 Merkle tree over the fixed-size chunks of a share.
//!
//! * leaf `i` = BLAKE3(`0x00` ‖ i as u64 LE ‖ chunk `i`) — chunks are
//!   `chunk_bytes` long except the last, which holds the rest;
//! * inner node = BLAKE3(`0x01` ‖ left ‖ right); a level with an odd count
//!   promotes its last node unchanged;
//! * root = BLAKE3(`0x02` ‖ share length as u64 LE ‖ chunk_bytes as u32 LE ‖ top)
//!   (the top of an empty share is 32 zero bytes).
//!
//! Binding the index into the leaf stops a holder from answering a challenge for
//! chunk `i` with another chunk; binding the length into the root fixes the
//! number of leaves, so the shape of every proof is known to the verifier.

use lode_proto::Hash32;

/// Default chunk size: 4 KiB.
pub const DEFAULT_CHUNK_BYTES: u32 = 4096;
/// Bounds on the chunk size.
pub const MIN_CHUNK_BYTES: u32 = 64;
pub const MAX_CHUNK_BYTES: u32 = 1 << 20;

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("chunk index {index} is out of range: the share has {chunks} chunks")]
    IndexOutOfRange { index: u64, chunks: u64 },
    #[error("chunk {index} is {len} bytes; it must be {expected}")]
    ChunkLength {
        index: u64,
        len: usize,
        expected: u64,
    },
    #[error("proof of chunk {index} has {len} hashes; it must have {expected}")]
    PathLength {
        index: u64,
        len: usize,
        expected: usize,
    },
    #[error("proof of chunk {index} does not lead to the share's root")]
    RootMismatch { index: u64 },
}

/// Number of chunks of a share of `share_len` bytes.
pub fn chunk_count(share_len: u64, chunk_bytes: u32) -> u64 {
    share_len.div_ceil(u64::from(chunk_bytes.max(1)))
}

/// Expected length of chunk `index`.
pub fn chunk_len(share_len: u64, chunk_bytes: u32, index: u64) -> u64 {
    let c = u64::from(chunk_bytes.max(1));
    share_len.saturating_sub(index * c).min(c)
}

pub fn leaf_hash(index: u64, chunk: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[0]);
    h.update(&index.to_le_bytes());
    h.update(chunk);
    Hash32(*h.finalize().as_bytes())
}

fn node_hash(l: &Hash32, r: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[1]);
    h.update(&l.0);
    h.update(&r.0);
    Hash32(*h.finalize().as_bytes())
}

fn root_hash(share_len: u64, chunk_bytes: u32, top: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(&[2]);
    h.update(&share_len.to_le_bytes());
    h.update(&chunk_bytes.to_le_bytes());
    h.update(&top.0);
    Hash32(*h.finalize().as_bytes())
}

fn next_level(level: &[Hash32]) -> Vec<Hash32> {
    level
        .chunks(2)
        .map(|p| match p {
            [l, r] => node_hash(l, r),
            [one] => *one,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// The full tree of one share (every level, leaves first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    share_len: u64,
    chunk_bytes: u32,
    levels: Vec<Vec<Hash32>>,
}

impl Tree {
    /// Hashes every chunk of `share`.
    pub fn build(share: &[u8], chunk_bytes: u32) -> Self {
        let leaves = share
            .chunks(chunk_bytes.max(1) as usize)
            .enumerate()
            .map(|(i, c)| leaf_hash(i as u64, c))
            .collect();
        Self::from_leaves(share.len() as u64, chunk_bytes, leaves)
    }

    /// The tree from stored leaf hashes (a holder keeps them beside the share,
    /// so answering a challenge reads only the challenged chunks).
    pub fn from_leaves(share_len: u64, chunk_bytes: u32, leaves: Vec<Hash32>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let next = next_level(levels.last().map(Vec::as_slice).unwrap_or_default());
            levels.push(next);
        }
        Self {
            share_len,
            chunk_bytes,
            levels,
        }
    }

    pub fn leaves(&self) -> &[Hash32] {
        &self.levels[0]
    }

    pub fn root(&self) -> Hash32 {
        let top = self
            .levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default();
        root_hash(self.share_len, self.chunk_bytes, &top)
    }

    /// Sibling hashes from leaf `index` up (levels where the node is promoted
    /// contribute none).
    pub fn path(&self, index: u64) -> Result<Vec<Hash32>, ProofError> {
        let chunks = self.levels[0].len() as u64;
        if index >= chunks {
            return Err(ProofError::IndexOutOfRange { index, chunks });
        }
        let mut i = index as usize;
        let mut path = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            let sib = i ^ 1;
            if sib < level.len() {
                path.push(level[sib]);
            }
            i /= 2;
        }
        Ok(path)
    }
}

/// Root of a share (hashes every chunk).
pub fn share_root(share: &[u8], chunk_bytes: u32) -> Hash32 {
    Tree::build(share, chunk_bytes).root()
}

/// Checks that `chunk` is chunk `index` of the share with root `root`.
pub fn verify(
    root: &Hash32,
    share_len: u64,
    chunk_bytes: u32,
    index: u64,
    chunk: &[u8],
    path: &[Hash32],
) -> Result<(), ProofError> {
    let chunks = chunk_count(share_len, chunk_bytes);
    if index >= chunks {
        return Err(ProofError::IndexOutOfRange { index, chunks });
    }
    let expected = chunk_len(share_len, chunk_bytes, index);
    if chunk.len() as u64 != expected {
        return Err(ProofError::ChunkLength {
            index,
            len: chunk.len(),
            expected,
        });
    }
    let mut h = leaf_hash(index, chunk);
    let mut i = index;
    let mut count = chunks;
    let mut used = 0usize;
    while count > 1 {
        let sib = i ^ 1;
        if sib < count {
            let s = path.get(used).ok_or(ProofError::PathLength {
                index,
                len: path.len(),
                expected: used + 1,
            })?;
            used += 1;
            h = if i.is_multiple_of(2) {
                node_hash(&h, s)
            } else {
                node_hash(s, &h)
            };
        }
        i /= 2;
        count = count.div_ceil(2);
    }
    if used != path.len() {
        return Err(ProofError::PathLength {
            index,
            len: path.len(),
            expected: used,
        });
    }
    if root_hash(share_len, chunk_bytes, &h) != *root {
        return Err(ProofError::RootMismatch { index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_proves_and_tampering_fails() {
        for len in [0u64, 1, 63, 64, 65, 64 * 7, 64 * 8 + 3] {
            let share: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let t = Tree::build(&share, 64);
            let root = t.root();
            for i in 0..chunk_count(len, 64) {
                let a = (i * 64) as usize;
                let b = (a + 64).min(share.len());
                let path = t.path(i).unwrap();
                verify(&root, len, 64, i, &share[a..b], &path).unwrap();
                let mut bad = share[a..b].to_vec();
                bad[0] ^= 1;
                assert_eq!(
                    verify(&root, len, 64, i, &bad, &path),
                    Err(ProofError::RootMismatch { index: i })
                );
            }
            assert!(verify(&root, len, 64, chunk_count(len, 64), &[], &[]).is_err());
        }
    }

    #[test]
    fn the_root_binds_the_length_and_chunk_size() {
        let share = vec![7u8; 128];
        assert_ne!(share_root(&share, 64), share_root(&share, 128));
        assert_ne!(share_root(&share, 64), share_root(&share[..127], 64));
    }
}
