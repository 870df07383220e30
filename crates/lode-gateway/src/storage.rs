//! Storage contribution on the gateway: contracts, placement of shares on nodes
//! of distinct Sybil groups, audits with deadlines, credits per byte-hour,
//! penalties for failed audits, and repair.
//!
//! The pure parts (coding, Merkle proofs, challenges, byte-hour rounding) are in
//! `lode-storage`; this module decides and keeps the durable record:
//!
//! * `DATA/storage.redb` holds one record per file (manifest, requester, term,
//!   each share's holder and audit state), written (fsync) on every change.
//! * `DATA/storage/staging/{file}/{share}` holds share bytes no node has yet
//!   confirmed (a fresh upload, or a share rebuilt by repair). A share leaves
//!   staging once its holder answered `Stored`.
//!
//! Nodes talk to it over `POST /v1/node/storage` (long-poll, signed): they say
//! what they offer, answer earlier tasks, and get new ones (store, challenge,
//! fetch, delete). A node must hold a node-channel session: its IP group and
//! operator come from there, and placement never puts two shares of one file
//! in one group (the rule used for quorum replicas).

use crate::api_error::ApiError;
use lode_ledger::{
    ContributionKind, Entry, Penalty, PenaltyReason, State, StorageContract, StorageShare,
    WorkReceipt,
};
use lode_proto::{Did, Hash32};
use lode_sched::{IpGroup, OperatorId};
use lode_storage::manifest::{MS_PER_HOUR, byte_hours};
use lode_storage::wire::{StorageAnswer, StoragePoll, StorageTask};
use lode_storage::{Challenge, Manifest};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{oneshot, watch};

const FILES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("files");

/// Storage parameters of a gateway.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Mean time between two audits of one share (each draws the next one
    /// uniformly in [½, 1½] of this, so holders cannot predict it).
    pub audit_interval_ms: u64,
    /// Chunks asked per audit.
    pub challenge_chunks: u32,
    /// Time a holder has to answer a challenge.
    pub answer_timeout_ms: u64,
    /// A holder silent this long loses its shares to repair.
    pub offline_grace_ms: u64,
    /// Missed deadlines in a row that count as a lost share.
    pub max_missed: u32,
    /// Largest file accepted.
    pub max_file_bytes: u64,
    /// How often owed storage fees are settled from the escrow.
    pub settle_interval_ms: u64,
    /// Longest a storage long-poll waits for a task.
    pub poll_timeout_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            // 16 chunks every 15 minutes: 64 chunks per hour per share.
            audit_interval_ms: 15 * 60_000,
            challenge_chunks: 16,
            answer_timeout_ms: 30_000,
            offline_grace_ms: 10 * 60_000,
            max_missed: 3,
            max_file_bytes: 128 << 20,
            settle_interval_ms: 60_000,
            poll_timeout_ms: 10_000,
        }
    }
}

/// The state of one share of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareState {
    /// Waiting in staging for a holder.
    Unplaced,
    /// Sent to `holder`; not yet confirmed.
    Storing,
    /// Held and audited.
    Held,
    /// Lost (failed audit, holder offline past the grace): to be rebuilt.
    Lost,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareRec {
    pub state: ShareState,
    pub holder: Option<Did>,
    /// Credited up to this time (gateway clock).
    pub credited_to_ms: u64,
    /// Byte-milliseconds not yet credited (below one byte-hour).
    pub carried: u128,
    pub next_audit_ms: u64,
    pub missed: u32,
    /// Nodes that lost or refused this share (never chosen again for it).
    pub excluded: Vec<Did>,
}

/// A stored file's durable record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRec {
    pub manifest: Manifest,
    pub requester: Did,
    pub created_ms: u64,
    pub term_end_ms: u64,
    pub price_per_byte_hour: u128,
    pub shares: Vec<ShareRec>,
    pub next_unit: u64,
    pub audits_passed: u64,
    pub audits_failed: u64,
    pub repairs: u64,
    pub closed: bool,
    pub last_settle_ms: u64,
    /// The block that holds the signed contract (absent in records written
    /// before it was kept: then found from the requester's ledger history).
    #[serde(default)]
    pub contract_block: Option<u64>,
}

impl FileRec {
    fn live(&self) -> usize {
        self.shares
            .iter()
            .filter(|s| matches!(s.state, ShareState::Held))
            .count()
    }
}

/// Why the storage store failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage database: {0}")]
    Db(String),
    #[error("storage staging {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("storage record of {0} does not decode: {1}")]
    Corrupt(Hash32, String),
}

fn db_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Db(e.to_string())
}

/// A node offering disk.
#[derive(Debug, Default)]
struct NodeSt {
    last_seen_ms: u64,
    capacity: u64,
    free: u64,
    /// Bytes sent in store tasks not yet answered.
    reserved: u64,
    queue: VecDeque<StorageTask>,
}

#[derive(Debug)]
struct PendingChallenge {
    node: Did,
    challenge: Challenge,
    deadline_ms: u64,
}

#[derive(Debug)]
struct FetchWait {
    node: Did,
    tx: oneshot::Sender<Result<Vec<u8>, String>>,
}

#[derive(Debug, Default)]
struct Inner {
    files: BTreeMap<Hash32, FileRec>,
    nodes: HashMap<Did, NodeSt>,
    challenges: HashMap<u64, PendingChallenge>,
    fetches: HashMap<u64, FetchWait>,
    next_id: u64,
    repairing: HashSet<Hash32>,
}

/// The storage subsystem of one gateway.
#[derive(Debug)]
pub struct Storage {
    pub cfg: StorageConfig,
    inner: Mutex<Inner>,
    db: Database,
    staging: PathBuf,
    /// Bumped when tasks are queued (wakes long polls).
    tasks: watch::Sender<u64>,
    /// When this process opened the store: holders not heard from since get
    /// the grace period from here (a restart loses no share).
    started_ms: u64,
}

/// The groups of every node online on the node channel.
pub type Groups = HashMap<Did, (IpGroup, OperatorId)>;

/// What a tick or a poll wants written to the ledger.
pub type Entries = Vec<Entry>;

fn random_hash() -> Hash32 {
    let mut b = [0u8; 32];
    // Without an OS RNG no challenge could be unpredictable.
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("OS random number generator failed: {e}"));
    Hash32(b)
}

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b) % n.max(1)
}

impl Storage {
    pub fn open(data_dir: &Path, cfg: StorageConfig, now: u64) -> Result<Self, StorageError> {
        let db = Database::create(data_dir.join("storage.redb")).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(FILES).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        let staging = data_dir.join("storage").join("staging");
        std::fs::create_dir_all(&staging).map_err(|e| StorageError::Io(staging.clone(), e))?;
        let mut inner = Inner::default();
        {
            let tx = db.begin_read().map_err(db_err)?;
            let t = tx.open_table(FILES).map_err(db_err)?;
            for row in t.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                let Ok(key) = <[u8; 32]>::try_from(k.value()) else {
                    tracing::error!(
                        len = k.value().len(),
                        "storage record with a malformed key skipped"
                    );
                    continue;
                };
                let id = Hash32(key);
                let mut rec: FileRec = match serde_json::from_slice(v.value()) {
                    Ok(rec) => rec,
                    Err(e) => {
                        // One bad record must not keep the gateway down: it
                        // stays in the table, untouched, for an operator.
                        tracing::error!(file = %id, error = %e, "unreadable storage record skipped");
                        continue;
                    }
                };
                // Stores in flight were lost with the old process: send again.
                for s in &mut rec.shares {
                    if s.state == ShareState::Storing {
                        s.state = ShareState::Unplaced;
                        s.holder = None;
                    }
                }
                inner.files.insert(id, rec);
            }
        }
        let (tasks, _) = watch::channel(0);
        Ok(Self {
            cfg,
            inner: Mutex::new(inner),
            db,
            staging,
            tasks,
            started_ms: now,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tasks.subscribe()
    }

    fn wake(&self) {
        self.tasks.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn save(&self, id: &Hash32, rec: &FileRec) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(rec).map_err(db_err)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(FILES).map_err(db_err)?;
            t.insert(id.0.as_slice(), bytes.as_slice())
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    fn forget(&self, id: &Hash32) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(FILES).map_err(db_err)?;
            t.remove(id.0.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    fn staged_path(&self, file: &Hash32, share: usize) -> PathBuf {
        self.staging.join(file.to_hex()).join(share.to_string())
    }

    fn stage(&self, file: &Hash32, share: usize, bytes: &[u8]) -> Result<(), StorageError> {
        let dir = self.staging.join(file.to_hex());
        let io = |e| StorageError::Io(dir.clone(), e);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let tmp = dir.join(format!("{share}.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, self.staged_path(file, share)).map_err(io)
    }

    fn staged(&self, file: &Hash32, share: usize) -> Option<Vec<u8>> {
        std::fs::read(self.staged_path(file, share)).ok()
    }

    fn unstage(&self, file: &Hash32, share: usize) {
        let _ = std::fs::remove_file(self.staged_path(file, share));
        let _ = std::fs::remove_dir(self.staging.join(file.to_hex()));
    }

    pub fn file(&self, id: &Hash32) -> Option<FileRec> {
        self.lock().files.get(id).cloned()
    }

    pub fn files_of(&self, requester: &Did) -> Vec<(Hash32, FileRec)> {
        self.lock()
            .files
            .iter()
            .filter(|(_, f)| f.requester == *requester)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Totals for the dashboard and metrics: (files, stored bytes, audits
    /// passed, audits failed, repairs).
    pub fn totals(&self) -> (u64, u64, u64, u64, u64) {
        let g = self.lock();
        let mut t = (0, 0, 0, 0, 0);
        for f in g.files.values().filter(|f| !f.closed) {
            t.0 += 1;
            t.1 += f.manifest.share_len() * f.live() as u64;
            t.2 += f.audits_passed;
            t.3 += f.audits_failed;
            t.4 += f.repairs;
        }
        t
    }

    /// Storage nodes online now, with free bytes, that could take a share of
    /// `len` bytes, one per Sybil group (the most free space of each group).
    fn candidates(
        g: &Inner,
        groups: &Groups,
        len: u64,
        now: u64,
        grace: u64,
    ) -> Vec<(Did, IpGroup, OperatorId)> {
        let mut out: Vec<(Did, IpGroup, OperatorId, u64)> = g
            .nodes
            .iter()
            .filter(|(_, n)| now.saturating_sub(n.last_seen_ms) <= grace)
            .filter(|(_, n)| n.free.saturating_sub(n.reserved) >= len)
            .filter_map(|(d, n)| {
                groups
                    .get(d)
                    .map(|(ip, op)| (*d, *ip, *op, n.free - n.reserved))
            })
            .collect();
        out.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
        out.into_iter().map(|(d, ip, op, _)| (d, ip, op)).collect()
    }

    /// How many shares of `len` bytes can go to distinct groups now.
    pub fn placeable(&self, groups: &Groups, len: u64, now: u64) -> usize {
        let g = self.lock();
        let c = Self::candidates(&g, groups, len, now, self.cfg.offline_grace_ms);
        let mut ips = HashSet::new();
        let mut ops = HashSet::new();
        c.iter()
            .filter(|(_, ip, op)| ips.insert(*ip) & ops.insert(*op))
            .count()
    }

    /// Records an accepted contract: stages its shares, then the record.
    /// The caller has checked the manifest against the bytes and then submits
    /// the contract to the ledger ([`Storage::abandon`] undoes this if the
    /// ledger refuses it).
    pub fn create(
        &self,
        contract: &StorageContract,
        requester: Did,
        shares: &[Vec<u8>],
        now: u64,
    ) -> Result<(), StorageError> {
        let m = &contract.manifest;
        for (i, s) in shares.iter().enumerate() {
            self.stage(&m.file, i, s)?;
        }
        let rec = FileRec {
            manifest: m.clone(),
            requester,
            created_ms: now,
            term_end_ms: now.saturating_add(contract.term_hours.saturating_mul(MS_PER_HOUR)),
            price_per_byte_hour: contract.price_per_byte_hour,
            shares: (0..m.n)
                .map(|_| ShareRec {
                    state: ShareState::Unplaced,
                    holder: None,
                    credited_to_ms: now,
                    carried: 0,
                    next_audit_ms: 0,
                    missed: 0,
                    excluded: vec![],
                })
                .collect(),
            next_unit: 0,
            audits_passed: 0,
            audits_failed: 0,
            repairs: 0,
            closed: false,
            last_settle_ms: now,
            contract_block: None,
        };
        self.save(&m.file, &rec)?;
        self.lock().files.insert(m.file, rec);
        Ok(())
    }

    /// Records the block that holds a file's signed contract.
    pub fn set_contract_block(&self, file: &Hash32, height: u64) -> Result<(), StorageError> {
        let mut g = self.lock();
        let Some(rec) = g.files.get_mut(file) else {
            return Ok(());
        };
        rec.contract_block = Some(height);
        let rec = rec.clone();
        drop(g);
        self.save(file, &rec)
    }

    /// Undoes [`Storage::create`] (the ledger refused the contract).
    pub fn abandon(&self, file: &Hash32, n: usize) {
        self.lock().files.remove(file);
        let _ = self.forget(file);
        for i in 0..n {
            self.unstage(file, i);
        }
    }

    fn next_id(g: &mut Inner) -> u64 {
        g.next_id += 1;
        g.next_id
    }

    /// A node's storage poll: records what it offers, applies its answers,
    /// and returns its queued tasks (at most `max_bytes` of share bytes).
    pub fn node_poll(
        &self,
        node: Did,
        poll: &StoragePoll,
        state: &State,
        now: u64,
        max_bytes: usize,
    ) -> (Vec<StorageTask>, Entries) {
        let mut entries = Vec::new();
        let mut g = self.lock();
        let st = g.nodes.entry(node).or_default();
        st.last_seen_ms = now;
        st.capacity = poll.capacity_bytes;
        st.free = poll.free_bytes.min(poll.capacity_bytes);
        for a in &poll.answers {
            self.answer(&mut g, node, a, state, now, &mut entries);
        }
        let st = g.nodes.entry(node).or_default();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(t) = st.queue.front() {
            let size = match t {
                StorageTask::Store { bytes, .. } => bytes.len(),
                _ => 128,
            };
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            if let Some(t) = st.queue.pop_front() {
                out.push(t);
            }
        }
        (out, entries)
    }

    /// Marks `node` as seen (the end of a long poll that brought nothing).
    pub fn touch(&self, node: &Did, now: u64) {
        if let Some(n) = self.lock().nodes.get_mut(node) {
            n.last_seen_ms = now;
        }
    }

    /// Whether `node` has tasks waiting.
    pub fn has_tasks(&self, node: &Did) -> bool {
        self.lock()
            .nodes
            .get(node)
            .is_some_and(|n| !n.queue.is_empty())
    }

    fn answer(
        &self,
        g: &mut Inner,
        node: Did,
        a: &StorageAnswer,
        state: &State,
        now: u64,
        entries: &mut Entries,
    ) {
        match a {
            StorageAnswer::Stored { file, share, error } => {
                let Some(rec) = g.files.get_mut(file) else {
                    return;
                };
                let i = usize::from(*share);
                let len = rec.manifest.share_len();
                let Some(s) = rec.shares.get_mut(i) else {
                    return;
                };
                if s.state != ShareState::Storing || s.holder != Some(node) {
                    return;
                }
                match error {
                    None => {
                        s.state = ShareState::Held;
                        s.credited_to_ms = now;
                        s.carried = 0;
                        s.missed = 0;
                        s.next_audit_ms = now + self.audit_delay();
                        let repair = s.excluded.len();
                        entries.push(Entry::StorageShare(StorageShare {
                            file: *file,
                            share: *share,
                            node,
                            reason: if repair == 0 {
                                "placement".into()
                            } else {
                                format!("repair (replaces {repair} lost holder(s))")
                            },
                        }));
                        tracing::info!(file = %file, share, node = %node, "share stored");
                    }
                    Some(why) => {
                        tracing::warn!(file = %file, share, node = %node, error = %why, "node refused a share");
                        s.state = ShareState::Unplaced;
                        s.holder = None;
                        s.excluded.push(node);
                    }
                }
                let rec = rec.clone();
                if let Some(n) = g.nodes.get_mut(&node) {
                    n.reserved = n.reserved.saturating_sub(len);
                }
                if rec.shares[i].state == ShareState::Held {
                    self.unstage(file, i);
                }
                self.persist(file, &rec);
            }
            StorageAnswer::Proof { id, proofs } => {
                let Some(p) = g.challenges.remove(id) else {
                    return;
                };
                if p.node != node {
                    g.challenges.insert(*id, p);
                    return;
                }
                let c = &p.challenge;
                let Some(rec) = g.files.get(&c.file) else {
                    return;
                };
                let i = usize::from(c.share);
                let m = &rec.manifest;
                let verdict = match m.roots.get(i) {
                    Some(root) => c
                        .check(root, m.share_len(), m.chunk_bytes, proofs)
                        .map_err(|e| e.to_string()),
                    None => Err("no such share".into()),
                };
                let file = c.file;
                match verdict {
                    Ok(()) => self.passed(g, &file, i, node, c, state, now, entries),
                    Err(why) => self.failed(g, &file, i, node, c, &why, true, entries),
                }
            }
            StorageAnswer::Failed { id, error } => {
                if let Some(w) = g.fetches.remove(id) {
                    if w.node == node {
                        let _ = w.tx.send(Err(error.clone()));
                    } else {
                        g.fetches.insert(*id, w);
                    }
                    return;
                }
                let Some(p) = g.challenges.remove(id) else {
                    return;
                };
                if p.node != node {
                    g.challenges.insert(*id, p);
                    return;
                }
                let c = p.challenge;
                let why = format!("the holder could not answer: {error}");
                self.failed(
                    g,
                    &c.file,
                    usize::from(c.share),
                    node,
                    &c,
                    &why,
                    true,
                    entries,
                );
            }
            StorageAnswer::Share { id, bytes } => {
                if let Some(w) = g.fetches.remove(id) {
                    if w.node == node {
                        let _ = w.tx.send(Ok(bytes.clone()));
                    } else {
                        g.fetches.insert(*id, w);
                    }
                }
            }
        }
    }

    fn audit_delay(&self) -> u64 {
        let i = self.cfg.audit_interval_ms.max(2);
        i / 2 + random_below(i)
    }

    fn persist(&self, file: &Hash32, rec: &FileRec) {
        if let Err(e) = self.save(file, rec) {
            tracing::error!(file = %file, error = %e, "storage record not saved");
        }
    }

    /// A passed audit credits the byte-hours held since the last credit.
    #[allow(clippy::too_many_arguments)]
    fn passed(
        &self,
        g: &mut Inner,
        file: &Hash32,
        i: usize,
        node: Did,
        c: &Challenge,
        state: &State,
        now: u64,
        entries: &mut Entries,
    ) {
        let Some(rec) = g.files.get_mut(file) else {
            return;
        };
        rec.audits_passed += 1;
        let len = rec.manifest.share_len();
        let end = now.min(rec.term_end_ms);
        let Some(s) = rec.shares.get_mut(i) else {
            return;
        };
        if s.holder != Some(node) || s.state != ShareState::Held {
            return;
        }
        s.missed = 0;
        let (h, carried) = byte_hours(len, end.saturating_sub(s.credited_to_ms), s.carried);
        s.credited_to_ms = s.credited_to_ms.max(end);
        s.carried = carried;
        if h > 0 {
            let fee = u128::from(h).saturating_mul(rec.price_per_byte_hour);
            let left = state.job(file).map(|j| j.available()).unwrap_or(0);
            if fee <= left {
                entries.push(Entry::WorkReceipt(WorkReceipt {
                    job: *file,
                    unit: rec.next_unit,
                    node,
                    kind: ContributionKind::Storage,
                    amount: h,
                    result: c.seed,
                    quorum: vec![node],
                }));
                rec.next_unit += 1;
            }
        }
        let rec = rec.clone();
        self.persist(file, &rec);
    }

    /// A failed audit: a penalty with the evidence; a wrong proof (or too many
    /// missed deadlines) loses the share to repair.
    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        g: &mut Inner,
        file: &Hash32,
        i: usize,
        node: Did,
        c: &Challenge,
        why: &str,
        lose: bool,
        entries: &mut Entries,
    ) {
        let Some(rec) = g.files.get_mut(file) else {
            return;
        };
        rec.audits_failed += 1;
        let len = rec.manifest.share_len();
        let root = rec.manifest.roots.get(i).copied().unwrap_or_default();
        let Some(s) = rec.shares.get_mut(i) else {
            return;
        };
        if s.holder != Some(node) {
            return;
        }
        s.missed += 1;
        let lost = lose || s.missed >= self.cfg.max_missed;
        let mut detail = format!(
            "share {i} of file {file} (root {root}): challenge seed {} for {} chunks: {why}",
            c.seed, c.count
        );
        detail.truncate(lode_ledger::entry::MAX_TEXT_LEN);
        tracing::warn!(file = %file, share = i, node = %node, why, "storage audit failed");
        entries.push(Entry::Penalty(Penalty {
            node,
            reason: PenaltyReason::FailedAudit,
            job: Some(*file),
            unit: Some(i as u64),
            // A day of this share's storage weight.
            forfeit_weight: u128::from(len) * 24,
            detail,
        }));
        if lost {
            s.state = ShareState::Lost;
            s.holder = None;
            s.excluded.push(node);
            if let Some(n) = g.nodes.get_mut(&node) {
                n.queue.push_back(StorageTask::Delete {
                    file: *file,
                    share: i as u16,
                });
            }
        }
        let rec = rec.clone();
        self.persist(file, &rec);
    }

    /// Deadlines, offline holders, term ends, audits, placement and
    /// settlements. Returns the ledger entries to submit and the files that
    /// need a repair (shares lost, enough others live).
    pub fn tick(&self, groups: &Groups, state: &State, now: u64) -> (Entries, Vec<Hash32>) {
        let mut entries = Vec::new();
        let mut guard = self.lock();
        let g = &mut *guard;
        // Missed deadlines.
        let late: Vec<u64> = g
            .challenges
            .iter()
            .filter(|(_, p)| now > p.deadline_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(p) = g.challenges.remove(&id) {
                let c = p.challenge;
                let why = format!("no answer by the deadline ({} ms)", p.deadline_ms);
                self.failed(
                    g,
                    &c.file,
                    usize::from(c.share),
                    p.node,
                    &c,
                    &why,
                    false,
                    &mut entries,
                );
            }
        }
        let grace = self.cfg.offline_grace_ms;
        let started = self.started_ms;
        let online = |g: &Inner, d: &Did| {
            let seen = g.nodes.get(d).map_or(started, |n| n.last_seen_ms);
            now.saturating_sub(seen) <= grace
        };
        let mut repairs = Vec::new();
        let ids: Vec<Hash32> = g.files.keys().copied().collect();
        for id in ids {
            let Some(mut rec) = g.files.get(&id).cloned() else {
                continue;
            };
            if rec.closed {
                continue;
            }
            let mut changed = false;
            if now >= rec.term_end_ms {
                self.close(g, &id, &mut rec, state, &mut entries);
                g.files.insert(id, rec.clone());
                self.persist(&id, &rec);
                continue;
            }
            let len = rec.manifest.share_len();
            // Holders offline past the grace lose their shares.
            for s in rec.shares.iter_mut() {
                if let Some(h) = s.holder
                    && matches!(s.state, ShareState::Held | ShareState::Storing)
                    && !online(g, &h)
                {
                    tracing::warn!(file = %id, node = %h, "holder offline past the grace period; its share is rebuilt elsewhere");
                    if s.state == ShareState::Storing {
                        s.state = ShareState::Unplaced;
                    } else {
                        s.state = ShareState::Lost;
                    }
                    if let Some(n) = g.nodes.get_mut(&h) {
                        n.reserved = n.reserved.saturating_sub(len);
                    }
                    s.holder = None;
                    s.excluded.push(h);
                    changed = true;
                }
            }
            // Audits.
            for (i, s) in rec.shares.iter_mut().enumerate() {
                let Some(h) = s.holder else { continue };
                if s.state != ShareState::Held || now < s.next_audit_ms {
                    continue;
                }
                let pending = g
                    .challenges
                    .values()
                    .any(|p| p.challenge.file == id && usize::from(p.challenge.share) == i);
                if pending {
                    continue;
                }
                let c = Challenge {
                    file: id,
                    share: i as u16,
                    seed: random_hash(),
                    count: self.cfg.challenge_chunks,
                };
                let cid = Self::next_id(g);
                let deadline_ms = now + self.cfg.answer_timeout_ms;
                if let Some(n) = g.nodes.get_mut(&h) {
                    n.queue.push_back(StorageTask::Challenge {
                        id: cid,
                        file: id,
                        share: i as u16,
                        seed: c.seed,
                        count: c.count,
                        deadline_ms,
                    });
                }
                g.challenges.insert(
                    cid,
                    PendingChallenge {
                        node: h,
                        challenge: c,
                        deadline_ms,
                    },
                );
                s.next_audit_ms = now + self.audit_delay();
            }
            // Placement of staged shares on nodes of groups not yet used.
            let mut used_ip: HashSet<IpGroup> = HashSet::new();
            let mut used_op: HashSet<OperatorId> = HashSet::new();
            for s in &rec.shares {
                if let Some(h) = s.holder
                    && let Some((ip, op)) = groups.get(&h)
                {
                    used_ip.insert(*ip);
                    used_op.insert(*op);
                }
            }
            let mut needs_repair = false;
            for i in 0..rec.shares.len() {
                if !matches!(rec.shares[i].state, ShareState::Unplaced | ShareState::Lost) {
                    continue;
                }
                let Some(bytes) = self.staged(&id, i) else {
                    needs_repair = true;
                    continue;
                };
                let cands = Self::candidates(g, groups, len, now, grace);
                let pick = cands.into_iter().find(|(d, ip, op)| {
                    !rec.shares[i].excluded.contains(d)
                        && !used_ip.contains(ip)
                        && !used_op.contains(op)
                        && rec.shares.iter().all(|s| s.holder != Some(*d))
                });
                let Some((node, ip, op)) = pick else { continue };
                used_ip.insert(ip);
                used_op.insert(op);
                let s = &mut rec.shares[i];
                s.state = ShareState::Storing;
                s.holder = Some(node);
                if let Some(n) = g.nodes.get_mut(&node) {
                    n.reserved += len;
                    n.queue.push_back(StorageTask::Store {
                        file: id,
                        share: i as u16,
                        root: rec.manifest.roots[i],
                        chunk_bytes: rec.manifest.chunk_bytes,
                        bytes,
                    });
                }
                changed = true;
            }
            if needs_repair
                && !g.repairing.contains(&id)
                && rec.live() >= usize::from(rec.manifest.k)
            {
                repairs.push(id);
            }
            // Settle owed fees now and then.
            if now.saturating_sub(rec.last_settle_ms) >= self.cfg.settle_interval_ms {
                rec.last_settle_ms = now;
                if let Ok(s) = state.settlement(&id, false)
                    && !s.payouts.is_empty()
                {
                    entries.push(Entry::Settlement(s));
                }
                changed = true;
            }
            if changed {
                self.persist(&id, &rec);
            }
            g.files.insert(id, rec);
        }
        drop(guard);
        self.wake();
        (entries, repairs)
    }

    /// Ends a contract: holders delete, owed fees are paid, the rest refunded.
    fn close(
        &self,
        g: &mut Inner,
        id: &Hash32,
        rec: &mut FileRec,
        state: &State,
        entries: &mut Entries,
    ) {
        rec.closed = true;
        for (i, s) in rec.shares.iter_mut().enumerate() {
            if let Some(h) = s.holder.take()
                && let Some(n) = g.nodes.get_mut(&h)
            {
                n.queue.push_back(StorageTask::Delete {
                    file: *id,
                    share: i as u16,
                });
            }
            self.unstage(id, i);
        }
        g.challenges.retain(|_, p| p.challenge.file != *id);
        match state.settlement(id, true) {
            Ok(s) => entries.push(Entry::Settlement(s)),
            Err(e) => {
                tracing::warn!(file = %id, error = %e, "storage contract not settled at its end")
            }
        }
    }

    /// Ends a contract early at its requester's request.
    pub fn delete(&self, id: &Hash32, requester: &Did, state: &State) -> Result<Entries, ApiError> {
        let mut guard = self.lock();
        let g = &mut *guard;
        let mut rec = match g.files.get(id) {
            Some(r) if r.requester == *requester && !r.closed => r.clone(),
            _ => return Err(unknown_file(id)),
        };
        let mut entries = Vec::new();
        self.close(g, id, &mut rec, state, &mut entries);
        g.files.insert(*id, rec.clone());
        self.persist(id, &rec);
        drop(guard);
        self.wake();
        Ok(entries)
    }

    /// Asks the holder of share `i` for its bytes (or reads them from staging).
    /// The caller checks them against the root.
    pub async fn fetch(
        &self,
        file: &Hash32,
        i: usize,
        timeout_ms: u64,
    ) -> Result<Vec<u8>, ApiError> {
        let rx = {
            let mut g = self.lock();
            let rec = g.files.get(file).ok_or_else(|| unknown_file(file))?;
            let s = rec.shares.get(i).ok_or_else(|| {
                ApiError::not_found("unknown_share", format!("file {file} has no share {i}"))
            })?;
            let holder = match (s.state, s.holder) {
                (ShareState::Held, Some(h)) => h,
                _ => {
                    drop(g);
                    return self.staged(file, i).ok_or_else(|| unavailable(file, i));
                }
            };
            let id = Self::next_id(&mut g);
            let (tx, rx) = oneshot::channel();
            // A holder not heard from since this gateway started (a restart)
            // gets the task on its first poll, within the grace period.
            let started = self.started_ms;
            let n = g.nodes.entry(holder).or_insert_with(|| NodeSt {
                last_seen_ms: started,
                ..NodeSt::default()
            });
            n.queue.push_back(StorageTask::Fetch {
                id,
                file: *file,
                share: i as u16,
            });
            g.fetches.insert(id, FetchWait { node: holder, tx });
            rx
        };
        self.wake();
        match tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), rx).await {
            Ok(Ok(Ok(bytes))) => Ok(bytes),
            r => {
                tracing::debug!(file = %file, share = i, outcome = ?r.map(|r| r.map(|r| r.map(|b| b.len()))), "share fetch failed");
                Err(unavailable(file, i))
            }
        }
    }

    /// Rebuilds the lost shares of `file` from `k` live ones and stages them
    /// for placement. Fetches run concurrently; each share is checked against
    /// its root before it is used.
    pub async fn repair(self: Arc<Self>, file: Hash32) {
        let Some(rec) = ({
            let mut g = self.lock();
            if !g.repairing.insert(file) {
                return;
            }
            g.files.get(&file).cloned()
        }) else {
            self.lock().repairing.remove(&file);
            return;
        };
        let started = std::time::Instant::now();
        let result = self.clone().rebuild(&rec).await;
        let mut g = self.lock();
        g.repairing.remove(&file);
        match result {
            Ok(n) => {
                if let Some(r) = g.files.get_mut(&file) {
                    r.repairs += n as u64;
                    let r = r.clone();
                    self.persist(&file, &r);
                }
                tracing::info!(file = %file, shares = n, ms = started.elapsed().as_millis() as u64, "repair rebuilt lost shares");
            }
            Err(e) => {
                tracing::warn!(file = %file, error = %e, "repair failed; retried at the next tick")
            }
        }
    }

    async fn rebuild(self: Arc<Self>, rec: &FileRec) -> Result<usize, String> {
        let m = &rec.manifest;
        let file = m.file;
        let want: Vec<usize> = rec
            .shares
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                matches!(s.state, ShareState::Lost | ShareState::Unplaced)
                    && self.staged(&file, *i).is_none()
            })
            .map(|(i, _)| i)
            .collect();
        if want.is_empty() {
            return Ok(0);
        }
        let live: Vec<usize> = rec
            .shares
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == ShareState::Held)
            .map(|(i, _)| i)
            .collect();
        let k = usize::from(m.k);
        let mut got: Vec<Option<Vec<u8>>> = vec![None; usize::from(m.n)];
        let mut have = 0;
        for batch in live.chunks(k) {
            let fetches = batch.iter().map(|i| {
                let me = self.clone();
                let i = *i;
                async move { (i, me.fetch(&file, i, me.cfg.answer_timeout_ms).await) }
            });
            for (i, r) in futures_util::future::join_all(fetches).await {
                if let Ok(bytes) = r
                    && m.check_share(i, &bytes).is_ok()
                {
                    got[i] = Some(bytes);
                    have += 1;
                }
            }
            if have >= k {
                break;
            }
        }
        let layout = m.layout().map_err(|e| e.to_string())?;
        let rebuilt = tokio::task::spawn_blocking(move || {
            let shares: Vec<Option<&[u8]>> = got.iter().map(|s| s.as_deref()).collect();
            lode_storage::coding::rebuild(&layout, &shares, &want)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        for (i, bytes) in &rebuilt {
            m.check_share(*i, bytes).map_err(|e| e.to_string())?;
            self.stage(&file, *i, bytes).map_err(|e| e.to_string())?;
        }
        Ok(rebuilt.len())
    }

    /// Public status of a file.
    pub fn view(&self, id: &Hash32, groups: &Groups) -> Option<serde_json::Value> {
        let g = self.lock();
        let f = g.files.get(id)?;
        let shares: Vec<serde_json::Value> = f
            .shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "index": i,
                    "state": s.state,
                    "holder": s.holder.map(|h| h.to_string()),
                    "holder_online": s.holder.is_some_and(|h| groups.contains_key(&h)),
                    "root": f.manifest.roots[i].to_hex(),
                })
            })
            .collect();
        Some(serde_json::json!({
            "file": id.to_hex(),
            "requester": f.requester.to_string(),
            "manifest": f.manifest,
            "share_bytes": f.manifest.share_len(),
            "created_ms": f.created_ms,
            "term_end_ms": f.term_end_ms,
            "price_per_byte_hour": f.price_per_byte_hour.to_string(),
            "live_shares": f.live(),
            "shares": shares,
            "audits_passed": f.audits_passed,
            "audits_failed": f.audits_failed,
            "repairs": f.repairs,
            "closed": f.closed,
        }))
    }
}

pub fn unknown_file(id: &Hash32) -> ApiError {
    ApiError::not_found("unknown_file", format!("no stored file {id} here"))
}

fn unavailable(file: &Hash32, i: usize) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "share_unavailable",
        format!(
            "share {i} of file {file} cannot be read now (holder offline or being repaired); read another share"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_storage::coding::DEFAULT_SHARD_BYTES;
    use lode_storage::merkle::DEFAULT_CHUNK_BYTES;

    fn put_raw(st: &Storage, key: &[u8], value: &[u8]) {
        let tx = st.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(FILES).unwrap();
            t.insert(key, value).unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn recovery_skips_one_unreadable_record_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let id = Hash32([1; 32]);
        let (manifest, shares) = Manifest::build(
            id,
            b"a file worth keeping",
            2,
            4,
            DEFAULT_SHARD_BYTES,
            DEFAULT_CHUNK_BYTES,
        )
        .unwrap();
        let requester = lode_proto::Keypair::from_secret_bytes(&[5; 32]).did();
        let contract = StorageContract {
            chain: Hash32([0; 32]),
            manifest,
            term_hours: 1,
            amount: 1,
            price_per_byte_hour: 1,
        };
        {
            let st = Storage::open(dir.path(), StorageConfig::default(), 0).unwrap();
            st.create(&contract, requester, &shares, 0).unwrap();
            st.set_contract_block(&id, 7).unwrap();
            // A record that does not decode, and one under a malformed key.
            put_raw(&st, &[2; 32], b"{not a record");
            put_raw(&st, &[3; 5], b"{}");
        }
        let st = Storage::open(dir.path(), StorageConfig::default(), 1).unwrap();
        let rec = st.file(&id).expect("the good record survives");
        assert_eq!(rec.requester, requester);
        assert_eq!(rec.contract_block, Some(7));
        assert!(st.file(&Hash32([2; 32])).is_none());
        assert_eq!(st.files_of(&requester).len(), 1);
    }
}
