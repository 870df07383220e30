//! Lode's validator engine: Malachite BFT (`arc-malachitebft-*` 0.8.2)
//! replicating a ledger among stake-weighted validators, generic over the
//! application ([`App`]).
//!
//! - [`ctx`]: the consensus context on Lode types (a validator's address is
//!   its did; the value is an opaque block with the app's id); stateless
//!   stake-weighted proposer selection.
//! - [`signing`]: votes signed exactly as `lode_ledger::consensus` verifies
//!   them; proposals under `lode/consensus/proposal/v1`.
//! - [`cert`]: engine certificates ⇄ `lode_ledger::consensus::CommitCertificate`,
//!   engine evidence → [`Equivocation`].
//! - [`codec`]: versioned borsh for the WAL, gossip and sync.
//! - [`parts`]: chunked proposal streams with bounded reassembly.
//! - [`store`]: the undecided-proposal store (redb) under the engine's home.
//! - [`engine`]: configuration, start-up and the application loop.
//! - [`node`]: the validator process: the ledger replica as the [`App`],
//!   the mempool and the HTTP API.
//!
//! See `docs/design/lode-validator.md`.

pub mod app;
pub mod cert;
pub mod codec;
pub mod ctx;
pub mod engine;
pub mod node;
pub mod parts;
pub mod signing;
pub mod store;

pub use app::{App, AppError, Equivocation, EquivocationKind, Signed};
pub use engine::{EngineConfig, EngineError, EngineHandle, Timeouts, run, start};
