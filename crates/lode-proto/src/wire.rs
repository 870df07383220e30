//! Messages that cross process boundaries between requesters, nodes and the gateway.
//!
//! Every request body is an [`Envelope`](crate::Envelope) holding one of the
//! [`Message`] types below, signed by the sender's did:key. Each type has its own
//! domain tag (`KIND`), so a signature for one can never be replayed as another.
//! Gateway responses are plain JSON over the same connection.
//!
//! Flow on the node channel (outbound HTTP long-poll, so nodes behind NAT need no
//! open port):
//!
//! 1. `NodeHello` → gateway answers with a random challenge.
//! 2. `NodeAuth { challenge }` signed by the same key → gateway answers with a session id.
//! 3. `NodePoll { session, want, reports, handed_back }` repeatedly: it carries the
//!    results of finished units (a batch: one signature for many results) and asks for
//!    up to `want` new units; the gateway answers with assignments, waiting up to a
//!    poll timeout when it has none. A poll is also the node's heartbeat.

use crate::did::Did;
use crate::envelope::Message;
use crate::evm::EvmAddress;
use crate::hash::Hash32;
use serde::{Deserialize, Serialize};

/// A job is named by 32 random bytes the requester chooses. The same id names the
/// job's escrow on the ledger, which accepts an id once, ever: a replayed or
/// duplicated submission cannot be charged twice.
pub type JobId = Hash32;

/// Index of a work unit inside its job (0-based, in submission order).
pub type UnitIndex = u32;

/// A work unit's identity across the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitRef {
    pub job: JobId,
    pub unit: UnitIndex,
}

/// Execution engine. Only WebAssembly exists today; the field lets other engines
/// (e.g. GPU model inference) be added without a format change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Wasm,
}

/// Resource limits of every unit of a job. The sandbox enforces all four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitLimits {
    /// Fuel (wasmtime instruction meter) a unit may burn. Also the billing cap.
    pub fuel: u64,
    /// Linear-memory cap in bytes.
    pub memory_bytes: u64,
    /// Wall-clock backstop in milliseconds.
    pub timeout_ms: u64,
    /// Stdout cap in bytes, enforced while the output streams.
    pub max_output_bytes: u64,
}

impl Default for UnitLimits {
    fn default() -> Self {
        Self {
            fuel: 1_000_000_000,
            memory_bytes: 64 << 20,
            timeout_ms: 30_000,
            max_output_bytes: 1 << 20,
        }
    }
}

/// One unit's input: stdin bytes and argument vector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct UnitInput {
    #[serde(with = "crate::wire::bytes_hex")]
    pub stdin: Vec<u8>,
    pub args: Vec<String>,
}

/// How results are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Verification {
    /// Agreeing replicas needed for a unit to be verified.
    pub quorum: u8,
    /// Most replicas ever issued for one unit before it fails.
    pub max_replicas: u8,
    /// Let trusted nodes' units skip the second replica (spot-checked at 1/CV).
    pub adaptive_trust: bool,
}

impl Default for Verification {
    fn default() -> Self {
        Self {
            quorum: 2,
            max_replicas: 5,
            adaptive_trust: false,
        }
    }
}

/// Requester → gateway: submit a job. The requester is the envelope's signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitJob {
    /// Random, chosen by the requester.
    pub job: JobId,
    /// The ledger's `JobEscrow` entry for this job, signed by the requester
    /// (`lode_ledger::Entry::sign`): locks `units × quorum × fuel limit × price`
    /// from the requester's balance. Unspent escrow is refunded when the job ends.
    pub escrow: crate::Envelope,
    pub name: String,
    pub engine: Engine,
    /// SHA-256 of a module already uploaded with [`UploadModule`].
    pub module: Hash32,
    pub units: Vec<UnitInput>,
    pub limits: UnitLimits,
    pub verification: Verification,
    /// Highest price the requester pays, in token base units per unit of fuel.
    pub max_price_per_fuel: u128,
    /// Preferred region, if any (e.g. "eu-west").
    pub region: Option<String>,
    /// Which nodes may run the units (and so see their inputs).
    pub eligibility: Eligibility,
}

/// Which nodes may run a job's units. Nodes see the inputs of the units they
/// run, so a requester with sensitive inputs can keep them to nodes it trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Eligibility {
    /// Lowest reputation a node must have (0: any).
    pub min_reputation: u32,
    /// When not empty, only nodes of these operators (their operator did, or the
    /// node's own did when it names no operator).
    pub operators: Vec<Did>,
}

impl Eligibility {
    pub fn is_open(&self) -> bool {
        self.min_reputation == 0 && self.operators.is_empty()
    }
}

/// [`SubmitJob`] as signed before `eligibility` existed: stored records of that
/// form still decode (as open to every node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitJobV1 {
    pub job: JobId,
    pub escrow: crate::Envelope,
    pub name: String,
    pub engine: Engine,
    pub module: Hash32,
    pub units: Vec<UnitInput>,
    pub limits: UnitLimits,
    pub verification: Verification,
    pub max_price_per_fuel: u128,
    pub region: Option<String>,
}

impl From<SubmitJobV1> for SubmitJob {
    fn from(v: SubmitJobV1) -> Self {
        Self {
            job: v.job,
            escrow: v.escrow,
            name: v.name,
            engine: v.engine,
            module: v.module,
            units: v.units,
            limits: v.limits,
            verification: v.verification,
            max_price_per_fuel: v.max_price_per_fuel,
            region: v.region,
            eligibility: Eligibility::default(),
        }
    }
}

impl Message for SubmitJob {
    const KIND: &'static str = "lode/requester/submit-job/v1";
}

impl SubmitJob {
    /// The escrow a job must lock: `units × quorum × fuel limit × price per fuel`,
    /// the most its receipts can ever owe (each unit pays at most `quorum` nodes
    /// for at most its fuel limit). `None` on overflow.
    pub fn required_escrow(&self) -> Option<u128> {
        (self.units.len() as u128)
            .checked_mul(u128::from(self.verification.quorum))?
            .checked_mul(u128::from(self.limits.fuel))?
            .checked_mul(self.max_price_per_fuel)
    }
}

/// Requester → gateway: the signed header of a module upload (the body is the module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadModule {
    pub sha256: Hash32,
    pub size: u64,
}

impl Message for UploadModule {
    const KIND: &'static str = "lode/requester/upload-module/v1";
}

/// Requester → gateway: cancel a job; unspent escrow is refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelJob {
    pub job: JobId,
}

impl Message for CancelJob {
    const KIND: &'static str = "lode/requester/cancel-job/v1";
}

/// Requester → gateway: a signed read of a job's results, sent as the JSON
/// envelope in the [`READ_HEADER`] header. Only the job's requester may read
/// them; reads change nothing, so only freshness is checked (no nonce memory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadJob {
    pub job: JobId,
}

impl Message for ReadJob {
    const KIND: &'static str = "lode/requester/read-job/v1";
}

/// What a node offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCapacity {
    pub cores: u32,
    /// Units the node runs at once.
    pub slots: u32,
    /// Units the node will hold queued beyond its slots (prefetch for short units,
    /// so a round trip per unit does not bound throughput). The gateway caps it.
    pub queue: u32,
    /// Memory the node offers to units, in bytes.
    pub memory_bytes: u64,
    /// Self-benchmark: fuel per second per slot.
    pub speed_fuel_per_s: u64,
}

impl NodeCapacity {
    /// The most memory one unit may have on this node: `memory_bytes / slots`,
    /// rounded down to whole 64 KiB WebAssembly pages, between one page and
    /// wasm32's 4 GiB. Node and gateway both use this figure, so a unit the
    /// gateway hands out always fits the node's sandbox.
    pub fn unit_memory_bytes(&self) -> u64 {
        const PAGE: u64 = 64 << 10;
        const MAX: u64 = 4 << 30;
        (self.memory_bytes / u64::from(self.slots.max(1)) / PAGE * PAGE).clamp(PAGE, MAX)
    }
}

/// Node → gateway: first message of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHello {
    pub capacity: NodeCapacity,
    /// Where this node's rewards are claimed.
    pub payout: EvmAddress,
    /// The operator running this node, when it differs from the node key.
    pub operator: Option<Did>,
    pub region: Option<String>,
    /// Lowest price accepted, in base units per fuel.
    pub min_price_per_fuel: u128,
    /// `lode` version and sandbox engine fingerprint, for diagnostics.
    pub software: String,
}

impl Message for NodeHello {
    const KIND: &'static str = "lode/node/hello/v1";
}

/// Node → gateway: proves possession of the key at the time of the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAuth {
    pub challenge: [u8; 32],
    /// `lode_ledger::Entry::RegisterNode` envelope (`RegisterNode { chain, operator,
    /// payout }` signed by the node key with `register_nonce`), when the hello
    /// response asked for one.
    pub register: Option<crate::Envelope>,
}

impl Message for NodeAuth {
    const KIND: &'static str = "lode/node/auth/v1";
}

/// The outcome of one unit as a node saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitOutcome {
    /// The module ran to completion (any exit code).
    Completed {
        exit_code: i32,
        fuel_used: u64,
        #[serde(with = "crate::wire::bytes_hex")]
        stdout: Vec<u8>,
    },
    /// The module hit a deterministic limit or trap (`OutOfFuel`, `MemoryLimit`,
    /// `OutputTooLarge`, `Trap:…`). Deterministic failures are results too: replicas
    /// must agree on them like on any output.
    Failed { error: String, fuel_used: u64 },
}

/// The exit code a deterministic failure is compared under: no module can
/// exit with it (WASI exit codes are 0..=125 or an unsigned status).
pub const ERROR_EXIT_CODE: i32 = i32::MIN;

impl UnitOutcome {
    /// What replicas are compared on: (exit code, fuel used, output bytes); a
    /// deterministic failure is its error text under [`ERROR_EXIT_CODE`].
    pub fn compared(&self) -> (i32, u64, &[u8]) {
        match self {
            UnitOutcome::Completed {
                exit_code,
                fuel_used,
                stdout,
            } => (*exit_code, *fuel_used, stdout),
            UnitOutcome::Failed { error, fuel_used } => {
                (ERROR_EXIT_CODE, *fuel_used, error.as_bytes())
            }
        }
    }
}

/// A finished unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitReport {
    pub unit: UnitRef,
    pub outcome: UnitOutcome,
    /// Wall time the node spent, for monitoring (not trusted for billing).
    pub elapsed_ms: u64,
    /// The node's signature of its result as a standalone ledger
    /// `ResultClaim` (nonce 0, timestamp 0): the evidence that slashes it if
    /// the result is proven wrong. Gateways on chains with staking refuse a
    /// report without a valid one.
    pub claim: Option<crate::Signature>,
}

/// Node → gateway: report finished units, hand back units it will not run, ask for more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePoll {
    pub session: [u8; 16],
    /// New units wanted (0: only report / heartbeat).
    pub want: u32,
    pub reports: Vec<UnitReport>,
    /// Units the node gives back unrun (e.g. shutting down); they are re-issued at once.
    pub handed_back: Vec<UnitRef>,
}

impl Message for NodePoll {
    const KIND: &'static str = "lode/node/poll/v1";
}

/// Gateway → node: one unit to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub unit: UnitRef,
    pub module: Hash32,
    pub input: UnitInput,
    pub limits: UnitLimits,
    /// The lease ends at this gateway time; a later result may still count but the
    /// unit will have been re-issued.
    pub deadline_ms: u64,
}

/// Gateway → node: answer to `NodeHello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResponse {
    /// Sign this in a [`NodeAuth`] within `challenge_ttl_ms`.
    pub challenge: [u8; 32],
    /// The ledger's chain id (genesis block hash): signed ledger entries bind to it.
    pub chain_id: Hash32,
    /// `Some(nonce)`: the ledger does not (yet) record this node with the payout
    /// address and operator of the hello; the node must put a `RegisterNode` ledger
    /// entry signed with this nonce in its [`NodeAuth`].
    pub register_nonce: Option<u64>,
    /// The gateway's (validator's) identity.
    pub gateway: Did,
    pub challenge_ttl_ms: u64,
    /// The gateway's clock, so the node can correct its envelope timestamps.
    pub now_ms: u64,
}

/// Gateway → node: answer to `NodeAuth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    pub session: [u8; 16],
    /// Longest a poll waits for work before answering empty.
    pub poll_timeout_ms: u64,
    /// A node silent for longer than this is considered gone and its leases re-issued.
    pub heartbeat_timeout_ms: u64,
}

/// Gateway → node: answer to `NodePoll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PollResponse {
    /// Reports of the poll that were durably recorded (all of them, in order).
    pub accepted: u32,
    /// Reports refused, with the reason (e.g. unit not assigned to this node).
    pub rejected: Vec<(UnitRef, String)>,
    /// New work.
    pub assignments: Vec<Assignment>,
    /// Units this node holds that are no longer needed: stop them, report nothing.
    pub cancel: Vec<UnitRef>,
    pub now_ms: u64,
}

/// HTTP contract of the node channel (all paths relative to the gateway URL).
///
/// Requests and responses on `/v1/node/*` are binary: the request body is
/// `Envelope::to_bytes()`, the response body is `canonical::encode` of the response
/// type, both with content type [`BINARY_CONTENT_TYPE`]. Errors are JSON
/// `{"error":{"code","message"}}` with a non-2xx status; code `unknown_session` means
/// "say hello again".
pub mod paths {
    /// POST `Envelope<NodeHello>` → [`super::HelloResponse`].
    pub const NODE_HELLO: &str = "/v1/node/hello";
    /// POST `Envelope<NodeAuth>` → [`super::AuthResponse`].
    pub const NODE_AUTH: &str = "/v1/node/auth";
    /// POST `Envelope<NodePoll>` → [`super::PollResponse`] (long-poll).
    pub const NODE_POLL: &str = "/v1/node/poll";
    /// GET `/v1/modules/{sha256 hex}` → module bytes (re-hash them!).
    /// PUT with header [`super::UPLOAD_HEADER`] = JSON `Envelope<UploadModule>` uploads.
    pub const MODULES: &str = "/v1/modules";
    /// POST JSON `Envelope<SubmitJob>` → `{"job": id, ...}`; GET `/v1/jobs/{id}` status,
    /// GET `/v1/jobs/{id}/results`, POST `/v1/jobs/{id}/cancel` with JSON `Envelope<CancelJob>`.
    pub const JOBS: &str = "/v1/jobs";
}

/// Content type of binary node-channel bodies.
pub const BINARY_CONTENT_TYPE: &str = "application/x-lode-canonical";

/// Header carrying the signed `UploadModule` envelope (JSON) of a module upload.
pub const UPLOAD_HEADER: &str = "x-lode-envelope";

/// Header carrying the signed `ReadJob` envelope (JSON) of a results read.
pub const READ_HEADER: &str = "x-lode-read";

/// Hex in human-readable formats (JSON), raw bytes in binary ones.
pub mod bytes_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(s).map_err(serde::de::Error::custom)
        } else {
            crate::keys::serde_bytes_vec(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, Keypair, ReplayGuard};

    #[test]
    fn messages_round_trip_in_envelopes_and_json() {
        let kp = Keypair::from_secret_bytes(&[1; 32]);
        let poll = NodePoll {
            session: [7; 16],
            want: 8,
            reports: vec![UnitReport {
                unit: UnitRef {
                    job: Hash32::sha256(b"job"),
                    unit: 3,
                },
                outcome: UnitOutcome::Completed {
                    exit_code: 0,
                    fuel_used: 99,
                    stdout: b"out".to_vec(),
                },
                elapsed_ms: 5,
                claim: Some(kp.sign_tagged("claim", b"x")),
            }],
            handed_back: vec![],
        };
        let env = Envelope::seal(&kp, &poll, 1, 1000).unwrap();
        let json = serde_json::to_string(&env).unwrap();
        let back: Envelope = serde_json::from_str(&json).unwrap();
        let opened = back
            .open::<NodePoll>(&mut ReplayGuard::default(), 1000)
            .unwrap();
        assert_eq!(opened.message, poll);
        // A poll signature is not a hello signature.
        assert!(back.open_signed::<NodeHello>().is_err());
        let a = Assignment {
            unit: UnitRef {
                job: Hash32::sha256(b"job"),
                unit: 3,
            },
            module: Hash32::sha256(b"m"),
            input: UnitInput {
                stdin: vec![1, 2],
                args: vec!["x".into()],
            },
            limits: UnitLimits::default(),
            deadline_ms: 5,
        };
        let j = serde_json::to_string(&a).unwrap();
        assert!(j.contains("\"stdin\":\"0102\""), "{j}");
        assert_eq!(serde_json::from_str::<Assignment>(&j).unwrap(), a);
    }
}
