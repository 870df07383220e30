use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum WalletCmd {
    /// Balance of a did:key or payout address.
    Balance { account: String },
}

pub fn run(_cmd: WalletCmd) -> anyhow::Result<ExitCode> {
    Err(super::not_yet("wallet", "the ledger"))
}
