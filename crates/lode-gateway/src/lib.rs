//! The Lode gateway: takes jobs from requesters, hands work units to nodes,
//! verifies results by quorum and writes verified work to the ledger.
//!
//! This crate is the IO edge around the pure cores (`lode-sched`, the ledger
//! state machine): HTTP, persistence, clocks and randomness live here.
//! See `docs/design/lode-gateway.md`.

pub mod anticheat;
pub mod api_error;
pub mod chain_link;
pub mod core;
pub mod data;
pub mod data_api;

pub mod dashboard;
pub mod db;
pub mod devnet;
pub mod explorer;
pub mod http;
pub mod metrics;
pub mod modules;
pub mod openapi;
pub mod ratelimit;
pub mod serve;
pub mod stake_trust;
pub mod staking_api;
pub mod storage;
pub mod storage_api;
pub mod validators_api;
pub mod wallet_api;

use lode_ledger::{Genesis, Ledger, LedgerConfig};
use lode_proto::{KeyFile, Keypair};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::core::{Core, CoreConfig};
pub use crate::http::{App, HttpLimits};

/// Why the gateway could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Key(#[from] lode_proto::KeyFileError),
    #[error("ledger: {0}")]
    Ledger(Box<lode_ledger::LedgerError>),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Modules(#[from] modules::ModuleStoreError),
    #[error("scheduler configuration: {0}")]
    Sched(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("recovery: {0}")]
    Recovery(String),
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(
        "the genesis has a [consensus] section (a replicated chain): give the validators' URLs with --validators"
    )]
    NoValidators,
}

impl From<lode_ledger::LedgerError> for GatewayError {
    fn from(e: lode_ledger::LedgerError) -> Self {
        GatewayError::Ledger(Box::new(e))
    }
}

/// Everything a gateway needs to run.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    /// The chain's tokenomics. An existing ledger must match it.
    pub genesis: Genesis,
    pub core: CoreConfig,
    pub http: HttpLimits,
    pub sched: lode_sched::Config,
    /// Seal a ledger block this often when entries are waiting.
    pub block_interval: Duration,
    /// Lease-expiry and heartbeat check period.
    pub tick_interval: Duration,
    /// Connection caps and the header-read deadline (see [`serve`]).
    pub conn: serve::ConnLimits,
    /// Storage contribution: audits, grace, limits (see [`storage`]).
    pub storage: storage::StorageConfig,
    /// Validators' base URLs: required on a replicated chain (genesis
    /// `[consensus]`), where this gateway submits batches instead of sealing
    /// blocks (see [`chain_link`]).
    pub validators: Vec<String>,
}

impl GatewayConfig {
    pub fn new(data_dir: impl Into<PathBuf>, listen: impl Into<String>, genesis: Genesis) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: listen.into(),
            genesis,
            core: CoreConfig::default(),
            http: HttpLimits::default(),
            sched: lode_sched::Config::default(),
            block_interval: Duration::from_millis(500),
            tick_interval: Duration::from_millis(200),
            conn: serve::ConnLimits::default(),
            storage: storage::StorageConfig::default(),
            validators: Vec::new(),
        }
    }
}

/// The validator key of a gateway: `DATA/validator.key`, created on first start.
pub fn validator_key(data_dir: &std::path::Path) -> Result<Keypair, GatewayError> {
    let path = data_dir.join("validator.key");
    if path.exists() {
        return Ok(KeyFile::load(&path)?.keypair);
    }
    let kf = KeyFile::generate(None)?;
    kf.save_new(&path)?;
    Ok(kf.keypair)
}

/// Opens (or creates) the gateway's state in `cfg.data_dir`.
pub fn open(cfg: &GatewayConfig) -> Result<App, GatewayError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| GatewayError::DataDir(cfg.data_dir.clone(), e))?;
    let validator = validator_key(&cfg.data_dir)?;
    let ledger = if cfg.genesis.replicated() {
        if cfg.validators.is_empty() {
            return Err(GatewayError::NoValidators);
        }
        Ledger::open_follower(
            &cfg.data_dir.join("ledger"),
            &cfg.genesis,
            validator,
            LedgerConfig::default(),
        )?
    } else {
        Ledger::open_or_create(
            &cfg.data_dir.join("ledger"),
            &cfg.genesis,
            validator,
            LedgerConfig::default(),
        )?
    };
    if let Some((h, why)) = &ledger.open_report().dropped_tail {
        tracing::warn!(height = h, reason = %why, "dropped a torn ledger block at start");
    }
    let db = db::Db::open(&cfg.data_dir.join("gateway.redb"))?;
    let modules = modules::ModuleStore::open(
        cfg.data_dir.join("modules"),
        cfg.http.max_module_bytes as u64,
    )?;
    let seed = u64::from_le_bytes(rand_bytes());
    // One geographic-spread rule for reward weight and for work.
    let mut sched_cfg = cfg.sched.clone();
    sched_cfg.region_spread_permille = cfg.core.region_spread_permille;
    let sched = lode_sched::Scheduler::new(sched_cfg, seed)
        .map_err(|e| GatewayError::Sched(e.to_string()))?;
    let core = Core::open(cfg.core.clone(), sched, ledger, db, modules, http::now_ms())?;
    let storage = storage::Storage::open(&cfg.data_dir, cfg.storage.clone(), http::now_ms())?;
    let follower = core.ledger().is_follower();
    let app = App::new(core, cfg.http.clone()).with_storage(storage);
    Ok(if follower {
        app.with_validators(cfg.validators.clone())
    } else {
        app
    })
}

fn rand_bytes() -> [u8; 8] {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    b
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
}

/// Serves until `shutdown` resolves: HTTP, lease ticks and block sealing.
pub async fn serve(
    cfg: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listen: impl FnOnce(SocketAddr) + Send,
) -> Result<(), GatewayError> {
    let app = open(&cfg)?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| GatewayError::Listen(cfg.listen.clone(), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| GatewayError::Listen(cfg.listen.clone(), e))?;
    tracing::info!(%addr, validator = %app.lock().validator(), "gateway listening");
    on_listen(addr);

    let ticker = {
        let app = app.clone();
        every(cfg.tick_interval, move || {
            if app.lock().tick(http::now_ms()) {
                app.signal_work();
            }
        })
    };
    let sealer = {
        let app = app.clone();
        every(cfg.block_interval, move || {
            let now = http::now_ms();
            let mut core = app.lock();
            if core.ledger_due(now) {
                core.seal(now);
            }
        })
    };
    let sampler = {
        let app = app.clone();
        every(dashboard::SAMPLE_PERIOD, move || dashboard::sample(&app))
    };
    let collector = {
        let app = app.clone();
        let period = Duration::from_millis((cfg.core.module_grace_ms / 4).clamp(1_000, 60_000));
        every(period, move || {
            app.lock().collect_modules(http::now_ms());
        })
    };
    let storage_ticker = {
        let app = app.clone();
        let period = Duration::from_millis((cfg.storage.audit_interval_ms / 8).clamp(100, 5_000));
        every(period, move || storage_api::tick(&app))
    };
    let referee_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let links = match chain_link::Validators::new(cfg.validators.clone()) {
        Some(v) if app.lock().ledger().is_follower() => {
            chain_link::spawn(app.clone(), v, referee_stop.clone())
        }
        _ => Vec::new(),
    };
    // Only a chain with staking has stake to slash (its genesis never changes).
    let staking = app.lock().ledger().state().genesis().staking.is_some();
    let referee = staking.then(|| spawn_referee(app.clone(), referee_stop.clone()));
    let router = http::router(app.clone());
    let dash = app.dashboard().clone();
    let shutdown = async move {
        shutdown.await;
        // Open dashboards would otherwise hold the graceful shutdown forever.
        dash.close();
    };
    let result = serve::serve(
        listener,
        router,
        cfg.conn.clone(),
        app.metrics().clone(),
        shutdown,
    )
    .await;
    ticker.abort();
    sealer.abort();
    sampler.abort();
    collector.abort();
    storage_ticker.abort();
    referee_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(r) = referee {
        let _ = r.join();
    }
    for l in links {
        let _ = l.join();
    }
    // Make whatever is queued durable before exiting.
    app.lock().shutdown(http::now_ms());
    result.map_err(GatewayError::Serve)
}

/// The referee: re-runs the units of staked nodes' rejected results in a
/// sandbox of its own, on its own thread (a run may take as long as the job's
/// limits allow), and hands each result back to the core, which slashes only a
/// proven fault (see [`stake_trust`]).
fn spawn_referee(
    app: App,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut sandbox = None;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let tasks = app.lock().take_referee_tasks();
            if tasks.is_empty() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            if sandbox.is_none() {
                match lode_sandbox::Sandbox::new(lode_sandbox::SandboxConfig::default()) {
                    Ok(s) => sandbox = Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "no referee sandbox: faults are penalized, not slashed");
                        continue;
                    }
                }
            }
            let Some(sb) = sandbox.as_ref() else { continue };
            for t in tasks {
                let module = app.lock().modules.get(&t.module);
                let run = match module {
                    Ok(m) => stake_trust::referee_run(sb, &m, &t.input, &t.limits),
                    Err(e) => {
                        tracing::warn!(module = %t.module, error = %e, "referee: module gone");
                        None
                    }
                };
                app.lock().referee_done(&t, run.as_ref());
            }
        }
    })
}

/// Runs `f` every `period` (a late tick delays the next rather than bunching up).
fn every(period: Duration, mut f: impl FnMut() + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(period);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            f();
        }
    })
}
