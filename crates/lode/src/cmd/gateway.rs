use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Directory for the gateway's database and ledger.
    #[arg(long)]
    pub data_dir: std::path::PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: String,
    /// Genesis (tokenomics) file; the embedded default when absent.
    #[arg(long)]
    pub genesis: Option<std::path::PathBuf>,
}

pub fn run(_args: GatewayArgs) -> anyhow::Result<ExitCode> {
    Err(super::not_yet(
        "gateway",
        "the running network: gateway and node",
    ))
}
