//! `lode gateway`: run a coordinator.

use anyhow::{Context, Result};
use clap::Args;
use lode_gateway::GatewayConfig;
use lode_ledger::Genesis;
use lode_proto::Did;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Directory for the gateway's database, modules, ledger and validator key.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: String,
    /// Genesis (tokenomics) TOML for a new chain. Without it a new chain uses the
    /// embedded default, starting now. Ignored when DATA_DIR already has a chain.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// For a new chain from the embedded default: fund an account at launch,
    /// `DID=TOKENS` (whole tokens), taken from the treasury. Repeatable.
    #[arg(long = "fund", value_name = "DID=TOKENS")]
    pub fund: Vec<String>,
    /// For a new chain from the embedded default: epoch length in milliseconds.
    #[arg(long, default_value_t = 86_400_000)]
    pub epoch_ms: u64,
    /// For a new chain from the embedded default: turn staking on (a
    /// `[staking]` genesis section; docs/design/staking.md) with this share
    /// of each epoch's emission paid to stakers, in basis points (<= 5000).
    #[arg(long, value_name = "BPS")]
    pub staking_share_bps: Option<u32>,
    /// With staking: epoch closes an unbonding waits.
    #[arg(long, value_name = "EPOCHS", requires = "staking_share_bps")]
    pub unbonding_epochs: Option<u64>,
    /// For a new chain from the embedded default: turn governance on (needs
    /// --staking-share-bps) with this voting period in epochs.
    #[arg(long, value_name = "EPOCHS", requires = "staking_share_bps")]
    pub voting_period_epochs: Option<u64>,
    /// With governance: a proposal's deposit ("10 LODE" or base units).
    #[arg(long, value_name = "AMOUNT", requires = "voting_period_epochs")]
    pub min_deposit: Option<String>,
    /// Validators' HTTP base URLs, comma-separated: required on a replicated
    /// chain (genesis `[consensus]`), whose blocks they decide; this gateway
    /// then submits its entries to them in signed batches.
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub validators: Vec<String>,
    /// Longest a node's poll waits for work, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    pub poll_timeout_ms: u64,
    /// Seal a ledger block this often (ms) when entries are waiting.
    #[arg(long, default_value_t = 500)]
    pub block_interval_ms: u64,
    /// Group loopback clients under one IP like any other (off by default so that
    /// a local devnet's nodes count as distinct hosts).
    #[arg(long)]
    pub group_loopback: bool,
    /// Nodes that share one node's reward weight each epoch: `ip` (same IPv4 or
    /// IPv6 /64), `ip-operator` (same IP or same operator) or `off`.
    #[arg(long, default_value = "ip-operator", value_name = "POLICY")]
    pub sybil_policy: lode_gateway::anticheat::SybilPolicy,
    /// Geographic spread: a region keeps full reward weight up to this many
    /// permille of its fair share of nodes, beyond which its nodes' weight is
    /// scaled down (0 turns it off).
    #[arg(long, default_value_t = lode_gateway::anticheat::DEFAULT_REGION_SPREAD_PERMILLE, value_name = "PERMILLE")]
    pub region_spread_permille: u32,
    /// Highest believable speed of one node slot (fuel/s). A node claiming more
    /// is flagged `ImpossibleClaim`, down-weighted, and scheduled at this speed.
    #[arg(long, default_value_t = lode_sched::FlagRules::default().max_claimed_speed, value_name = "FUEL_PER_S")]
    pub max_claimed_speed: u64,
    /// Stake-backed trust on chains with staking: a trusted node's result is
    /// accepted alone only while what it was paid for unverified results since
    /// its last check stays within its slashable stake divided by this
    /// (0: off, plain adaptive trust).
    #[arg(long, default_value_t = lode_gateway::CoreConfig::default().stake_trust_multiple, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub stake_trust_multiple: u32,
    /// Time between handing out a unit and its result that is never counted
    /// against a node's claimed speed (queueing and round trips), in ms. A node
    /// is flagged `SlowerThanClaimed` when most results take longer than this
    /// plus 16× the run time its claimed speed implies.
    #[arg(long, default_value_t = lode_sched::FlagRules::default().slow_grace_ms, value_name = "MS")]
    pub slow_grace_ms: u64,
    /// Module bytes one identity may keep stored; uploads also need a funded account.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub module_quota_mib: u64,
    /// How long an uploaded module is kept while no open job uses it, in seconds.
    #[arg(long, default_value_t = 3_600, value_name = "S")]
    pub module_grace_s: u64,
    /// Deadline for a request's headers, and for an idle keep-alive connection, in ms.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub header_timeout_ms: u64,
    /// Open connections one address (IPv4, or IPv6 /64) may hold.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_conns_per_ip: u32,
    /// Longest pause between two pieces of a request body, in ms.
    #[arg(long, default_value_t = 15_000, value_name = "MS")]
    pub body_timeout_ms: u64,
    /// Browser nodes' reports: distinct Sybil groups (IP group or operator) that
    /// must report a domain before it is published in the threat feed.
    #[arg(long, default_value_t = 5, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub data_k: u32,
    /// How long reports of a not-yet-published domain count, in seconds (after
    /// the newest one); then they expire unpublished.
    #[arg(long, default_value_t = 7 * 86_400, value_name = "S")]
    pub data_window_s: u64,
    /// Reports one browser node may send per hour (a Sybil group: 4× this).
    #[arg(long, default_value_t = 60, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub data_reports_per_hour: u32,
    /// Mean time between two audits of one stored share, in ms (each audit
    /// asks --storage-audit-chunks chunks; docs/design/storage.md).
    #[arg(long, default_value_t = 900_000, value_name = "MS")]
    pub storage_audit_ms: u64,
    /// Chunks asked per storage audit.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub storage_audit_chunks: u32,
    /// Time a holder has to answer an audit, in ms.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub storage_answer_ms: u64,
    /// A holder silent this long loses its shares to repair, in ms.
    #[arg(long, default_value_t = 600_000, value_name = "MS")]
    pub storage_grace_ms: u64,
    /// Largest file `lode storage put` may store, in MiB.
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    pub storage_max_mib: u64,
    /// How often owed storage fees are paid from the escrow, in ms.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    pub storage_settle_ms: u64,
}

pub fn parse_fund(s: &str) -> Result<(String, Did, u128)> {
    let (did, tokens) = s.split_once('=').context("--fund takes DID=TOKENS")?;
    let did: Did = did.parse().with_context(|| format!("--fund {s}"))?;
    let tokens: u128 = tokens
        .replace('_', "")
        .parse()
        .with_context(|| format!("--fund {s}: TOKENS must be a whole number"))?;
    let amount = tokens
        .checked_mul(lode_ledger::ONE_TOKEN)
        .context("--fund amount overflows")?;
    Ok((format!("funded-{}", &did.multibase()[..16]), did, amount))
}

/// The chain's genesis: the one recorded in DATA/genesis.toml, else a new one.
/// The optional `[staking]` and `[governance]` sections of a new chain from
/// the embedded default (`--staking-share-bps`, `--voting-period-epochs`, …).
#[derive(Debug, Clone, Default)]
pub struct StakingGenesis {
    pub staking: Option<lode_ledger::StakingParams>,
    pub governance: Option<lode_ledger::GovernanceParams>,
}

impl StakingGenesis {
    pub fn from_args(args: &GatewayArgs) -> Result<StakingGenesis> {
        let Some(share_bps) = args.staking_share_bps else {
            return Ok(StakingGenesis::default());
        };
        let mut st = lode_ledger::StakingParams {
            share_bps,
            ..Default::default()
        };
        if let Some(u) = args.unbonding_epochs {
            st.unbonding_epochs = u;
        }
        let governance = match args.voting_period_epochs {
            None => None,
            Some(v) => {
                let mut g = lode_ledger::GovernanceParams {
                    voting_period_epochs: v,
                    ..Default::default()
                };
                if let Some(d) = &args.min_deposit {
                    g.min_deposit = lode_ledger::parse_amount(d)
                        .map_err(|e| anyhow::anyhow!("--min-deposit {d:?}: {e}"))?;
                }
                Some(g)
            }
        };
        Ok(StakingGenesis {
            staking: Some(st),
            governance,
        })
    }
}

pub fn resolve_genesis(
    data_dir: &Path,
    file: Option<&Path>,
    fund: &[String],
    epoch_ms: u64,
    staking: StakingGenesis,
) -> Result<Genesis> {
    let recorded = data_dir.join("genesis.toml");
    if recorded.exists() {
        let text = std::fs::read_to_string(&recorded)
            .with_context(|| format!("reading {}", recorded.display()))?;
        return Genesis::from_toml(&text).with_context(|| format!("{}", recorded.display()));
    }
    let g = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading genesis {}", p.display()))?;
            Genesis::from_toml(&text).with_context(|| format!("genesis {}", p.display()))?
        }
        None => {
            let funded = fund
                .iter()
                .map(|s| parse_fund(s))
                .collect::<Result<Vec<_>>>()?;
            let now = lode_gateway::http::now_ms();
            let mut g = lode_gateway::devnet::genesis(&funded, epoch_ms, now)?;
            g.staking = staking.staking;
            g.governance = staking.governance;
            g.validate_tokenomics().context(
                "--staking-share-bps / --unbonding-epochs / --voting-period-epochs / --min-deposit",
            )?;
            g
        }
    };
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::write(&recorded, g.to_toml())
        .with_context(|| format!("writing {}", recorded.display()))?;
    Ok(g)
}

/// Resolves on SIGINT or SIGTERM (a service's clean stop).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

pub fn init_tracing() {
    init_tracing_default("info");
}

/// Logs to stderr, filtered by `RUST_LOG`, else by `default`.
pub fn init_tracing_default(default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(args: GatewayArgs) -> Result<ExitCode> {
    init_tracing();
    let genesis = resolve_genesis(
        &args.data_dir,
        args.genesis.as_deref(),
        &args.fund,
        args.epoch_ms,
        StakingGenesis::from_args(&args)?,
    )?;
    let mut cfg = GatewayConfig::new(&args.data_dir, &args.listen, genesis);
    cfg.core.poll_timeout_ms = args.poll_timeout_ms;
    cfg.core.loopback_distinct = !args.group_loopback;
    cfg.core.sybil_policy = args.sybil_policy;
    cfg.core.region_spread_permille = args.region_spread_permille;
    cfg.core.stake_trust_multiple = args.stake_trust_multiple;
    cfg.sched.flags.max_claimed_speed = args.max_claimed_speed;
    cfg.sched.flags.slow_grace_ms = args.slow_grace_ms;
    cfg.core.module_quota_bytes = args.module_quota_mib.saturating_mul(1 << 20);
    cfg.core.module_grace_ms = args.module_grace_s.saturating_mul(1000);
    cfg.core.data.k = args.data_k;
    cfg.core.data.window_ms = args.data_window_s.saturating_mul(1000);
    cfg.core.data.per_node_per_hour = args.data_reports_per_hour;
    cfg.core.data.per_group_per_hour = args.data_reports_per_hour.saturating_mul(4);
    cfg.conn.header_timeout = std::time::Duration::from_millis(args.header_timeout_ms.max(100));
    cfg.conn.max_per_ip = args.max_conns_per_ip.max(1);
    cfg.http.body_timeout = std::time::Duration::from_millis(args.body_timeout_ms.max(100));
    cfg.block_interval = std::time::Duration::from_millis(args.block_interval_ms.max(1));
    cfg.storage.audit_interval_ms = args.storage_audit_ms.max(100);
    cfg.storage.challenge_chunks = args
        .storage_audit_chunks
        .clamp(1, lode_storage::audit::MAX_CHALLENGE_CHUNKS);
    cfg.storage.answer_timeout_ms = args.storage_answer_ms.max(100);
    cfg.storage.offline_grace_ms = args.storage_grace_ms.max(100);
    cfg.storage.max_file_bytes = args.storage_max_mib.clamp(1, 1 << 20) << 20;
    cfg.storage.settle_interval_ms = args.storage_settle_ms.max(100);
    cfg.validators = args.validators.clone();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = shutdown_signal();
        lode_gateway::serve(cfg, shutdown, |addr| {
            // Machine-readable line for scripts and tests.
            println!("listening on http://{addr}");
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}
