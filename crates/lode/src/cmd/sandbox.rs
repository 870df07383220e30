use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Run MODULE.wasm on stdin and report exit code, fuel and time.
    Run {
        module: std::path::PathBuf,
        #[arg(last = true)]
        args: Vec<String>,
    },
}

pub fn run(_cmd: SandboxCmd) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("sandbox", "deterministic metered sandbox"))
}
