//! The Lode gateway: takes jobs from requesters, hands work units to nodes,
//! verifies results by quorum and writes verified work to the ledger.
//!
//! This crate is the IO edge around the pure cores (`lode-sched`, the ledger
//! state machine): HTTP, persistence, clocks and randomness live here.

pub mod api_error;
pub mod metrics;
pub mod modules;
pub mod ratelimit;
