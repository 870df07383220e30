//! Public value types: identifiers, node and job descriptions, results and decisions.

use lode_proto::Hash32;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::str::FromStr;

/// What the scheduler needs of an identity (node or requester key).
///
/// The gateway uses [`lode_proto::Did`]; tests and simulations use plain integers.
/// Keys are only hashed and compared, never iterated in hash order, so decisions
/// never depend on hashing.
pub trait NodeKey: Copy + Eq + Hash + fmt::Debug {}
impl<T: Copy + Eq + Hash + fmt::Debug> NodeKey for T {}

/// A job, named by the gateway (e.g. its persistent job sequence number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job-{}", self.0)
    }
}

/// One work unit: the `index`-th input of a job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct UnitRef {
    pub job: JobId,
    pub index: u32,
}

impl UnitRef {
    pub const fn new(job: JobId, index: u32) -> Self {
        Self { job, index }
    }
}

impl fmt::Display for UnitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.job, self.index)
    }
}

/// The operator (person or organisation) behind a node. Replicas of one unit never
/// go to two nodes of one operator.
///
/// The gateway derives it from whatever identifies an operator (payout address,
/// operator key): [`OperatorId::of`] hashes arbitrary bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct OperatorId(pub [u8; 32]);

impl OperatorId {
    /// Operator id of arbitrary identifying bytes (SHA-256 of them).
    pub fn of(bytes: &[u8]) -> Self {
        Self(Hash32::sha256_parts(&[b"lode-operator:", bytes]).0)
    }

    /// A cheap id for tests and simulations.
    pub fn from_u64(n: u64) -> Self {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_le_bytes());
        Self(b)
    }
}

impl fmt::Debug for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OperatorId({})",
            Hash32(self.0).to_hex().get(..12).unwrap_or("")
        )
    }
}

/// The network group a node connects from. Replicas of one unit never go to two
/// nodes of one IP group.
///
/// Built with [`IpGroup::from_ip`] (IPv4 /32, IPv6 /64, Lode's default policy) or
/// [`IpGroup::with_prefixes`]. IPv4-mapped IPv6 addresses are treated as IPv4.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
pub struct IpGroup(pub u128);

impl IpGroup {
    /// Default grouping: one group per IPv4 address, one per IPv6 /64.
    pub fn from_ip(ip: IpAddr) -> Self {
        Self::with_prefixes(ip, 32, 64)
    }

    /// Groups IPv4 addresses by their first `v4_bits` bits and IPv6 addresses by
    /// their first `v6_bits` bits (both clamped to the address width).
    pub fn with_prefixes(ip: IpAddr, v4_bits: u8, v6_bits: u8) -> Self {
        let v4 = match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        match v4 {
            Some(a) => {
                let bits = u32::from(v4_bits.min(32));
                let mask = if bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - bits)
                };
                // IPv4 groups live in the ::ffff:0:0/96 range, tagged by prefix length.
                let masked = u32::from(a) & mask;
                Self((0xffff_u128 << 32) | u128::from(masked) | (u128::from(bits) << 48))
            }
            None => {
                let IpAddr::V6(a) = ip else {
                    unreachable!("IPv4 handled above")
                };
                let bits = u32::from(v6_bits.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                Self(u128::from(a) & mask)
            }
        }
    }

    /// A cheap group for tests and simulations.
    pub const fn from_u64(n: u64) -> Self {
        Self(n as u128)
    }
}

/// A region code such as `eu-west` (1 to 16 characters of `a-z`, `0-9`, `-`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    len: u8,
    bytes: [u8; 16],
}

/// Geographic spread (docs/design/lode-sched.md, "Under-served regions"): with
/// `total` nodes over `regions` regions (nodes that declare none form one region
/// of their own, `unknown`), a region's fair share is `total / regions`; a region
/// keeps full weight up to `spread` (permille) of its fair share and beyond that
/// its nodes are scaled down so the region as a whole weighs as much as
/// `spread × fair share` nodes:
/// `factor = min(10,000, floor(10,000 × spread × total / (1,000 × regions × n)))`
/// basis points for a region of `n` nodes. One region alone, or evenly spread
/// regions, are never scaled; `spread = 0` turns the rule off. The gateway uses
/// it for reward weight, the scheduler for how much work a node may hold.
pub fn region_factor_bps(n: u64, total: u64, regions: u64, spread_permille: u32) -> u32 {
    const FULL: u128 = 10_000;
    if spread_permille == 0 || n == 0 || regions == 0 {
        return FULL as u32;
    }
    let num = FULL * u128::from(spread_permille) * u128::from(total);
    let den = 1_000 * u128::from(regions) * u128::from(n);
    (num / den).min(FULL) as u32
}

/// Why a string is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid region {0:?}: expected 1-16 characters of a-z, 0-9 and '-'")]
pub struct RegionError(pub String);

impl Region {
    /// Parses a region code.
    pub fn new(code: &str) -> Result<Self, RegionError> {
        let b = code.as_bytes();
        if b.is_empty()
            || b.len() > 16
            || !b
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        {
            return Err(RegionError(code.to_string()));
        }
        let mut bytes = [0u8; 16];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Self {
            len: b.len() as u8,
            bytes,
        })
    }

    /// The region code.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl Default for Region {
    /// `unknown`, for nodes that did not say.
    fn default() -> Self {
        Self::new("unknown").unwrap_or_else(|_| unreachable!("valid literal"))
    }
}

impl FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A node's trust record: consecutive valid (quorum-verified) results and reputation.
///
/// The gateway persists it (from [`Decision::Trust`]) and hands it back in
/// [`NodeInfo::trust`] after a restart.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TrustState {
    /// Consecutive results verified by a quorum (BOINC's "consecutive valid").
    pub consecutive_valid: u32,
    /// Reputation in `0..=REPUTATION_MAX` ([`crate::REPUTATION_MAX`]).
    pub reputation: u32,
}

/// What a node brings, as the gateway knows it on `hello`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Units the node runs at once.
    pub slots: u32,
    /// Memory the node offers per unit, in bytes.
    pub memory_bytes: u64,
    /// Measured speed of one slot, in fuel per second (must be > 0).
    pub speed_fuel_per_s: u64,
    pub region: Region,
    /// Round-trip latency to the gateway in milliseconds.
    pub latency_ms: u32,
    /// Lowest price the node accepts, in token base units per unit of fuel.
    pub price_floor: u128,
    pub operator: OperatorId,
    pub ip_group: IpGroup,
    /// Trust carried over from an earlier session. Used only the first time this
    /// scheduler sees the node; `None` starts a new node at the initial reputation.
    pub trust: Option<TrustState>,
}

/// Resource limits of every unit of a job.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel limit per unit (wasmtime instructions). Must be > 0.
    pub fuel: u64,
    /// Memory limit per unit in bytes.
    pub memory_bytes: u64,
    /// Wall-clock limit per unit: a node whose speed cannot burn `fuel` within it is
    /// not offered the job.
    pub timeout_ms: Option<u64>,
}

/// Where a job would like to run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RegionPreference {
    pub region: Region,
    /// `true`: only nodes of the region. `false`: nodes of the region first; others
    /// get the job's units when no node of the region took one within
    /// [`crate::Config::region_grace_ms`].
    pub strict: bool,
}

/// A job as submitted: `units` work units that share limits and verification rules.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct JobSpec<K> {
    /// Who pays; fair share is computed between requesters.
    pub requester: K,
    /// Number of work units, indexed `0..units`.
    pub units: u32,
    pub limits: Limits,
    /// Agreeing results needed to accept a unit (1 = no verification).
    pub quorum: u8,
    /// Most replicas ever issued for one unit (lost, failed and wrong ones included).
    pub max_replicas: u8,
    /// Highest price the requester pays, in base units per unit of fuel.
    pub max_price_per_fuel: u128,
    /// Higher runs first among the same requester's jobs (not across requesters).
    pub priority: u8,
    /// `true`: BOINC-style adaptive replication (trusted nodes' units are replicated
    /// only as random spot-checks). `false`: every unit gets the full quorum.
    pub adaptive_trust: bool,
    pub region: Option<RegionPreference>,
}

/// A node's claimed result: all three fields must agree for results to match.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct ResultDigest {
    /// SHA-256 of the output bytes.
    pub output_hash: Hash32,
    pub exit_code: i32,
    /// Fuel consumed; deterministic, so agreement also verifies the work claimed.
    pub fuel_used: u64,
}

/// One unit handed to a node. Identical whether or not the unit is spot-checked:
/// nothing in it tells the node how many replicas exist.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Assignment {
    pub unit: UnitRef,
    /// The lease ends at this time (ms, the gateway's clock); after it the unit is
    /// re-issued. A result after it still counts toward the quorum.
    pub deadline_ms: u64,
    pub limits: Limits,
}

/// On what grounds a unit's result was accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Basis {
    /// `agreeing` results matched (≥ 2): verified.
    Quorum { agreeing: u8 },
    /// A single result from a trusted node, not spot-checked (adaptive replication).
    Trusted,
    /// The job asked for quorum 1: one unverified result.
    Single,
}

/// A unit accepted: the canonical result and who is paid for it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Completion<K> {
    pub unit: UnitRef,
    pub result: ResultDigest,
    /// Exactly the nodes whose result equals `result`, each once.
    pub credited: Vec<K>,
    /// Nodes that returned a different result (their trust is reset).
    pub dissenters: Vec<K>,
    pub basis: Basis,
}

/// Why a unit failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum FailReason {
    /// Results disagree and the replica budget cannot yield `quorum` agreeing ones.
    NoConsensus {
        results: u8,
        largest_agreement: u8,
        distinct_outputs: u8,
        issued: u8,
    },
    /// Too many replicas were lost (node errors, expired leases, nodes gone).
    TooManyLost {
        errors: u8,
        expired: u8,
        results: u8,
        issued: u8,
    },
}

/// Why a replica was lost (and its unit re-issued when needed).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum LossCause {
    /// The lease deadline passed.
    Expired,
    /// The node disconnected.
    NodeLeft,
    /// The node reported it could not run the unit.
    Error,
}

/// Why a node's trust record changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum TrustCause {
    /// A result agreed with a verifying quorum.
    Valid,
    /// A result disagreed with the accepted one.
    Invalid {
        unit: UnitRef,
    },
    /// The unit failed without consensus: the result cannot be counted as valid,
    /// so the run of consecutive valid results ends (no reputation penalty: it is
    /// unknown who was wrong).
    Inconclusive {
        unit: UnitRef,
    },
    Lost(LossCause),
    /// A behaviour flag was raised.
    Flagged,
}

/// A node's trust record after a change.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TrustChange<K> {
    pub node: K,
    pub trust: TrustState,
    /// Whether the node is trusted now (consecutive valid ≥ threshold).
    pub trusted: bool,
    pub cause: TrustCause,
}

/// Kinds of suspicious behaviour the scheduler flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum FlagKind {
    TooFast,
    SlowerThanClaimed,
    HighDissent,
    RepeatedExpiry,
    ImpossibleClaim,
}

/// A behaviour flag with its evidence.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Flag {
    /// A result came back faster than the claimed speed allows (×tolerance): the
    /// work cannot have run (replayed or fabricated output).
    TooFast {
        unit: UnitRef,
        elapsed_ms: u64,
        fuel_used: u64,
        claimed_speed: u64,
    },
    /// Most results take far longer than the claimed speed implies (speed liar).
    SlowerThanClaimed {
        slow_results: u32,
        results: u32,
        claimed_speed: u64,
        last_observed_speed: u64,
    },
    /// The node disagrees with verifying quorums too often.
    HighDissent { invalid: u32, verified: u32 },
    /// The node takes work and lets it expire again and again.
    RepeatedExpiry { expired: u32, assigned: u32 },
    /// On joining, the node claimed a speed per slot above
    /// [`crate::FlagRules::max_claimed_speed`], which no real core reaches: it is
    /// scheduled as if it had claimed the ceiling.
    ImpossibleClaim { claimed_speed: u64, ceiling: u64 },
}

impl Flag {
    pub fn kind(&self) -> FlagKind {
        match self {
            Flag::TooFast { .. } => FlagKind::TooFast,
            Flag::SlowerThanClaimed { .. } => FlagKind::SlowerThanClaimed,
            Flag::HighDissent { .. } => FlagKind::HighDissent,
            Flag::RepeatedExpiry { .. } => FlagKind::RepeatedExpiry,
            Flag::ImpossibleClaim { .. } => FlagKind::ImpossibleClaim,
        }
    }
}

/// What the scheduler decided; the gateway executes these in order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Decision<K> {
    /// Send this unit to this node (only from [`crate::Scheduler::apply`]; the
    /// direct API returns assignments from `request_work`).
    Assigned { node: K, assignment: Assignment },
    /// The unit is accepted: store the result, pay `credited`.
    Completed(Completion<K>),
    /// The unit cannot be completed.
    Failed { unit: UnitRef, reason: FailReason },
    /// Tell the node to stop running this unit (it is decided or cancelled).
    Cancel { node: K, unit: UnitRef },
    /// A replica was lost; the unit is re-issued when still needed.
    LeaseLost {
        node: K,
        unit: UnitRef,
        cause: LossCause,
    },
    /// A node's trust record changed (persist it).
    Trust(TrustChange<K>),
    /// Suspicious behaviour with evidence.
    Flagged { node: K, flag: Flag },
    /// Every unit of the job is decided; the job can be settled and removed.
    JobFinished {
        job: JobId,
        completed: u32,
        failed: u32,
        cancelled: bool,
    },
    /// An event was refused (only from [`crate::Scheduler::apply`]).
    Rejected { error: crate::Error },
}

/// What happened to a submitted result.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ResultOutcome {
    /// Counted; the unit waits for more results.
    Counted,
    /// The unit completed (see the `Completed` decision).
    Completed,
    /// The unit failed (see the `Failed` decision).
    Failed,
    /// The unit was already decided. `agrees`: whether the result matches the
    /// accepted one (`None` if the unit failed or was cancelled). Never credited.
    AfterDecision { agrees: Option<bool> },
}
