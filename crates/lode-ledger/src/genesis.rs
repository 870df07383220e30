//! Tokenomics: the genesis file, its validation, and the two schedules it
//! defines (contributor emission with halvings, allocation vesting).
//!
//! The genesis is TOML (documented in `genesis/default.toml`, embedded as
//! [`DEFAULT_GENESIS_TOML`]). Amounts are strings (base units, or `"<n> LODE"`)
//! because TOML integers are 64-bit. Everything here is integer arithmetic.
//!
//! ## Emission (model: Helium HIP-20)
//! The contributors' allocation is a pool. Closing epoch `e` releases
//! `initial_per_epoch >> (e / halving_interval_epochs)` from it (never more than
//! what is left), split among that epoch's contributors. The shift is an exact
//! integer halving (floor); after enough halvings it reaches 0 and emission
//! stops. Whatever the geometric series never reaches stays in the pool.
//!
//! ## Vesting
//! An allocation of `amount` releases `unlocked_at_launch` at genesis; the rest
//! (`locked`) vests linearly by closed epochs with a cliff: after `n` epochs have
//! closed, `vested(n) = 0` if `n < cliff_epochs`, otherwise
//! `floor(locked * min(n, vesting_epochs) / vesting_epochs)`. Each epoch close
//! releases `vested(n) - vested(n - 1)`. Because the cumulative amount is floored
//! (not each step), the steps sum exactly to `locked`: no dust is lost.

use crate::amount::{Amount, serde_amount};
use crate::entry::ContributionKind;
use crate::rewards::mul_div_floor;
use lode_proto::Did;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default genesis (see the file for every parameter and its rationale).
pub const DEFAULT_GENESIS_TOML: &str = include_str!("../genesis/default.toml");

/// Longest allocation name and chain id.
pub const MAX_NAME_LEN: usize = 64;

/// Most validators a genesis may list.
pub const MAX_VALIDATORS: usize = 64;

/// Chain parameters and tokenomics, fixed at genesis.
///
/// ## Encoding of the optional sections
/// `staking` and `governance` (issue 15) are optional. In TOML and JSON they
/// are ordinary optional tables. In the canonical (binary) encoding a genesis
/// without them encodes exactly as before they existed (same bytes, so every
/// existing chain keeps its genesis hash); with them, each present section
/// follows the legacy fields as an `Option` (`[staking]` first; a
/// `[governance]` section requires `[staking]`). `[consensus]` (issue 14)
/// follows in the same way: the sections are written in their order up to the
/// last present one, each as an `Option`, so an absent section before a
/// present one is a `None` byte. See `GenesisBinary` below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// Human-readable network name (signed entries bind the genesis *hash*).
    pub chain_id: String,
    /// Start of epoch 0 and timestamp of the genesis block, ms since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Block signers. May be empty in a file: the ledger that creates the chain
    /// fills in its own key.
    pub validators: Vec<Did>,
    pub token: TokenParams,
    pub epoch: EpochParams,
    pub emission: EmissionParams,
    /// Reward weight per unit of each contribution kind. A receipt whose kind
    /// has no weight here is rejected; weight 0 pays fees but earns no emission.
    pub contribution_weights: BTreeMap<ContributionKind, u64>,
    pub allocations: Vec<Allocation>,
    /// Staking and slashing (see `docs/design/staking.md`). `None`: staking is
    /// off (no staking entry is accepted, no emission goes to stakers).
    pub staking: Option<StakingParams>,
    /// Stake-weighted governance. `None`: no proposals are accepted.
    pub governance: Option<GovernanceParams>,
    /// A replicated chain: blocks are decided by a BFT validator set and carry
    /// commit certificates; gateways submit their entries in signed batches
    /// (docs/design/validators.md). `None`: the single-validator chain, whose
    /// one validator signs every block.
    pub consensus: Option<ConsensusParams>,
}

/// The text form written out (every field; absent sections omitted).
#[derive(Serialize)]
struct GenesisTextOut<'a> {
    chain_id: &'a str,
    genesis_time_ms: u64,
    validators: &'a [Did],
    token: &'a TokenParams,
    epoch: &'a EpochParams,
    emission: &'a EmissionParams,
    contribution_weights: &'a BTreeMap<ContributionKind, u64>,
    #[serde(rename = "allocation")]
    allocations: &'a [Allocation],
    #[serde(skip_serializing_if = "Option::is_none")]
    staking: &'a Option<StakingParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    governance: &'a Option<GovernanceParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consensus: &'a Option<ConsensusParams>,
}

/// The legacy fields, borrowed, in their binary order.
#[derive(Serialize)]
struct GenesisV1Out<'a> {
    chain_id: &'a str,
    genesis_time_ms: u64,
    validators: &'a [Did],
    token: &'a TokenParams,
    epoch: &'a EpochParams,
    emission: &'a EmissionParams,
    contribution_weights: &'a BTreeMap<ContributionKind, u64>,
    allocations: &'a [Allocation],
}

impl Serialize for Genesis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return GenesisTextOut {
                chain_id: &self.chain_id,
                genesis_time_ms: self.genesis_time_ms,
                validators: &self.validators,
                token: &self.token,
                epoch: &self.epoch,
                emission: &self.emission,
                contribution_weights: &self.contribution_weights,
                allocations: &self.allocations,
                staking: &self.staking,
                governance: &self.governance,
                consensus: &self.consensus,
            }
            .serialize(s);
        }
        use serde::ser::SerializeTuple;
        let present = [
            self.staking.is_some(),
            self.governance.is_some(),
            self.consensus.is_some(),
        ];
        let sections = present.iter().rposition(|p| *p).map_or(0, |i| i + 1);
        let mut t = s.serialize_tuple(1 + sections)?;
        t.serialize_element(&GenesisV1Out {
            chain_id: &self.chain_id,
            genesis_time_ms: self.genesis_time_ms,
            validators: &self.validators,
            token: &self.token,
            epoch: &self.epoch,
            emission: &self.emission,
            contribution_weights: &self.contribution_weights,
            allocations: &self.allocations,
        })?;
        if sections > 0 {
            t.serialize_element(&self.staking)?;
        }
        if sections > 1 {
            t.serialize_element(&self.governance)?;
        }
        if sections > 2 {
            t.serialize_element(&self.consensus)?;
        }
        t.end()
    }
}

/// The genesis fields that existed before the optional sections, in their
/// order: the binary encoding of a genesis is this, then the sections.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenesisV1 {
    chain_id: String,
    genesis_time_ms: u64,
    #[serde(default)]
    validators: Vec<Did>,
    token: TokenParams,
    epoch: EpochParams,
    emission: EmissionParams,
    contribution_weights: BTreeMap<ContributionKind, u64>,
    #[serde(rename = "allocation")]
    allocations: Vec<Allocation>,
}

impl From<GenesisV1> for Genesis {
    fn from(g: GenesisV1) -> Self {
        Genesis {
            chain_id: g.chain_id,
            genesis_time_ms: g.genesis_time_ms,
            validators: g.validators,
            token: g.token,
            epoch: g.epoch,
            emission: g.emission,
            contribution_weights: g.contribution_weights,
            allocations: g.allocations,
            staking: None,
            governance: None,
            consensus: None,
        }
    }
}

/// The text (TOML/JSON) form: every field, unknown fields refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisText {
    chain_id: String,
    genesis_time_ms: u64,
    #[serde(default)]
    validators: Vec<Did>,
    token: TokenParams,
    epoch: EpochParams,
    emission: EmissionParams,
    contribution_weights: BTreeMap<ContributionKind, u64>,
    #[serde(rename = "allocation")]
    allocations: Vec<Allocation>,
    #[serde(default)]
    staking: Option<StakingParams>,
    #[serde(default)]
    governance: Option<GovernanceParams>,
    #[serde(default)]
    consensus: Option<ConsensusParams>,
}

impl<'de> Deserialize<'de> for Genesis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let t = GenesisText::deserialize(d)?;
            return Ok(Genesis {
                chain_id: t.chain_id,
                genesis_time_ms: t.genesis_time_ms,
                validators: t.validators,
                token: t.token,
                epoch: t.epoch,
                emission: t.emission,
                contribution_weights: t.contribution_weights,
                allocations: t.allocations,
                staking: t.staking,
                governance: t.governance,
                consensus: t.consensus,
            });
        }
        d.deserialize_tuple(4, GenesisBinary)
    }
}

/// Binary decoding: the legacy fields, then up to three trailing `Option`s.
/// A genesis is always the last value of what holds it (the only entry of
/// block 0; snapshots store it as separate bytes), so a section that is absent
/// is simply the end of the input. Reading past the end is an error that is
/// taken as "absent"; anything read wrongly cannot survive the canonical
/// re-encoding check (`lode_proto::canonical::decode`).
struct GenesisBinary;

impl<'de> serde::de::Visitor<'de> for GenesisBinary {
    type Value = Genesis;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a genesis")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Genesis, A::Error> {
        let base: GenesisV1 = seq
            .next_element()?
            .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
        let mut g = Genesis::from(base);
        if let Ok(Some(staking)) = seq.next_element::<Option<StakingParams>>() {
            g.staking = staking;
            if let Ok(Some(gov)) = seq.next_element::<Option<GovernanceParams>>() {
                g.governance = gov;
                if let Ok(Some(c)) = seq.next_element::<Option<ConsensusParams>>() {
                    g.consensus = c;
                }
            }
        }
        Ok(g)
    }
}

fn default_unbonding_epochs() -> u64 {
    21
}
fn default_max_commission_bps() -> u32 {
    2_000
}
fn default_validator_set_size() -> u32 {
    16
}
fn default_double_sign_slash_bps() -> u32 {
    500
}
fn default_downtime_slash_bps() -> u32 {
    1
}
fn default_fault_slash_bps() -> u32 {
    1_000
}
fn default_voting_period_epochs() -> u64 {
    7
}
fn default_min_deposit() -> Amount {
    1_000 * crate::amount::ONE_TOKEN
}

/// Largest share of an epoch's emission that may go to stakers: the
/// contributors keep at least half.
pub const MAX_STAKING_SHARE_BPS: u32 = 5_000;

/// `[staking]`: staking, staking rewards and slashing (docs/design/staking.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakingParams {
    /// Share of each epoch's emission paid to stakers, basis points
    /// (at most [`MAX_STAKING_SHARE_BPS`]). Default 0.
    #[serde(default)]
    pub share_bps: u32,
    /// Epoch closes an unbonding waits before its tokens are liquid (>= 1).
    #[serde(default = "default_unbonding_epochs")]
    pub unbonding_epochs: u64,
    /// Highest commission an operator may set, basis points.
    #[serde(default = "default_max_commission_bps")]
    pub max_commission_bps: u32,
    /// Size of the validator set computed from bonded power (1..=MAX_VALIDATORS).
    #[serde(default = "default_validator_set_size")]
    pub validator_set_size: u32,
    /// Highest slash for double signing, basis points of stake (Cosmos: 5 %).
    #[serde(default = "default_double_sign_slash_bps")]
    pub double_sign_slash_bps: u32,
    /// Highest slash for downtime (Cosmos: 0.01 %).
    #[serde(default = "default_downtime_slash_bps")]
    pub downtime_slash_bps: u32,
    /// Highest slash for a proven wrong result of a node.
    #[serde(default = "default_fault_slash_bps")]
    pub fault_slash_bps: u32,
}

impl Default for StakingParams {
    fn default() -> Self {
        StakingParams {
            share_bps: 0,
            unbonding_epochs: default_unbonding_epochs(),
            max_commission_bps: default_max_commission_bps(),
            validator_set_size: default_validator_set_size(),
            double_sign_slash_bps: default_double_sign_slash_bps(),
            downtime_slash_bps: default_downtime_slash_bps(),
            fault_slash_bps: default_fault_slash_bps(),
        }
    }
}

/// Most gateways a genesis may list.
pub const MAX_GATEWAYS: usize = 64;

/// `[consensus]`: a replicated chain (docs/design/validators.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusParams {
    /// The initial validators and their voting power: the set that decides
    /// blocks until a staking set exists. The genesis `validators` list must
    /// name exactly these (a chain creator may leave it empty to have it filled).
    #[serde(rename = "validator")]
    pub validators: Vec<crate::consensus::Validator>,
    /// Gateways whose signed batches may carry gateway-made entries (work
    /// receipts, settlements, penalties, …). A job's receipts are accepted only
    /// from the gateway whose batch carried its escrow.
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<Did>,
}

impl ConsensusParams {
    /// The genesis validator set (sorted, checked).
    pub fn validator_set(
        &self,
    ) -> Result<crate::consensus::ValidatorSet, crate::consensus::CertError> {
        crate::consensus::ValidatorSet::new(self.validators.clone())
    }
}

/// `[governance]`: proposals and votes (docs/design/staking.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceParams {
    /// Deposit a proposal must lock (returned unless vetoed).
    #[serde(default = "default_min_deposit", with = "serde_amount")]
    pub min_deposit: Amount,
    /// Epochs a proposal is open for votes (>= 1); tallied at the close of the last.
    #[serde(default = "default_voting_period_epochs")]
    pub voting_period_epochs: u64,
}

impl Default for GovernanceParams {
    fn default() -> Self {
        GovernanceParams {
            min_deposit: default_min_deposit(),
            voting_period_epochs: default_voting_period_epochs(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenParams {
    pub symbol: String,
    /// Must be 18.
    pub decimals: u32,
    /// Total supply in base units; allocations must add up to it exactly.
    #[serde(with = "serde_amount")]
    pub total_supply: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochParams {
    /// Epoch length in milliseconds.
    pub length_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmissionParams {
    /// Emission of epoch 0 (base units).
    #[serde(with = "serde_amount")]
    pub initial_per_epoch: Amount,
    /// Emission halves every this many epochs.
    pub halving_interval_epochs: u64,
}

/// What an allocation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationRole {
    /// The contributors' reward pool, released only by epoch emission.
    Contributors,
    /// Any other allocation (treasury, team, investors, …), released by vesting.
    Vesting,
}

/// One slice of the total supply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    pub name: String,
    pub role: AllocationRole,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
    /// Account credited with released tokens. `None`: released tokens stay
    /// reserved under the allocation's name (counted as issued to it, spendable
    /// by no key) until a future governance entry assigns them.
    #[serde(default)]
    pub beneficiary: Option<Did>,
    #[serde(default, with = "serde_amount")]
    pub unlocked_at_launch: Amount,
    #[serde(default)]
    pub cliff_epochs: u64,
    #[serde(default)]
    pub vesting_epochs: u64,
}

/// Why a genesis is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis TOML is malformed: {0}")]
    Toml(String),
    #[error("chain_id must be 1 to {MAX_NAME_LEN} characters")]
    BadChainId,
    #[error("token decimals must be 18, found {0}")]
    WrongDecimals(u32),
    #[error("total supply must be positive")]
    ZeroSupply,
    #[error("epoch length must be positive")]
    ZeroEpochLength,
    #[error("emission halving interval must be at least 1 epoch")]
    ZeroHalvingInterval,
    #[error("initial emission per epoch must be positive")]
    ZeroEmission,
    #[error("initial emission per epoch ({emission}) exceeds the contributors' pool ({pool})")]
    EmissionExceedsPool { emission: Amount, pool: Amount },
    #[error("no contribution kind has a positive reward weight")]
    NoContributionWeights,
    #[error("exactly one allocation must have role = \"contributors\", found {0}")]
    ContributorsAllocationCount(usize),
    #[error("allocation {0:?}: the contributors' pool has no beneficiary, unlock or vesting")]
    ContributorsMisconfigured(String),
    #[error("allocation name {0:?} is empty, too long or duplicated")]
    BadAllocationName(String),
    #[error("allocation {0:?}: amount must be positive")]
    ZeroAllocation(String),
    #[error("allocation {name:?}: unlocked_at_launch {unlocked} exceeds amount {amount}")]
    UnlockedExceedsAmount {
        name: String,
        unlocked: Amount,
        amount: Amount,
    },
    #[error("allocation {0:?}: locked tokens need vesting_epochs >= 1")]
    LockedWithoutVesting(String),
    #[error("allocation {name:?}: cliff_epochs {cliff} exceeds vesting_epochs {vesting}")]
    CliffExceedsVesting {
        name: String,
        cliff: u64,
        vesting: u64,
    },
    #[error("allocations add up to {sum} base units, not the total supply {supply}")]
    AllocationsDoNotSumToSupply { sum: String, supply: Amount },
    #[error("genesis lists {0} validators; between 1 and {MAX_VALIDATORS} are required")]
    ValidatorCount(usize),
    #[error("validator {0} is listed twice")]
    DuplicateValidator(Did),
    #[error(
        "staking share {0} bps exceeds {MAX_STAKING_SHARE_BPS}: contributors keep at least half"
    )]
    StakingShareTooHigh(u32),
    #[error("staking parameter {0} is out of range")]
    BadStakingParam(&'static str),
    #[error("governance parameter {0} is out of range")]
    BadGovernanceParam(&'static str),
    #[error("a [governance] section needs a [staking] section (votes are weighted by stake)")]
    GovernanceWithoutStaking,
    #[error("[consensus]: {0}")]
    BadConsensus(String),
}

impl Genesis {
    /// Parses a genesis TOML file (does not validate; see [`Genesis::validate`]).
    pub fn from_toml(text: &str) -> Result<Self, GenesisError> {
        toml::from_str(text).map_err(|e| GenesisError::Toml(e.to_string()))
    }

    /// The embedded default genesis.
    pub fn default_genesis() -> Self {
        // The embedded file is covered by a test; parsing it cannot fail at run time.
        Self::from_toml(DEFAULT_GENESIS_TOML)
            .unwrap_or_else(|e| unreachable!("embedded default genesis is invalid: {e}"))
    }

    /// TOML text of this genesis (amounts as base-unit strings).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every rule except the validator set (which a chain creator may fill in).
    pub fn validate_tokenomics(&self) -> Result<(), GenesisError> {
        if self.chain_id.is_empty() || self.chain_id.len() > MAX_NAME_LEN {
            return Err(GenesisError::BadChainId);
        }
        if self.token.decimals != crate::amount::DECIMALS {
            return Err(GenesisError::WrongDecimals(self.token.decimals));
        }
        if self.token.total_supply == 0 {
            return Err(GenesisError::ZeroSupply);
        }
        if self.epoch.length_ms == 0 {
            return Err(GenesisError::ZeroEpochLength);
        }
        if self.emission.halving_interval_epochs == 0 {
            return Err(GenesisError::ZeroHalvingInterval);
        }
        if self.emission.initial_per_epoch == 0 {
            return Err(GenesisError::ZeroEmission);
        }
        if !self.contribution_weights.values().any(|w| *w > 0) {
            return Err(GenesisError::NoContributionWeights);
        }
        let contributors: Vec<&Allocation> = self
            .allocations
            .iter()
            .filter(|a| a.role == AllocationRole::Contributors)
            .collect();
        if contributors.len() != 1 {
            return Err(GenesisError::ContributorsAllocationCount(
                contributors.len(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        // 192 bits cannot overflow with at most 2^64 allocations of < 2^128 each.
        let mut sum_hi: u128 = 0;
        let mut sum_lo: u128 = 0;
        for a in &self.allocations {
            if a.name.is_empty() || a.name.len() > MAX_NAME_LEN || !names.insert(a.name.as_str()) {
                return Err(GenesisError::BadAllocationName(a.name.clone()));
            }
            if a.amount == 0 {
                return Err(GenesisError::ZeroAllocation(a.name.clone()));
            }
            match a.role {
                AllocationRole::Contributors => {
                    if a.beneficiary.is_some()
                        || a.unlocked_at_launch != 0
                        || a.cliff_epochs != 0
                        || a.vesting_epochs != 0
                    {
                        return Err(GenesisError::ContributorsMisconfigured(a.name.clone()));
                    }
                }
                AllocationRole::Vesting => {
                    if a.unlocked_at_launch > a.amount {
                        return Err(GenesisError::UnlockedExceedsAmount {
                            name: a.name.clone(),
                            unlocked: a.unlocked_at_launch,
                            amount: a.amount,
                        });
                    }
                    if a.unlocked_at_launch < a.amount && a.vesting_epochs == 0 {
                        return Err(GenesisError::LockedWithoutVesting(a.name.clone()));
                    }
                    if a.cliff_epochs > a.vesting_epochs {
                        return Err(GenesisError::CliffExceedsVesting {
                            name: a.name.clone(),
                            cliff: a.cliff_epochs,
                            vesting: a.vesting_epochs,
                        });
                    }
                }
            }
            let (lo, carry) = sum_lo.overflowing_add(a.amount);
            sum_lo = lo;
            sum_hi += u128::from(carry);
        }
        if sum_hi != 0 || sum_lo != self.token.total_supply {
            let sum = if sum_hi == 0 {
                sum_lo.to_string()
            } else {
                format!("more than {}", u128::MAX)
            };
            return Err(GenesisError::AllocationsDoNotSumToSupply {
                sum,
                supply: self.token.total_supply,
            });
        }
        if let Some(st) = &self.staking {
            st.validate()?;
        }
        if let Some(g) = &self.governance {
            if self.staking.is_none() {
                return Err(GenesisError::GovernanceWithoutStaking);
            }
            if g.min_deposit == 0 {
                return Err(GenesisError::BadGovernanceParam("min_deposit"));
            }
            if g.voting_period_epochs == 0 {
                return Err(GenesisError::BadGovernanceParam("voting_period_epochs"));
            }
        }
        let pool = self.contributors_pool();
        if self.emission.initial_per_epoch > pool {
            return Err(GenesisError::EmissionExceedsPool {
                emission: self.emission.initial_per_epoch,
                pool,
            });
        }
        Ok(())
    }

    /// Full validation, including a non-empty, duplicate-free validator set
    /// (on a replicated chain: exactly the `[consensus]` validators).
    pub fn validate(&self) -> Result<(), GenesisError> {
        self.validate_tokenomics()?;
        if self.validators.is_empty() || self.validators.len() > MAX_VALIDATORS {
            return Err(GenesisError::ValidatorCount(self.validators.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.validators {
            if !seen.insert(*v) {
                return Err(GenesisError::DuplicateValidator(*v));
            }
        }
        if let Some(c) = &self.consensus {
            let set = c
                .validator_set()
                .map_err(|e| GenesisError::BadConsensus(e.to_string()))?;
            let listed: std::collections::BTreeSet<Did> =
                set.validators().iter().map(|v| v.did).collect();
            if listed != seen {
                return Err(GenesisError::BadConsensus(
                    "`validators` must list exactly the [consensus] validators".into(),
                ));
            }
            if c.gateways.len() > MAX_GATEWAYS {
                return Err(GenesisError::BadConsensus(format!(
                    "{} gateways, at most {MAX_GATEWAYS}",
                    c.gateways.len()
                )));
            }
            let gws: std::collections::BTreeSet<Did> = c.gateways.iter().copied().collect();
            if gws.len() != c.gateways.len() {
                return Err(GenesisError::BadConsensus(
                    "a gateway is listed twice".into(),
                ));
            }
        }
        Ok(())
    }

    /// Whether blocks are decided by a BFT validator set (`[consensus]`).
    pub fn replicated(&self) -> bool {
        self.consensus.is_some()
    }

    /// Size of the contributors' reward pool.
    pub fn contributors_pool(&self) -> Amount {
        self.allocations
            .iter()
            .filter(|a| a.role == AllocationRole::Contributors)
            .map(|a| a.amount)
            .sum()
    }

    /// Scheduled emission of epoch `epoch` before capping by what is left in the pool.
    pub fn scheduled_emission(&self, epoch: u64) -> Amount {
        let halvings = epoch / self.emission.halving_interval_epochs.max(1);
        if halvings >= 128 {
            0
        } else {
            self.emission.initial_per_epoch >> halvings
        }
    }

    /// End of epoch `epoch` (exclusive), ms since the Unix epoch, saturating.
    pub fn epoch_end_ms(&self, epoch: u64) -> u64 {
        self.epoch
            .length_ms
            .saturating_mul(epoch.saturating_add(1))
            .saturating_add(self.genesis_time_ms)
    }

    /// Reward weight of a contribution kind, if it has one.
    pub fn weight(&self, kind: ContributionKind) -> Option<u64> {
        self.contribution_weights.get(&kind).copied()
    }
}

impl StakingParams {
    /// Range checks (also applied to governance changes of these values).
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bps = crate::entry::FULL_BPS;
        if self.share_bps > MAX_STAKING_SHARE_BPS {
            return Err(GenesisError::StakingShareTooHigh(self.share_bps));
        }
        if self.unbonding_epochs == 0 || self.unbonding_epochs > 10_000 {
            return Err(GenesisError::BadStakingParam("unbonding_epochs"));
        }
        if self.max_commission_bps > bps {
            return Err(GenesisError::BadStakingParam("max_commission_bps"));
        }
        if self.validator_set_size == 0 || self.validator_set_size as usize > MAX_VALIDATORS {
            return Err(GenesisError::BadStakingParam("validator_set_size"));
        }
        for (name, v) in [
            ("double_sign_slash_bps", self.double_sign_slash_bps),
            ("downtime_slash_bps", self.downtime_slash_bps),
            ("fault_slash_bps", self.fault_slash_bps),
        ] {
            if v > bps {
                return Err(GenesisError::BadStakingParam(name));
            }
        }
        Ok(())
    }
}

impl Allocation {
    /// Tokens that vest over time (`amount - unlocked_at_launch`).
    pub fn locked(&self) -> Amount {
        match self.role {
            AllocationRole::Contributors => 0,
            AllocationRole::Vesting => self.amount.saturating_sub(self.unlocked_at_launch),
        }
    }

    /// Cumulative tokens released by vesting (excluding the launch unlock)
    /// once `closed_epochs` epochs have closed. See the module docs.
    pub fn vested_after(&self, closed_epochs: u64) -> Amount {
        let locked = self.locked();
        if locked == 0 || closed_epochs < self.cliff_epochs {
            return 0;
        }
        let n = closed_epochs.min(self.vesting_epochs);
        // vesting_epochs >= 1 whenever locked > 0 (validated).
        mul_div_floor(locked, n.into(), self.vesting_epochs.max(1).into()).unwrap_or(locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::ONE_TOKEN;

    #[test]
    fn default_genesis_is_valid_and_gives_contributors_at_least_half() {
        let g = Genesis::default_genesis();
        g.validate_tokenomics().unwrap();
        assert!(
            g.validators.is_empty(),
            "the default leaves validators to the creator"
        );
        assert!(g.contributors_pool() * 2 >= g.token.total_supply);
        // Round trip through TOML and the canonical encoding keeps everything.
        let again = Genesis::from_toml(&g.to_toml()).unwrap();
        assert_eq!(again, g);
        let mut with_beneficiary = g.clone();
        with_beneficiary.allocations[1].beneficiary =
            Some(lode_proto::Keypair::from_secret_bytes(&[8; 32]).did());
        for x in [&g, &with_beneficiary] {
            let bytes = lode_proto::canonical::encode(x).unwrap();
            assert_eq!(
                &lode_proto::canonical::decode::<Genesis>(&bytes).unwrap(),
                x
            );
            assert_eq!(&Genesis::from_toml(&x.to_toml()).unwrap(), x);
        }
        // Every default emission step fits in the pool: the series never overdraws.
        let mut total: Amount = 0;
        for e in 0..(g.emission.halving_interval_epochs * 130) {
            total += g.scheduled_emission(e);
        }
        assert!(total <= g.contributors_pool());
        assert_eq!(g.scheduled_emission(u64::MAX), 0);
    }

    fn base() -> Genesis {
        Genesis::default_genesis()
    }

    #[test]
    fn typed_errors_for_bad_genesis() {
        let mut g = base();
        g.allocations[1].amount += 1;
        assert!(matches!(
            g.validate_tokenomics(),
            Err(GenesisError::AllocationsDoNotSumToSupply { .. })
        ));

        let mut g = base();
        g.allocations
            .retain(|a| a.role != AllocationRole::Contributors);
        assert_eq!(
            g.validate_tokenomics(),
            Err(GenesisError::ContributorsAllocationCount(0))
        );

        let mut g = base();
        let i = g
            .allocations
            .iter()
            .position(|a| a.role == AllocationRole::Vesting)
            .unwrap();
        g.allocations[i].unlocked_at_launch = g.allocations[i].amount + 1;
        assert!(matches!(
            g.validate_tokenomics(),
            Err(GenesisError::UnlockedExceedsAmount { .. })
        ));

        let mut g = base();
        g.allocations[i].cliff_epochs = g.allocations[i].vesting_epochs + 1;
        assert!(matches!(
            g.validate_tokenomics(),
            Err(GenesisError::CliffExceedsVesting { .. })
        ));

        let mut g = base();
        g.allocations[i].vesting_epochs = 0;
        g.allocations[i].cliff_epochs = 0;
        g.allocations[i].unlocked_at_launch = 0;
        assert!(matches!(
            g.validate_tokenomics(),
            Err(GenesisError::LockedWithoutVesting(_))
        ));

        let mut g = base();
        g.allocations[i].name = g.allocations[0].name.clone();
        assert!(matches!(
            g.validate_tokenomics(),
            Err(GenesisError::BadAllocationName(_))
        ));

        let mut g = base();
        g.token.decimals = 6;
        assert_eq!(g.validate_tokenomics(), Err(GenesisError::WrongDecimals(6)));

        let mut g = base();
        g.epoch.length_ms = 0;
        assert_eq!(g.validate_tokenomics(), Err(GenesisError::ZeroEpochLength));

        let mut g = base();
        g.emission.halving_interval_epochs = 0;
        assert_eq!(
            g.validate_tokenomics(),
            Err(GenesisError::ZeroHalvingInterval)
        );

        let mut g = base();
        g.emission.initial_per_epoch = g.contributors_pool() + 1;
        assert!(matches!(
            g.validate_tokenomics(),
            Err(GenesisError::EmissionExceedsPool { .. })
        ));

        let mut g = base();
        g.contribution_weights.clear();
        assert_eq!(
            g.validate_tokenomics(),
            Err(GenesisError::NoContributionWeights)
        );

        let g = base();
        assert_eq!(g.validate(), Err(GenesisError::ValidatorCount(0)));

        let mut g = base();
        let k = lode_proto::Keypair::from_secret_bytes(&[1; 32]).did();
        g.validators = vec![k, k];
        assert_eq!(g.validate(), Err(GenesisError::DuplicateValidator(k)));

        assert!(matches!(
            Genesis::from_toml("chain_id = 5"),
            Err(GenesisError::Toml(_))
        ));
        // Amounts beyond i64 are written as strings; a bare huge TOML integer is an error.
        let text = DEFAULT_GENESIS_TOML.replace(
            "total_supply = \"1_000_000_000 LODE\"",
            "total_supply = 99999999999999999999999",
        );
        assert!(matches!(
            Genesis::from_toml(&text),
            Err(GenesisError::Toml(_))
        ));
    }

    #[test]
    fn vesting_is_exact_and_respects_the_cliff() {
        let a = Allocation {
            name: "team".into(),
            role: AllocationRole::Vesting,
            amount: 1000 * ONE_TOKEN + 7,
            beneficiary: None,
            unlocked_at_launch: 100 * ONE_TOKEN,
            cliff_epochs: 3,
            vesting_epochs: 7,
        };
        assert_eq!(a.vested_after(0), 0);
        assert_eq!(a.vested_after(2), 0);
        assert!(a.vested_after(3) > 0);
        let mut prev = 0;
        let mut sum = 0;
        for n in 1..20 {
            let v = a.vested_after(n);
            assert!(v >= prev);
            sum += v - prev;
            prev = v;
        }
        assert_eq!(sum, a.locked(), "steps add up exactly to the locked amount");
        assert_eq!(a.vested_after(7), a.locked());
    }
}
