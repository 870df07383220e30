//! `lode node`: contribute this machine's idle CPU to a gateway.

use anyhow::{Context, Result};
use clap::Args;
use lode_node::{Behaviour, NodeConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Gateway URL to connect to, e.g. http://127.0.0.1:7700
    #[arg(long, env = "LODE_GATEWAY")]
    pub gateway: String,
    /// Node key file; it must carry a payout address [default: $LODE_HOME/identity.key]
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Concurrent work-unit slots (default: from --max-cpu, or one per core).
    #[arg(long)]
    pub slots: Option<usize>,
    /// CPU cap in percent of the machine (1-100): at most ceil(cores × PCT / 100) slots.
    #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub max_cpu: Option<u8>,
    /// Region to advertise, e.g. eu-west.
    #[arg(long)]
    pub region: Option<String>,
    /// Directory for downloaded and compiled modules [default: $LODE_HOME/node]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep the normal scheduling priority (by default the node runs at nice 19).
    #[arg(long)]
    pub no_nice: bool,
    /// Memory offered to work units in total, in MiB [default: half the available memory].
    #[arg(long, value_name = "MIB")]
    pub memory_mib: Option<u64>,
    /// Offer disk to other people's files: shares are kept as opaque files
    /// under DIR/shares (never executed; apart from the node's own data).
    #[arg(long, value_name = "DIR", requires = "storage_gb")]
    pub storage_dir: Option<PathBuf>,
    /// Disk offered with --storage-dir, in GB (decimals allowed, e.g. 0.25).
    #[arg(long, value_name = "N", requires = "storage_dir")]
    pub storage_gb: Option<f64>,
    /// Lowest price accepted, in token base units per unit of fuel.
    #[arg(long, default_value_t = 0)]
    pub min_price: u128,
    /// Most units held queued beyond the running ones (only while units are seen to
    /// take under 250 ms; 0 disables prefetching).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_prefetch: u32,
    /// On SIGINT/SIGTERM, seconds running units may take to finish before they are handed back.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub grace: u64,
    /// Test harness only: honest, wrong-output[:N], colluding[:N], lazy[:N] (N per mille).
    #[arg(long, hide = true, default_value = "honest")]
    pub behaviour: Behaviour,
    /// Test harness only: announce this speed (fuel/s per slot) instead of the measured one.
    #[arg(long, hide = true, value_name = "FUEL_PER_S")]
    pub claim_speed: Option<u64>,
    /// Test harness only: connect to the gateway from this local address.
    #[arg(long, hide = true, value_name = "IP")]
    pub source_ip: Option<std::net::IpAddr>,
}

pub fn run(args: NodeArgs) -> Result<ExitCode> {
    init_logging();
    // Before any thread exists, so that every thread of the process inherits it.
    if !args.no_nice {
        match lode_node::host::lower_priority() {
            Ok(nice) => tracing::debug!(nice, "lowered scheduling priority"),
            Err(e) => tracing::warn!(error = %e, "cannot lower the scheduling priority"),
        }
    }
    let key = args.key.unwrap_or_else(super::keys::default_key_path);
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| super::keys::lode_home().join("node"));
    let mut config = NodeConfig::new(args.gateway, key, data_dir);
    config.slots = args
        .slots
        .map(u32::try_from)
        .transpose()
        .context("--slots is too large")?;
    config.max_cpu_pct = args.max_cpu;
    config.region = args.region;
    config.memory_bytes = args
        .memory_mib
        .map(|m| m.checked_mul(1 << 20).context("--memory-mib is too large"))
        .transpose()?;
    config.min_price_per_fuel = args.min_price;
    config.lower_priority = !args.no_nice;
    config.max_prefetch = args.max_prefetch;
    config.shutdown_grace = Duration::from_secs(args.grace);
    config.behaviour = args.behaviour;
    config.claim_speed = args.claim_speed;
    config.source_ip = args.source_ip;
    if let (Some(dir), Some(gb)) = (args.storage_dir, args.storage_gb) {
        if !(gb.is_finite() && gb > 0.0 && gb <= 1e6) {
            anyhow::bail!("--storage-gb must be a positive number of GB (at most 1,000,000)");
        }
        config.storage_dir = Some(dir);
        config.storage_bytes = (gb * 1e9) as u64;
    }

    // One thread is plenty for the network side; units run on their own threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(lode_node::run(config, shutdown_signal()));
    // Units handed back at shutdown may still be running: do not wait for them.
    rt.shutdown_background();
    let summary = result?;
    tracing::info!(
        reported = summary.reported,
        handed_back = summary.handed_back,
        "bye"
    );
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Completes on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("signal received; stopping (send it again to exit at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
