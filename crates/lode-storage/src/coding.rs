//! Reed-Solomon erasure coding of a file into `n` shares, any `k` of which
//! rebuild it.
//!
//! The file is cut into stripes of `k × shard_bytes` data bytes (the last stripe
//! is shorter: its shard length is `ceil(rest / k)` rounded up to even, as
//! `reed-solomon-simd` needs even shards; the padding is zeros). Each stripe is
//! coded into `k` original shards (the data itself) and `n − k` recovery shards.
//! Share `i` is shard `i` of every stripe, concatenated, so every share of a file
//! has the same length ([`Layout::share_len`]).

use serde::{Deserialize, Serialize};

/// Most shares of one file (the coding supports more; placement on distinct
/// Sybil groups makes more than this impractical).
pub const MAX_SHARES: u16 = 64;

/// Why coding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodingError {
    #[error("need 1 <= k < n <= {MAX_SHARES}; got k = {k}, n = {n}")]
    BadShareCounts { k: u16, n: u16 },
    #[error("stripe shard size {0} must be even and at least 2")]
    BadShardBytes(u32),
    #[error("{have} usable shares; at least {need} are needed")]
    NotEnoughShares { have: usize, need: usize },
    #[error("share {index} is {len} bytes; shares of this file are {expected}")]
    ShareLength {
        index: usize,
        len: usize,
        expected: u64,
    },
    #[error("file of {0} bytes is too large to code")]
    TooLarge(u64),
    #[error("reed-solomon: {0}")]
    ReedSolomon(String),
}

/// How a file of `size` bytes is laid out in shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub size: u64,
    pub k: u16,
    pub n: u16,
    /// Bytes of one shard of a full stripe (even).
    pub shard_bytes: u32,
}

/// Default shard size of a full stripe: 1 MiB (a stripe of k = 4 holds 4 MiB).
pub const DEFAULT_SHARD_BYTES: u32 = 1 << 20;

fn round_even(x: u64) -> u64 {
    x + (x & 1)
}

impl Layout {
    pub fn new(size: u64, k: u16, n: u16, shard_bytes: u32) -> Result<Self, CodingError> {
        if k == 0 || k >= n || n > MAX_SHARES {
            return Err(CodingError::BadShareCounts { k, n });
        }
        if shard_bytes < 2 || !shard_bytes.is_multiple_of(2) {
            return Err(CodingError::BadShardBytes(shard_bytes));
        }
        // share_len * n must fit comfortably in u64.
        if size > (1u64 << 48) {
            return Err(CodingError::TooLarge(size));
        }
        Ok(Self {
            size,
            k,
            n,
            shard_bytes,
        })
    }

    /// Data bytes of a full stripe.
    pub fn stripe_data(&self) -> u64 {
        u64::from(self.k) * u64::from(self.shard_bytes)
    }

    /// The stripes: `(data offset, data length, shard length)` each.
    pub fn stripes(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let sd = self.stripe_data();
        let count = self.size.div_ceil(sd);
        (0..count).map(move |s| {
            let off = s * sd;
            let len = (self.size - off).min(sd);
            let shard = if len == sd {
                u64::from(self.shard_bytes)
            } else {
                round_even(len.div_ceil(u64::from(self.k)))
            };
            (off, len, shard)
        })
    }

    /// Length of every share of the file.
    pub fn share_len(&self) -> u64 {
        let sd = self.stripe_data();
        let full = self.size / sd;
        let rest = self.size % sd;
        full * u64::from(self.shard_bytes)
            + if rest == 0 {
                0
            } else {
                round_even(rest.div_ceil(u64::from(self.k)))
            }
    }

    /// Bytes stored over all shares (`n × share_len`).
    pub fn stored_bytes(&self) -> u64 {
        self.share_len() * u64::from(self.n)
    }

    fn check_len(&self, data: &[u8]) -> Result<(), CodingError> {
        if data.len() as u64 != self.size {
            return Err(CodingError::ShareLength {
                index: usize::MAX,
                len: data.len(),
                expected: self.size,
            });
        }
        Ok(())
    }
}

fn rs(e: reed_solomon_simd::Error) -> CodingError {
    CodingError::ReedSolomon(e.to_string())
}

/// Codes `data` (exactly `layout.size` bytes) into `n` shares.
pub fn encode(layout: &Layout, data: &[u8]) -> Result<Vec<Vec<u8>>, CodingError> {
    layout.check_len(data)?;
    let (k, n) = (usize::from(layout.k), usize::from(layout.n));
    let share_len =
        usize::try_from(layout.share_len()).map_err(|_| CodingError::TooLarge(layout.size))?;
    let mut shares: Vec<Vec<u8>> = (0..n).map(|_| Vec::with_capacity(share_len)).collect();
    let mut enc: Option<reed_solomon_simd::ReedSolomonEncoder> = None;
    for (off, len, shard) in layout.stripes() {
        let (off, len, shard) = (off as usize, len as usize, shard as usize);
        let stripe = &data[off..off + len];
        let e = match enc.as_mut() {
            Some(e) => {
                e.reset(k, n - k, shard).map_err(rs)?;
                e
            }
            None => {
                enc.insert(reed_solomon_simd::ReedSolomonEncoder::new(k, n - k, shard).map_err(rs)?)
            }
        };
        let mut padded = vec![0u8; shard];
        for (i, share) in shares.iter_mut().enumerate().take(k) {
            let a = (i * shard).min(len);
            let b = ((i + 1) * shard).min(len);
            let piece: &[u8] = if b - a == shard {
                &stripe[a..b]
            } else {
                padded.fill(0);
                padded[..b - a].copy_from_slice(&stripe[a..b]);
                &padded
            };
            share.extend_from_slice(piece);
            e.add_original_shard(piece).map_err(rs)?;
        }
        let result = e.encode().map_err(rs)?;
        for (j, r) in result.recovery_iter().enumerate() {
            shares[k + j].extend_from_slice(r);
        }
    }
    Ok(shares)
}

/// Rebuilds the file from any `k` shares (`shares[i]` is share `i` or `None`).
/// Shares present must have the file's share length.
pub fn decode(layout: &Layout, shares: &[Option<&[u8]>]) -> Result<Vec<u8>, CodingError> {
    let (k, n) = (usize::from(layout.k), usize::from(layout.n));
    let share_len = layout.share_len();
    let present: Vec<(usize, &[u8])> = shares
        .iter()
        .take(n)
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i, s)))
        .collect();
    for (i, s) in &present {
        if s.len() as u64 != share_len {
            return Err(CodingError::ShareLength {
                index: *i,
                len: s.len(),
                expected: share_len,
            });
        }
    }
    if present.len() < k {
        return Err(CodingError::NotEnoughShares {
            have: present.len(),
            need: k,
        });
    }
    let size = usize::try_from(layout.size).map_err(|_| CodingError::TooLarge(layout.size))?;
    let mut out = Vec::with_capacity(size);
    let mut at = 0usize; // offset of this stripe's shard inside each share
    let all_originals = (0..k).all(|i| present.iter().any(|(j, _)| *j == i));
    let mut dec: Option<reed_solomon_simd::ReedSolomonDecoder> = None;
    for (_, len, shard) in layout.stripes() {
        let (len, shard) = (len as usize, shard as usize);
        let piece = |s: &[u8]| -> Vec<u8> { s[at..at + shard].to_vec() };
        let mut originals: Vec<Option<Vec<u8>>> = vec![None; k];
        for (i, s) in present.iter().filter(|(i, _)| *i < k) {
            originals[*i] = Some(piece(s));
        }
        if !all_originals {
            let d = match dec.as_mut() {
                Some(d) => {
                    d.reset(k, n - k, shard).map_err(rs)?;
                    d
                }
                None => dec.insert(
                    reed_solomon_simd::ReedSolomonDecoder::new(k, n - k, shard).map_err(rs)?,
                ),
            };
            for (i, s) in present.iter().take(k) {
                if *i < k {
                    d.add_original_shard(*i, &s[at..at + shard]).map_err(rs)?;
                } else {
                    d.add_recovery_shard(*i - k, &s[at..at + shard])
                        .map_err(rs)?;
                }
            }
            let r = d.decode().map_err(rs)?;
            for (i, bytes) in r.restored_original_iter() {
                if originals[i].is_none() {
                    originals[i] = Some(bytes.to_vec());
                }
            }
        }
        let mut left = len;
        for o in originals {
            let o = o.ok_or(CodingError::NotEnoughShares {
                have: present.len(),
                need: k,
            })?;
            let take = left.min(shard);
            out.extend_from_slice(&o[..take]);
            left -= take;
        }
        at += shard;
    }
    Ok(out)
}

/// Rebuilds the shares named in `want` from any `k` others (repair).
pub fn rebuild(
    layout: &Layout,
    shares: &[Option<&[u8]>],
    want: &[usize],
) -> Result<Vec<(usize, Vec<u8>)>, CodingError> {
    let file = decode(layout, shares)?;
    let all = encode(layout, &file)?;
    Ok(want
        .iter()
        .filter_map(|i| all.get(*i).map(|s| (*i, s.clone())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_small_and_striped_files() {
        let l = Layout::new(10, 4, 8, 8).unwrap();
        // one short stripe: ceil(10/4) = 3 -> 4 (even)
        assert_eq!(l.share_len(), 4);
        let l = Layout::new(100, 4, 8, 8).unwrap();
        // 3 full stripes of 32 data bytes, rest 4 -> 1 -> 2
        assert_eq!(l.share_len(), 3 * 8 + 2);
        assert_eq!(l.stripes().count(), 4);
        assert_eq!(Layout::new(0, 4, 8, 8).unwrap().share_len(), 0);
        assert!(Layout::new(1, 4, 4, 8).is_err());
        assert!(Layout::new(1, 0, 4, 8).is_err());
        assert!(Layout::new(1, 2, 4, 7).is_err());
        assert!(Layout::new(1, 2, 65, 8).is_err());
    }

    #[test]
    fn round_trip_with_losses() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let l = Layout::new(data.len() as u64, 4, 8, 64).unwrap();
        let shares = encode(&l, &data).unwrap();
        assert!(shares.iter().all(|s| s.len() as u64 == l.share_len()));
        let some: Vec<Option<&[u8]>> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| (i % 2 == 1).then_some(s.as_slice()))
            .collect();
        assert_eq!(decode(&l, &some).unwrap(), data);
        let three: Vec<Option<&[u8]>> = shares
            .iter()
            .enumerate()
            .map(|(i, s)| (i < 3).then_some(s.as_slice()))
            .collect();
        assert!(matches!(
            decode(&l, &three),
            Err(CodingError::NotEnoughShares { have: 3, need: 4 })
        ));
        let rebuilt = rebuild(&l, &some, &[0, 2]).unwrap();
        assert_eq!(rebuilt[0].1, shares[0]);
        assert_eq!(rebuilt[1].1, shares[2]);
    }
}
