//! Scheduler configuration with documented defaults.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};

/// Reputation is an integer in `0..=REPUTATION_MAX`.
pub const REPUTATION_MAX: u32 = 1000;

/// Hard cap on `JobSpec::max_replicas` (keeps per-unit bookkeeping in bytes).
pub const MAX_REPLICAS_LIMIT: u8 = 32;

/// How reputation moves. Reputation orders nothing by itself; it gates how much
/// work a node may hold (probation) and is what the gateway shows and persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationRules {
    /// Reputation of a node seen for the first time.
    pub initial: u32,
    /// Gain per quorum-verified valid result.
    pub valid_gain: u32,
    /// Loss per invalid result (disagreeing with the accepted result).
    pub invalid_loss: u32,
    /// Loss per lease lost by expiry or disconnection.
    pub lost_loss: u32,
    /// Loss per unit the node reported it could not run.
    pub error_loss: u32,
    /// Loss per behaviour flag.
    pub flag_loss: u32,
    /// Below this a node is on probation: at most one unit in flight.
    pub probation_below: u32,
}

impl Default for ReputationRules {
    fn default() -> Self {
        Self {
            initial: 500,
            valid_gain: 10,
            invalid_loss: 200,
            lost_loss: 50,
            error_loss: 10,
            flag_loss: 100,
            probation_below: 200,
        }
    }
}

/// Thresholds of the behaviour flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagRules {
    /// A result implying a speed above `claimed × tolerance` is `TooFast`.
    pub speed_tolerance: u32,
    /// A result implying a speed below `claimed / slow_tolerance` counts as slow.
    /// Wider than `speed_tolerance`: fuel per second depends on the instruction mix
    /// (a C sieve burns ~6× less fuel per second than the self-benchmark's loop on
    /// the CI machine) and an everyday machine shares its cores with its owner, so
    /// an honest node is often several times slower than its benchmark. Slowness
    /// only costs the scheduler time; being too fast is impossible without cheating.
    #[serde(default = "default_slow_tolerance")]
    pub slow_tolerance: u32,
    /// Samples needed before a ratio-based flag can be raised.
    pub min_samples: u32,
    /// `SlowerThanClaimed` when more than this share (‰) of results are slow.
    pub slow_permille: u32,
    /// Time between assignment and result that is never held against a node's
    /// speed: queueing in the node's batch, result batching and network round trips.
    /// A result is slow only when `elapsed − grace` exceeds `slow_tolerance ×` the
    /// run time the claimed speed implies. Without it every node running short
    /// units looks slow (their run time is dwarfed by fixed overhead).
    pub slow_grace_ms: u64,
    /// `HighDissent` when more than this share (‰) of verified results are invalid.
    pub dissent_permille: u32,
    /// `RepeatedExpiry` when more than this share (‰) of assignments are lost...
    pub expiry_permille: u32,
    /// ...and at least this many were lost.
    pub min_expired: u32,
    /// Highest believable speed of one slot, in fuel per second. A node claiming
    /// more is flagged `ImpossibleClaim` when it joins and scheduled as if it had
    /// claimed this. The default, 5·10¹⁰, is about 9× what one core of the
    /// development machine burns in wasmtime (5.7·10⁹ fuel/s on the primes
    /// example, BENCHMARKS.md "Speed claims").
    #[serde(default = "default_max_claimed_speed")]
    pub max_claimed_speed: u64,
}

fn default_region_spread() -> u32 {
    1_500
}

fn default_slow_tolerance() -> u32 {
    16
}

fn default_max_claimed_speed() -> u64 {
    50_000_000_000
}

impl Default for FlagRules {
    fn default() -> Self {
        Self {
            speed_tolerance: 4,
            slow_tolerance: default_slow_tolerance(),
            min_samples: 10,
            slow_permille: 500,
            slow_grace_ms: 2_000,
            dissent_permille: 200,
            expiry_permille: 300,
            min_expired: 5,
            max_claimed_speed: default_max_claimed_speed(),
        }
    }
}

/// Scheduler configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// CV (consecutive quorum-verified valid results) at which a node is trusted.
    pub trust_threshold: u32,
    /// A trusted node's unit is spot-checked with probability `1 / min(CV, cap)`.
    /// `u32::MAX` (default) is BOINC's rule, `1/CV`; a lower cap keeps a floor
    /// under the spot-check rate.
    pub spot_check_cv_cap: u32,
    /// Lease = expected run time (fuel / speed) × this / 100, at least the floor,
    /// plus two round trips.
    pub lease_slack_percent: u32,
    pub lease_floor_ms: u64,
    pub lease_cap_ms: u64,
    /// Most units handed out per request.
    pub max_batch: u32,
    /// Most units in one job (16 bytes of state each, allocated on submission).
    pub max_units_per_job: u32,
    /// How deep a job's queue of units awaiting extra replicas is searched for one
    /// the asking node may take (it must not share node, operator or IP group with
    /// an earlier replica).
    pub retry_scan_limit: u32,
    /// A soft region preference lets other regions in after this long without a
    /// node of the region taking a unit.
    pub region_grace_ms: u64,
    /// Geographic spread (permille of a region's fair share of online nodes):
    /// a node in a region holding more may hold only its share of work,
    /// `ceil(slots × region_factor_bps / 10,000)` units
    /// ([`crate::region_factor_bps`]), so when work is scarce under-served
    /// regions get more of it. 0 turns it off.
    #[serde(default = "default_region_spread")]
    pub region_spread_permille: u32,
    pub reputation: ReputationRules,
    pub flags: FlagRules,
    /// Stake-backed trust; `None` (default): BOINC's adaptive replication
    /// without stake. See [`StakeTrust`].
    #[serde(default)]
    pub stake_trust: Option<StakeTrust>,
}

/// Stake-backed trust (issue 15). A trusted node's unit is accepted on its
/// single result only while the value of the unverified results it was given
/// since its last quorum-verified result (its *exposure*), plus this unit's,
/// stays within its *cover* ([`crate::Event::StakeCover`]: the part of its
/// bonded stake a proven fault slashes, divided by a safety multiple; the
/// gateway computes it from the ledger). Past the cover the unit is
/// replicated to a quorum, a *forced check*, whose verification resets the
/// exposure. A node without stake is never trusted alone. A unit's value is
/// what its node is paid for it at most: `fuel limit × (price per fuel +
/// reward_per_gfuel / 10⁹)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeTrust {
    /// The epoch reward paid per 10⁹ fuel of verified work, in base units, on
    /// top of the job's price.
    pub reward_per_gfuel: u128,
}

impl StakeTrust {
    /// What a node earns at most for one unit of `fuel` limit at `price` per fuel.
    pub fn unit_value(&self, fuel: u64, price: u128) -> u128 {
        let f = u128::from(fuel);
        f.saturating_mul(price)
            .saturating_add(f.saturating_mul(self.reward_per_gfuel) / 1_000_000_000)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            trust_threshold: 10,
            spot_check_cv_cap: u32::MAX,
            lease_slack_percent: 300,
            lease_floor_ms: 10_000,
            lease_cap_ms: 24 * 3600 * 1000,
            max_batch: 256,
            max_units_per_job: 10_000_000,
            retry_scan_limit: 32,
            region_grace_ms: 5_000,
            region_spread_permille: default_region_spread(),
            reputation: ReputationRules::default(),
            flags: FlagRules::default(),
            stake_trust: None,
        }
    }
}

impl Config {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.trust_threshold == 0 {
            return Err(ConfigError::ZeroTrustThreshold);
        }
        if self.lease_slack_percent < 100 {
            return Err(ConfigError::SlackBelowOne);
        }
        if self.max_batch == 0 {
            return Err(ConfigError::ZeroBatch);
        }
        if self.retry_scan_limit == 0 {
            return Err(ConfigError::ZeroScan);
        }
        if self.flags.max_claimed_speed == 0 {
            return Err(ConfigError::ZeroSpeedCeiling);
        }
        let r = &self.reputation;
        if r.initial > REPUTATION_MAX || r.probation_below > REPUTATION_MAX {
            return Err(ConfigError::Reputation);
        }
        Ok(())
    }
}
