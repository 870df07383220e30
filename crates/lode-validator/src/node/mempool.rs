//! The validator's mempool: entries waiting for a block, in arrival order,
//! bounded in count and bytes, deduplicated by the hash of their canonical
//! bytes. What applies is decided when a block is proposed (the ledger's
//! rules); this only holds and forgets.

use lode_ledger::Entry;
use lode_proto::Hash32;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Why an entry was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("the mempool is full ({0} bytes waiting); retry later")]
    Full(usize),
}

#[derive(Debug)]
struct Waiting {
    hash: Hash32,
    entry: Entry,
    bytes: usize,
    since: Instant,
}

/// Entries waiting for a block.
#[derive(Debug)]
pub struct Mempool {
    queue: VecDeque<Waiting>,
    index: HashMap<Hash32, Instant>,
    bytes: usize,
    max_bytes: usize,
    /// Entries waiting longer than this (e.g. a batch whose predecessor
    /// never came) are dropped.
    max_age: Duration,
}

/// How [`Mempool::add`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// Already waiting (a resubmission): nothing changes.
    Known,
}

impl Mempool {
    pub fn new(max_bytes: usize, max_age: Duration) -> Mempool {
        Mempool {
            queue: VecDeque::new(),
            index: HashMap::new(),
            bytes: 0,
            max_bytes,
            max_age,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.index.contains_key(hash)
    }

    /// Queues an entry of `bytes` canonical bytes with hash `hash`.
    pub fn add(&mut self, hash: Hash32, entry: Entry, bytes: usize) -> Result<Added, MempoolError> {
        if self.index.contains_key(&hash) {
            return Ok(Added::Known);
        }
        if self.bytes + bytes > self.max_bytes {
            return Err(MempoolError::Full(self.bytes));
        }
        let now = Instant::now();
        self.index.insert(hash, now);
        self.bytes += bytes;
        self.queue.push_back(Waiting {
            hash,
            entry,
            bytes,
            since: now,
        });
        Ok(Added::New)
    }

    /// The oldest entries, up to `max_entries` and about `max_bytes`, for a
    /// proposal (they stay queued until a block includes or rejects them).
    pub fn peek(&mut self, max_entries: usize, max_bytes: usize) -> Vec<(Hash32, Entry)> {
        self.expire();
        let mut out = Vec::new();
        let mut size = 0;
        for w in &self.queue {
            if out.len() >= max_entries || (size + w.bytes > max_bytes && !out.is_empty()) {
                break;
            }
            size += w.bytes;
            out.push((w.hash, w.entry.clone()));
        }
        out
    }

    /// Forgets entries (included in a block, or rejected); returns, for each
    /// one that was waiting, how long it waited.
    pub fn remove(&mut self, hashes: &[Hash32]) -> Vec<Duration> {
        let mut waited = Vec::new();
        for h in hashes {
            if let Some(since) = self.index.remove(h) {
                waited.push(since.elapsed());
            }
        }
        if !waited.is_empty() {
            let index = &self.index;
            let mut freed = 0;
            self.queue.retain(|w| {
                let keep = index.contains_key(&w.hash);
                if !keep {
                    freed += w.bytes;
                }
                keep
            });
            self.bytes -= freed;
        }
        waited
    }

    fn expire(&mut self) {
        let old: Vec<Hash32> = self
            .queue
            .iter()
            .filter(|w| w.since.elapsed() > self.max_age)
            .map(|w| w.hash)
            .collect();
        if !old.is_empty() {
            tracing::warn!(entries = old.len(), "mempool entries expired unapplied");
            self.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> (Hash32, Entry) {
        let e = Entry::StorageShare(lode_ledger::StorageShare {
            file: Hash32::sha256(&[i, i]),
            share: 0,
            node: lode_proto::Keypair::from_secret_bytes(&[i; 32]).did(),
            reason: String::new(),
        });
        (Hash32::sha256(&[i]), e)
    }

    #[test]
    fn bounded_deduplicated_and_ordered() {
        let mut m = Mempool::new(250, Duration::from_secs(60));
        for i in 0..2 {
            let (h, e) = entry(i);
            assert_eq!(m.add(h, e, 100).unwrap(), Added::New);
        }
        let (h, e) = entry(0);
        assert_eq!(m.add(h, e, 100).unwrap(), Added::Known);
        let (h, e) = entry(2);
        assert_eq!(m.add(h, e, 100).unwrap_err(), MempoolError::Full(200));
        let got = m.peek(10, 150);
        assert_eq!(got.len(), 1, "byte bound (at least one)");
        assert_eq!(got[0].0, Hash32::sha256(&[0]));
        assert_eq!(m.remove(&[got[0].0]).len(), 1);
        assert_eq!((m.len(), m.bytes()), (1, 100));
        assert!(
            m.remove(&[got[0].0]).is_empty(),
            "removing twice is harmless"
        );
    }
}
