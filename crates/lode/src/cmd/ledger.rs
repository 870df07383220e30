use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum LedgerCmd {
    /// Replay the ledger from genesis and check every hash, signature and state root.
    Verify { dir: std::path::PathBuf },
}

pub fn run(_cmd: LedgerCmd) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("ledger", "the ledger"))
}
