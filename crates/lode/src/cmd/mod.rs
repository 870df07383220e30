//! One module per role. Each exposes its clap arguments and a `run` function
//! returning the process exit code.

pub mod devnet;
pub mod gateway;
pub mod job;
pub mod keys;
pub mod ledger;
pub mod node;
pub mod sandbox;
pub mod wallet;

/// Error for a role whose implementation has not landed yet.
pub fn not_yet(what: &str, issue: &str) -> anyhow::Error {
    anyhow::anyhow!("`lode {what}` is not available in this build yet (tracked as: {issue})")
}
