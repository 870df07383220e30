//! `lode`: one binary for every role in the network.
//!
//! Each role's subcommands live in their own module under `cmd/`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[derive(Debug, Parser)]
#[command(
    name = "lode",
    version,
    about = "Lode: contribute idle compute, run verified WebAssembly jobs, earn auditable rewards.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Identities: create, show and import did:key key files.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCmd),
    /// Run a work unit locally in the deterministic, metered sandbox.
    #[command(subcommand)]
    Sandbox(cmd::sandbox::SandboxCmd),
    /// Contributor: run a node that connects to a gateway and earns rewards.
    Node(cmd::node::NodeArgs),
    /// Coordinator: run a gateway that schedules and verifies work.
    Gateway(cmd::gateway::GatewayArgs),
    /// Validator: order a replicated chain's blocks with the other validators
    /// (BFT, stake-weighted); `lode validator genesis` writes such a chain's genesis.
    Validator(cmd::validator::ValidatorArgs),
    /// Requester: submit and follow jobs.
    #[command(subcommand)]
    Job(cmd::job::JobCmd),
    /// Requester: store files on contributors' disks, read them back.
    #[command(subcommand)]
    Storage(cmd::storage::StorageCmd),
    /// Balances, history, withdrawals and claim proofs.
    #[command(subcommand)]
    Wallet(cmd::wallet::WalletCmd),
    /// Staking: bond, delegate, unbond, show stake and rewards.
    #[command(subcommand)]
    Stake(cmd::stake::StakeCmd),
    /// Governance: propose parameter changes and treasury spends, vote, show tallies.
    #[command(subcommand)]
    Gov(cmd::stake::GovCmd),
    /// Inspect and verify the ledger.
    #[command(subcommand)]
    Ledger(cmd::ledger::LedgerCmd),
    /// Start a whole network on this machine.
    Devnet(cmd::devnet::DevnetArgs),
    /// Scam and phishing URL classifier: build the dataset, train, score, evaluate.
    #[command(subcommand)]
    Guard(cmd::guard::GuardCmd),
}

/// Short-lived commands whose output is meant for pipes (`lode keys show K | head -1`)
/// die quietly on a closed pipe, like other command-line tools, instead of panicking
/// in `println!`. Services (gateway, node, devnet) keep Rust's default (SIGPIPE
/// ignored): a reader that went away must not kill them.
#[cfg(unix)]
fn quiet_on_closed_pipe() {
    // SAFETY: called first thing in `main`, before any thread exists; restoring a
    // signal's default disposition has no memory-safety preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(unix)]
    if matches!(
        cli.command,
        Command::Keys(_)
            | Command::Job(_)
            | Command::Storage(_)
            | Command::Wallet(_)
            | Command::Stake(_)
            | Command::Gov(_)
            | Command::Ledger(_)
            | Command::Guard(_)
    ) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Keys(c) => cmd::keys::run(c),
        Command::Sandbox(c) => cmd::sandbox::run(c),
        Command::Node(a) => cmd::node::run(a),
        Command::Gateway(a) => cmd::gateway::run(a),
        Command::Validator(a) => cmd::validator::run(a),
        Command::Job(c) => cmd::job::run(c),
        Command::Storage(c) => cmd::storage::run(c),
        Command::Wallet(c) => cmd::wallet::run(c),
        Command::Stake(c) => cmd::stake::run_stake(c),
        Command::Gov(c) => cmd::stake::run_gov(c),
        Command::Ledger(c) => cmd::ledger::run(c),
        Command::Devnet(a) => cmd::devnet::run(a),
        Command::Guard(c) => cmd::guard::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
