//! A validator process (`lode validator`): the consensus engine, this
//! validator's copy of the ledger (`lode_ledger::Replica`), the mempool and
//! the HTTP API (submissions in, blocks and state out).
//!
//! ```text
//! gateway ──POST /v1/mempool (signed batch)──▶ mempool ──propose──▶ engine (Malachite)
//!                                                   ▲                 │ decided + certificate
//! anyone ◀──GET /v1/ledger/raw, /v1/status, …──  Replica ◀──commit────┘
//! ```
//!
//! Invariants: an entry is admitted only if its signatures verify and it
//! applies on the current head (or is a batch waiting for its predecessor);
//! a block is committed only with a certificate of more than 2/3 of the power
//! in force, block and certificate in one durable write; an entry leaves the
//! mempool when a committed block holds it or a proposal finds it no longer
//! applies.

pub mod http;
pub mod mempool;

use crate::app::{App, AppError, Equivocation};
use crate::engine::{EngineConfig, EngineError, Timeouts};
use lode_ledger::consensus::{CommitCertificate, ValidatorSet};
use lode_ledger::{Entry, EntryError, Genesis, LedgerConfig, Replica, ReplicaError};
use lode_proto::{Did, Hash32, Keypair, canonical};
use mempool::Mempool;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything a validator process needs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Holds `ledger/` (blocks, certificates, state snapshots) and `engine/`
    /// (consensus WAL, undecided proposals).
    pub data_dir: PathBuf,
    pub genesis: Genesis,
    pub key: Keypair,
    /// Consensus (libp2p) address.
    pub p2p_listen: SocketAddr,
    pub peers: Vec<SocketAddr>,
    /// HTTP API address.
    pub http_listen: SocketAddr,
    /// With nothing to include, a proposer waits up to this long for entries
    /// before proposing an empty block (so an idle chain is not a flood of
    /// empty blocks).
    pub idle_block: Duration,
    /// Most entries and bytes of entries in one block.
    pub max_block_entries: usize,
    pub max_block_bytes: usize,
    /// Mempool bound.
    pub mempool_bytes: usize,
    pub timeouts: Timeouts,
    #[doc(hidden)]
    pub test_equivocate: bool,
}

impl NodeConfig {
    pub fn new(
        data_dir: PathBuf,
        genesis: Genesis,
        key: Keypair,
        p2p_listen: SocketAddr,
        peers: Vec<SocketAddr>,
        http_listen: SocketAddr,
    ) -> Self {
        Self {
            data_dir,
            genesis,
            key,
            p2p_listen,
            peers,
            http_listen,
            idle_block: Duration::from_millis(250),
            max_block_entries: 20_000,
            max_block_bytes: 16 << 20,
            mempool_bytes: 256 << 20,
            timeouts: Timeouts::default(),
            test_equivocate: false,
        }
    }
}

/// Why a validator process stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("ledger: {0}")]
    Ledger(#[from] ReplicaError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("HTTP API on {0}: {1}")]
    Http(SocketAddr, std::io::Error),
}

/// A recent committed block, for the dashboard and `/v1/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecentBlock {
    pub height: u64,
    pub hash: Hash32,
    pub timestamp_ms: u64,
    pub entries: usize,
    pub proposer: Did,
    pub round: u32,
    pub signers: Vec<Did>,
    /// Signed power of the certificate, and the set's total.
    pub signed_power: u64,
    pub total_power: u64,
}

/// Counters and recent history.
#[derive(Debug, Default)]
pub struct Stats {
    /// Last height each validator's precommit was in a certificate.
    pub last_signed: BTreeMap<Did, u64>,
    /// Submission-to-commit latency of recent entries, ms.
    pub finality_ms: VecDeque<u64>,
    pub recent: VecDeque<RecentBlock>,
    pub evidence: Vec<Equivocation>,
    /// Entries a proposal found inapplicable (hash, why), newest last.
    pub rejected: VecDeque<(Hash32, String)>,
    pub committed_entries: u64,
    pub proposed: u64,
}

const KEEP_FINALITY: usize = 20_000;
const KEEP_RECENT: usize = 100;
const KEEP_REJECTED: usize = 10_000;
const KEEP_EVIDENCE: usize = 1_000;

/// State shared by the engine's application, the HTTP API and the process.
#[derive(Debug)]
pub struct Shared {
    replica: Mutex<Replica>,
    mempool: Mutex<Mempool>,
    stats: Mutex<Stats>,
    head: tokio::sync::watch::Sender<u64>,
    pub chain_id: Hash32,
    pub me: Did,
    pub genesis_hash: Hash32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves consistent data here (every
    // mutation is all-or-nothing in the ledger), so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn replica(&self) -> MutexGuard<'_, Replica> {
        lock(&self.replica)
    }
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        lock(&self.mempool)
    }
    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.stats)
    }
    /// The committed height, as a watch (changes after every commit).
    pub fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The engine's application: the ledger replica fed from the mempool.
struct LedgerApp {
    shared: Arc<Shared>,
    idle: Duration,
    max_entries: usize,
    max_bytes: usize,
}

impl LedgerApp {
    /// Waits (up to the idle interval) for something to include.
    fn wait_for_entries(&self) {
        let start = std::time::Instant::now();
        while start.elapsed() < self.idle {
            if !self.shared.mempool().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn app_err(e: ReplicaError) -> AppError {
    match e {
        ReplicaError::Invalid(m) => AppError::Invalid(m),
        other => AppError::Other(other.to_string()),
    }
}

/// Whether an entry that failed now may still apply later (a batch or a
/// signed entry ahead of its predecessor): it stays in the mempool.
pub fn may_apply_later(e: &EntryError) -> bool {
    match e {
        EntryError::BadNonce {
            expected, found, ..
        } => found > expected,
        _ => false,
    }
}

impl App for LedgerApp {
    fn chain_id(&self) -> Hash32 {
        self.shared.chain_id
    }

    fn committed_height(&self) -> u64 {
        self.shared.replica().height()
    }

    fn validator_set(&self, _height: u64) -> Result<ValidatorSet, AppError> {
        // The set changes only at an epoch close, taking effect from the next
        // block; the engine asks for the height it is deciding.
        Ok(self.shared.replica().validator_set().clone())
    }

    fn propose(&mut self, height: u64, _round: u32) -> Result<(Hash32, Vec<u8>), AppError> {
        if self.shared.mempool().is_empty() {
            self.wait_for_entries();
        }
        let offered = self.shared.mempool().peek(self.max_entries, self.max_bytes);
        let entries: Vec<Entry> = offered.iter().map(|(_, e)| e.clone()).collect();
        let p = {
            let mut r = self.shared.replica();
            if r.height() + 1 != height {
                return Err(AppError::Other(format!(
                    "asked to propose {height} at head {}",
                    r.height()
                )));
            }
            r.propose(&entries, now_ms()).map_err(app_err)?
        };
        let dead: Vec<(Hash32, String)> = p
            .rejected
            .iter()
            .filter(|(_, e)| !may_apply_later(e))
            .map(|(i, e)| (offered[*i].0, e.to_string()))
            .collect();
        if !dead.is_empty() {
            let hashes: Vec<Hash32> = dead.iter().map(|(h, _)| *h).collect();
            self.shared.mempool().remove(&hashes);
            let mut st = self.shared.stats();
            for (h, why) in dead {
                tracing::info!(entry = %h, reason = %why, "mempool entry no longer applies; dropped");
                st.rejected.push_back((h, why));
            }
            while st.rejected.len() > KEEP_REJECTED {
                st.rejected.pop_front();
            }
        }
        self.shared.stats().proposed += 1;
        Ok((p.hash, p.bytes))
    }

    fn check(&mut self, height: u64, proposer: Did, bytes: &[u8]) -> Result<Hash32, AppError> {
        self.shared
            .replica()
            .check(height, proposer, bytes, now_ms())
            .map_err(app_err)
    }

    fn commit(
        &mut self,
        height: u64,
        block: Hash32,
        bytes: &[u8],
        cert: CommitCertificate,
    ) -> Result<(), AppError> {
        let (sealed, set) = {
            let mut r = self.shared.replica();
            if r.height() >= height {
                return Ok(());
            }
            let set = r.validator_set().clone();
            let sealed = r.commit(block, Some(bytes), &cert).map_err(app_err)?;
            (sealed, set)
        };
        // The committed block is these bytes (its hash was checked).
        let decoded =
            lode_ledger::Block::from_bytes(bytes).map_err(|e| AppError::Other(e.to_string()))?;
        let hashes: Vec<Hash32> = decoded
            .entries
            .iter()
            .filter_map(|e| canonical::encode(e).ok())
            .map(|b| Hash32::sha256(&b))
            .collect();
        let waited = self.shared.mempool().remove(&hashes);
        {
            let mut st = self.shared.stats();
            for w in waited {
                st.finality_ms.push_back(w.as_millis() as u64);
            }
            while st.finality_ms.len() > KEEP_FINALITY {
                st.finality_ms.pop_front();
            }
            let mut signed_power = 0;
            for (did, _) in &cert.signatures {
                st.last_signed.insert(*did, height);
                signed_power += set.power_of(did).unwrap_or(0);
            }
            st.committed_entries += sealed.entries as u64;
            st.recent.push_back(RecentBlock {
                height,
                hash: block,
                timestamp_ms: sealed.timestamp_ms,
                entries: sealed.entries,
                proposer: decoded.header.validator,
                round: cert.round,
                signers: cert.signatures.iter().map(|(d, _)| *d).collect(),
                signed_power,
                total_power: set.total_power(),
            });
            while st.recent.len() > KEEP_RECENT {
                st.recent.pop_front();
            }
        }
        self.shared.head.send_replace(height);
        Ok(())
    }

    fn decided(&self, height: u64) -> Result<Option<(Vec<u8>, CommitCertificate)>, AppError> {
        let r = self.shared.replica();
        let Some((bytes, cert)) = r.decided(height).map_err(app_err)? else {
            return Ok(None);
        };
        let Some(cert) = cert else {
            return Ok(None);
        };
        let cert = canonical::decode(&cert).map_err(|e| AppError::Other(e.to_string()))?;
        Ok(Some((bytes, cert)))
    }

    fn evidence(&mut self, evidence: Vec<Equivocation>) {
        for e in evidence {
            {
                let mut st = self.shared.stats();
                if st.evidence.len() >= KEEP_EVIDENCE || st.evidence.contains(&e) {
                    continue;
                }
                tracing::warn!(validator = %e.validator, height = e.height, round = e.round, kind = ?e.kind, "equivocation seen");
                st.evidence.push(e.clone());
            }
            self.submit_slash(&e);
        }
    }
}

impl LedgerApp {
    /// Puts a double vote on the ledger: a `Slash{DoubleSign}` with the two
    /// signed votes, queued in this validator's own mempool (the ledger
    /// checks the signatures; an offender already tombstoned is not slashed
    /// twice, so later evidence of it is not queued).
    fn submit_slash(&self, e: &Equivocation) {
        let crate::app::EquivocationKind::Vote(vote) = e.kind else {
            return;
        };
        if !e.verify(self.shared.chain_id) {
            return;
        }
        let slash = {
            let mut r = self.shared.replica();
            let Some(params) = r.state().genesis().staking.clone() else {
                tracing::warn!(validator = %e.validator, "double signing seen, but this chain has no [staking] section to record it in");
                return;
            };
            let entry = Entry::Slash(lode_ledger::Slash {
                who: e.validator,
                fraction_bps: params.double_sign_slash_bps.max(1),
                reason: lode_ledger::SlashReason::DoubleSign,
                evidence: lode_ledger::SlashEvidence::DoubleVote {
                    vote,
                    height: e.height,
                    round: e.round,
                    a: e.first.block,
                    sig_a: e.first.signature,
                    b: e.second.block,
                    sig_b: e.second.signature,
                },
            });
            if let Err(why) = r.trial(&entry) {
                tracing::debug!(validator = %e.validator, error = %why, "double-sign slash not queued");
                return;
            }
            entry
        };
        let Ok(bytes) = canonical::encode(&slash) else {
            return;
        };
        let hash = Hash32::sha256(&bytes);
        if let Err(why) = self.shared.mempool().add(hash, slash, bytes.len()) {
            tracing::warn!(error = %why, "double-sign slash not queued");
        } else {
            tracing::warn!(validator = %e.validator, height = e.height, "double-sign slash queued for the ledger");
        }
    }
}

/// Opens the ledger and builds the shared state (no network yet).
pub fn open(cfg: &NodeConfig) -> Result<Arc<Shared>, NodeError> {
    let replica = Replica::open_or_create(
        &cfg.data_dir.join("ledger"),
        &cfg.genesis,
        cfg.key.clone(),
        LedgerConfig {
            max_block_entries: cfg.max_block_entries,
            ..LedgerConfig::default()
        },
    )?;
    if let Some((h, why)) = &replica.open_report().dropped_tail {
        tracing::warn!(height = h, reason = %why, "dropped a torn block at start; the others will resend it");
    }
    let (head, _) = tokio::sync::watch::channel(replica.height());
    let chain_id = replica.chain_id();
    Ok(Arc::new(Shared {
        chain_id,
        genesis_hash: chain_id,
        me: cfg.key.did(),
        replica: Mutex::new(replica),
        mempool: Mutex::new(Mempool::new(cfg.mempool_bytes, Duration::from_secs(120))),
        stats: Mutex::new(Stats::default()),
        head,
    }))
}

/// Runs a validator until `shutdown` resolves (then stops cleanly) or the
/// engine fails. `on_ready` gets the HTTP address once it listens.
pub async fn run(
    cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr) + Send,
) -> Result<(), NodeError> {
    let shared = open(&cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .map_err(|e| NodeError::Http(cfg.http_listen, e))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| NodeError::Http(cfg.http_listen, e))?;
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let router = http::router(shared.clone(), cfg.genesis.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = http_stopped.await;
            })
            .await
    });
    tracing::info!(http = %http_addr, p2p = %cfg.p2p_listen, validator = %cfg.key.did(), height = shared.replica().height(), "validator starting");
    on_ready(http_addr);
    let mut engine_cfg = EngineConfig::new(
        cfg.data_dir.join("engine"),
        cfg.key.clone(),
        cfg.p2p_listen,
        cfg.peers.clone(),
    );
    engine_cfg.timeouts = cfg.timeouts;
    engine_cfg.max_block_bytes = cfg.max_block_bytes + (1 << 20);
    engine_cfg.test_equivocate = cfg.test_equivocate;
    let app = LedgerApp {
        shared: shared.clone(),
        idle: cfg.idle_block,
        max_entries: cfg.max_block_entries,
        max_bytes: cfg.max_block_bytes,
    };
    let engine = crate::engine::start(engine_cfg, app).await?;
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break engine.stop().await,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if engine.is_finished() {
                    break engine.join().await;
                }
            }
        }
    };
    let _ = stop_http.send(());
    let _ = server.await;
    result.map_err(NodeError::from)
}
