use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Submit a job spec (TOML) to a gateway.
    Submit { spec: std::path::PathBuf },
    /// Show a job's progress.
    Status { job: String },
    /// Fetch a job's verified results.
    Results { job: String },
    /// Cancel a job and refund what was not spent.
    Cancel { job: String },
}

pub fn run(_cmd: JobCmd) -> anyhow::Result<ExitCode> {
    Err(super::not_yet(
        "job",
        "the running network: gateway and node",
    ))
}
