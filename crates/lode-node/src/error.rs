//! Why a node could not start or had to stop.

use lode_proto::KeyFileError;
use lode_sandbox::{RunError, SandboxError};
use std::path::PathBuf;

/// A node failed to start (or its runtime broke). Trouble with the gateway is never
/// one of these: the node retries with backoff until it is told to stop.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid node configuration: {reason}")]
    Config { reason: String },
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(
        "key file {path} has no payout address, so this node could not be paid; set one with `lode keys set-payout {path} 0x…`",
        path = .0.display()
    )]
    NoPayoutAddress(PathBuf),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("data directory {path}: {source}", path = .path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("self-benchmark failed: {0}")]
    Benchmark(RunError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::ShareError),
}
