//! Audit challenges, their answers and the detection math.
//!
//! A challenge names a share and a seed; the chunk indices are derived from
//! (seed, file, share index, chunk count) with BLAKE3's extendable output, so
//! the holder cannot choose them and anyone holding the seed (recorded with a
//! failed audit's evidence) can re-derive and re-check them. The answer is, for
//! each index in order, the chunk and its Merkle path to the share's root.

use crate::merkle::{self, ProofError};
use lode_proto::Hash32;
use serde::{Deserialize, Serialize};

/// Most chunks one challenge may ask for (bounds answers: 256 × 4 KiB = 1 MiB).
pub const MAX_CHALLENGE_CHUNKS: u32 = 256;

/// One audit challenge of one share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub file: Hash32,
    pub share: u16,
    pub seed: Hash32,
    /// Chunks asked for.
    pub count: u32,
}

/// One challenged chunk with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkProof {
    pub index: u64,
    #[serde(with = "lode_proto::wire::bytes_hex")]
    pub chunk: Vec<u8>,
    pub path: Vec<Hash32>,
}

/// Why an answer fails its audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("challenge asks for {0} chunks; at most {MAX_CHALLENGE_CHUNKS}")]
    TooManyChunks(u32),
    #[error("answer has {got} proofs for {asked} challenged chunks")]
    WrongCount { asked: usize, got: usize },
    #[error("proof {position} is for chunk {got}; chunk {asked} was challenged")]
    WrongIndex {
        position: usize,
        asked: u64,
        got: u64,
    },
    #[error(transparent)]
    Proof(#[from] ProofError),
}

impl Challenge {
    /// The challenged chunk indices of a share with `chunks` chunks (empty
    /// when the share is empty).
    pub fn indices(&self, chunks: u64) -> Vec<u64> {
        if chunks == 0 {
            return Vec::new();
        }
        let mut h = blake3::Hasher::new();
        h.update(b"lode-storage/challenge/v1");
        h.update(&self.seed.0);
        h.update(&self.file.0);
        h.update(&self.share.to_le_bytes());
        h.update(&chunks.to_le_bytes());
        let mut xof = h.finalize_xof();
        (0..self.count.min(MAX_CHALLENGE_CHUNKS))
            .map(|_| {
                let mut b = [0u8; 8];
                xof.fill(&mut b);
                // Modulo bias is below chunks / 2^64: negligible.
                u64::from_le_bytes(b) % chunks
            })
            .collect()
    }

    /// Checks an answer against the share's root and length.
    pub fn check(
        &self,
        root: &Hash32,
        share_len: u64,
        chunk_bytes: u32,
        answer: &[ChunkProof],
    ) -> Result<(), AuditError> {
        if self.count > MAX_CHALLENGE_CHUNKS {
            return Err(AuditError::TooManyChunks(self.count));
        }
        let want = self.indices(merkle::chunk_count(share_len, chunk_bytes));
        if answer.len() != want.len() {
            return Err(AuditError::WrongCount {
                asked: want.len(),
                got: answer.len(),
            });
        }
        for (position, (asked, p)) in want.iter().zip(answer).enumerate() {
            if p.index != *asked {
                return Err(AuditError::WrongIndex {
                    position,
                    asked: *asked,
                    got: p.index,
                });
            }
            merkle::verify(root, share_len, chunk_bytes, p.index, &p.chunk, &p.path)?;
        }
        Ok(())
    }
}

/// Probability that a holder who lost (or deleted) a fraction `lost` of a
/// share's chunks passes `challenges` uniformly drawn chunk challenges:
/// `(1 − lost)^challenges`.
pub fn pass_probability(lost: f64, challenges: u64) -> f64 {
    (1.0 - lost.clamp(0.0, 1.0)).powf(challenges as f64)
}

/// Probability that such a holder is caught within `challenges` challenges.
pub fn detection_probability(lost: f64, challenges: u64) -> f64 {
    1.0 - pass_probability(lost, challenges)
}

/// Fewest challenges that catch a holder who lost a fraction `lost` with
/// probability at least `confidence` (`None` when `lost` is 0 or
/// `confidence` is not below 1).
pub fn challenges_needed(lost: f64, confidence: f64) -> Option<u64> {
    if !(lost > 0.0 && lost <= 1.0 && (0.0..1.0).contains(&confidence)) {
        return None;
    }
    if lost >= 1.0 {
        return Some(1);
    }
    Some(
        ((1.0 - confidence).ln() / (1.0 - lost).ln())
            .ceil()
            .max(1.0) as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_math() {
        assert!((pass_probability(0.1, 1) - 0.9).abs() < 1e-12);
        assert!((detection_probability(0.01, 64) - (1.0 - 0.99f64.powi(64))).abs() < 1e-12);
        assert_eq!(challenges_needed(0.5, 0.99), Some(7));
        assert_eq!(challenges_needed(0.0, 0.99), None);
        assert_eq!(challenges_needed(1.0, 0.99), Some(1));
        // 1 % lost, 64 challenges an hour: caught within the hour with 47 %,
        // within a day with ~100 %.
        let hour = detection_probability(0.01, 64);
        assert!(hour > 0.47 && hour < 0.48, "{hour}");
        assert!(detection_probability(0.01, 64 * 24) > 0.999_999);
    }

    #[test]
    fn indices_are_deterministic_and_in_range() {
        let c = Challenge {
            file: Hash32([1; 32]),
            share: 3,
            seed: Hash32([9; 32]),
            count: 16,
        };
        let a = c.indices(100);
        assert_eq!(a, c.indices(100));
        assert_eq!(a.len(), 16);
        assert!(a.iter().all(|i| *i < 100));
        let other = Challenge {
            share: 4,
            ..c.clone()
        };
        assert_ne!(a, other.indices(100));
        assert!(c.indices(0).is_empty());
    }
}
