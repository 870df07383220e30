//! `lode validator`: run one validator of a replicated chain (Malachite BFT,
//! stake-weighted; docs/design/validators.md), or write such a chain's
//! genesis (`lode validator genesis`).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lode_ledger::consensus::Validator;
use lode_ledger::{ConsensusParams, Genesis};
use lode_proto::{Did, KeyFile};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ValidatorArgs {
    #[command(subcommand)]
    pub cmd: Option<ValidatorCmd>,
    #[command(flatten)]
    pub run: Option<RunArgs>,
}

#[derive(Debug, Subcommand)]
pub enum ValidatorCmd {
    /// Write the genesis of a replicated chain: its validators (with voting
    /// power) and the gateways allowed to submit batches.
    Genesis(GenesisArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory for this validator's ledger copy, consensus WAL and proposals.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The validator's key file (its did must be a validator of the chain).
    #[arg(long)]
    pub key: PathBuf,
    /// The chain's genesis TOML (with a `[consensus]` section). Kept in
    /// DATA_DIR/genesis.toml; later starts may leave it out.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Consensus (peer-to-peer) address.
    #[arg(long, default_value = "127.0.0.1:26600")]
    pub listen: SocketAddr,
    /// Other validators' consensus addresses, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<SocketAddr>,
    /// HTTP API address (mempool, blocks, status, balances, claim proofs).
    #[arg(long, default_value = "127.0.0.1:26700")]
    pub http: SocketAddr,
    /// With nothing to include, wait this long for entries before proposing
    /// an empty block, in ms.
    #[arg(long, default_value_t = 250)]
    pub idle_block_ms: u64,
    /// Most entries per block (a gateway batch counts as one).
    #[arg(long, default_value_t = 20_000)]
    pub max_block_entries: usize,
    /// Test only: sign two different votes and proposals every time.
    #[arg(long, hide = true)]
    pub test_equivocate: bool,
}

#[derive(Debug, Args)]
pub struct GenesisArgs {
    /// Where to write the genesis TOML.
    #[arg(long)]
    pub out: PathBuf,
    /// A validator, `DID` (power 1) or `DID=POWER`. Repeatable; at least one.
    #[arg(long = "validator", value_name = "DID[=POWER]", required = true)]
    pub validators: Vec<String>,
    /// A gateway allowed to submit batches. Repeatable.
    #[arg(long = "gateway", value_name = "DID")]
    pub gateways: Vec<String>,
    /// Fund an account at launch, `DID=TOKENS` (whole tokens). Repeatable.
    #[arg(long = "fund", value_name = "DID=TOKENS")]
    pub fund: Vec<String>,
    /// Epoch length in milliseconds.
    #[arg(long, default_value_t = 86_400_000)]
    pub epoch_ms: u64,
}

pub fn run(args: ValidatorArgs) -> Result<ExitCode> {
    match (args.cmd, args.run) {
        (Some(ValidatorCmd::Genesis(g)), _) => write_genesis(g),
        (None, Some(r)) => run_validator(r),
        (None, None) => bail!("give --data-dir and --key to run a validator (see --help)"),
    }
}

fn parse_validator(s: &str) -> Result<Validator> {
    let (did, power) = match s.split_once('=') {
        Some((d, p)) => (
            d,
            p.parse::<u64>()
                .with_context(|| format!("--validator {s}: POWER is a whole number"))?,
        ),
        None => (s, 1),
    };
    let did: Did = did.parse().with_context(|| format!("--validator {s}"))?;
    Ok(Validator { did, power })
}

/// A replicated chain's genesis from the embedded default.
pub fn replicated_genesis(
    validators: Vec<Validator>,
    gateways: Vec<Did>,
    funded: &[(String, Did, u128)],
    epoch_ms: u64,
    now_ms: u64,
) -> Result<Genesis> {
    let mut g = lode_gateway::devnet::genesis(funded, epoch_ms, now_ms)?;
    let mut dids: Vec<Did> = validators.iter().map(|v| v.did).collect();
    dids.sort();
    g.validators = dids;
    g.consensus = Some(ConsensusParams {
        validators,
        gateways,
    });
    g.validate().context("the replicated genesis")?;
    Ok(g)
}

fn write_genesis(a: GenesisArgs) -> Result<ExitCode> {
    let validators = a
        .validators
        .iter()
        .map(|s| parse_validator(s))
        .collect::<Result<Vec<_>>>()?;
    let gateways = a
        .gateways
        .iter()
        .map(|s| s.parse::<Did>().with_context(|| format!("--gateway {s}")))
        .collect::<Result<Vec<_>>>()?;
    let funded = a
        .fund
        .iter()
        .map(|s| super::gateway::parse_fund(s))
        .collect::<Result<Vec<_>>>()?;
    let g = replicated_genesis(
        validators,
        gateways,
        &funded,
        a.epoch_ms,
        lode_gateway::http::now_ms(),
    )?;
    std::fs::write(&a.out, g.to_toml()).with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The genesis recorded in DATA/genesis.toml, else `file` (then recorded).
fn load_genesis(data_dir: &Path, file: Option<&Path>) -> Result<Genesis> {
    let recorded = data_dir.join("genesis.toml");
    let path = if recorded.exists() {
        recorded.clone()
    } else {
        file.map(Path::to_path_buf)
            .context("a new validator needs --genesis (a genesis with a [consensus] section)")?
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let g = Genesis::from_toml(&text).with_context(|| format!("genesis {}", path.display()))?;
    if !g.replicated() {
        bail!(
            "{} has no [consensus] section: a single-validator chain is run by `lode gateway`",
            path.display()
        );
    }
    if !recorded.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        std::fs::write(&recorded, g.to_toml())
            .with_context(|| format!("writing {}", recorded.display()))?;
    }
    Ok(g)
}

fn run_validator(a: RunArgs) -> Result<ExitCode> {
    // The engine's own progress lines are many; its warnings stay.
    super::gateway::init_tracing_default(
        "info,arc_malachitebft_core_consensus=warn,arc_malachitebft=warn,libp2p=warn",
    );
    let genesis = load_genesis(&a.data_dir, a.genesis.as_deref())?;
    let key = KeyFile::load(&a.key)
        .with_context(|| format!("key {}", a.key.display()))?
        .keypair;
    let mut cfg = lode_validator::node::NodeConfig::new(
        a.data_dir.clone(),
        genesis,
        key,
        a.listen,
        a.peers.clone(),
        a.http,
    );
    cfg.idle_block = Duration::from_millis(a.idle_block_ms.clamp(1, 10_000));
    cfg.max_block_entries = a.max_block_entries.clamp(1, 100_000);
    cfg.test_equivocate = a.test_equivocate;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = super::gateway::shutdown_signal();
        lode_validator::node::run(cfg, shutdown, |addr| {
            // Machine-readable line for scripts and tests.
            println!("listening on http://{addr}");
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}
