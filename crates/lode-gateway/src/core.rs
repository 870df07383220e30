//! The gateway's decision-making state: scheduler + ledger + store + sessions.
//!
//! `Core` is synchronous and lives behind one mutex; handlers verify signatures
//! *before* taking the lock (the expensive part) and hold it only to decide and
//! commit. Every answer that acknowledges something is sent after the redb commit
//! that makes it durable.

use crate::anticheat::{self, FlagEvidence};
use crate::api_error::ApiError;
use crate::db::{
    Batch, Db, JobRecord, JobStatus, JobSummary, ModuleRecord, NodeRecord, OutboxRecord,
    ReportRecord, UnitOutcomeRecord, sched_limits,
};
use crate::metrics::Metrics;
use crate::modules::ModuleStore;
use crate::stake_trust;
use lode_ledger::{
    ContributionKind, Entry, JobEscrow, Ledger, LedgerError, RegisterNode, WorkReceipt,
};
use lode_proto::api::{JobView, UnitResult};
use lode_proto::envelope::Opened;
use lode_proto::wire::{
    self, AuthResponse, HelloResponse, NodeAuth, NodeHello, NodePoll, PollResponse, SubmitJob,
};
use lode_proto::{Did, Envelope, Hash32, ReplayGuard};
use lode_sched::{
    Basis, Decision, FailReason, IpGroup, NodeInfo, OperatorId, Region, ResultDigest, Scheduler,
    TrustState,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Exit code recorded for a unit whose agreed result is a deterministic sandbox error.
pub use lode_proto::wire::ERROR_EXIT_CODE;

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub challenge_ttl_ms: u64,
    pub poll_timeout_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub max_units_per_job: usize,
    /// Treat every loopback client as its own host (a local devnet), instead of
    /// grouping them under one IP.
    pub loopback_distinct: bool,
    /// Most units a node may queue beyond its slots (it asks for its own queue in
    /// `NodeCapacity::queue`). A queued unit's lease runs while it waits, so this
    /// bounds how much work one slow or vanished node can sit on.
    pub max_node_queue: u32,
    /// Which nodes share one node's reward weight (see `anticheat::SybilTracker`).
    pub sybil_policy: anticheat::SybilPolicy,
    /// Geographic spread of reward weight, permille of a region's fair share of
    /// nodes kept at full weight (0 = off; see `anticheat::region_factor_bps`).
    pub region_spread_permille: u32,
    /// Module bytes one identity may keep stored (uploads need a funded account).
    pub module_quota_bytes: u64,
    /// How long an uploaded module is kept while no open job uses it.
    pub module_grace_ms: u64,
    /// Browser nodes' reports: k-anonymity, window, rates (see [`crate::data`]).
    pub data: crate::data::DataConfig,
    /// Stake-backed trust on chains with staking: a node's cover is the stake
    /// a proven fault slashes divided by this (0: off; see [`crate::stake_trust`]).
    pub stake_trust_multiple: u32,
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            challenge_ttl_ms: 30_000,
            poll_timeout_ms: 20_000,
            heartbeat_timeout_ms: 60_000,
            max_units_per_job: 1_000_000,
            loopback_distinct: true,
            max_node_queue: 256,
            sybil_policy: anticheat::SybilPolicy::default(),
            region_spread_permille: anticheat::DEFAULT_REGION_SPREAD_PERMILLE,
            module_quota_bytes: 256 << 20,
            module_grace_ms: 3_600_000,
            data: crate::data::DataConfig::default(),
            stake_trust_multiple: 2,
        }
    }
}

struct PendingHello {
    challenge: [u8; 32],
    hello: NodeHello,
    ip: IpAddr,
    expires_ms: u64,
    register_nonce: Option<u64>,
}

struct Session {
    node: Did,
    last_seen_ms: u64,
    /// What the node said in its hello, for the dashboard.
    speed_fuel_per_s: u64,
    cpu_slots: u32,
    region: Option<String>,
    unit_memory_bytes: u64,
    min_price_per_fuel: u128,
    /// Its IP group and operator, as the scheduler and the Sybil policy see them.
    ip_group: IpGroup,
    operator_id: OperatorId,
}

/// A job in memory.
struct JobState {
    wire: Hash32,
    record: JobRecord,
    submit: Arc<SubmitJob>,
    completed: u32,
    failed: u32,
    fuel_verified: u128,
    /// Results of undecided units (output kept until the unit is decided).
    pending: HashMap<(u32, Did), ReportRecord>,
}

pub struct Core {
    pub cfg: CoreConfig,
    sched: Scheduler<Did>,
    ledger: Ledger,
    db: Db,
    pub modules: ModuleStore,
    jobs: HashMap<u64, JobState>,
    by_wire: HashMap<Hash32, u64>,
    next_job: u64,
    hellos: HashMap<Did, PendingHello>,
    sessions: HashMap<[u8; 16], Session>,
    node_session: HashMap<Did, [u8; 16]>,
    cancels: HashMap<Did, Vec<wire::UnitRef>>,
    guard: ReplayGuard,
    pub metrics: Arc<Metrics>,
    /// Browser nodes' reports and the threat feed (see [`crate::data_api`]).
    pub(crate) data: crate::data_api::DataState,
    /// Flags raised against nodes, with evidence (newest [`MAX_FLAG_EVIDENCE`]
    /// per node; persisted in the node's `NodeRecord::flags`).
    flag_evidence: HashMap<Did, Vec<FlagEvidence>>,
    /// Nodes seen this epoch, by IP group and operator (Sybil reward weight).
    sybil: anticheat::SybilTracker,
    /// Trusted nodes and their run of verified results (to record losing it).
    trusted: HashMap<Did, u32>,
    /// Next key of the gateway store's ledger outbox.
    outbox_seq: u64,
    /// Outbox rows not yet known to be sealed: (seq, ledger height at submission).
    outbox_unsealed: Vec<(u64, u64)>,
    /// Jobs set aside at start-up: (seq, why).
    quarantined: Vec<(u64, String)>,
    /// The gateway's own values of the knobs governance may change (used
    /// while the chain's parameter is `None`).
    base_knobs: LiveKnobs,
    /// Staking rewards of the last epochs closed (for the APR; kept in the store).
    pub(crate) staking_epochs: std::collections::VecDeque<StakingEpoch>,
    /// Rejected results of staked nodes awaiting the referee run.
    referee: Vec<stake_trust::RefereeTask>,
    /// Every staked node's cover (stake-backed trust), as last computed.
    covers: HashMap<Did, u128>,
}

/// The values of the governable gateway knobs in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveKnobs {
    pub speed_ceiling: u64,
    pub region_spread_permille: u32,
    pub k_anonymity: u32,
    /// Defaults offered to clients for jobs that do not set them (`None`:
    /// the client's own default).
    pub default_quorum: Option<u32>,
    pub default_replicas: Option<u32>,
}

/// Staking rewards released at one epoch close, with the stake bonded then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StakingEpoch {
    pub epoch: u64,
    pub released: u128,
    pub bonded: u128,
}

/// Staking epochs kept for the APR estimate.
pub const STAKING_EPOCHS_KEPT: usize = 16;

/// Flags with evidence kept per node for the API.
const MAX_FLAG_EVIDENCE: usize = 16;

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("jobs", &self.jobs.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not recoverable for a server that issues challenges.
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("OS random number generator failed: {e}"));
    b
}

fn ledger_err(e: LedgerError) -> ApiError {
    use lode_ledger::EntryError as E;
    match e {
        LedgerError::Entry(E::InsufficientBalance {
            account,
            balance,
            needed,
        }) => ApiError::new(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            "insufficient_funds",
            format!(
                "{account} has {balance} base units but the job's escrow needs {needed}; lower the price or the fuel limit, or fund the account"
            ),
        ),
        LedgerError::Entry(E::JobExists(j)) => {
            ApiError::conflict("duplicate_job", format!("job {j} already exists"))
        }
        LedgerError::Entry(e) => ApiError::bad_request("ledger_rejected", e.to_string()),
        other => ApiError::internal(format!("ledger: {other}")),
    }
}

fn db_err(e: crate::db::DbError) -> ApiError {
    ApiError::internal(e.to_string())
}

fn fail_reason_text(r: &FailReason) -> String {
    match r {
        FailReason::NoConsensus {
            results,
            largest_agreement,
            distinct_outputs,
            issued,
        } => format!(
            "no consensus: {results} results from {issued} replicas, {distinct_outputs} distinct outputs, at most {largest_agreement} agreeing"
        ),
        FailReason::TooManyLost {
            errors,
            expired,
            results,
            issued,
        } => format!(
            "too many replicas lost: {errors} node errors, {expired} expired leases, {results} results of {issued} replicas"
        ),
    }
}

fn basis_text(b: &Basis) -> String {
    match b {
        Basis::Quorum { agreeing } => format!("quorum:{agreeing}"),
        Basis::Trusted => "trusted".into(),
        Basis::Single => "single".into(),
    }
}

impl Core {
    /// Opens the core: loads jobs and results, re-adds unfinished jobs to the
    /// scheduler, and reconciles the ledger with what the store says was verified.
    pub fn open(
        cfg: CoreConfig,
        sched: Scheduler<Did>,
        ledger: Ledger,
        db: Db,
        modules: ModuleStore,
        now: u64,
    ) -> Result<Self, crate::GatewayError> {
        let next_job = db.next_job()?;
        let data = crate::data_api::DataState::new(cfg.data.clone());
        let mut core = Core {
            data,
            cfg,
            sched,
            ledger,
            db,
            modules,
            jobs: HashMap::new(),
            by_wire: HashMap::new(),
            next_job,
            hellos: HashMap::new(),
            sessions: HashMap::new(),
            node_session: HashMap::new(),
            cancels: HashMap::new(),
            guard: ReplayGuard::default(),
            metrics: Arc::new(Metrics::default()),
            flag_evidence: HashMap::new(),
            sybil: anticheat::SybilTracker::default(),
            trusted: HashMap::new(),
            outbox_seq: 0,
            outbox_unsealed: Vec::new(),
            quarantined: Vec::new(),
            base_knobs: LiveKnobs {
                speed_ceiling: 0,
                region_spread_permille: 0,
                k_anonymity: 0,
                default_quorum: None,
                default_replicas: None,
            },
            staking_epochs: std::collections::VecDeque::new(),
            referee: Vec::new(),
            covers: HashMap::new(),
        };
        core.sybil.policy = core.cfg.sybil_policy;
        core.sybil.region_spread_permille = core.cfg.region_spread_permille;
        core.base_knobs = LiveKnobs {
            speed_ceiling: core.sched.config().flags.max_claimed_speed,
            region_spread_permille: core.cfg.region_spread_permille,
            k_anonymity: core.cfg.data.k,
            default_quorum: None,
            default_replicas: None,
        };
        core.staking_epochs = core
            .db
            .staking_epochs()
            .unwrap_or_default()
            .into_iter()
            .map(|(epoch, released, bonded)| StakingEpoch {
                epoch,
                released,
                bonded,
            })
            .collect();
        core.apply_params();
        core.recover(now)?;
        core.adopt_unrecorded_modules(now)?;
        Ok(core)
    }

    fn recover(&mut self, now: u64) -> Result<(), crate::GatewayError> {
        let mut batch = Batch::default();
        let open = self.db.open_jobs()?;
        self.metrics.recovery_jobs_loaded.set(open.len() as u64);
        let mut outcomes_loaded = 0u64;
        for seq in open {
            if let Err(why) = self.recover_job(seq, now, &mut batch, &mut outcomes_loaded) {
                self.quarantine(seq, &why, now, &mut batch);
            }
        }
        self.metrics.recovery_outcomes_loaded.set(outcomes_loaded);
        self.db.commit(&batch)?;
        // After the escrows and receipts the penalties may refer to.
        self.recover_outbox()?;
        crate::data_api::recover(self)?;
        self.ledger
            .seal_block(now)
            .map_err(|e| crate::GatewayError::Recovery(e.to_string()))?;
        self.apply_params();
        self.outbox_sealed();
        self.close_settled();
        Ok(())
    }

    /// Resumes one open job from its record; `Err` says why it cannot be.
    fn recover_job(
        &mut self,
        seq: u64,
        now: u64,
        batch: &mut Batch,
        outcomes_loaded: &mut u64,
    ) -> Result<(), String> {
        let record = self
            .db
            .job(seq)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "its record is missing".to_string())?;
        let submit = Arc::new(record.submit_job().map_err(|e| e.to_string())?);
        let wire = submit.job;
        // The escrow must be on the ledger before the job runs (it was committed
        // in the gateway store first, so a crash may have lost it).
        if self.ledger.state().job(&wire).is_none() {
            self.ledger
                .submit(Entry::JobEscrow(submit.escrow.clone()))
                .map_err(|e| format!("its escrow could not be restored: {e}"))?;
        }
        // A job the scheduler refuses is quarantined (its escrow refunded,
        // verified work still paid), not retried at every start.
        let spec = self
            .sched_spec(&record.requester, &submit)
            .map_err(|e| e.to_string())?;
        let outcomes = self.db.outcomes(seq).map_err(|e| e.to_string())?;
        *outcomes_loaded += outcomes.len() as u64;
        let done: Vec<u32> = outcomes.iter().map(|(u, _)| *u).collect();
        let mut js = JobState {
            wire,
            record,
            submit: submit.clone(),
            completed: 0,
            failed: 0,
            fuel_verified: 0,
            pending: HashMap::new(),
        };
        for (unit, o) in &outcomes {
            match o {
                UnitOutcomeRecord::Verified {
                    credited,
                    fuel_used,
                    output_hash,
                    ..
                } => {
                    js.completed += 1;
                    js.fuel_verified += u128::from(*fuel_used) * credited.len() as u128;
                    // Receipts that did not reach a sealed block before a crash.
                    for node in credited {
                        if !self
                            .ledger
                            .state()
                            .is_credited(&wire, u64::from(*unit), node)
                        {
                            let r = receipt(wire, *unit, *node, *fuel_used, *output_hash, credited);
                            if let Err(e) = self.ledger.submit(Entry::WorkReceipt(r)) {
                                tracing::warn!(job = %wire, unit, error = %e, "receipt not restored");
                            }
                        }
                    }
                }
                UnitOutcomeRecord::Failed { .. } => js.failed += 1,
            }
        }
        // Receipts are restored first, so a quarantine's refund still pays them.
        if js.record.status == JobStatus::Running {
            self.sched
                .validate_job(lode_sched::JobId(seq), &spec, &done)
                .map_err(|e| e.to_string())?;
        }
        if js.record.status == JobStatus::Running {
            self.sched
                .add_job_resuming(lode_sched::JobId(seq), spec, &done, now)
                .map_err(|e| e.to_string())?;
            self.restrict(seq, &submit);
            // Results received for undecided units cannot be re-counted without
            // their leases: drop them, the units run again.
            let stale: Vec<_> = self.db.reports(seq).map_err(|e| e.to_string())?;
            let mut by_unit: HashMap<u32, Vec<Did>> = HashMap::new();
            for (unit, node, _) in stale {
                by_unit.entry(unit).or_default().push(node);
            }
            for (unit, nodes) in by_unit {
                batch.clear_reports.push((seq, unit, nodes));
            }
            if done.len() == submit.units.len() {
                // Every unit decided but the job was not closed: finish it now.
                self.finish_job_entries(seq, &mut js, false, now, batch);
            }
        } else if !js.record.settled || self.ledger.state().job(&wire).is_some_and(|j| !j.closed) {
            // Not settled, or settled in a block a crash lost.
            let cancelled = js.record.status != JobStatus::Finished;
            self.finish_job_entries(seq, &mut js, cancelled, now, batch);
        }
        self.by_wire.insert(wire, seq);
        self.jobs.insert(seq, js);
        Ok(())
    }

    /// Applies a job's eligibility rules (who may run its units) to the scheduler.
    fn restrict(&mut self, seq: u64, s: &SubmitJob) {
        let e = &s.eligibility;
        if e.is_open() {
            return;
        }
        let ops: Vec<OperatorId> = e
            .operators
            .iter()
            .map(|d| OperatorId::of(d.public_key_bytes()))
            .collect();
        if let Err(err) = self
            .sched
            .restrict_job(lode_sched::JobId(seq), e.min_reputation, &ops)
        {
            tracing::error!(seq, error = %err, "could not restrict the job's nodes");
        }
    }

    /// Sets aside an open job that cannot be resumed: its escrow is refunded in
    /// the next block (what verified receipts owe is still paid), its summary
    /// says why, and start-up goes on.
    fn quarantine(&mut self, seq: u64, why: &str, now: u64, batch: &mut Batch) {
        tracing::error!(
            seq,
            reason = why,
            "job record cannot be resumed; quarantined and its escrow refunded"
        );
        self.metrics.jobs_quarantined.inc();
        self.quarantined.push((seq, why.to_string()));
        let Ok(Some(record)) = self.db.job(seq) else {
            batch.forget_open.push(seq);
            return;
        };
        let Ok(submit) = record.submit_job() else {
            batch.forget_open.push(seq);
            return;
        };
        let wire = submit.job;
        if self.ledger.state().job(&wire).is_some_and(|j| !j.closed) {
            self.refund_unstored_escrow(&wire);
        }
        let (completed, failed) = self
            .db
            .outcomes(seq)
            .map(|o| {
                let done = o.len() as u32;
                let failed = o
                    .iter()
                    .filter(|(_, r)| matches!(r, UnitOutcomeRecord::Failed { .. }))
                    .count() as u32;
                (done - failed, failed)
            })
            .unwrap_or((0, 0));
        let mut rec = record;
        rec.status = JobStatus::Quarantined;
        rec.finished_ms.get_or_insert(now);
        rec.settled = true;
        batch.jobs.push((seq, rec.clone()));
        batch.closed.push((
            seq,
            JobSummary {
                wire,
                name: submit.name.clone(),
                requester: rec.requester,
                status: JobStatus::Quarantined,
                units: submit.units.len() as u32,
                completed,
                failed,
                quorum: submit.verification.quorum,
                created_ms: rec.created_ms,
                finished_ms: rec.finished_ms,
                fuel_verified: 0,
                note: Some(why.to_string()),
            },
        ));
    }

    /// Modules stored before uploads were recorded: owned by the gateway, so the
    /// clean-up treats them like any other after their grace period.
    fn adopt_unrecorded_modules(&mut self, now: u64) -> Result<(), crate::GatewayError> {
        let known: std::collections::HashSet<Hash32> =
            self.db.modules()?.into_iter().map(|(h, _)| h).collect();
        for (h, size) in self.modules.list()? {
            if !known.contains(&h) {
                let rec = ModuleRecord {
                    uploader: self.ledger.validator(),
                    size,
                    uploaded_ms: now,
                };
                self.db.set_module(&h, Some(&rec))?;
            }
        }
        Ok(())
    }

    /// Admits a module upload before its body is read: the uploader must hold
    /// tokens (so keys cannot be minted to fill the disk) and stay within its
    /// quota. On success the bytes are reserved in its name (`Ok(false)`), or the
    /// module is already stored (`Ok(true)`: nothing to write).
    pub fn reserve_module(
        &mut self,
        uploader: &Did,
        h: &Hash32,
        size: u64,
        now: u64,
    ) -> Result<bool, ApiError> {
        if self.modules.contains(h) {
            return Ok(true);
        }
        let st = self.ledger.state();
        if st.balance(uploader) == 0 {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYMENT_REQUIRED,
                "unfunded",
                format!("{uploader} holds no tokens; only funded accounts may upload modules"),
            ));
        }
        let used: u64 = self
            .db
            .modules()
            .map_err(db_err)?
            .iter()
            .filter(|(_, r)| r.uploader == *uploader)
            .map(|(_, r)| r.size)
            .sum();
        let quota = self.cfg.module_quota_bytes;
        if used.saturating_add(size) > quota {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "module_quota_exceeded",
                format!(
                    "{uploader} stores {used} module bytes; this upload of {size} would pass the quota of {quota} (modules no open job uses are removed after {} s)",
                    self.cfg.module_grace_ms / 1000
                ),
            ));
        }
        let rec = ModuleRecord {
            uploader: *uploader,
            size,
            uploaded_ms: now,
        };
        self.db.set_module(h, Some(&rec)).map_err(db_err)?;
        Ok(false)
    }

    /// Gives back a reservation whose upload failed.
    pub fn release_module(&mut self, h: &Hash32) {
        if !self.modules.contains(h)
            && let Err(e) = self.db.set_module(h, None)
        {
            tracing::warn!(module = %h, error = %e, "could not release a module reservation");
        }
    }

    /// Removes modules that no open job uses and whose grace period is over.
    pub fn collect_modules(&mut self, now: u64) -> usize {
        let used: std::collections::HashSet<Hash32> =
            self.jobs.values().map(|j| j.submit.module).collect();
        let Ok(records) = self.db.modules() else {
            return 0;
        };
        let mut n = 0;
        for (h, r) in records {
            if used.contains(&h) || r.uploaded_ms.saturating_add(self.cfg.module_grace_ms) > now {
                continue;
            }
            match self
                .modules
                .remove(&h)
                .map(|_| self.db.set_module(&h, None))
            {
                Ok(Ok(())) => n += 1,
                Ok(Err(e)) => tracing::warn!(module = %h, error = %e, "module record not removed"),
                Err(e) => tracing::warn!(module = %h, error = %e, "module not removed"),
            }
        }
        self.metrics.modules_collected.add(n as u64);
        n
    }

    /// Jobs set aside at start-up: (seq, why).
    pub fn quarantined(&self) -> &[(u64, String)] {
        &self.quarantined
    }

    /// Moves jobs whose settlement is in a sealed block out of memory: their
    /// summary is written and start-up will not read them again.
    fn close_settled(&mut self) {
        // Called right after a seal: every settlement submitted so far is in a
        // sealed block, so a closed job on the ledger is closed for good.
        let st = self.ledger.state();
        let done: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, js)| {
                js.record.status != JobStatus::Running
                    && js.record.settled
                    && st.job(&js.wire).is_some_and(|j| j.closed)
            })
            .map(|(s, _)| *s)
            .collect();
        if done.is_empty() {
            return;
        }
        let mut batch = Batch::default();
        for seq in &done {
            if let Some(js) = self.jobs.get(seq) {
                batch.closed.push((*seq, self.summary_of(js)));
            }
        }
        if let Err(e) = self.db.commit(&batch) {
            tracing::error!(error = %e, "could not record closed jobs; they stay open");
            return;
        }
        for seq in done {
            if let Some(js) = self.jobs.remove(&seq) {
                self.by_wire.remove(&js.wire);
            }
        }
    }

    fn summary_of(&self, js: &JobState) -> JobSummary {
        JobSummary {
            wire: js.wire,
            name: js.submit.name.clone(),
            requester: js.record.requester,
            status: js.record.status,
            units: js.submit.units.len() as u32,
            completed: js.completed,
            failed: js.failed,
            quorum: js.submit.verification.quorum,
            created_ms: js.record.created_ms,
            finished_ms: js.record.finished_ms,
            fuel_verified: js.fuel_verified,
            note: None,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn validator(&self) -> Did {
        self.ledger.validator()
    }

    /// Adds an account-originated entry to the open ledger block; the ledger
    /// checks it (signature, chain, nonce, balance) and changes nothing on error.
    /// Not durable until [`Core::seal_durably`].
    pub fn submit_entry(&mut self, entry: Entry) -> Result<(), Box<LedgerError>> {
        self.ledger.submit(entry).map_err(Box::new)
    }

    /// The governable knobs in force: the chain's parameters
    /// (`State::params()`, changed by passed proposals at epoch closes),
    /// falling back to the gateway's own configuration where they are `None`.
    pub fn live_knobs(&self) -> LiveKnobs {
        let p = self.ledger.state().params();
        let b = self.base_knobs;
        LiveKnobs {
            speed_ceiling: p.speed_ceiling.unwrap_or(b.speed_ceiling).max(1),
            region_spread_permille: p.region_spread_permille.unwrap_or(b.region_spread_permille),
            k_anonymity: p.k_anonymity.unwrap_or(b.k_anonymity).max(1),
            default_quorum: p.default_quorum.or(b.default_quorum),
            default_replicas: p.default_replicas.or(b.default_replicas),
        }
    }

    /// Puts the knobs in force into the scheduler, the Sybil tracker and the
    /// data book. Parameters change only at epoch closes, so this runs after
    /// every sealed block (and at start): a passed proposal takes effect at the
    /// boundary without a restart.
    fn apply_params(&mut self) {
        let k = self.live_knobs();
        let sc = self.sched.config();
        if sc.flags.max_claimed_speed != k.speed_ceiling
            || sc.region_spread_permille != k.region_spread_permille
        {
            self.sched
                .set_live_knobs(k.speed_ceiling, k.region_spread_permille);
        }
        self.sybil.region_spread_permille = k.region_spread_permille;
        let multiple = self.cfg.stake_trust_multiple;
        let rule = stake_trust::rule(self.ledger.state(), multiple);
        if self.sched.config().stake_trust != rule {
            tracing::info!(
                reward_per_gfuel = rule.map(|r| r.reward_per_gfuel.to_string()),
                "stake-backed trust: units are valued at their price plus this epoch reward per 10^9 fuel"
            );
            self.sched.set_stake_trust(rule);
        }
        if rule.is_some() {
            let covers = stake_trust::covers(self.ledger.state(), multiple);
            for (node, old) in &self.covers {
                if !covers.contains_key(node) && *old != 0 {
                    let _ = self.sched.set_stake_cover(node, 0);
                }
            }
            for (node, cover) in &covers {
                if self.covers.get(node) != Some(cover) {
                    let _ = self.sched.set_stake_cover(node, *cover);
                }
            }
            self.covers = covers;
        }
        if self.data.book.config().k != k.k_anonymity {
            tracing::info!(
                k = k.k_anonymity,
                "k-anonymity threshold of the data book changed"
            );
            self.data.book.set_k(k.k_anonymity);
        }
    }

    /// After a sealed block: parameters in force and the staking rewards of
    /// an epoch it closed.
    fn after_seal(&mut self, epoch_before: u64, released_before: u128) {
        self.apply_params();
        let st = self.ledger.state();
        if st.epoch() > epoch_before && st.genesis().staking.is_some() {
            let g = st.staking_globals();
            self.staking_epochs.push_back(StakingEpoch {
                epoch: st.epoch() - 1,
                released: g.staking_released.saturating_sub(released_before),
                bonded: g.bonded,
            });
            while self.staking_epochs.len() > STAKING_EPOCHS_KEPT {
                self.staking_epochs.pop_front();
            }
            let rows: Vec<(u64, u128, u128)> = self
                .staking_epochs
                .iter()
                .map(|e| (e.epoch, e.released, e.bonded))
                .collect();
            if let Err(e) = self.db.put_staking_epochs(&rows) {
                tracing::warn!(error = %e, "staking epochs not kept (the APR estimate starts over after a restart)");
            }
        }
    }

    fn seal_marks(&self) -> (u64, u128) {
        let st = self.ledger.state();
        (st.epoch(), st.staking_globals().staking_released)
    }

    /// Seals the open block now (fsync) and returns it, unlike [`Core::seal`]
    /// reporting a failure to the caller (whose entry then stays queued).
    pub fn seal_durably(
        &mut self,
        now: u64,
    ) -> Result<Option<lode_ledger::SealedBlock>, Box<LedgerError>> {
        let (e0, r0) = self.seal_marks();
        let sealed = self.ledger.seal_block(now).map_err(Box::new)?;
        if let Some(b) = &sealed {
            self.after_seal(e0, r0);
            self.outbox_sealed();
            self.metrics.blocks_sealed.inc();
            self.metrics.ledger_height.set(b.height);
        }
        Ok(sealed)
    }

    fn sched_spec(
        &self,
        requester: &Did,
        s: &SubmitJob,
    ) -> Result<lode_sched::JobSpec<Did>, crate::GatewayError> {
        Ok(lode_sched::JobSpec {
            requester: *requester,
            units: u32::try_from(s.units.len())
                .map_err(|_| crate::GatewayError::Recovery("too many units".into()))?,
            limits: sched_limits(&s.limits),
            quorum: s.verification.quorum,
            max_replicas: s.verification.max_replicas,
            max_price_per_fuel: s.max_price_per_fuel,
            priority: 0,
            adaptive_trust: s.verification.adaptive_trust,
            region: s
                .region
                .as_deref()
                .and_then(|r| Region::new(r).ok())
                .map(|region| lode_sched::RegionPreference {
                    region,
                    strict: false,
                }),
        })
    }

    /// Checks freshness and replay of an already signature-checked message.
    pub fn check_replay<T>(&mut self, o: &Opened<T>, now: u64) -> Result<(), ApiError> {
        self.guard
            .check_and_record(o.signer, o.nonce, o.timestamp_ms, now)
            .map_err(ApiError::from)
    }

    // ----------------------------------------------------------- requesters

    /// Accepts a signed job submission. Nothing is stored unless every check passes.
    pub fn submit_job(
        &mut self,
        envelope: Envelope,
        o: Opened<SubmitJob>,
        now: u64,
    ) -> Result<JobView, ApiError> {
        let s = &o.message;
        let bad = |code, msg: String| Err(ApiError::bad_request(code, msg));
        // Every field within the shared bounds (lode_proto::limits), before anything else.
        lode_proto::limits::check_submit(s, self.speed_ceiling())
            .map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))?;
        if s.units.len() > self.cfg.max_units_per_job {
            return bad(
                "too_many_units",
                format!(
                    "{} units; the limit is {}",
                    s.units.len(),
                    self.cfg.max_units_per_job
                ),
            );
        }
        if !self.modules.contains(&s.module) {
            return Err(ApiError::not_found(
                "unknown_module",
                format!(
                    "module {} is not uploaded; upload it first (PUT /v1/modules/{})",
                    s.module, s.module
                ),
            ));
        }
        if self.by_wire.contains_key(&s.job) || self.db.seq_of(&s.job).map_err(db_err)?.is_some() {
            return Err(ApiError::conflict(
                "duplicate_job",
                format!("job {} already exists", s.job),
            ));
        }
        // The escrow entry: same requester, same job, enough funds at the job's price.
        let escrow = s.escrow.open_signed::<JobEscrow>().map_err(|e| {
            ApiError::bad_request(
                "bad_escrow",
                format!("the escrow entry does not verify: {e}"),
            )
        })?;
        if escrow.signer != o.signer {
            return bad(
                "bad_escrow",
                "the escrow must be signed by the job's requester".into(),
            );
        }
        let esc = &escrow.message;
        if esc.job != s.job {
            return bad("bad_escrow", "the escrow names another job".into());
        }
        if esc.price_per_unit != s.max_price_per_fuel {
            return bad(
                "bad_escrow",
                "the escrow price differs from the job's max_price_per_fuel".into(),
            );
        }
        let needed = s.required_escrow().ok_or_else(|| {
            ApiError::bad_request(
                "bad_price",
                "units × quorum × fuel × price overflows".to_string(),
            )
        })?;
        if esc.amount < needed {
            return bad(
                "escrow_too_small",
                format!(
                    "the escrow locks {} base units; units × quorum × fuel limit × price needs {needed}",
                    esc.amount
                ),
            );
        }
        let units = u32::try_from(s.units.len())
            .map_err(|_| ApiError::bad_request("too_many_units", "too many units"))?;
        let seq = self.next_job;
        let spec = self
            .sched_spec(&o.signer, s)
            .map_err(|e| ApiError::bad_request("job_rejected", e.to_string()))?;
        // The scheduler's own checks, before anything durable is written.
        self.sched
            .validate_job(lode_sched::JobId(seq), &spec, &[])
            .map_err(|e| ApiError::bad_request("job_rejected", e.to_string()))?;
        // Check the escrow against the ledger (balance, chain, unique id) before storing anything.
        self.ledger
            .submit(Entry::JobEscrow(s.escrow.clone()))
            .map_err(ledger_err)?;

        let record = JobRecord {
            submission: envelope,
            requester: o.signer,
            status: JobStatus::Running,
            created_ms: now,
            finished_ms: None,
            settled: false,
        };
        let submit = Arc::new(o.message);
        let wire = submit.job;
        // Durable order: the gateway store first, then the ledger block (see recover()).
        let batch = Batch {
            jobs: vec![(seq, record.clone())],
            next_job: Some(seq + 1),
            open: vec![(seq, wire)],
            ..Default::default()
        };
        if let Err(e) = self.db.commit(&batch) {
            self.refund_unstored_escrow(&wire);
            return Err(db_err(e));
        }
        self.next_job = seq + 1;
        let (e0, r0) = self.seal_marks();
        if let Err(e) = self.ledger.seal_block(now) {
            return Err(ApiError::internal(format!("ledger: {e}")));
        }
        self.after_seal(e0, r0);
        self.outbox_sealed();
        let mut js = JobState {
            wire,
            record,
            submit,
            completed: 0,
            failed: 0,
            fuel_verified: 0,
            pending: HashMap::new(),
        };
        if let Err(e) = self.sched.add_job(lode_sched::JobId(seq), spec, now) {
            // Validated above, so this is a bug; still, roll back: refund the
            // escrow in the next block and close the job, so nothing stays locked
            // and the next start does not trip over it.
            tracing::error!(job = %wire, error = %e, "scheduler refused a validated job; refunding");
            let mut batch = Batch::default();
            self.finish_job_entries(seq, &mut js, true, now, &mut batch);
            if let Err(e) = self.db.commit(&batch) {
                tracing::error!(job = %wire, error = %e, "could not record the rolled-back job");
            }
            self.by_wire.insert(wire, seq);
            self.jobs.insert(seq, js);
            self.seal(now);
            return Err(ApiError::bad_request("job_rejected", e.to_string()));
        }
        self.restrict(seq, &js.submit);
        self.by_wire.insert(wire, seq);
        self.jobs.insert(seq, js);
        self.metrics.jobs_submitted.inc();
        self.metrics.units_submitted.add(u64::from(units));
        self.job_view(&wire)
            .ok_or_else(|| ApiError::internal("job vanished"))
    }

    /// An escrow entered the open block but the job could not be stored (local
    /// disk failure): close it at once with a full refund, so no funds stay locked
    /// for a job the gateway does not know.
    fn refund_unstored_escrow(&mut self, job: &Hash32) {
        tracing::error!(job = %job, "gateway store commit failed after the escrow was queued; refunding it");
        match self.ledger.settlement(job, true) {
            Ok(s) => {
                if let Err(e) = self.ledger.submit(Entry::Settlement(s)) {
                    tracing::error!(job = %job, error = %e, "refund settlement rejected");
                }
            }
            Err(e) => {
                tracing::error!(job = %job, error = %e, "refund settlement could not be built")
            }
        }
    }

    pub fn cancel_job(
        &mut self,
        requester: Did,
        job: Hash32,
        now: u64,
    ) -> Result<JobView, ApiError> {
        let seq = *self.by_wire.get(&job).ok_or_else(|| unknown_job(&job))?;
        let js = self.jobs.get(&seq).ok_or_else(|| unknown_job(&job))?;
        if js.record.requester != requester {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "not_your_job",
                "only the requester who submitted a job can cancel it",
            ));
        }
        if js.record.status != JobStatus::Running {
            return Err(ApiError::conflict(
                "job_not_running",
                format!("job {job} is already {}", js.record.status.as_str()),
            ));
        }
        let mut out = Vec::new();
        self.sched
            .cancel_job(lode_sched::JobId(seq), now, &mut out)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut batch = Batch::default();
        self.apply_decisions(out, now, &mut batch);
        // If the scheduler did not finish it (it always should on cancel), finish here.
        if let Some(mut js) = self.jobs.remove(&seq) {
            if js.record.status == JobStatus::Running {
                js.record.status = JobStatus::Cancelled;
                self.finish_job_entries(seq, &mut js, true, now, &mut batch);
            }
            self.jobs.insert(seq, js);
        }
        self.db.commit(&batch).map_err(db_err)?;
        self.seal(now);
        self.job_view(&job).ok_or_else(|| unknown_job(&job))
    }

    pub fn job_view(&self, job: &Hash32) -> Option<JobView> {
        if let Some(seq) = self.by_wire.get(job) {
            return self.open_job_view(*seq);
        }
        let seq = self.db.seq_of(job).ok()??;
        let sum = self.db.summary(seq).ok()??;
        Some(self.summary_view(&sum))
    }

    fn open_job_view(&self, seq: u64) -> Option<JobView> {
        let js = self.jobs.get(&seq)?;
        let p = self.sched.job_progress(lode_sched::JobId(seq));
        let job = &js.wire;
        let lj = self.ledger.state().job(job);
        let units = js.submit.units.len() as u32;
        Some(JobView {
            job: job.to_hex(),
            name: js.submit.name.clone(),
            requester: js.record.requester.to_string(),
            status: js.record.status.as_str().into(),
            units,
            completed: js.completed,
            failed: js.failed,
            in_flight: p.as_ref().map_or(0, |p| p.in_flight),
            remaining: units - js.completed - js.failed,
            quorum: js.submit.verification.quorum,
            created_ms: js.record.created_ms,
            finished_ms: js.record.finished_ms,
            escrowed: lj.map_or(0, |j| j.escrowed).to_string(),
            cost_so_far: lj.map_or(0, |j| j.owed + j.paid).to_string(),
            refunded: lj.map_or(0, |j| j.refunded).to_string(),
            fuel_verified: js.fuel_verified.to_string(),
        })
    }

    fn summary_view(&self, s: &JobSummary) -> JobView {
        let lj = self.ledger.state().job(&s.wire);
        JobView {
            job: s.wire.to_hex(),
            name: s.name.clone(),
            requester: s.requester.to_string(),
            status: s.status.as_str().into(),
            units: s.units,
            completed: s.completed,
            failed: s.failed,
            in_flight: 0,
            remaining: s.units.saturating_sub(s.completed + s.failed),
            quorum: s.quorum,
            created_ms: s.created_ms,
            finished_ms: s.finished_ms,
            escrowed: lj.map_or(0, |j| j.escrowed).to_string(),
            cost_so_far: lj.map_or(0, |j| j.owed + j.paid).to_string(),
            refunded: lj.map_or(0, |j| j.refunded).to_string(),
            fuel_verified: s.fuel_verified.to_string(),
        }
    }

    /// Jobs newest first: at most `limit` with a sequence number below `before`
    /// (a cursor: pass the returned `next` to continue), open ones from memory,
    /// closed ones from their stored summaries.
    pub fn jobs_page(&self, before: u64, limit: usize) -> (Vec<JobView>, Option<u64>) {
        let mut open: Vec<u64> = self.jobs.keys().copied().filter(|s| *s < before).collect();
        open.sort_unstable_by(|a, b| b.cmp(a));
        open.truncate(limit);
        let closed = self.db.summaries_before(before, limit).unwrap_or_default();
        let mut rows: Vec<(u64, JobView)> = open
            .into_iter()
            .filter_map(|s| self.open_job_view(s).map(|v| (s, v)))
            .chain(closed.iter().map(|(s, sum)| (*s, self.summary_view(sum))))
            .collect();
        rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more || rows.len() == limit {
            rows.last().map(|(s, _)| *s).filter(|s| *s > 0)
        } else {
            None
        };
        (rows.into_iter().map(|(_, v)| v).collect(), next)
    }

    /// Every job ever submitted here (open and closed).
    pub fn jobs_total(&self) -> u64 {
        self.jobs.len() as u64 + self.db.closed_count().unwrap_or(0)
    }

    /// What a results read needs, taken under the lock (the rows are read and
    /// serialised outside it): (seq, units, cancelled, requester).
    pub fn results_target(&self, job: &Hash32) -> Option<(u64, u32, bool, Did)> {
        if let Some(seq) = self.by_wire.get(job) {
            let js = self.jobs.get(seq)?;
            return Some((
                *seq,
                js.submit.units.len() as u32,
                js.record.status == JobStatus::Cancelled,
                js.record.requester,
            ));
        }
        let seq = self.db.seq_of(job).ok()??;
        let sum = self.db.summary(seq).ok()??;
        Some((
            seq,
            sum.units,
            sum.status != JobStatus::Finished,
            sum.requester,
        ))
    }

    /// A handle on the gateway store for reads outside the core lock.
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// The believable speed ceiling (fuel/s per slot) job limits are checked against.
    pub fn speed_ceiling(&self) -> u64 {
        self.live_knobs().speed_ceiling
    }

    /// The freshness window of signed messages.
    pub fn check_fresh(&self, ts_ms: u64, now: u64) -> Result<(), ApiError> {
        self.guard.check_fresh(ts_ms, now).map_err(ApiError::from)
    }

    // ---------------------------------------------------------------- nodes

    pub fn hello(
        &mut self,
        o: Opened<NodeHello>,
        ip: IpAddr,
        now: u64,
    ) -> Result<HelloResponse, ApiError> {
        let h = &o.message;
        let c = &h.capacity;
        if c.slots == 0 || c.speed_fuel_per_s == 0 || c.memory_bytes == 0 {
            return Err(ApiError::bad_request(
                "bad_capacity",
                "slots, speed and memory must be positive",
            ));
        }
        if let Some(r) = &h.region {
            Region::new(r).map_err(|e| ApiError::bad_request("bad_region", e.0))?;
        }
        let operator = h.operator.unwrap_or(o.signer);
        let register_nonce = match self.ledger.state().node(&o.signer) {
            Some(n) if n.operator == operator && n.payout == h.payout => None,
            _ => Some(self.ledger.state().next_nonce(&o.signer)),
        };
        self.hellos.retain(|_, p| p.expires_ms > now);
        let challenge = random::<32>();
        self.hellos.insert(
            o.signer,
            PendingHello {
                challenge,
                hello: o.message,
                ip,
                expires_ms: now + self.cfg.challenge_ttl_ms,
                register_nonce,
            },
        );
        Ok(HelloResponse {
            challenge,
            chain_id: self.ledger.chain_id(),
            register_nonce,
            gateway: self.validator(),
            challenge_ttl_ms: self.cfg.challenge_ttl_ms,
            now_ms: now,
        })
    }

    pub fn auth(&mut self, o: Opened<NodeAuth>, now: u64) -> Result<AuthResponse, ApiError> {
        let node = o.signer;
        let pending = self
            .hellos
            .remove(&node)
            .filter(|p| p.expires_ms > now)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "no_challenge",
                    "no live challenge for this node: send a hello first",
                )
            })?;
        if pending.challenge != o.message.challenge {
            return Err(ApiError::unauthorized(
                "bad_challenge",
                "the signed challenge is not the one issued",
            ));
        }
        let operator = pending.hello.operator.unwrap_or(node);
        if pending.register_nonce.is_some() {
            let env = o.message.register.clone().ok_or_else(|| {
                ApiError::bad_request(
                    "registration_required",
                    "this node must register on the ledger: include a signed RegisterNode entry",
                )
            })?;
            let reg = env.open_signed::<RegisterNode>().map_err(ApiError::from)?;
            if reg.signer != node
                || reg.message.operator != operator
                || reg.message.payout != pending.hello.payout
            {
                return Err(ApiError::bad_request(
                    "bad_registration",
                    "the registration must be signed by the node and match its hello",
                ));
            }
            self.ledger
                .submit(Entry::RegisterNode(env))
                .map_err(ledger_err)?;
        }
        // One session per node: a new login replaces the old one (its leases are lost).
        if let Some(old) = self.node_session.remove(&node) {
            self.sessions.remove(&old);
            let mut out = Vec::new();
            let _ = self.sched.node_left(&node, now, &mut out);
            let mut batch = Batch::default();
            self.apply_decisions(out, now, &mut batch);
            self.db.commit(&batch).map_err(db_err)?;
        }
        let h = &pending.hello;
        let trust = self.db.node(&node).map_err(db_err)?.map(|r| TrustState {
            consecutive_valid: r.consecutive_valid,
            reputation: r.reputation,
        });
        let ip_group = if self.cfg.loopback_distinct && pending.ip.is_loopback() {
            IpGroup::from_u64(u64::from_be_bytes(
                node.public_key_bytes()[..8].try_into().unwrap_or_default(),
            ))
        } else {
            IpGroup::from_ip(pending.ip)
        };
        let info = NodeInfo {
            // The scheduler's `slots` is what a node may hold at once: the units
            // it runs plus those it queues (capped), see `CoreConfig::max_node_queue`.
            slots: h
                .capacity
                .slots
                .saturating_add(h.capacity.queue.min(self.cfg.max_node_queue)),
            // What one unit may use there (the sandbox splits memory among slots).
            memory_bytes: h.capacity.unit_memory_bytes(),
            speed_fuel_per_s: h.capacity.speed_fuel_per_s,
            region: h
                .region
                .as_deref()
                .and_then(|r| Region::new(r).ok())
                .unwrap_or_default(),
            latency_ms: 0,
            price_floor: h.min_price_per_fuel,
            operator: OperatorId::of(operator.public_key_bytes()),
            ip_group,
            trust,
        };
        let (ip_group, operator_id) = (info.ip_group, info.operator);
        let decisions = self
            .sched
            .node_joined(node, info, now)
            .map_err(|e| ApiError::bad_request("node_rejected", e.to_string()))?;
        if let Some(&cover) = self.covers.get(&node) {
            let _ = self.sched.set_stake_cover(&node, cover);
        }
        self.sybil.start_epoch(self.ledger.state().epoch());
        if let Some(st) = self.sched.node_status(&node).filter(|s| s.trusted) {
            self.trusted.insert(node, st.trust.consecutive_valid);
        }
        let region = h.region.clone();
        for member in self
            .sybil
            .saw(node, ip_group, operator_id, region.as_deref())
        {
            self.reweigh(&member);
        }
        if !decisions.is_empty() {
            // An impossible speed claim: flagged with its evidence.
            let mut batch = Batch::default();
            self.apply_decisions(decisions, now, &mut batch);
            self.db.commit(&batch).map_err(db_err)?;
        }
        let session = random::<16>();
        self.sessions.insert(
            session,
            Session {
                node,
                last_seen_ms: now,
                // What the scheduler uses: a claim above the ceiling is flagged and cut.
                speed_fuel_per_s: h
                    .capacity
                    .speed_fuel_per_s
                    .min(self.sched.config().flags.max_claimed_speed),
                cpu_slots: h.capacity.slots,
                unit_memory_bytes: h.capacity.unit_memory_bytes(),
                min_price_per_fuel: h.min_price_per_fuel,
                region: h.region.clone(),
                ip_group,
                operator_id,
            },
        );
        self.node_session.insert(node, session);
        self.metrics.nodes_online.set(self.sessions.len() as u64);
        Ok(AuthResponse {
            session,
            poll_timeout_ms: self.cfg.poll_timeout_ms,
            heartbeat_timeout_ms: self.cfg.heartbeat_timeout_ms,
        })
    }

    /// Records a poll's reports and hand-backs (durably) and hands out work.
    /// Returns the response; an empty `assignments` with `want > 0` means the
    /// caller may wait for work and call [`Core::take_work`].
    pub fn poll(&mut self, o: &Opened<NodePoll>, now: u64) -> Result<PollResponse, ApiError> {
        let node = o.signer;
        let sess = self
            .sessions
            .get_mut(&o.message.session)
            .filter(|s| s.node == node)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "unknown_session",
                    "unknown or expired session: say hello again",
                )
            })?;
        sess.last_seen_ms = now;
        let mut out = Vec::new();
        let mut batch = Batch::default();
        let mut resp = PollResponse {
            now_ms: now,
            ..Default::default()
        };
        for r in &o.message.reports {
            match self.record_report(node, r, now, &mut out, &mut batch) {
                Ok(()) => resp.accepted += 1,
                Err(reason) => resp.rejected.push((r.unit, reason)),
            }
        }
        for u in &o.message.handed_back {
            if let Some(&seq) = self.by_wire.get(&u.job) {
                let _ = self.sched.report_failure(
                    &node,
                    lode_sched::UnitRef::new(lode_sched::JobId(seq), u.unit),
                    now,
                    &mut out,
                );
            }
        }
        self.apply_decisions(out, now, &mut batch);
        self.db.commit(&batch).map_err(db_err)?;
        resp.cancel = self.cancels.remove(&node).unwrap_or_default();
        resp.assignments = self.take_work(&node, o.message.want, now)?;
        Ok(resp)
    }

    /// Assignments for `node`, up to `want`.
    pub fn take_work(
        &mut self,
        node: &Did,
        want: u32,
        now: u64,
    ) -> Result<Vec<wire::Assignment>, ApiError> {
        if want == 0 {
            return Ok(vec![]);
        }
        let mut got = Vec::new();
        self.sched
            .request_work(node, want, now, &mut got)
            .map_err(|e| ApiError::conflict("node_not_ready", e.to_string()))?;
        let mut out = Vec::with_capacity(got.len());
        for a in got {
            let Some(js) = self.jobs.get(&a.unit.job.0) else {
                continue;
            };
            let Some(input) = js.submit.units.get(a.unit.index as usize) else {
                continue;
            };
            out.push(wire::Assignment {
                unit: wire::UnitRef {
                    job: js.wire,
                    unit: a.unit.index,
                },
                module: js.submit.module,
                input: input.clone(),
                limits: js.submit.limits,
                deadline_ms: a.deadline_ms,
            });
        }
        self.metrics.units_assigned.add(out.len() as u64);
        Ok(out)
    }

    fn record_report(
        &mut self,
        node: Did,
        r: &wire::UnitReport,
        now: u64,
        out: &mut Vec<Decision<Did>>,
        batch: &mut Batch,
    ) -> Result<(), String> {
        let seq = *self.by_wire.get(&r.unit.job).ok_or("unknown job")?;
        let js = self.jobs.get(&seq).ok_or("unknown job")?;
        let (exit_code, fuel_used, output) = r.outcome.compared();
        let output = output.to_vec();
        if fuel_used > js.submit.limits.fuel {
            return Err(format!(
                "fuel_used {fuel_used} exceeds the unit's fuel limit {}",
                js.submit.limits.fuel
            ));
        }
        if output.len() as u64 > js.submit.limits.max_output_bytes.max(4096) {
            return Err("output exceeds the unit's output limit".into());
        }
        let mut rec = ReportRecord {
            exit_code,
            fuel_used,
            output,
            claim: None,
        };
        // On a chain with staking every result is a signed claim (the evidence
        // of a proven fault); checked only there, one signature per result.
        let state = self.ledger.state();
        if state.genesis().staking.is_some() {
            let claim =
                stake_trust::claim_of(state.chain_id(), js.wire, r.unit.unit, &rec.digest());
            let signed = r.claim.and_then(|sig| claim.envelope(node, sig));
            if signed.is_none() {
                return Err("the result's claim is missing or not signed by the node".into());
            }
            rec.claim = r.claim;
        }
        let unit = lode_sched::UnitRef::new(lode_sched::JobId(seq), r.unit.unit);
        let outcome = self
            .sched
            .submit_result(&node, unit, rec.digest(), now, out)
            .map_err(|e| e.to_string())?;
        self.metrics.results_received.inc();
        if matches!(outcome, lode_sched::ResultOutcome::Counted) {
            batch.reports.push(((seq, r.unit.unit, node), rec.clone()));
        }
        if let lode_sched::ResultOutcome::AfterDecision { agrees } = outcome {
            // A late replica of a decided unit: never credited, never kept. If the
            // scheduler counted it as invalid (it disagrees with a verified
            // result), it costs the same penalty as a dissent at decision time.
            let counted_invalid = out.iter().any(|d| {
                matches!(d, Decision::Trust(t) if t.node == node
                    && matches!(t.cause, lode_sched::TrustCause::Invalid { unit: u } if u == unit))
            });
            if agrees == Some(false) && counted_invalid {
                self.penalize_late_dissent(seq, r.unit.unit, node, &rec);
            }
            return Ok(());
        }
        if let Some(js) = self.jobs.get_mut(&seq) {
            js.pending.insert((r.unit.unit, node), rec);
        }
        Ok(())
    }

    /// Executes scheduler decisions: results, ledger receipts, settlements.
    fn apply_decisions(&mut self, decisions: Vec<Decision<Did>>, now: u64, batch: &mut Batch) {
        for d in decisions {
            match d {
                Decision::Completed(c) => self.on_completed(c, batch),
                Decision::Failed { unit, reason } => {
                    let seq = unit.job.0;
                    if let Some(js) = self.jobs.get_mut(&seq) {
                        js.failed += 1;
                        let nodes: Vec<Did> = js
                            .pending
                            .keys()
                            .filter(|(u, _)| *u == unit.index)
                            .map(|(_, n)| *n)
                            .collect();
                        js.pending.retain(|(u, _), _| *u != unit.index);
                        batch.clear_reports.push((seq, unit.index, nodes));
                        batch.outcomes.push((
                            (seq, unit.index),
                            UnitOutcomeRecord::Failed {
                                reason: fail_reason_text(&reason),
                            },
                        ));
                        self.metrics.units_failed.inc();
                    }
                }
                Decision::Cancel { node, unit } => {
                    if let Some(js) = self.jobs.get(&unit.job.0) {
                        self.cancels.entry(node).or_default().push(wire::UnitRef {
                            job: js.wire,
                            unit: unit.index,
                        });
                    }
                }
                Decision::LeaseLost { .. } => self.metrics.leases_lost.inc(),
                Decision::Trust(t) => {
                    if t.trusted {
                        self.trusted.insert(t.node, t.trust.consecutive_valid);
                    } else if let Some(cv) = self.trusted.remove(&t.node) {
                        let job = match &t.cause {
                            lode_sched::TrustCause::Invalid { unit }
                            | lode_sched::TrustCause::Inconclusive { unit } => {
                                self.jobs.get(&unit.job.0).map(|j| j.wire)
                            }
                            _ => None,
                        };
                        let e = anticheat::trust_lost(t.node, &t.cause, job, cv);
                        self.submit_penalty(e);
                    }
                    let flags = self.flags_of(&t.node).iter().map(flag_line).collect();
                    batch.nodes.push((
                        t.node,
                        NodeRecord {
                            consecutive_valid: t.trust.consecutive_valid,
                            reputation: t.trust.reputation,
                            flags,
                        },
                    ));
                }
                Decision::Flagged { node, flag } => self.on_flagged(node, flag, batch),
                Decision::JobFinished { job, cancelled, .. } => {
                    if let Some(mut js) = self.jobs.remove(&job.0) {
                        if js.record.status == JobStatus::Running {
                            self.finish_job_entries(job.0, &mut js, cancelled, now, batch);
                        }
                        self.jobs.insert(job.0, js);
                    }
                    let _ = self.sched.remove_job(job);
                }
                Decision::Assigned { .. } | Decision::Rejected { .. } => {}
            }
        }
    }

    fn on_completed(&mut self, c: lode_sched::Completion<Did>, batch: &mut Batch) {
        let seq = c.unit.job.0;
        let Some(js) = self.jobs.get_mut(&seq) else {
            return;
        };
        let unit = c.unit.index;
        let mut credited = c.credited.clone();
        credited.sort();
        let Some(rec) = credited
            .iter()
            .find_map(|n| js.pending.get(&(unit, *n)))
            .cloned()
        else {
            tracing::error!(job = %js.wire, unit, "completed unit without a stored output");
            return;
        };
        let nodes: Vec<Did> = js
            .pending
            .keys()
            .filter(|(u, _)| *u == unit)
            .map(|(_, n)| *n)
            .collect();
        let rejected: Vec<(Did, ReportRecord)> = c
            .dissenters
            .iter()
            .filter_map(|n| js.pending.get(&(unit, *n)).map(|r| (*n, r.clone())))
            .collect();
        js.pending.retain(|(u, _), _| *u != unit);
        batch.clear_reports.push((seq, unit, nodes));
        let error = (rec.exit_code == ERROR_EXIT_CODE)
            .then(|| String::from_utf8_lossy(&rec.output).into_owned());
        batch.outcomes.push((
            (seq, unit),
            UnitOutcomeRecord::Verified {
                output_hash: c.result.output_hash,
                exit_code: c.result.exit_code,
                fuel_used: c.result.fuel_used,
                error,
                output: rec.output,
                credited: credited.clone(),
                basis: basis_text(&c.basis),
            },
        ));
        js.completed += 1;
        js.fuel_verified += u128::from(c.result.fuel_used) * credited.len() as u128;
        let wire = js.wire;
        self.metrics.units_verified.inc();
        for node in &credited {
            let r = receipt(
                wire,
                unit,
                *node,
                c.result.fuel_used,
                c.result.output_hash,
                &credited,
            );
            if let Err(e) = self.ledger.submit(Entry::WorkReceipt(r)) {
                tracing::error!(job = %wire, unit, node = %node, error = %e, "work receipt rejected by the ledger");
            }
        }
        // Rejected results: never credited; the penalty on the ledger says why.
        let weight = self.fuel_weight();
        for (node, rec) in rejected {
            self.metrics.results_rejected.inc();
            let e = anticheat::invalid_result(
                node,
                wire,
                unit,
                &rec.digest(),
                &c.result,
                credited.len(),
                weight,
            );
            self.submit_penalty(e);
            self.queue_referee(seq, unit, node, &rec, c.result);
        }
    }

    /// Queues the referee run that may turn a staked node's rejected result
    /// into a proven-fault slash (see [`crate::stake_trust`]).
    fn queue_referee(
        &mut self,
        seq: u64,
        unit: u32,
        node: Did,
        rec: &ReportRecord,
        accepted: ResultDigest,
    ) {
        let state = self.ledger.state();
        let (Some(sig), Some(js)) = (rec.claim, self.jobs.get(&seq)) else {
            return;
        };
        if !stake_trust::slashable(state, &node) {
            return;
        }
        let claim = stake_trust::claim_of(state.chain_id(), js.wire, unit, &rec.digest());
        let (Some(claim), Some(input)) = (
            claim.envelope(node, sig),
            js.submit.units.get(unit as usize),
        ) else {
            return;
        };
        if self.referee.len() >= stake_trust::MAX_REFEREE_QUEUE {
            tracing::warn!(%node, job = %js.wire, unit, "referee queue full: this fault is penalized but not slashed");
            return;
        }
        self.referee.push(stake_trust::RefereeTask {
            node,
            claim,
            accepted,
            job: js.wire,
            unit,
            module: js.submit.module,
            input: input.clone(),
            limits: js.submit.limits,
        });
    }

    /// Referee runs to do now (done outside the core's lock).
    pub fn take_referee_tasks(&mut self) -> Vec<stake_trust::RefereeTask> {
        std::mem::take(&mut self.referee)
    }

    /// The result of a referee run: a proven fault is slashed (through the
    /// outbox, like penalties); anything else only logged.
    pub fn referee_done(&mut self, task: &stake_trust::RefereeTask, run: Option<&ResultDigest>) {
        let Some(bps) = self
            .ledger
            .state()
            .genesis()
            .staking
            .as_ref()
            .map(|p| p.fault_slash_bps)
        else {
            return;
        };
        match stake_trust::slash_for(task, run, bps) {
            Ok(e) => {
                tracing::warn!(node = %task.node, job = %task.job, unit = task.unit, "proven fault: slashing the node's stake");
                self.metrics.slashes.inc();
                self.submit_penalty(e);
            }
            Err(why) => {
                tracing::warn!(node = %task.node, job = %task.job, unit = task.unit, %why, "no slash");
            }
        }
    }

    /// The `InvalidResult` penalty of a result that arrived after its unit was
    /// verified and disagrees with it (evidence: the verified result, from the store).
    fn penalize_late_dissent(&mut self, seq: u64, unit: u32, node: Did, rec: &ReportRecord) {
        let Some(wire) = self.jobs.get(&seq).map(|j| j.wire) else {
            return;
        };
        let Ok(Some(UnitOutcomeRecord::Verified {
            output_hash,
            exit_code,
            fuel_used,
            credited,
            ..
        })) = self.db.outcome(seq, unit)
        else {
            return;
        };
        let accepted = ResultDigest {
            output_hash,
            exit_code,
            fuel_used,
        };
        self.metrics.results_rejected.inc();
        let weight = self.fuel_weight();
        let e = anticheat::invalid_result(
            node,
            wire,
            unit,
            &rec.digest(),
            &accepted,
            credited.len(),
            weight,
        );
        self.submit_penalty(e);
        self.queue_referee(seq, unit, node, rec, accepted);
    }

    fn fuel_weight(&self) -> u64 {
        self.ledger
            .state()
            .genesis()
            .weight(ContributionKind::Fuel)
            .unwrap_or(0)
    }

    /// Hands a penalty or multiplier change to the ledger, keeping it in the
    /// gateway store's outbox first so that a crash before the next sealed block
    /// does not lose it (`recover_outbox` submits it again).
    pub(crate) fn submit_gateway_entry(&mut self, e: Entry) {
        self.submit_penalty(e)
    }

    fn submit_penalty(&mut self, e: Entry) {
        let after_height = self.ledger.seal_mark();
        let seq = self.outbox_seq;
        self.outbox_seq += 1;
        let rec = OutboxRecord {
            after_height,
            entry: e.clone(),
        };
        let kept = match self.db.outbox_put(seq, &rec) {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(error = %err, "penalty not kept in the gateway store");
                false
            }
        };
        match self.ledger.submit(e) {
            Ok(()) if kept => self.outbox_unsealed.push((seq, after_height)),
            Ok(()) => {}
            Err(err) => {
                tracing::error!(error = %err, "penalty rejected by the ledger");
                if kept && let Err(err) = self.db.outbox_remove(&[seq]) {
                    tracing::error!(error = %err, "gateway store outbox");
                }
            }
        }
    }

    /// Drops outbox rows a sealed block now holds (tip above their height).
    fn outbox_sealed(&mut self) {
        let tip = self.ledger.seal_mark();
        let done: Vec<u64> = self
            .outbox_unsealed
            .iter()
            .filter(|&&(_, h)| h < tip)
            .map(|&(seq, _)| seq)
            .collect();
        if done.is_empty() {
            return;
        }
        match self.db.outbox_remove(&done) {
            Ok(()) => self.outbox_unsealed.retain(|&(_, h)| h >= tip),
            Err(err) => tracing::error!(error = %err, "gateway store outbox"),
        }
    }

    /// At start: outbox entries no sealed block holds (lost with the pending
    /// pool) are submitted again; the others are dropped.
    fn recover_outbox(&mut self) -> Result<(), crate::GatewayError> {
        let tip = self.ledger.seal_mark();
        let mut done = vec![];
        for (seq, rec) in self.db.outbox()? {
            self.outbox_seq = self.outbox_seq.max(seq + 1);
            if rec.after_height < tip {
                done.push(seq);
                continue;
            }
            match self.ledger.submit(rec.entry.clone()) {
                Ok(()) => {
                    tracing::info!(seq, "restored a penalty lost before its block was sealed");
                    if rec.after_height != tip {
                        let rec = OutboxRecord {
                            after_height: tip,
                            ..rec
                        };
                        self.db.outbox_put(seq, &rec)?;
                    }
                    self.outbox_unsealed.push((seq, tip));
                }
                Err(e) => {
                    tracing::warn!(seq, error = %e, "outbox entry no longer applies; dropped");
                    done.push(seq);
                }
            }
        }
        self.db.outbox_remove(&done)?;
        Ok(())
    }

    /// A node's flags with evidence, loaded from the gateway store the first time.
    fn flags_of(&mut self, node: &Did) -> &mut Vec<FlagEvidence> {
        if !self.flag_evidence.contains_key(node) {
            let stored = self
                .db
                .node(node)
                .ok()
                .flatten()
                .map(|r| r.flags.iter().map(|l| parse_flag_line(l)).collect())
                .unwrap_or_default();
            self.flag_evidence.insert(*node, stored);
        }
        self.flag_evidence.entry(*node).or_default()
    }

    /// A behaviour flag: evidence kept for the API and the gateway store, and
    /// the penalty (and reduced multiplier) recorded on the ledger.
    fn on_flagged(&mut self, node: Did, flag: lode_sched::Flag, batch: &mut Batch) {
        tracing::warn!(node = %node, ?flag, "node flagged");
        self.metrics.flags_raised.inc();
        let job = match &flag {
            lode_sched::Flag::TooFast { unit, .. } => self.jobs.get(&unit.job.0).map(|j| j.wire),
            _ => None,
        };
        let ev = anticheat::flag_evidence(&flag, job);
        let list = self.flags_of(&node);
        list.push(ev);
        if list.len() > MAX_FLAG_EVIDENCE {
            list.remove(0);
        }
        let flags = list.iter().map(flag_line).collect();
        if let Some(st) = self.sched.node_status(&node) {
            batch.nodes.push((
                node,
                NodeRecord {
                    consecutive_valid: st.trust.consecutive_valid,
                    reputation: st.trust.reputation,
                    flags,
                },
            ));
        }
        let e = anticheat::flag_penalty(node, &flag, job, self.fuel_weight());
        self.submit_penalty(e);
        self.reweigh(&node);
    }

    /// Brings a node's reward multiplier on the ledger to what the policy says:
    /// base (full, or `FLAGGED_BPS` when flagged for dissent or a false speed)
    /// divided among the nodes of its Sybil group this epoch.
    fn reweigh(&mut self, node: &Did) {
        let Some(current) = self.ledger.state().node(node).map(|n| n.reward_bps) else {
            return;
        };
        let flagged = self
            .flags_of(node)
            .iter()
            .any(|f| anticheat::flag_downweights(&f.kind));
        let base = if flagged {
            anticheat::FLAGGED_BPS
        } else {
            lode_ledger::entry::FULL_BPS
        };
        let group = self.sybil.group(node).len();
        let target = self.sybil.target_bps(node, base);
        if let Some(e) = anticheat::reweigh_entry(*node, current, target, group, flagged) {
            self.submit_penalty(e);
        }
    }

    /// Marks a job finished/cancelled and queues its closing settlement.
    fn finish_job_entries(
        &mut self,
        seq: u64,
        js: &mut JobState,
        cancelled: bool,
        now: u64,
        batch: &mut Batch,
    ) {
        js.record.status = if cancelled {
            JobStatus::Cancelled
        } else {
            JobStatus::Finished
        };
        js.record.finished_ms.get_or_insert(now);
        js.pending.clear();
        match self.ledger.settlement(&js.wire, true) {
            Ok(s) => match self.ledger.submit(Entry::Settlement(s)) {
                Ok(()) => js.record.settled = true,
                Err(e) => tracing::error!(job = %js.wire, error = %e, "settlement rejected"),
            },
            Err(LedgerError::Entry(lode_ledger::EntryError::JobClosed(_))) => {
                js.record.settled = true
            }
            Err(e) => tracing::error!(job = %js.wire, error = %e, "settlement could not be built"),
        }
        batch.jobs.push((seq, js.record.clone()));
        self.metrics.jobs_finished.inc();
    }

    // ----------------------------------------------------------- background

    /// Lease expiry and silent nodes. Returns whether work became available.
    pub fn tick(&mut self, now: u64) -> bool {
        crate::data_api::tick(self, now);
        let mut out = Vec::new();
        self.sched.tick(now, &mut out);
        let timeout = self.cfg.heartbeat_timeout_ms;
        let gone: Vec<([u8; 16], Did)> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_seen_ms) > timeout)
            .map(|(k, s)| (*k, s.node))
            .collect();
        for (k, node) in gone {
            tracing::info!(node = %node, "node silent past the heartbeat timeout; its leases are re-issued");
            self.sessions.remove(&k);
            self.node_session.remove(&node);
            let _ = self.sched.node_left(&node, now, &mut out);
        }
        self.metrics.nodes_online.set(self.sessions.len() as u64);
        let work = out.iter().any(|d| matches!(d, Decision::LeaseLost { .. }));
        let mut batch = Batch::default();
        self.apply_decisions(out, now, &mut batch);
        if let Err(e) = self.db.commit(&batch) {
            tracing::error!(error = %e, "gateway store commit failed in tick");
        }
        work
    }

    /// Seals the open ledger block (closing due epochs); on a replicated
    /// chain, makes the open entries one durable batch for the validators.
    pub fn seal(&mut self, now: u64) {
        let (e0, r0) = self.seal_marks();
        match self.ledger.seal_block(now) {
            Ok(Some(b)) => self.on_sealed(e0, r0, b.height),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "sealing a ledger block failed"),
        }
    }

    /// A block decided by the validators (a replicated chain): checked and
    /// applied by the ledger, then everything a sealed block triggers.
    pub fn apply_remote_block(
        &mut self,
        block: lode_ledger::Block,
        cert: &lode_ledger::consensus::CommitCertificate,
    ) -> Result<lode_ledger::RemoteBlock, Box<LedgerError>> {
        let (e0, r0) = self.seal_marks();
        let r = self.ledger.apply_remote(block, cert).map_err(Box::new)?;
        for (entry, why) in &r.dropped {
            self.metrics.entries_dropped.inc();
            tracing::warn!(kind = entry.kind_name(), error = %why, "an entry no longer applies on the validators' chain; dropped");
        }
        if let Some(b) = &r.sealed {
            self.on_sealed(e0, r0, b.height);
        }
        Ok(r)
    }

    fn on_sealed(&mut self, e0: u64, r0: u128, height: u64) {
        {
            {
                self.after_seal(e0, r0);
                self.outbox_sealed();
                self.close_settled();
                self.metrics.blocks_sealed.inc();
                self.metrics.ledger_height.set(height);
                // A new epoch: groups are those of the nodes online now (their
                // multipliers go into the next block, the new epoch's).
                if self.sybil.start_epoch(self.ledger.state().epoch()) {
                    let online: Vec<(Did, IpGroup, OperatorId, Option<String>)> = self
                        .sessions
                        .values()
                        .map(|s| (s.node, s.ip_group, s.operator_id, s.region.clone()))
                        .collect();
                    for (node, ip, op, region) in &online {
                        self.sybil.saw(*node, *ip, *op, region.as_deref());
                    }
                    self.sybil.fix_region_factors();
                    for (node, ..) in &online {
                        self.reweigh(node);
                    }
                }
            }
        }
    }

    /// At a clean stop: seals what is pending and snapshots the ledger's state,
    /// so the next start replays no block.
    pub fn shutdown(&mut self, now: u64) {
        self.seal(now);
        match self.ledger.snapshot_head() {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "no ledger snapshot at shutdown; the next start replays more")
            }
        }
    }

    pub fn ledger_due(&self, now: u64) -> bool {
        self.ledger.pending_len() > 0 || self.ledger.epoch_due(now)
    }

    pub fn node_session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The IP group and operator of every node online on the node channel
    /// (storage placement uses the distinct-group rule of quorum replicas).
    pub fn online_groups(&self) -> HashMap<Did, (IpGroup, OperatorId)> {
        self.sessions
            .values()
            .map(|s| (s.node, (s.ip_group, s.operator_id)))
            .collect()
    }

    pub fn node_of_session(&self, session: &[u8; 16]) -> Option<Did> {
        self.sessions.get(session).map(|s| s.node)
    }

    pub fn nodes_view(&self) -> Vec<serde_json::Value> {
        self.sessions
            .values()
            .map(|s| {
                let st = self.sched.node_status(&s.node);
                let stake = self.sched.stake_exposure(&s.node);
                serde_json::json!({
                    "node": s.node.to_string(),
                    "last_seen_ms": s.last_seen_ms,
                    "speed_fuel_per_s": s.speed_fuel_per_s,
                    "cpu_slots": s.cpu_slots,
                    "region": s.region,
                    "memory_bytes": s.unit_memory_bytes,
                    "min_price_per_fuel": s.min_price_per_fuel.to_string(),
                    "slots": st.as_ref().map(|x| x.slots),
                    "in_flight": st.as_ref().map(|x| x.in_flight),
                    "trusted": st.as_ref().map(|x| x.trusted),
                    "reputation": st.as_ref().map(|x| x.trust.reputation),
                    "consecutive_valid": st.as_ref().map(|x| x.trust.consecutive_valid),
                    "flags": st.as_ref().map(|x| x.flags.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>()),
                    "flag_evidence": self.flag_evidence.get(&s.node).cloned().unwrap_or_default(),
                    "results_valid": st.as_ref().map(|x| x.stats.valid),
                    "results_invalid": st.as_ref().map(|x| x.stats.invalid),
                    "first_replicas": st.as_ref().map(|x| x.stats.first_replicas),
                    "assigned": st.as_ref().map(|x| x.stats.assigned),
                    "accepted_on_trust": st.as_ref().map(|x| x.stats.accepted_on_trust),
                    "stake_cover": stake.map(|(c, _)| c.to_string()),
                    "stake_exposure": stake.map(|(_, e)| e.to_string()),
                })
            })
            .collect()
    }
}

/// How a flag is kept in the gateway store: `Kind: detail`.
fn flag_line(f: &FlagEvidence) -> String {
    format!("{}: {}", f.kind, f.detail)
}

fn parse_flag_line(l: &str) -> FlagEvidence {
    let (kind, detail) = l.split_once(": ").unwrap_or((l, ""));
    FlagEvidence {
        kind: kind.into(),
        detail: detail.into(),
    }
}

/// One unit's entry in a results page.
pub fn unit_result(unit: u32, outcome: Option<&UnitOutcomeRecord>, cancelled: bool) -> UnitResult {
    match outcome {
        Some(UnitOutcomeRecord::Verified {
            output_hash,
            exit_code,
            fuel_used,
            error,
            output,
            credited,
            basis,
        }) => UnitResult {
            unit,
            status: "verified".into(),
            exit_code: (*exit_code != ERROR_EXIT_CODE).then_some(*exit_code),
            fuel_used: Some(*fuel_used),
            output_hash: Some(output_hash.to_hex()),
            stdout: error.is_none().then(|| hex::encode(output)),
            error: error.clone(),
            credited: credited.iter().map(|d| d.to_string()).collect(),
            basis: Some(basis.clone()),
        },
        Some(UnitOutcomeRecord::Failed { reason }) => UnitResult {
            unit,
            status: "failed".into(),
            exit_code: None,
            fuel_used: None,
            output_hash: None,
            stdout: None,
            error: Some(reason.clone()),
            credited: vec![],
            basis: None,
        },
        None => UnitResult {
            unit,
            status: if cancelled { "cancelled" } else { "pending" }.into(),
            exit_code: None,
            fuel_used: None,
            output_hash: None,
            stdout: None,
            error: None,
            credited: vec![],
            basis: None,
        },
    }
}

pub fn unknown_job(job: &Hash32) -> ApiError {
    ApiError::not_found("unknown_job", format!("no job {job} on this gateway"))
}

fn receipt(
    job: Hash32,
    unit: u32,
    node: Did,
    fuel: u64,
    result: Hash32,
    quorum: &[Did],
) -> WorkReceipt {
    WorkReceipt {
        job,
        unit: u64::from(unit),
        node,
        kind: ContributionKind::Fuel,
        amount: fuel,
        result,
        quorum: quorum.to_vec(),
    }
}
