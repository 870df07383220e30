//! The durable block store: one redb database file, `<dir>/ledger.redb`.
//!
//! Tables:
//! * `blocks`:    height → canonical block bytes (the only source of truth);
//! * `history`:   (account, height, entry index, seq) → event (derived index);
//! * `claims`:    (height, payout address) → cumulative withdrawn after that
//!   block, for addresses that changed in it (derived index, rebuilds claim
//!   trees of past epochs);
//! * `snapshots`: height → state snapshot (derived, never trusted: checked
//!   against the block header's state root when loaded);
//! * `certs`:     height → canonical commit certificate of the block (a
//!   replicated chain's blocks only; created with the first one);
//! * `outbox`:    nonce → a gateway batch made durable here and not yet seen
//!   in a committed block (a gateway following a replicated chain);
//! * `meta`:      format version.
//!
//! A block and its derived rows are written in ONE write transaction with
//! `Durability::Immediate` and two-phase commit: `append` returns only once
//! the block is on disk, and a process killed at any point reopens to the
//! last committed block (redb falls back to the previous commit when the
//! newest one is incomplete). On top of that, opening re-verifies the tail
//! (see [`crate::Ledger::open`]). The database is opened in redb's
//! `SingleWriter` mode so that `lode ledger …` can read it while a gateway
//! writes.

use crate::state::{Event, EventKind};
use lode_proto::{Did, EvmAddress};
use redb::{
    Builder, ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
const SNAPSHOTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("snapshots");
const HISTORY: TableDefinition<'_, ([u8; 32], u64, u32, u32), &[u8]> =
    TableDefinition::new("history");
const CLAIMS: TableDefinition<'_, (u64, [u8; 20]), u128> = TableDefinition::new("claims");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const CERTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("certs");
const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox");

/// File name of the database inside a ledger directory.
pub const DB_FILE: &str = "ledger.redb";
const FORMAT: &[u8] = b"lode-ledger/1";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no ledger in {0} (create one first)")]
    NotFound(PathBuf),
    #[error("a ledger already exists in {0}")]
    AlreadyExists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the ledger in {0} is open for writing by another process")]
    InUse(PathBuf),
    #[error("the ledger in {0} was not closed cleanly and needs recovery by a writer")]
    NeedsRecovery(PathBuf),
    #[error("{0} is not a lode ledger database (unknown format)")]
    WrongFormat(PathBuf),
    #[error("ledger database {path}: {reason}")]
    Db { path: PathBuf, reason: String },
}

enum Db {
    Rw(Database),
    Ro(ReadOnlyDatabase),
}

/// The block store.
pub struct BlockStore {
    db: Db,
    path: PathBuf,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlockStore({})", self.path.display())
    }
}

/// What one block adds to the store.
#[derive(Debug)]
pub struct AppendBatch<'a> {
    pub height: u64,
    pub block: &'a [u8],
    pub events: &'a [Event],
    pub claims: &'a [(EvmAddress, u128)],
    /// The block's commit certificate (canonical bytes), on a replicated chain.
    pub certificate: Option<&'a [u8]>,
}

fn builder() -> Builder {
    let mut b = Builder::new();
    b.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    // The state lives in memory; the cache only serves the tail of the chain.
    b.set_cache_size(64 * 1024 * 1024);
    b
}

impl BlockStore {
    fn err(&self) -> impl Fn(redb::Error) -> StoreError + '_ {
        move |e| db_err(&self.path, e)
    }

    /// Creates a new, empty store in `dir` (creating the directory).
    pub fn create(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        if path.exists() {
            return Err(StoreError::AlreadyExists(dir.to_path_buf()));
        }
        let db = builder()
            .create(&path)
            .map_err(|e| open_err(&path, e.into()))?;
        let s = Self {
            db: Db::Rw(db),
            path,
        };
        let Db::Rw(db) = &s.db else { unreachable!() };
        let txn = db.begin_write().map_err(|e| s.err()(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| s.err()(e.into()))?;
            meta.insert("format", FORMAT)
                .map_err(|e| s.err()(e.into()))?;
            txn.open_table(BLOCKS).map_err(|e| s.err()(e.into()))?;
            txn.open_table(SNAPSHOTS).map_err(|e| s.err()(e.into()))?;
            txn.open_table(HISTORY).map_err(|e| s.err()(e.into()))?;
            txn.open_table(CLAIMS).map_err(|e| s.err()(e.into()))?;
        }
        txn.commit().map_err(|e| s.err()(e.into()))?;
        Ok(s)
    }

    /// Opens an existing store for writing (recovering from a crash if needed).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::NotFound(dir.to_path_buf()));
        }
        let db = builder()
            .open(&path)
            .map_err(|e| open_err(&path, e.into()))?;
        let s = Self {
            db: Db::Rw(db),
            path,
        };
        s.check_format()?;
        Ok(s)
    }

    /// Opens an existing store read-only; works while a writer has it open.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(StoreError::NotFound(dir.to_path_buf()));
        }
        let db = builder()
            .open_read_only(&path)
            .map_err(|e| match e.into() {
                redb::Error::RepairAborted => StoreError::NeedsRecovery(dir.to_path_buf()),
                other => open_err(&path, other),
            })?;
        let s = Self {
            db: Db::Ro(db),
            path,
        };
        s.check_format()?;
        Ok(s)
    }

    /// Opens read-only; if the database was left by a crashed writer and no
    /// process holds it, first lets redb recover it by opening it for writing
    /// (what a restarted gateway would do; blocks are not modified).
    pub fn open_for_reading(dir: &Path) -> Result<Self, StoreError> {
        match Self::open_read_only(dir) {
            Err(StoreError::NeedsRecovery(_)) => {
                drop(Self::open(dir)?);
                Self::open_read_only(dir)
            }
            other => other,
        }
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let txn = self.read()?;
        let meta = txn
            .open_table(META)
            .map_err(|_| StoreError::WrongFormat(self.path.clone()))?;
        let ok = meta
            .get("format")
            .map_err(|e| self.err()(e.into()))?
            .is_some_and(|v| v.value() == FORMAT);
        if !ok {
            return Err(StoreError::WrongFormat(self.path.clone()));
        }
        Ok(())
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read transaction (a consistent snapshot of the store).
    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        let r = match &self.db {
            Db::Rw(d) => d.begin_read(),
            Db::Ro(d) => d.begin_read(),
        };
        r.map_err(|e| self.err()(e.into()))
    }

    fn writer(&self) -> Result<&Database, StoreError> {
        match &self.db {
            Db::Rw(d) => Ok(d),
            Db::Ro(_) => Err(StoreError::Db {
                path: self.path.clone(),
                reason: "opened read-only".into(),
            }),
        }
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self
            .writer()?
            .begin_write()
            .map_err(|e| self.err()(e.into()))?;
        // Durability::Immediate is the default: commit returns after fsync.
        txn.set_two_phase_commit(true);
        Ok(txn)
    }

    /// Height of the last block, if any.
    pub fn head(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        head_in(&txn, &self.path)
    }

    /// Raw bytes of block `height`.
    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        block_bytes_in(&txn, &self.path, height)
    }

    /// Appends one block with its derived rows, durably, in one transaction.
    pub fn append(&self, batch: &AppendBatch<'_>) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.begin_write()?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(|x| e(x.into()))?;
            if let Some(last) = blocks.last().map_err(|x| e(x.into()))? {
                let last = last.0.value();
                if batch.height != last + 1 {
                    return Err(StoreError::Db {
                        path: self.path.clone(),
                        reason: format!("append of height {} after {last}", batch.height),
                    });
                }
            } else if batch.height != 0 {
                return Err(StoreError::Db {
                    path: self.path.clone(),
                    reason: format!("append of height {} to an empty store", batch.height),
                });
            }
            blocks
                .insert(batch.height, batch.block)
                .map_err(|x| e(x.into()))?;
            let mut history = txn.open_table(HISTORY).map_err(|x| e(x.into()))?;
            for (seq, ev) in batch.events.iter().enumerate() {
                let bytes = postcard::to_allocvec(&ev.kind).map_err(|x| StoreError::Db {
                    path: self.path.clone(),
                    reason: x.to_string(),
                })?;
                history
                    .insert(
                        (
                            *ev.account.public_key_bytes(),
                            ev.height,
                            ev.index,
                            seq as u32,
                        ),
                        bytes.as_slice(),
                    )
                    .map_err(|x| e(x.into()))?;
            }
            let mut claims = txn.open_table(CLAIMS).map_err(|x| e(x.into()))?;
            for (addr, amount) in batch.claims {
                claims
                    .insert((batch.height, addr.0), *amount)
                    .map_err(|x| e(x.into()))?;
            }
            if let Some(cert) = batch.certificate {
                let mut certs = txn.open_table(CERTS).map_err(|x| e(x.into()))?;
                certs.insert(batch.height, cert).map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Raw bytes of the commit certificate of block `height`, if stored.
    pub fn certificate_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        certificate_bytes_in(&txn, &self.path, height)
    }

    /// Durably keeps a gateway batch (canonical entry bytes) under its nonce.
    pub fn put_outbox(&self, nonce: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(OUTBOX).map_err(|x| e(x.into()))?;
            t.insert(nonce, bytes).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Forgets outbox batches with a nonce below `nonce` (they are on the chain)
    /// and those listed in `dropped`.
    pub fn prune_outbox(&self, nonce: u64, dropped: &[u64]) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(OUTBOX).map_err(|x| e(x.into()))?;
            t.retain(|n, _| n >= nonce && !dropped.contains(&n))
                .map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// The outbox, by nonce.
    pub fn outbox(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let e = self.err();
        let txn = self.read()?;
        let t = match txn.open_table(OUTBOX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(x) => return Err(e(x.into())),
        };
        let mut out = Vec::new();
        for r in t.iter().map_err(|x| e(x.into()))? {
            let (k, v) = r.map_err(|x| e(x.into()))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Stores a snapshot of the state after block `height` and keeps only the
    /// newest `keep` snapshots.
    pub fn put_snapshot(&self, height: u64, bytes: &[u8], keep: usize) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(SNAPSHOTS).map_err(|x| e(x.into()))?;
            t.insert(height, bytes).map_err(|x| e(x.into()))?;
            let heights: Vec<u64> = t
                .iter()
                .map_err(|x| e(x.into()))?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(|x| e(x.into()))?;
            let drop = heights.len().saturating_sub(keep.max(1));
            for h in &heights[..drop] {
                t.remove(h).map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Snapshots (height, bytes), newest first.
    pub fn snapshots(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let e = self.err();
        let txn = self.read()?;
        let t = txn.open_table(SNAPSHOTS).map_err(|x| e(x.into()))?;
        let mut out = Vec::new();
        for r in t.iter().map_err(|x| e(x.into()))?.rev() {
            let (k, v) = r.map_err(|x| e(x.into()))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Removes block `from` and everything after it, with their derived rows
    /// (used to drop a torn or corrupt tail).
    pub fn drop_from(&self, from: u64) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.begin_write()?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(|x| e(x.into()))?;
            blocks.retain(|h, _| h < from).map_err(|x| e(x.into()))?;
            let mut snaps = txn.open_table(SNAPSHOTS).map_err(|x| e(x.into()))?;
            snaps.retain(|h, _| h < from).map_err(|x| e(x.into()))?;
            let mut claims = txn.open_table(CLAIMS).map_err(|x| e(x.into()))?;
            claims.retain(|k, _| k.0 < from).map_err(|x| e(x.into()))?;
            let mut history = txn.open_table(HISTORY).map_err(|x| e(x.into()))?;
            history.retain(|k, _| k.1 < from).map_err(|x| e(x.into()))?;
            let mut certs = txn.open_table(CERTS).map_err(|x| e(x.into()))?;
            certs.retain(|h, _| h < from).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// The newest `limit` events of `account`, newest first, up to block `max_height`.
    pub fn history(
        &self,
        account: &Did,
        max_height: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let e = self.err();
        let txn = self.read()?;
        let t = txn.open_table(HISTORY).map_err(|x| e(x.into()))?;
        let key = *account.public_key_bytes();
        let lo = (key, 0u64, 0u32, 0u32);
        let hi = (key, max_height, u32::MAX, u32::MAX);
        let mut out = Vec::new();
        for r in t.range(lo..=hi).map_err(|x| e(x.into()))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = r.map_err(|x| e(x.into()))?;
            let (_, height, index, _) = k.value();
            let kind: EventKind = postcard::from_bytes(v.value()).map_err(|x| StoreError::Db {
                path: self.path.clone(),
                reason: format!("history row at height {height}: {x}"),
            })?;
            out.push(Event {
                height,
                index,
                account: *account,
                kind,
            });
        }
        Ok(out)
    }

    /// Cumulative withdrawals per address as of block `height` (from the claims index).
    pub fn claims_at(&self, height: u64) -> Result<BTreeMap<EvmAddress, u128>, StoreError> {
        let e = self.err();
        let txn = self.read()?;
        let t = txn.open_table(CLAIMS).map_err(|x| e(x.into()))?;
        let mut out = BTreeMap::new();
        for r in t
            .range((0u64, [0u8; 20])..=(height, [0xffu8; 20]))
            .map_err(|x| e(x.into()))?
        {
            let (k, v) = r.map_err(|x| e(x.into()))?;
            out.insert(EvmAddress(k.value().1), v.value());
        }
        Ok(out)
    }

    /// Overwrites the stored bytes of block `height`, bypassing every check.
    /// For fault-injection tests and repair tooling only.
    #[doc(hidden)]
    pub fn overwrite_block_bytes(&self, height: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(BLOCKS).map_err(|x| e(x.into()))?;
            t.insert(height, bytes).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Removes block `height` only (fault injection: leaves a gap).
    #[doc(hidden)]
    pub fn remove_block(&self, height: u64) -> Result<(), StoreError> {
        let e = self.err();
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(BLOCKS).map_err(|x| e(x.into()))?;
            t.remove(height).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }
}

/// Iterates stored blocks in height order inside one read transaction, each
/// with its commit certificate's bytes if one is stored.
pub fn for_each_block(
    store: &BlockStore,
    mut f: impl FnMut(u64, &[u8], Option<&[u8]>) -> bool,
) -> Result<(), StoreError> {
    let e = store.err();
    let txn = store.read()?;
    let t = txn.open_table(BLOCKS).map_err(|x| e(x.into()))?;
    let certs = match txn.open_table(CERTS) {
        Ok(c) => Some(c),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(x) => return Err(e(x.into())),
    };
    for r in t.iter().map_err(|x| e(x.into()))? {
        let (k, v) = r.map_err(|x| e(x.into()))?;
        let cert = match &certs {
            Some(c) => c.get(k.value()).map_err(|x| e(x.into()))?,
            None => None,
        };
        if !f(k.value(), v.value(), cert.as_ref().map(|g| g.value())) {
            break;
        }
    }
    Ok(())
}

fn head_in(txn: &ReadTransaction, path: &Path) -> Result<Option<u64>, StoreError> {
    let t = txn.open_table(BLOCKS).map_err(|x| db_err(path, x.into()))?;
    let last = t.last().map_err(|x| db_err(path, x.into()))?;
    Ok(last.map(|(k, _)| k.value()))
}

fn block_bytes_in(
    txn: &ReadTransaction,
    path: &Path,
    height: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let t = txn.open_table(BLOCKS).map_err(|x| db_err(path, x.into()))?;
    let v = t.get(height).map_err(|x| db_err(path, x.into()))?;
    Ok(v.map(|g| g.value().to_vec()))
}

pub(crate) fn certificate_bytes_in(
    txn: &ReadTransaction,
    path: &Path,
    height: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let t = match txn.open_table(CERTS) {
        Ok(t) => t,
        // Chains without certificates never created the table.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(x) => return Err(db_err(path, x.into())),
    };
    let v = t.get(height).map_err(|x| db_err(path, x.into()))?;
    Ok(v.map(|g| g.value().to_vec()))
}

fn db_err(path: &Path, e: redb::Error) -> StoreError {
    StoreError::Db {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn open_err(path: &Path, e: redb::Error) -> StoreError {
    match e {
        redb::Error::DatabaseAlreadyOpen => {
            StoreError::InUse(path.parent().unwrap_or(path).to_path_buf())
        }
        other => db_err(path, other),
    }
}
