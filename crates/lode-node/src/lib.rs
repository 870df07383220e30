//! The Lode contributor node.
//!
//! It connects outbound to a gateway (so it works behind NAT), advertises its
//! capacity, pulls work units in batches, runs them in `lode-sandbox` under each
//! unit's limits, and returns signed results. It contributes idle resources only:
//! lowest OS scheduling priority by default, and a CPU cap the contributor sets.

pub mod backoff;
pub mod host;
