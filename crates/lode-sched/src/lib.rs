//! # lode-sched — Lode's scheduler and result-verification core
//!
//! The gateway's brain as a pure, deterministic state machine: no IO, no clock
//! reads (every call takes `now` in milliseconds), no global RNG (a ChaCha8 RNG
//! seeded at construction decides spot-checks). Same seed + same inputs ⇒ same
//! decisions, so the core is simulated at scale ([`sim`]) and benchmarked alone.
//!
//! ## How the gateway drives it
//! * [`Scheduler::node_joined`] / [`Scheduler::node_left`] on hello / disconnect;
//! * [`Scheduler::add_job`] on submit ([`Scheduler::add_job_resuming`] after a restart),
//!   [`Scheduler::cancel_job`], [`Scheduler::remove_job`] once settled;
//! * [`Scheduler::request_work`] when a node asks for N units (pull model, batches);
//! * [`Scheduler::submit_result`] / [`Scheduler::report_failure`] on node messages;
//! * [`Scheduler::tick`] at [`Scheduler::next_deadline`] to expire leases.
//!
//! Each call appends [`Decision`]s the gateway executes in order: completions with
//! the canonical result and exactly the agreeing nodes to credit, failures with a
//! reason, cancels for replicas no longer needed, lost leases, trust/reputation
//! changes to persist, behaviour flags with evidence, finished jobs.
//! [`Scheduler::apply`] takes the same inputs as an [`Event`] enum for event-sourced
//! drivers and replay; the scheduler is also `Serialize` for snapshots.
//!
//! ## Rules
//! * Replicas of a unit go to distinct nodes of distinct operators and IP groups;
//!   never twice to a node.
//! * A unit completes when `quorum` results agree on (output hash, exit code,
//!   fuel used); dissenters lose trust; when the quorum is out of reach within
//!   `max_replicas` the unit fails with a [`FailReason`].
//! * Adaptive replication (BOINC): CV consecutive quorum-verified results,
//!   CV ≥ `trust_threshold` ⇒ trusted; a trusted node's fresh unit is spot-checked
//!   (full quorum) with probability 1/CV, decided secretly at assignment, otherwise
//!   accepted on its single result ([`Basis::Trusted`]). An invalid result resets CV.
//! * Fair share between requesters by stride scheduling on fuel; priority orders
//!   one requester's jobs.
//!
//! ## Example (what the gateway does)
//!
//! ```
//! use lode_proto::{Did, Hash32, Keypair};
//! use lode_sched::*;
//!
//! let mut sched: Scheduler<Did> = Scheduler::new(Config::default(), 42).unwrap();
//! let did = |b: u8| Keypair::from_secret_bytes(&[b; 32]).did();
//! let (alice, bob, requester) = (did(1), did(2), did(3));
//! for (i, node) in [alice, bob].into_iter().enumerate() {
//!     let ip = std::net::IpAddr::from([203, 0, 113, i as u8 + 1]);
//!     let info = NodeInfo {
//!         slots: 2,
//!         memory_bytes: 1 << 30,
//!         speed_fuel_per_s: 1_000_000_000,
//!         region: Region::new("eu-west").unwrap(),
//!         latency_ms: 15,
//!         price_floor: 1,
//!         operator: OperatorId::of(node.public_key_bytes()),
//!         ip_group: IpGroup::from_ip(ip),
//!         trust: None, // or the TrustState persisted from Decision::Trust
//!     };
//!     sched.node_joined(node, info, 0).unwrap();
//! }
//! let spec = JobSpec {
//!     requester,
//!     units: 1,
//!     limits: Limits { fuel: 2_000_000_000, memory_bytes: 64 << 20, timeout_ms: None },
//!     quorum: 2,
//!     max_replicas: 4,
//!     max_price_per_fuel: 5,
//!     priority: 0,
//!     adaptive_trust: true,
//!     region: None,
//! };
//! sched.add_job(JobId(7), spec, 0).unwrap();
//!
//! let mut work = Vec::new();
//! sched.request_work(&alice, 8, 10, &mut work).unwrap(); // send `work` to alice
//! sched.request_work(&bob, 8, 20, &mut work).unwrap();
//! assert_eq!(work.len(), 2);
//!
//! let result = ResultDigest { output_hash: Hash32::sha256(b"out"), exit_code: 0, fuel_used: 1_234 };
//! let mut decisions = Vec::new();
//! sched.submit_result(&alice, work[0].unit, result, 900, &mut decisions).unwrap();
//! sched.submit_result(&bob, work[1].unit, result, 950, &mut decisions).unwrap();
//! let paid: Vec<Did> = decisions
//!     .iter()
//!     .filter_map(|d| match d {
//!         Decision::Completed(c) => Some(c.credited.clone()),
//!         _ => None,
//!     })
//!     .flatten()
//!     .collect();
//! assert_eq!(paid, vec![alice, bob]);
//! // Expire leases at the next deadline (nothing left to expire here).
//! if let Some(t) = sched.next_deadline() {
//!     sched.tick(t, &mut decisions);
//! }
//! ```
//!
//! See `docs/design/lode-sched.md` for the data flow, invariants and the
//! false-acceptance derivations ([`analysis`]) checked against simulations.

mod config;
mod error;
mod sched;
mod types;

pub mod analysis;
pub mod sim;

pub use config::{
    Config, FlagRules, MAX_REPLICAS_LIMIT, REPUTATION_MAX, ReputationRules, StakeTrust,
};
pub use error::{ConfigError, Error, InvalidJob, InvalidNode};
pub use sched::{
    Counters, Event, JobProgress, NodeStats, NodeStatus, ReplicaState, ReplicaView, SchedStats,
    Scheduler,
};
pub use types::*;
