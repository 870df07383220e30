//! Lode's storage core. Pure and deterministic: no IO, no clocks, no randomness
//! (challenge seeds come from the caller).
//!
//! * [`coding`]: a file is cut into stripes; each stripe is Reed-Solomon coded
//!   (`reed-solomon-simd`) into `n` shards of which any `k` rebuild it. Share `i`
//!   of a file is the concatenation of shard `i` of every stripe.
//! * [`merkle`]: each share is cut into fixed-size chunks; a BLAKE3 Merkle tree
//!   over them gives the share's root (bound to its length) and inclusion proofs.
//! * [`audit`]: challenges (chunk indices derived from a seed, so anyone can
//!   re-derive and re-check them), answer checks, and the detection math.
//! * [`manifest`]: what a storage contract commits to, its bounds and its price.
//! * [`wire`]: the messages of the storage API and of the node storage channel.
//!
//! See `docs/design/storage.md`.

pub mod audit;
pub mod coding;
pub mod manifest;
pub mod merkle;
pub mod wire;

pub use audit::{AuditError, Challenge, ChunkProof};
pub use coding::{CodingError, Layout};
pub use manifest::{Manifest, ManifestError};
pub use merkle::{ProofError, Tree};
