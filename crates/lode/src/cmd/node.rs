use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Gateway URL to connect to, e.g. http://127.0.0.1:7700
    #[arg(long)]
    pub gateway: String,
    /// Node key file.
    #[arg(long)]
    pub key: Option<std::path::PathBuf>,
    /// Concurrent work-unit slots (default: number of cores).
    #[arg(long)]
    pub slots: Option<usize>,
    /// CPU cap in percent of the machine.
    #[arg(long)]
    pub max_cpu: Option<u8>,
}

pub fn run(_args: NodeArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet(
        "node",
        "the running network: gateway and node",
    ))
}
