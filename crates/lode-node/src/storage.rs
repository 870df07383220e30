//! Storage contribution on the node: shares of other people's files kept as
//! opaque files under the storage directory (never executed, never mixed with
//! the node's own data), a quota, and the storage channel loop that stores,
//! proves, serves and deletes shares on the gateway's request.
//!
//! Layout: `DIR/shares/{file hex}.{share}` holds the share's bytes and
//! `DIR/shares/{file hex}.{share}.leaves` its Merkle leaf hashes (a 12-byte
//! header: share length u64 LE, chunk size u32 LE, then 32 bytes per chunk),
//! so answering a challenge reads only the challenged chunks.

use crate::client::{ClientError, GatewayClient};
use crate::clock::{GatewayClock, local_now_ms};
use lode_proto::{Hash32, Keypair};
use lode_storage::merkle::{self, Tree};
use lode_storage::wire::{StorageAnswer, StoragePoll, StorageTask};
use lode_storage::{Challenge, ChunkProof};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a storage task failed on this node.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("disk quota full: {need} bytes needed, {free} free")]
    DiskFull { need: u64, free: u64 },
    #[error("the share's bytes do not match the root the gateway sent")]
    RootMismatch,
    #[error("chunk size {0} is out of bounds")]
    BadChunkSize(u32),
    #[error("share {share} of file {file} is not held here")]
    Missing { file: Hash32, share: u16 },
    #[error("stored leaves of share {share} of file {file} are damaged")]
    Damaged { file: Hash32, share: u16 },
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The shares a node holds.
#[derive(Debug)]
pub struct ShareStore {
    dir: PathBuf,
    quota: u64,
    used: u64,
}

const LEAVES_HEADER: usize = 12;

impl ShareStore {
    /// Opens `dir` (created if needed) with a quota of `quota` bytes; counts
    /// what is already there against it.
    pub fn open(dir: &Path, quota: u64) -> Result<Self, ShareError> {
        let dir = dir.join("shares");
        std::fs::create_dir_all(&dir).map_err(|e| ShareError::Io(dir.clone(), e))?;
        let mut used = 0;
        for e in std::fs::read_dir(&dir).map_err(|e| ShareError::Io(dir.clone(), e))? {
            let e = e.map_err(|e| ShareError::Io(dir.clone(), e))?;
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            used += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
        Ok(Self { dir, quota, used })
    }

    pub fn quota(&self) -> u64 {
        self.quota
    }

    pub fn free(&self) -> u64 {
        self.quota.saturating_sub(self.used)
    }

    fn path(&self, file: &Hash32, share: u16) -> PathBuf {
        self.dir.join(format!("{}.{share}", file.to_hex()))
    }

    fn leaves_path(&self, file: &Hash32, share: u16) -> PathBuf {
        self.dir.join(format!("{}.{share}.leaves", file.to_hex()))
    }

    fn size_of(p: &Path) -> u64 {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }

    fn write_synced(path: &Path, bytes: &[&[u8]]) -> Result<(), ShareError> {
        let tmp = path.with_extension("tmp");
        let io = |e| ShareError::Io(path.to_path_buf(), e);
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        for b in bytes {
            f.write_all(b).map_err(io)?;
        }
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Keeps a share after checking it against `root`; within the quota.
    pub fn store(
        &mut self,
        file: &Hash32,
        share: u16,
        root: &Hash32,
        chunk_bytes: u32,
        bytes: &[u8],
    ) -> Result<(), ShareError> {
        if !(merkle::MIN_CHUNK_BYTES..=merkle::MAX_CHUNK_BYTES).contains(&chunk_bytes) {
            return Err(ShareError::BadChunkSize(chunk_bytes));
        }
        let tree = Tree::build(bytes, chunk_bytes);
        if tree.root() != *root {
            return Err(ShareError::RootMismatch);
        }
        let (p, lp) = (self.path(file, share), self.leaves_path(file, share));
        let old = Self::size_of(&p) + Self::size_of(&lp);
        let leaves_len = (LEAVES_HEADER + 32 * tree.leaves().len()) as u64;
        let need = bytes.len() as u64 + leaves_len;
        let free = self.quota.saturating_sub(self.used.saturating_sub(old));
        if need > free {
            return Err(ShareError::DiskFull { need, free });
        }
        let mut leaves = Vec::with_capacity(leaves_len as usize);
        leaves.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        leaves.extend_from_slice(&chunk_bytes.to_le_bytes());
        for l in tree.leaves() {
            leaves.extend_from_slice(&l.0);
        }
        Self::write_synced(&p, &[bytes])?;
        Self::write_synced(&lp, &[&leaves])?;
        self.used = self.used.saturating_sub(old) + need;
        Ok(())
    }

    /// Answers a challenge: each challenged chunk read from disk, with its path.
    pub fn prove(&self, c: &Challenge) -> Result<Vec<ChunkProof>, ShareError> {
        let (p, lp) = (
            self.path(&c.file, c.share),
            self.leaves_path(&c.file, c.share),
        );
        let missing = || ShareError::Missing {
            file: c.file,
            share: c.share,
        };
        let damaged = || ShareError::Damaged {
            file: c.file,
            share: c.share,
        };
        let raw = std::fs::read(&lp).map_err(|_| missing())?;
        if raw.len() < LEAVES_HEADER || !(raw.len() - LEAVES_HEADER).is_multiple_of(32) {
            return Err(damaged());
        }
        let share_len = u64::from_le_bytes(raw[0..8].try_into().map_err(|_| damaged())?);
        let chunk_bytes = u32::from_le_bytes(raw[8..12].try_into().map_err(|_| damaged())?);
        let leaves: Vec<Hash32> = raw[LEAVES_HEADER..]
            .chunks_exact(32)
            .map(|c| Hash32(c.try_into().unwrap_or([0; 32])))
            .collect();
        if leaves.len() as u64 != merkle::chunk_count(share_len, chunk_bytes) {
            return Err(damaged());
        }
        let tree = Tree::from_leaves(share_len, chunk_bytes, leaves);
        let mut f = std::fs::File::open(&p).map_err(|_| missing())?;
        let io = |e| ShareError::Io(p.clone(), e);
        c.indices(merkle::chunk_count(share_len, chunk_bytes))
            .into_iter()
            .map(|i| {
                let len = merkle::chunk_len(share_len, chunk_bytes, i) as usize;
                let mut chunk = vec![0u8; len];
                f.seek(SeekFrom::Start(i * u64::from(chunk_bytes)))
                    .map_err(io)?;
                f.read_exact(&mut chunk).map_err(io)?;
                Ok(ChunkProof {
                    index: i,
                    chunk,
                    path: tree.path(i).map_err(|_| damaged())?,
                })
            })
            .collect()
    }

    /// A share's bytes.
    pub fn read(&self, file: &Hash32, share: u16) -> Result<Vec<u8>, ShareError> {
        std::fs::read(self.path(file, share))
            .map_err(|_| ShareError::Missing { file: *file, share })
    }

    pub fn delete(&mut self, file: &Hash32, share: u16) {
        for p in [self.path(file, share), self.leaves_path(file, share)] {
            let n = Self::size_of(&p);
            if std::fs::remove_file(&p).is_ok() {
                self.used = self.used.saturating_sub(n);
            }
        }
    }

    /// Runs one task; `None` for tasks that need no answer.
    pub fn handle(&mut self, task: StorageTask) -> Option<StorageAnswer> {
        match task {
            StorageTask::Store {
                file,
                share,
                root,
                chunk_bytes,
                bytes,
            } => {
                let r = self.store(&file, share, &root, chunk_bytes, &bytes);
                if let Err(e) = &r {
                    tracing::warn!(file = %file, share, error = %e, "share not stored");
                }
                Some(StorageAnswer::Stored {
                    file,
                    share,
                    error: r.err().map(|e| e.to_string()),
                })
            }
            StorageTask::Challenge {
                id,
                file,
                share,
                seed,
                count,
                ..
            } => {
                let c = Challenge {
                    file,
                    share,
                    seed,
                    count,
                };
                Some(match self.prove(&c) {
                    Ok(proofs) => StorageAnswer::Proof { id, proofs },
                    Err(e) => StorageAnswer::Failed {
                        id,
                        error: e.to_string(),
                    },
                })
            }
            StorageTask::Fetch { id, file, share } => Some(match self.read(&file, share) {
                Ok(bytes) => StorageAnswer::Share { id, bytes },
                Err(e) => StorageAnswer::Failed {
                    id,
                    error: e.to_string(),
                },
            }),
            StorageTask::Delete { file, share } => {
                self.delete(&file, share);
                None
            }
        }
    }
}

/// The storage channel: polls the gateway, runs its tasks (disk work off the
/// async threads), sends the answers with the next poll. Runs until aborted.
pub async fn run(client: GatewayClient, key: Arc<Keypair>, store: ShareStore) {
    let store = Arc::new(std::sync::Mutex::new(store));
    let mut clock = GatewayClock::default();
    let mut answers: Vec<StorageAnswer> = Vec::new();
    let mut wait = Duration::from_secs(15);
    loop {
        let (capacity_bytes, free_bytes) = {
            let s = store.lock().unwrap_or_else(|p| p.into_inner());
            (s.quota(), s.free())
        };
        let poll = StoragePoll {
            capacity_bytes,
            free_bytes,
            answers: std::mem::take(&mut answers),
        };
        match client.storage_poll(&key, &clock, &poll, wait).await {
            Ok(reply) => {
                clock.observe(reply.value.now_ms, reply.sent_ms, reply.received_ms);
                wait = Duration::from_millis(reply.value.poll_ms) + Duration::from_secs(5);
                let tasks = reply.value.tasks;
                if tasks.is_empty() {
                    continue;
                }
                tracing::debug!(tasks = tasks.len(), "storage tasks received");
                let s = Arc::clone(&store);
                let done = tokio::task::spawn_blocking(move || {
                    let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
                    tasks
                        .into_iter()
                        .filter_map(|t| s.handle(t))
                        .collect::<Vec<_>>()
                })
                .await;
                if let Ok(a) = done {
                    answers = a;
                }
            }
            Err(e) => {
                // Keep answers for the next try unless the gateway refused them
                // for good (they would be refused again).
                if e.is_transient()
                    || matches!(&e, ClientError::Refused { code, .. } if code == "unknown_session")
                {
                    answers = poll.answers;
                }
                tracing::debug!(error = %e, "storage poll failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 + local_now_ms() % 500)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_prove_quota_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 249) as u8).collect();
        let root = merkle::share_root(&data, 1024);
        let file = Hash32([4; 32]);
        let mut s = ShareStore::open(dir.path(), 12_000).unwrap();
        assert!(matches!(
            s.store(&file, 0, &Hash32([0; 32]), 1024, &data),
            Err(ShareError::RootMismatch)
        ));
        s.store(&file, 0, &root, 1024, &data).unwrap();
        assert!(matches!(
            s.store(&file, 1, &root, 1024, &data),
            Err(ShareError::DiskFull { .. })
        ));
        let c = Challenge {
            file,
            share: 0,
            seed: Hash32([8; 32]),
            count: 8,
        };
        let proofs = s.prove(&c).unwrap();
        c.check(&root, data.len() as u64, 1024, &proofs).unwrap();
        // A reopened store counts what is on disk.
        let s2 = ShareStore::open(dir.path(), 12_000).unwrap();
        assert_eq!(s2.free(), s.free());
        // Corrupt the share on disk: the honest code's proof now fails.
        let p = s.path(&file, 0);
        let mut bytes = std::fs::read(&p).unwrap();
        for b in bytes.iter_mut() {
            *b ^= 0xff;
        }
        std::fs::write(&p, &bytes).unwrap();
        let proofs = s.prove(&c).unwrap();
        assert!(c.check(&root, data.len() as u64, 1024, &proofs).is_err());
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(s.prove(&c), Err(ShareError::Missing { .. })));
        s.delete(&file, 0);
        assert!(!s.leaves_path(&file, 0).exists());
    }
}
