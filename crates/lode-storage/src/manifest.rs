//! What a storage contract commits to: the file's layout, its content hash
//! and one Merkle root per share; its bounds; its price.

use crate::coding::{self, Layout};
use crate::merkle;
use lode_proto::Hash32;
use serde::{Deserialize, Serialize};

/// Milliseconds in an hour (storage is priced and credited per byte-hour).
pub const MS_PER_HOUR: u64 = 3_600_000;

/// Largest file a manifest may describe (the gateway's own limit is lower).
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// Longest storage term: ten years.
pub const MAX_TERM_HOURS: u64 = 10 * 366 * 24;

/// A stored file's commitments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Random, chosen by the requester; also the id of the contract's escrow.
    pub file: Hash32,
    pub size: u64,
    /// Shares that rebuild the file.
    pub k: u16,
    /// Shares stored.
    pub n: u16,
    pub shard_bytes: u32,
    pub chunk_bytes: u32,
    /// BLAKE3 of the file's bytes.
    pub content: Hash32,
    /// Merkle root of each share ([`crate::merkle`]), `n` of them.
    pub roots: Vec<Hash32>,
}

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Coding(#[from] coding::CodingError),
    #[error("file is {size} bytes; at most {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("file is empty")]
    Empty,
    #[error("chunk size {0} is out of bounds ({min}..={max}, even)", min = merkle::MIN_CHUNK_BYTES, max = merkle::MAX_CHUNK_BYTES)]
    ChunkBytes(u32),
    #[error("{got} share roots for {n} shares")]
    RootCount { got: usize, n: u16 },
    #[error("share {0}'s root does not match its bytes")]
    RootMismatch(usize),
    #[error("the file's bytes do not match its content hash")]
    ContentMismatch,
    #[error("storage term of {0} hours is out of bounds (1..={MAX_TERM_HOURS})")]
    Term(u64),
    #[error("price must be at least 1 base unit per byte-hour")]
    ZeroPrice,
    #[error("escrow overflows")]
    Overflow,
}

impl Manifest {
    /// Builds the manifest of `data` (encodes it; returns the shares too).
    pub fn build(
        file: Hash32,
        data: &[u8],
        k: u16,
        n: u16,
        shard_bytes: u32,
        chunk_bytes: u32,
    ) -> Result<(Manifest, Vec<Vec<u8>>), ManifestError> {
        let layout = Layout::new(data.len() as u64, k, n, shard_bytes)?;
        check_chunk(chunk_bytes)?;
        let shares = coding::encode(&layout, data)?;
        let roots = shares
            .iter()
            .map(|s| merkle::share_root(s, chunk_bytes))
            .collect();
        let m = Manifest {
            file,
            size: data.len() as u64,
            k,
            n,
            shard_bytes,
            chunk_bytes,
            content: Hash32(*blake3::hash(data).as_bytes()),
            roots,
        };
        Ok((m, shares))
    }

    pub fn layout(&self) -> Result<Layout, ManifestError> {
        Ok(Layout::new(self.size, self.k, self.n, self.shard_bytes)?)
    }

    pub fn share_len(&self) -> u64 {
        self.layout().map(|l| l.share_len()).unwrap_or(0)
    }

    /// Checks the manifest's own consistency and bounds (`max_size`: the
    /// largest file accepted, at most [`MAX_FILE_BYTES`]).
    pub fn validate(&self, max_size: u64) -> Result<Layout, ManifestError> {
        let max = max_size.min(MAX_FILE_BYTES);
        if self.size == 0 {
            return Err(ManifestError::Empty);
        }
        if self.size > max {
            return Err(ManifestError::TooLarge {
                size: self.size,
                max,
            });
        }
        let layout = self.layout()?;
        check_chunk(self.chunk_bytes)?;
        if self.roots.len() != usize::from(self.n) {
            return Err(ManifestError::RootCount {
                got: self.roots.len(),
                n: self.n,
            });
        }
        Ok(layout)
    }

    /// Checks that `data` is the file this manifest describes: content hash,
    /// and every share's root after encoding it again. Returns the shares.
    pub fn check_data(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, ManifestError> {
        let layout = self.layout()?;
        if data.len() as u64 != self.size || *blake3::hash(data).as_bytes() != self.content.0 {
            return Err(ManifestError::ContentMismatch);
        }
        let shares = coding::encode(&layout, data)?;
        for (i, s) in shares.iter().enumerate() {
            if self.roots.get(i) != Some(&merkle::share_root(s, self.chunk_bytes)) {
                return Err(ManifestError::RootMismatch(i));
            }
        }
        Ok(shares)
    }

    /// Checks one share's bytes against its root.
    pub fn check_share(&self, index: usize, share: &[u8]) -> Result<(), ManifestError> {
        if share.len() as u64 != self.share_len()
            || self.roots.get(index) != Some(&merkle::share_root(share, self.chunk_bytes))
        {
            return Err(ManifestError::RootMismatch(index));
        }
        Ok(())
    }

    /// Escrow a contract must lock: every byte of every share for the whole
    /// term, `n × share_len × term_hours × price_per_byte_hour`.
    pub fn required_escrow(
        &self,
        term_hours: u64,
        price_per_byte_hour: u128,
    ) -> Result<u128, ManifestError> {
        if term_hours == 0 || term_hours > MAX_TERM_HOURS {
            return Err(ManifestError::Term(term_hours));
        }
        if price_per_byte_hour == 0 {
            return Err(ManifestError::ZeroPrice);
        }
        let layout = self.layout()?;
        u128::from(layout.stored_bytes())
            .checked_mul(u128::from(term_hours))
            .and_then(|x| x.checked_mul(price_per_byte_hour))
            .ok_or(ManifestError::Overflow)
    }
}

fn check_chunk(c: u32) -> Result<(), ManifestError> {
    if !(merkle::MIN_CHUNK_BYTES..=merkle::MAX_CHUNK_BYTES).contains(&c) || !c.is_multiple_of(2) {
        return Err(ManifestError::ChunkBytes(c));
    }
    Ok(())
}

/// Byte-hours earned by holding `share_len` bytes for `ms` milliseconds, with
/// the rounding rule: whole byte-hours are credited, the remainder (in
/// byte-milliseconds, below one byte-hour) is carried to the next credit.
/// Returns `(byte_hours, carried byte-ms)`.
pub fn byte_hours(share_len: u64, ms: u64, carried: u128) -> (u64, u128) {
    let total = u128::from(share_len) * u128::from(ms) + carried;
    let h = total / u128::from(MS_PER_HOUR);
    let h64 = u64::try_from(h).unwrap_or(u64::MAX);
    (h64, total - u128::from(h64) * u128::from(MS_PER_HOUR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_validate_and_check() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let (m, shares) = Manifest::build(Hash32([5; 32]), &data, 2, 4, 512, 64).unwrap();
        m.validate(1 << 20).unwrap();
        assert_eq!(m.check_data(&data).unwrap(), shares);
        let mut bad = data.clone();
        bad[10] ^= 1;
        assert_eq!(m.check_data(&bad), Err(ManifestError::ContentMismatch));
        m.check_share(1, &shares[1]).unwrap();
        assert!(m.check_share(2, &shares[1]).is_err());
        assert!(matches!(
            m.validate(100),
            Err(ManifestError::TooLarge { .. })
        ));
        let mut short = m.clone();
        short.roots.pop();
        assert!(matches!(
            short.validate(1 << 20),
            Err(ManifestError::RootCount { .. })
        ));
        assert_eq!(
            m.required_escrow(2, 3).unwrap(),
            u128::from(m.share_len()) * 4 * 2 * 3
        );
        assert!(m.required_escrow(0, 3).is_err());
        assert!(m.required_escrow(1, 0).is_err());
    }

    #[test]
    fn byte_hours_carry_the_remainder() {
        // 1,000 bytes for 1 s = 1,000,000 byte-ms < 1 byte-hour: all carried.
        let (h, c) = byte_hours(1000, 1000, 0);
        assert_eq!((h, c), (0, 1_000_000));
        // After 3,600 such seconds exactly 1,000 byte-hours in total.
        let mut carried = 0;
        let mut total = 0;
        for _ in 0..3600 {
            let (h, c) = byte_hours(1000, 1000, carried);
            total += h;
            carried = c;
        }
        assert_eq!((total, carried), (1000, 0));
    }
}
