//! Lode's shared ground: identities, addresses, hashes, canonical encoding and
//! signed, replay-protected envelopes.
//!
//! This crate does no network IO and reads no clock: callers pass time in.
//! The only IO is in [`keyfile`], which reads and writes key files.
//!
//! * [`Did`] — a W3C `did:key` identity (Ed25519, multicodec `0xed01`, base58btc).
//! * [`EvmAddress`] — a 20-byte payout address, printed with the EIP-55 checksum.
//! * [`Keypair`] and [`keyfile`] — secret keys and their on-disk form.
//! * [`canonical`] — the one deterministic byte encoding everything is signed and hashed in.
//! * [`envelope`] — `{payload, signer, signature}` with per-kind domain separation,
//!   nonces, timestamps and a [`envelope::ReplayGuard`].

pub mod api;
pub mod canonical;
pub mod data;
pub mod did;
pub mod envelope;
pub mod evm;
pub mod hash;
pub mod jobspec;
pub mod keyfile;
pub mod keys;
pub mod limits;
pub mod wire;

pub use canonical::CanonicalError;
pub use did::{Did, DidError};
pub use envelope::{Envelope, Message, Opened, ReplayGuard, VerifyError};
pub use evm::{EvmAddress, EvmAddressError};
pub use hash::Hash32;
pub use keyfile::{KeyFile, KeyFileError};
pub use keys::{Keypair, Signature};
