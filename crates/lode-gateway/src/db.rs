//! The gateway's durable state (redb, fsync on every commit).
//!
//! Tables (keys are big-endian so that range scans follow numeric order):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | bytes (`next_job`) |
//! | `jobs` | job seq (u64) | [`JobRecord`] |
//! | `reports` | job seq ‖ unit ‖ node | [`ReportRecord`]: a result received, unit undecided |
//! | `outcomes` | job seq ‖ unit | [`UnitOutcomeRecord`]: the unit's final result |
//! | `nodes` | node public key | [`NodeRecord`]: trust carried across sessions |
//! | `outbox` | seq (u64) | [`OutboxRecord`]: a penalty or multiplier change handed to the ledger, until a sealed block holds it |
//! | `open_jobs` | job seq (u64) | (): jobs recovery must look at (running, or not yet settled in a sealed block) |
//! | `summaries` | job seq (u64) | [`JobSummary`]: a closed job's view, so it costs nothing at start |
//! | `by_wire` | job id (32 bytes) | job seq (u64) |
//! | `modules` | module sha256 | [`ModuleRecord`]: who uploaded it, its size, when |
//! | `data_domains` | registrable domain | [`crate::data::DomainRec`]: a reported domain, its reports and status |
//!
//! Start-up reads only `open_jobs` (and what they name) and the outbox: a job
//! leaves `open_jobs` once its settlement is in a sealed block, so restart cost
//! follows open work, not history. A database written before these tables
//! existed is indexed once, at its first open (`meta.schema`).
//!
//! Everything a response acknowledges is committed before the response is sent.

use lode_proto::wire::{SubmitJob, UnitLimits};
use lode_proto::{Did, Envelope, Hash32, canonical};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;

const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
const JOBS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("jobs");
const REPORTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("reports");
const OUTCOMES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("outcomes");
const NODES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("nodes");
const OUTBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("outbox");
const OPEN_JOBS: TableDefinition<'_, u64, ()> = TableDefinition::new("open_jobs");
const SUMMARIES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("summaries");
const BY_WIRE: TableDefinition<'_, &[u8], u64> = TableDefinition::new("by_wire");
const MODULES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("modules");
const DATA_DOMAINS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("data_domains");

/// Version of the table layout (see the module doc).
const SCHEMA: u64 = 2;

/// A closed job as the API shows it, without its inputs or results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub wire: Hash32,
    pub name: String,
    pub requester: Did,
    pub status: JobStatus,
    pub units: u32,
    pub completed: u32,
    pub failed: u32,
    pub quorum: u8,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    pub fuel_verified: u128,
    /// Why the job was quarantined at start-up, if it was.
    pub note: Option<String>,
}

/// Who stored a module, for quotas and clean-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub uploader: Did,
    pub size: u64,
    pub uploaded_ms: u64,
}

/// A ledger entry the gateway produced on its own (a `Penalty` or an
/// `AdjustNode`), kept until a sealed block holds it: nothing else re-derives
/// these after a crash, unlike receipts (from `outcomes`) and escrows (from `jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The ledger height when it was submitted: the next block, `after_height +
    /// 1`, holds it, so it is safely on the ledger once the tip is above this.
    pub after_height: u64,
    pub entry: lode_ledger::Entry,
}

/// Why the gateway database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("gateway database: {0}")]
    Redb(String),
    #[error("gateway database record is corrupt: {0}")]
    Corrupt(String),
}

macro_rules! redb_err {
    ($($t:ty),*) => {$(
        impl From<$t> for DbError {
            fn from(e: $t) -> Self {
                DbError::Redb(e.to_string())
            }
        }
    )*};
}
redb_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<canonical::CanonicalError> for DbError {
    fn from(e: canonical::CanonicalError) -> Self {
        DbError::Corrupt(e.to_string())
    }
}

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Accepted and escrowed; units are being run.
    Running,
    /// Every unit decided; settled on the ledger.
    Finished,
    /// Cancelled by the requester; settled on the ledger.
    Cancelled,
    /// Its record could not be resumed at start-up: set aside, escrow refunded.
    Quarantined,
}

impl JobStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Finished => "finished",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Quarantined => "quarantined",
        }
    }
}

/// A job as stored: the requester's signed submission and its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The signed `SubmitJob` envelope exactly as received.
    pub submission: Envelope,
    pub requester: Did,
    pub status: JobStatus,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    /// Whether the closing settlement was written to the ledger.
    pub settled: bool,
}

impl JobRecord {
    /// Decodes the submission (it was verified when accepted).
    /// Records signed before `SubmitJob::eligibility` existed decode as open jobs.
    pub fn submit_job(&self) -> Result<SubmitJob, DbError> {
        match canonical::decode::<lode_proto::envelope::Payload<SubmitJob>>(
            &self.submission.payload,
        ) {
            Ok(p) => Ok(p.message),
            Err(e) => canonical::decode::<
                lode_proto::envelope::Payload<lode_proto::wire::SubmitJobV1>,
            >(&self.submission.payload)
            .map(|p| p.message.into())
            .map_err(|_| e.into()),
        }
    }
}

/// A result received for an undecided unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub exit_code: i32,
    pub fuel_used: u64,
    pub output: Vec<u8>,
    /// The node's signature of its `ResultClaim` (chains with staking).
    pub claim: Option<lode_proto::Signature>,
}

/// A [`ReportRecord`] as stored before result claims.
#[derive(Serialize, Deserialize)]
struct ReportRecordV1 {
    exit_code: i32,
    fuel_used: u64,
    output: Vec<u8>,
}

impl ReportRecord {
    fn decode(bytes: &[u8]) -> Result<Self, DbError> {
        match canonical::decode::<ReportRecord>(bytes) {
            Ok(r) => Ok(r),
            Err(e) => canonical::decode::<ReportRecordV1>(bytes)
                .map(|r| ReportRecord {
                    exit_code: r.exit_code,
                    fuel_used: r.fuel_used,
                    output: r.output,
                    claim: None,
                })
                .map_err(|_| e.into()),
        }
    }
}

impl ReportRecord {
    /// What the scheduler compared: (sha256 of the output, exit code, fuel).
    pub fn digest(&self) -> lode_sched::ResultDigest {
        lode_sched::ResultDigest {
            output_hash: lode_proto::Hash32::sha256(&self.output),
            exit_code: self.exit_code,
            fuel_used: self.fuel_used,
        }
    }
}

/// A unit's final result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitOutcomeRecord {
    Verified {
        output_hash: Hash32,
        exit_code: i32,
        fuel_used: u64,
        /// `Some(message)` when the agreed result is a deterministic sandbox error.
        error: Option<String>,
        output: Vec<u8>,
        /// Nodes paid for it (sorted).
        credited: Vec<Did>,
        /// "quorum:N", "trusted" or "single".
        basis: String,
    },
    Failed {
        reason: String,
    },
}

/// What the gateway remembers about a node between sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub consecutive_valid: u32,
    pub reputation: u32,
    pub flags: Vec<String>,
}

/// Writes collected while deciding, committed together.
#[derive(Debug, Default)]
pub struct Batch {
    pub jobs: Vec<(u64, JobRecord)>,
    pub reports: Vec<((u64, u32, Did), ReportRecord)>,
    pub outcomes: Vec<((u64, u32), UnitOutcomeRecord)>,
    /// Report rows to delete: all reports of these units.
    pub clear_reports: Vec<(u64, u32, Vec<Did>)>,
    pub nodes: Vec<(Did, NodeRecord)>,
    pub next_job: Option<u64>,
    /// Jobs that recovery must look at from now on (with their id).
    pub open: Vec<(u64, Hash32)>,
    /// Jobs closed for good: their summary replaces them at start-up.
    pub closed: Vec<(u64, JobSummary)>,
    /// Open-job rows to drop without a summary (records that do not decode).
    pub forget_open: Vec<u64>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.reports.is_empty()
            && self.outcomes.is_empty()
            && self.clear_reports.is_empty()
            && self.nodes.is_empty()
            && self.next_job.is_none()
            && self.open.is_empty()
            && self.closed.is_empty()
            && self.forget_open.is_empty()
    }
}

fn report_key(job: u64, unit: u32, node: &Did) -> Vec<u8> {
    let mut k = Vec::with_capacity(44);
    k.extend_from_slice(&job.to_be_bytes());
    k.extend_from_slice(&unit.to_be_bytes());
    k.extend_from_slice(node.public_key_bytes());
    k
}

fn unit_key(job: u64, unit: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&job.to_be_bytes());
    k[8..].copy_from_slice(&unit.to_be_bytes());
    k
}

/// The gateway database (a cheap handle: clones share one database).
#[derive(Debug, Clone)]
pub struct Db {
    db: std::sync::Arc<Database>,
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(META)?;
        tx.open_table(JOBS)?;
        tx.open_table(REPORTS)?;
        tx.open_table(OUTCOMES)?;
        tx.open_table(NODES)?;
        tx.open_table(OUTBOX)?;
        tx.open_table(OPEN_JOBS)?;
        tx.open_table(SUMMARIES)?;
        tx.open_table(BY_WIRE)?;
        tx.open_table(MODULES)?;
        tx.open_table(DATA_DOMAINS)?;
        tx.commit()?;
        let db = Self {
            db: std::sync::Arc::new(db),
        };
        db.migrate()?;
        Ok(db)
    }

    /// Indexes a database written before `open_jobs`/`by_wire` existed: every
    /// job becomes open once (recovery then closes the settled ones).
    fn migrate(&self) -> Result<(), DbError> {
        let schema = {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(META)?;
            t.get("schema")?
                .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
                .unwrap_or(0)
        };
        if schema >= SCHEMA {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let jobs = tx.open_table(JOBS)?;
            let mut open = tx.open_table(OPEN_JOBS)?;
            let mut by_wire = tx.open_table(BY_WIRE)?;
            for row in jobs.iter()? {
                let (k, v) = row?;
                open.insert(k.value(), ())?;
                // The job id is the first field of the signed payload's message;
                // decode the record to find it (a corrupt one is left to recovery).
                if let Ok(rec) = canonical::decode::<JobRecord>(v.value())
                    && let Ok(sj) = rec.submit_job()
                {
                    by_wire.insert(sj.job.as_bytes().as_slice(), k.value())?;
                }
            }
            tx.open_table(META)?
                .insert("schema", SCHEMA.to_be_bytes().as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Seqs of the jobs recovery must look at, ascending.
    pub fn open_jobs(&self) -> Result<Vec<u64>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OPEN_JOBS)?;
        let mut out = vec![];
        for row in t.iter()? {
            out.push(row?.0.value());
        }
        Ok(out)
    }

    /// One job's record; `Err(Corrupt)` when its bytes do not decode.
    pub fn job(&self, seq: u64) -> Result<Option<JobRecord>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(JOBS)?;
        Ok(match t.get(seq)? {
            Some(v) => Some(canonical::decode(v.value())?),
            None => None,
        })
    }

    /// The seq of a job id, open or closed.
    pub fn seq_of(&self, wire: &Hash32) -> Result<Option<u64>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BY_WIRE)?;
        Ok(t.get(wire.as_bytes().as_slice())?.map(|v| v.value()))
    }

    /// A closed job's summary.
    pub fn summary(&self, seq: u64) -> Result<Option<JobSummary>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SUMMARIES)?;
        Ok(match t.get(seq)? {
            Some(v) => Some(canonical::decode(v.value())?),
            None => None,
        })
    }

    /// Closed jobs' summaries with seq below `before`, newest first, at most `limit`.
    pub fn summaries_before(
        &self,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, JobSummary)>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SUMMARIES)?;
        let mut out = vec![];
        for row in t.range(..before)?.rev().take(limit) {
            let (k, v) = row?;
            out.push((k.value(), canonical::decode(v.value())?));
        }
        Ok(out)
    }

    /// How many jobs were closed for good.
    pub fn closed_count(&self) -> Result<u64, DbError> {
        let tx = self.db.begin_read()?;
        Ok(redb::ReadableTableMetadata::len(
            &tx.open_table(SUMMARIES)?,
        )?)
    }

    /// Stored modules' records.
    pub fn modules(&self) -> Result<Vec<(Hash32, ModuleRecord)>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(MODULES)?;
        let mut out = vec![];
        for row in t.iter()? {
            let (k, v) = row?;
            let h: [u8; 32] = k
                .value()
                .try_into()
                .map_err(|_| DbError::Corrupt("module key".into()))?;
            out.push((Hash32(h), canonical::decode(v.value())?));
        }
        Ok(out)
    }

    /// Records (or forgets, with `None`) who stored a module.
    pub fn set_module(&self, h: &Hash32, rec: Option<&ModuleRecord>) -> Result<(), DbError> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(MODULES)?;
            match rec {
                Some(r) => {
                    t.insert(h.as_bytes().as_slice(), canonical::encode(r)?.as_slice())?;
                }
                None => {
                    t.remove(h.as_bytes().as_slice())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// One unit's final result.
    pub fn outcome(&self, job: u64, unit: u32) -> Result<Option<UnitOutcomeRecord>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OUTCOMES)?;
        Ok(match t.get(unit_key(job, unit).as_slice())? {
            Some(v) => Some(canonical::decode(v.value())?),
            None => None,
        })
    }

    /// Final results of units `from..to` of one job.
    pub fn outcomes_range(
        &self,
        job: u64,
        from: u32,
        to: u32,
    ) -> Result<Vec<(u32, UnitOutcomeRecord)>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OUTCOMES)?;
        let lo = unit_key(job, from);
        let hi = unit_key(job, to);
        let mut out = vec![];
        if from >= to {
            return Ok(out);
        }
        for row in t.range(lo.as_slice()..hi.as_slice())? {
            let (k, v) = row?;
            let unit = u32::from_be_bytes(k.value()[8..12].try_into().unwrap_or_default());
            out.push((unit, canonical::decode(v.value())?));
        }
        Ok(out)
    }

    /// Every stored reported domain. A record that does not decode is skipped
    /// (and named in the second list): one bad row never stops a start.
    pub fn data_domains(&self) -> Result<(Vec<crate::data::DomainRec>, Vec<String>), DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(DATA_DOMAINS)?;
        let (mut ok, mut bad) = (vec![], vec![]);
        for row in t.iter()? {
            let (k, v) = row?;
            match canonical::decode(v.value()) {
                Ok(r) => ok.push(r),
                Err(_) => bad.push(k.value().to_string()),
            }
        }
        Ok((ok, bad))
    }

    /// Writes (or, with `None`, deletes) reported domains, in one durable commit.
    pub fn data_put(
        &self,
        recs: &[(&str, Option<&crate::data::DomainRec>)],
    ) -> Result<(), DbError> {
        if recs.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(DATA_DOMAINS)?;
            for (d, r) in recs {
                match r {
                    Some(r) => {
                        t.insert(*d, canonical::encode(r)?.as_slice())?;
                    }
                    None => {
                        t.remove(*d)?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Keeps `rec` under `seq` (committed, fsync'd).
    pub fn outbox_put(&self, seq: u64, rec: &OutboxRecord) -> Result<(), DbError> {
        let tx = self.db.begin_write()?;
        tx.open_table(OUTBOX)?
            .insert(seq, canonical::encode(rec)?.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// Drops the given rows.
    pub fn outbox_remove(&self, seqs: &[u64]) -> Result<(), DbError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(OUTBOX)?;
            for s in seqs {
                t.remove(*s)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Every kept entry, by seq.
    pub fn outbox(&self) -> Result<Vec<(u64, OutboxRecord)>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OUTBOX)?;
        let mut out = vec![];
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value(), canonical::decode(v.value())?));
        }
        Ok(out)
    }

    /// Commits a batch atomically and durably.
    pub fn commit(&self, b: &Batch) -> Result<(), DbError> {
        if b.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            if let Some(n) = b.next_job {
                tx.open_table(META)?
                    .insert("next_job", n.to_be_bytes().as_slice())?;
            }
            let mut jobs = tx.open_table(JOBS)?;
            for (seq, rec) in &b.jobs {
                jobs.insert(*seq, canonical::encode(rec)?.as_slice())?;
            }
            let mut reports = tx.open_table(REPORTS)?;
            for ((job, unit, node), rec) in &b.reports {
                reports.insert(
                    report_key(*job, *unit, node).as_slice(),
                    canonical::encode(rec)?.as_slice(),
                )?;
            }
            for (job, unit, nodes) in &b.clear_reports {
                for n in nodes {
                    reports.remove(report_key(*job, *unit, n).as_slice())?;
                }
            }
            let mut outcomes = tx.open_table(OUTCOMES)?;
            for ((job, unit), rec) in &b.outcomes {
                outcomes.insert(
                    unit_key(*job, *unit).as_slice(),
                    canonical::encode(rec)?.as_slice(),
                )?;
            }
            let mut nodes = tx.open_table(NODES)?;
            for (did, rec) in &b.nodes {
                nodes.insert(
                    did.public_key_bytes().as_slice(),
                    canonical::encode(rec)?.as_slice(),
                )?;
            }
            let mut open = tx.open_table(OPEN_JOBS)?;
            let mut by_wire = tx.open_table(BY_WIRE)?;
            for (seq, wire) in &b.open {
                open.insert(*seq, ())?;
                by_wire.insert(wire.as_bytes().as_slice(), *seq)?;
            }
            let mut summaries = tx.open_table(SUMMARIES)?;
            for seq in &b.forget_open {
                open.remove(*seq)?;
            }
            for (seq, sum) in &b.closed {
                summaries.insert(*seq, canonical::encode(sum)?.as_slice())?;
                open.remove(*seq)?;
                by_wire.insert(sum.wire.as_bytes().as_slice(), *seq)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The staking rewards of the last epochs closed (epoch, released, bonded),
    /// kept for the APR estimate across restarts. A record that does not
    /// decode reads as none (the estimate starts over).
    pub fn staking_epochs(&self) -> Result<Vec<(u64, u128, u128)>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        Ok(t.get("staking_epochs")?
            .and_then(|v| canonical::decode(v.value()).ok())
            .unwrap_or_default())
    }

    pub fn put_staking_epochs(&self, epochs: &[(u64, u128, u128)]) -> Result<(), DbError> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?
            .insert("staking_epochs", canonical::encode(&epochs)?.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn next_job(&self) -> Result<u64, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        Ok(match t.get("next_job")? {
            Some(v) => {
                let b: [u8; 8] = v
                    .value()
                    .try_into()
                    .map_err(|_| DbError::Corrupt("next_job".into()))?;
                u64::from_be_bytes(b)
            }
            None => 0,
        })
    }

    /// Undecided results of one job: (unit, node, record).
    pub fn reports(&self, job: u64) -> Result<Vec<(u32, Did, ReportRecord)>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REPORTS)?;
        let lo = job.to_be_bytes();
        let hi = (job + 1).to_be_bytes();
        let mut out = vec![];
        for row in t.range(lo.as_slice()..hi.as_slice())? {
            let (k, v) = row?;
            let k = k.value();
            if k.len() != 44 {
                return Err(DbError::Corrupt("report key".into()));
            }
            let unit = u32::from_be_bytes(k[8..12].try_into().unwrap_or_default());
            let pk: [u8; 32] = k[12..44].try_into().unwrap_or_default();
            let node =
                Did::from_public_key_bytes(pk).map_err(|e| DbError::Corrupt(e.to_string()))?;
            out.push((unit, node, ReportRecord::decode(v.value())?));
        }
        Ok(out)
    }

    /// Final results of one job, by unit.
    pub fn outcomes(&self, job: u64) -> Result<Vec<(u32, UnitOutcomeRecord)>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(OUTCOMES)?;
        let lo = unit_key(job, 0);
        let hi = unit_key(job + 1, 0);
        let mut out = vec![];
        for row in t.range(lo.as_slice()..hi.as_slice())? {
            let (k, v) = row?;
            let unit = u32::from_be_bytes(k.value()[8..12].try_into().unwrap_or_default());
            out.push((unit, canonical::decode(v.value())?));
        }
        Ok(out)
    }

    pub fn node(&self, did: &Did) -> Result<Option<NodeRecord>, DbError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(NODES)?;
        Ok(match t.get(did.public_key_bytes().as_slice())? {
            Some(v) => Some(canonical::decode(v.value())?),
            None => None,
        })
    }
}

/// Limits as the scheduler sees them.
pub fn sched_limits(l: &UnitLimits) -> lode_sched::Limits {
    lode_sched::Limits {
        fuel: l.fuel,
        memory_bytes: l.memory_bytes,
        timeout_ms: Some(l.timeout_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::wire::{Engine, SubmitJobV1, UnitInput, Verification};

    fn record(payload: Vec<u8>, signer: Did) -> JobRecord {
        JobRecord {
            submission: Envelope {
                kind: "lode/requester/submit-job/v1".into(),
                payload,
                signer,
                signature: lode_proto::Signature([0; 64]),
            },
            requester: signer,
            status: JobStatus::Running,
            created_ms: 1,
            finished_ms: None,
            settled: false,
        }
    }

    #[test]
    fn records_signed_before_eligibility_still_decode_as_open_jobs() {
        let key = lode_proto::Keypair::generate().expect("key");
        let v1 = SubmitJobV1 {
            job: Hash32::sha256(b"j"),
            escrow: Envelope {
                kind: String::new(),
                payload: vec![],
                signer: key.did(),
                signature: lode_proto::Signature([0; 64]),
            },
            name: "old".into(),
            engine: Engine::default(),
            module: Hash32::sha256(b"m"),
            units: vec![UnitInput {
                stdin: b"x".to_vec(),
                args: vec![],
            }],
            limits: UnitLimits::default(),
            verification: Verification::default(),
            max_price_per_fuel: 3,
            region: None,
        };
        let payload = canonical::encode(&lode_proto::envelope::Payload {
            nonce: 1,
            timestamp_ms: 2,
            message: v1.clone(),
        })
        .expect("encode");
        let s = record(payload, key.did())
            .submit_job()
            .expect("legacy decodes");
        assert_eq!((s.name.as_str(), s.units.len()), ("old", 1));
        assert!(s.eligibility.is_open());
        // Bytes that are neither form are a typed error, not a panic.
        assert!(record(b"junk".to_vec(), key.did()).submit_job().is_err());
    }
}
