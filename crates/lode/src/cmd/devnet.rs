use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Number of contributor nodes to start.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Data directory (kept between runs).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Submit an example job so that something visibly happens.
    #[arg(long)]
    pub demo: bool,
}

pub fn run(_args: DevnetArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("devnet", "lode devnet and the dashboard"))
}
