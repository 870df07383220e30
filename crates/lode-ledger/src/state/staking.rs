//! Staking (model: Cosmos SDK x/staking and x/distribution, much reduced):
//! bonded stake behind a *target* (a registered node, a genesis validator or
//! a self-bonded account), unbonding with a waiting period, operator
//! commission, staking rewards at epoch close, and the validator set computed
//! from bonded power. Design and numbers: `docs/design/staking.md`.
//!
//! State (all in the state root; every map is empty on a chain without
//! `[staking]`, so existing chains keep their roots):
//! * `delegations` (tag 12): (target, delegator) → bonded amount (> 0);
//! * `targets` (tag 13): target → [`StakeTarget`] (power = sum of its delegations);
//! * `unbonding` (tag 14): (last epoch of the wait, target, delegator) → amount;
//! * `globals` (tag 15): key 0 → [`StakingGlobals`] (module totals, the
//!   treasury, the validator set, governance's parameter overrides, block
//!   signing counts of the open epoch); absent while equal to the default;
//! * `jailed_epochs` (tag 18): jailed target → the epoch it was jailed in
//!   (kept apart from [`StakeTarget`] so that the records, and the roots, of
//!   chains that never jail are unchanged; removed when it unjails);
//! * `job_gateways` (tag 19, not staking but kept with these module maps): on
//!   a replicated chain, job or storage file → the gateway whose batch carried
//!   its escrow, the only one whose receipts and settlements it accepts
//!   (empty on single-validator chains).
//!
//! Invariants ([`State::check_staking_invariants`]): sum(delegations) =
//! globals.bonded = sum(targets.power); sum(unbonding) = globals.unbonding;
//! open proposals' deposits = globals.deposits; and supply conservation counts
//! bonded, unbonding, treasury and deposits as places where tokens are.

use super::{EntryCtx, EventKind, ItemDelta, State, TrackedMap, add, map_delta, map_items, sub};
use crate::amount::{Amount, serde_amount};
use crate::entry::{
    Bond, ContributionKind, Delegate, FULL_BPS, ParamChange, SetCommission, Unbond, Unjail,
    VoteOption,
};
use crate::error::EntryError;
use crate::genesis::StakingParams;
use crate::rewards::mul_div_floor;
use lode_proto::{Did, Envelope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(super) const TAG_DELEGATION: u8 = 12;
pub(super) const TAG_TARGET: u8 = 13;
pub(super) const TAG_UNBONDING: u8 = 14;
pub(super) const TAG_GLOBALS: u8 = 15;
pub(super) const TAG_PROPOSAL: u8 = 16;
pub(super) const TAG_VOTE: u8 = 17;
pub(super) const TAG_JAILED_EPOCH: u8 = 18;
pub(super) const TAG_JOB_GATEWAY: u8 = 19;

/// What stake is bonded behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeTarget {
    /// Commission kept from its stakers' rewards, basis points.
    pub commission_bps: u32,
    /// Bonded behind it (its own self-bond included).
    #[serde(with = "serde_amount")]
    pub power: Amount,
    /// Jailed targets are out of the validator set and earn no staking rewards.
    pub jailed: bool,
    /// Slashed for double signing: never slashed for it again (Cosmos'
    /// tombstone), so one offence is punished once.
    pub tombstoned: bool,
    /// Last epoch in which it (a node) was penalized or slashed: no staking
    /// rewards for that epoch.
    pub penalized_epoch: Option<u64>,
    #[serde(with = "serde_amount")]
    pub slashed_total: Amount,
    /// Staking rewards paid for it (commission and delegators' shares).
    #[serde(with = "serde_amount")]
    pub rewards_total: Amount,
}

/// Parameters in force: genesis values, changed only by passed proposals.
/// A `None` gateway knob means "the gateway's own configuration applies".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainParams {
    pub default_quorum: Option<u32>,
    pub default_replicas: Option<u32>,
    pub speed_ceiling: Option<u64>,
    pub region_spread_permille: Option<u32>,
    pub k_anonymity: Option<u32>,
    pub staking_share_bps: u32,
    pub validator_set_size: u32,
    pub unbonding_epochs: u64,
    pub contribution_weights: BTreeMap<ContributionKind, u64>,
}

/// Module-level totals and chain variables of staking and governance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakingGlobals {
    #[serde(with = "serde_amount")]
    pub bonded: Amount,
    #[serde(with = "serde_amount")]
    pub unbonding: Amount,
    /// The treasury: slashed stake, vetoed deposits and the rounding remainder
    /// of staking rewards; spent only by passed treasury-spend proposals.
    #[serde(with = "serde_amount")]
    pub treasury: Amount,
    /// Deposits of proposals not yet tallied.
    #[serde(with = "serde_amount")]
    pub deposits: Amount,
    /// Emission released to stakers so far (paid + remainder to the treasury).
    #[serde(with = "serde_amount")]
    pub staking_released: Amount,
    /// Id of the next proposal.
    pub next_proposal: u64,
    /// The validator set in force for the open epoch (top N by bonded power,
    /// computed at the previous epoch close).
    pub validator_set: Vec<Did>,
    /// Parameters changed by governance (`None`: genesis values).
    pub params: Option<ChainParams>,
    /// Blocks sealed in the open epoch, and by whom.
    pub epoch_blocks: u64,
    pub signed: BTreeMap<Did, u64>,
}

/// The staking and governance maps of the state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StakingMaps {
    pub delegations: TrackedMap<(Did, Did), Amount>,
    pub targets: TrackedMap<Did, StakeTarget>,
    pub unbonding: TrackedMap<(u64, Did, Did), Amount>,
    pub globals: TrackedMap<u8, StakingGlobals>,
    pub proposals: TrackedMap<u64, super::gov::Proposal>,
    pub votes: TrackedMap<(u64, Did), VoteOption>,
    /// Jailed target → the epoch it was jailed in (snapshot version 4).
    pub jailed_epochs: TrackedMap<Did, u64>,
    /// Job → the gateway holding its escrow (replicated chains; snapshot version 5).
    pub job_gateways: TrackedMap<crate::entry::JobId, Did>,
}

/// The maps of a version 4 snapshot (before `job_gateways`).
#[derive(Deserialize)]
pub(crate) struct StakingMapsV4 {
    delegations: TrackedMap<(Did, Did), Amount>,
    targets: TrackedMap<Did, StakeTarget>,
    unbonding: TrackedMap<(u64, Did, Did), Amount>,
    globals: TrackedMap<u8, StakingGlobals>,
    proposals: TrackedMap<u64, super::gov::Proposal>,
    votes: TrackedMap<(u64, Did), VoteOption>,
    jailed_epochs: TrackedMap<Did, u64>,
}

impl From<StakingMapsV4> for StakingMaps {
    fn from(m: StakingMapsV4) -> Self {
        StakingMaps {
            delegations: m.delegations,
            targets: m.targets,
            unbonding: m.unbonding,
            globals: m.globals,
            proposals: m.proposals,
            votes: m.votes,
            jailed_epochs: m.jailed_epochs,
            job_gateways: TrackedMap::default(),
        }
    }
}

/// The staking maps of a version 3 snapshot (before `jailed_epochs`).
#[derive(Deserialize)]
pub(crate) struct StakingMapsV3 {
    delegations: TrackedMap<(Did, Did), Amount>,
    targets: TrackedMap<Did, StakeTarget>,
    unbonding: TrackedMap<(u64, Did, Did), Amount>,
    globals: TrackedMap<u8, StakingGlobals>,
    proposals: TrackedMap<u64, super::gov::Proposal>,
    votes: TrackedMap<(u64, Did), VoteOption>,
}

impl From<StakingMapsV3> for StakingMaps {
    fn from(m: StakingMapsV3) -> Self {
        StakingMaps {
            delegations: m.delegations,
            targets: m.targets,
            unbonding: m.unbonding,
            globals: m.globals,
            proposals: m.proposals,
            votes: m.votes,
            jailed_epochs: TrackedMap::default(),
            job_gateways: TrackedMap::default(),
        }
    }
}

impl StakingMaps {
    pub fn marks(&self) -> [usize; 8] {
        [
            self.delegations.mark(),
            self.targets.mark(),
            self.unbonding.mark(),
            self.globals.mark(),
            self.proposals.mark(),
            self.votes.mark(),
            self.jailed_epochs.mark(),
            self.job_gateways.mark(),
        ]
    }

    pub fn rollback(&mut self, m: &[usize; 8]) {
        self.delegations.rollback(m[0]);
        self.targets.rollback(m[1]);
        self.unbonding.rollback(m[2]);
        self.globals.rollback(m[3]);
        self.proposals.rollback(m[4]);
        self.votes.rollback(m[5]);
        self.jailed_epochs.rollback(m[6]);
        self.job_gateways.rollback(m[7]);
    }

    pub fn commit(&mut self) {
        self.delegations.commit();
        self.targets.commit();
        self.unbonding.commit();
        self.globals.commit();
        self.proposals.commit();
        self.votes.commit();
        self.jailed_epochs.commit();
        self.job_gateways.commit();
    }

    pub fn delta(&self, out: &mut ItemDelta) {
        map_delta(TAG_DELEGATION, &self.delegations, out);
        map_delta(TAG_TARGET, &self.targets, out);
        map_delta(TAG_UNBONDING, &self.unbonding, out);
        map_delta(TAG_GLOBALS, &self.globals, out);
        map_delta(TAG_PROPOSAL, &self.proposals, out);
        map_delta(TAG_VOTE, &self.votes, out);
        map_delta(TAG_JAILED_EPOCH, &self.jailed_epochs, out);
        map_delta(TAG_JOB_GATEWAY, &self.job_gateways, out);
    }

    pub fn items(&self, out: &mut ItemDelta) {
        map_items(TAG_DELEGATION, &self.delegations, out);
        map_items(TAG_TARGET, &self.targets, out);
        map_items(TAG_UNBONDING, &self.unbonding, out);
        map_items(TAG_GLOBALS, &self.globals, out);
        map_items(TAG_PROPOSAL, &self.proposals, out);
        map_items(TAG_VOTE, &self.votes, out);
        map_items(TAG_JAILED_EPOCH, &self.jailed_epochs, out);
        map_items(TAG_JOB_GATEWAY, &self.job_gateways, out);
    }
}

/// Staking rewards of one epoch close.
#[derive(Debug, Clone, Default)]
pub(super) struct StakingPlan {
    /// Taken from the emission for stakers (0 when no stake earned anything).
    pub cut: Amount,
    /// (account credited, target, amount, is commission)
    pub payouts: Vec<(Did, Did, Amount, bool)>,
    /// Rounding remainder of the split between targets (to the treasury).
    pub to_treasury: Amount,
}

impl State {
    /// The staking parameters, if staking is enabled.
    fn staking_params(&self) -> Result<&StakingParams, EntryError> {
        self.genesis
            .staking
            .as_ref()
            .ok_or(EntryError::StakingDisabled)
    }

    /// The staking/governance totals and chain variables.
    pub fn staking_globals(&self) -> StakingGlobals {
        self.staking.globals.get(&0).cloned().unwrap_or_default()
    }

    /// Stores the globals (removing the item while it is the default, so a
    /// chain that never staked commits nothing for it).
    pub(super) fn set_globals(&mut self, g: StakingGlobals) {
        if g == StakingGlobals::default() {
            self.staking.globals.remove(&0);
        } else {
            self.staking.globals.insert(0, g);
        }
    }

    /// Parameters in force now: genesis values unless governance changed them.
    pub fn params(&self) -> ChainParams {
        if let Some(p) = self.staking.globals.get(&0).and_then(|g| g.params.clone()) {
            return p;
        }
        let st = self.genesis.staking.clone().unwrap_or_default();
        ChainParams {
            default_quorum: None,
            default_replicas: None,
            speed_ceiling: None,
            region_spread_permille: None,
            k_anonymity: None,
            staking_share_bps: st.share_bps,
            validator_set_size: st.validator_set_size,
            unbonding_epochs: st.unbonding_epochs,
            contribution_weights: self.genesis.contribution_weights.clone(),
        }
    }

    /// Reward weight of a contribution kind in force (governance may change it).
    pub fn weight_of(&self, kind: ContributionKind) -> Option<u64> {
        match self.staking.globals.get(&0).and_then(|g| g.params.as_ref()) {
            Some(p) => p.contribution_weights.get(&kind).copied(),
            None => self.genesis.weight(kind),
        }
    }

    /// Bonded by `delegator` behind `target`.
    pub fn delegation(&self, target: &Did, delegator: &Did) -> Amount {
        self.staking
            .delegations
            .get(&(*target, *delegator))
            .copied()
            .unwrap_or(0)
    }

    /// Every delegation: ((target, delegator), amount), sorted by target.
    pub fn delegations(&self) -> impl Iterator<Item = (&(Did, Did), &Amount)> {
        self.staking.delegations.iter()
    }

    /// A stake target's record.
    pub fn stake_target(&self, target: &Did) -> Option<&StakeTarget> {
        self.staking.targets.get(target)
    }

    pub fn stake_targets(&self) -> impl Iterator<Item = (&Did, &StakeTarget)> {
        self.staking.targets.iter()
    }

    /// Unbonding entries: ((last epoch of the wait, target, delegator), amount).
    pub fn unbondings(&self) -> impl Iterator<Item = (&(u64, Did, Did), &Amount)> {
        self.staking.unbonding.iter()
    }

    /// Sum of `delegator`'s unbonding entries.
    pub fn unbonding_of(&self, delegator: &Did) -> Amount {
        self.staking
            .unbonding
            .iter()
            .filter(|((_, _, d), _)| d == delegator)
            .map(|(_, a)| *a)
            .sum()
    }

    /// The validator set in force for the open epoch.
    pub fn validator_set(&self) -> Vec<Did> {
        self.staking
            .globals
            .get(&0)
            .map(|g| g.validator_set.clone())
            .unwrap_or_default()
    }

    /// The set that the next epoch close will put in force, from the stake
    /// now: the top `validator_set_size` validator candidates (self-bonded
    /// accounts and genesis validators that are not nodes, not jailed, with
    /// power > 0) by bonded power, ties broken by key.
    pub fn next_validator_set(&self) -> Vec<Did> {
        if self.genesis.staking.is_none() {
            return Vec::new();
        }
        let n = self.params().validator_set_size as usize;
        let mut c: Vec<(Amount, Did)> = self
            .staking
            .targets
            .iter()
            .filter(|(d, t)| !t.jailed && t.power > 0 && !self.nodes.contains_key(d))
            .map(|(d, t)| (t.power, *d))
            .collect();
        c.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        c.into_iter().take(n).map(|(_, d)| d).collect()
    }

    /// The account a target's commission (and rounding remainder) is paid to:
    /// a node's operator, otherwise the target itself.
    pub(super) fn reward_account(&self, target: &Did) -> Did {
        self.nodes.get(target).map_or(*target, |n| n.operator)
    }

    /// Whether stake may be bonded behind `target`.
    fn valid_target(&self, target: &Did) -> bool {
        self.nodes.contains_key(target)
            || self.genesis.validators.contains(target)
            || self.staking.targets.contains_key(target)
    }

    /// Moves `amount` of `delegator`'s liquid balance to stake behind `target`.
    fn bond_behind(
        &mut self,
        delegator: Did,
        target: Did,
        amount: Amount,
        ctx: &EntryCtx,
    ) -> Result<(), EntryError> {
        self.debit(&delegator, amount)?;
        let d = self.delegation(&target, &delegator);
        self.staking
            .delegations
            .insert((target, delegator), add(d, amount, "delegation")?);
        let mut t = self
            .staking
            .targets
            .get(&target)
            .cloned()
            .unwrap_or_default();
        t.power = add(t.power, amount, "target power")?;
        self.staking.targets.insert(target, t);
        let mut g = self.staking_globals();
        g.bonded = add(g.bonded, amount, "bonded total")?;
        self.set_globals(g);
        self.push_event(
            ctx.height,
            ctx.index,
            delegator,
            EventKind::Bonded { target, amount },
        );
        Ok(())
    }

    pub(super) fn apply_bond(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<Bond>(e, ctx, "bond")?;
        self.check_chain(&p.message.chain)?;
        self.staking_params()?;
        if p.message.amount == 0 {
            return Err(EntryError::ZeroAmount);
        }
        self.use_nonce(&e.signer, p.nonce)?;
        self.bond_behind(e.signer, e.signer, p.message.amount, ctx)
    }

    pub(super) fn apply_delegate(
        &mut self,
        e: &Envelope,
        ctx: &EntryCtx,
    ) -> Result<(), EntryError> {
        let p = self.open::<Delegate>(e, ctx, "delegate")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        self.staking_params()?;
        if m.amount == 0 {
            return Err(EntryError::ZeroAmount);
        }
        if m.to != e.signer && !self.valid_target(&m.to) {
            return Err(EntryError::UnknownStakeTarget(m.to));
        }
        self.use_nonce(&e.signer, p.nonce)?;
        self.bond_behind(e.signer, m.to, m.amount, ctx)
    }

    pub(super) fn apply_unbond(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<Unbond>(e, ctx, "unbond")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        self.staking_params()?;
        if m.amount == 0 {
            return Err(EntryError::ZeroAmount);
        }
        let delegator = e.signer;
        let bonded = self.delegation(&m.from, &delegator);
        if bonded < m.amount {
            return Err(EntryError::InsufficientStake {
                target: m.from,
                bonded,
                needed: m.amount,
            });
        }
        self.use_nonce(&delegator, p.nonce)?;
        let left = bonded - m.amount;
        if left == 0 {
            self.staking.delegations.remove(&(m.from, delegator));
        } else {
            self.staking.delegations.insert((m.from, delegator), left);
        }
        let mut t = self
            .staking
            .targets
            .get(&m.from)
            .cloned()
            .ok_or(EntryError::Internal("delegation without target"))?;
        t.power = sub(t.power, m.amount, "target power")?;
        self.staking.targets.insert(m.from, t);
        // Liquid after `unbonding_epochs` closes: the close of epoch
        // `epoch + unbonding_epochs - 1` releases it.
        let wait = self.params().unbonding_epochs.max(1);
        let last = self
            .totals
            .epoch
            .checked_add(wait - 1)
            .ok_or(EntryError::Overflow("unbonding epoch"))?;
        let key = (last, m.from, delegator);
        let u = self.staking.unbonding.get(&key).copied().unwrap_or(0);
        self.staking
            .unbonding
            .insert(key, add(u, m.amount, "unbonding")?);
        let mut g = self.staking_globals();
        g.bonded = sub(g.bonded, m.amount, "bonded total")?;
        g.unbonding = add(g.unbonding, m.amount, "unbonding total")?;
        self.set_globals(g);
        self.push_event(
            ctx.height,
            ctx.index,
            delegator,
            EventKind::UnbondStarted {
                target: m.from,
                amount: m.amount,
                liquid_after_epoch: last,
            },
        );
        Ok(())
    }

    pub(super) fn apply_set_commission(
        &mut self,
        e: &Envelope,
        ctx: &EntryCtx,
    ) -> Result<(), EntryError> {
        let p = self.open::<SetCommission>(e, ctx, "set_commission")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        let max = self.staking_params()?.max_commission_bps;
        if m.bps > max {
            return Err(EntryError::CommissionTooHigh { bps: m.bps, max });
        }
        let signer = e.signer;
        let is_operator = self
            .nodes
            .get(&m.target)
            .is_some_and(|n| n.operator == signer);
        if signer != m.target && !is_operator {
            return Err(EntryError::NotTargetOperator {
                signer,
                target: m.target,
            });
        }
        if !self.valid_target(&m.target) {
            return Err(EntryError::UnknownStakeTarget(m.target));
        }
        self.use_nonce(&signer, p.nonce)?;
        let mut t = self
            .staking
            .targets
            .get(&m.target)
            .cloned()
            .unwrap_or_default();
        t.commission_bps = m.bps;
        self.staking.targets.insert(m.target, t);
        self.push_event(
            ctx.height,
            ctx.index,
            signer,
            EventKind::CommissionSet {
                target: m.target,
                bps: m.bps,
            },
        );
        Ok(())
    }

    /// The epoch a jailed target was jailed in (`None`: not jailed, or
    /// jailed before the epoch was recorded).
    pub fn jailed_epoch(&self, target: &Did) -> Option<u64> {
        self.staking.jailed_epochs.get(target).copied()
    }

    /// The first epoch in which a target jailed in `jailed_epoch` may unjail:
    /// the next one (Cosmos' `downtime_jail_duration`, simplified to one epoch).
    pub fn unjail_from(jailed_epoch: u64) -> u64 {
        jailed_epoch.saturating_add(1)
    }

    /// Jails `target` (its record is stored by the caller) as of the open epoch.
    pub(super) fn note_jailed(&mut self, target: Did, record: &mut StakeTarget) {
        record.jailed = true;
        self.staking.jailed_epochs.insert(target, self.totals.epoch);
    }

    pub(super) fn apply_unjail(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<Unjail>(e, ctx, "unjail")?;
        self.check_chain(&p.message.chain)?;
        self.staking_params()?;
        let who = e.signer;
        let mut t = self
            .staking
            .targets
            .get(&who)
            .cloned()
            .ok_or(EntryError::NotStakeTarget(who))?;
        if t.tombstoned {
            return Err(EntryError::Tombstoned(who));
        }
        if !t.jailed {
            return Err(EntryError::NotJailed(who));
        }
        let epoch = self.totals.epoch;
        if let Some(jailed_epoch) = self.jailed_epoch(&who) {
            let unjail_from = Self::unjail_from(jailed_epoch);
            if epoch < unjail_from {
                return Err(EntryError::StillJailed {
                    target: who,
                    jailed_epoch,
                    unjail_from,
                    epoch,
                });
            }
        }
        self.use_nonce(&who, p.nonce)?;
        t.jailed = false;
        self.staking.targets.insert(who, t);
        self.staking.jailed_epochs.remove(&who);
        self.push_event(ctx.height, ctx.index, who, EventKind::Unjailed { epoch });
        Ok(())
    }

    /// A node was penalized: it earns its stakers nothing this epoch.
    pub(super) fn note_penalty(&mut self, node: &Did) {
        if let Some(t) = self.staking.targets.get(node) {
            let mut t = t.clone();
            t.penalized_epoch = Some(self.totals.epoch);
            self.staking.targets.insert(*node, t);
        }
    }

    /// Counts a block sealed by `validator` (staking chains only).
    pub(super) fn note_block(&mut self, validator: &Did) {
        if self.genesis.staking.is_none() {
            return;
        }
        let mut g = self.staking_globals();
        g.epoch_blocks = g.epoch_blocks.saturating_add(1);
        let n = g.signed.entry(*validator).or_insert(0);
        *n = n.saturating_add(1);
        self.set_globals(g);
    }

    /// Performance of a target in `epoch`, basis points (docs/design/staking.md):
    /// * jailed: 0;
    /// * a node: 10,000 if it earned reward weight this epoch and was not
    ///   penalized or slashed in it, else 0;
    /// * a validator candidate: 0 unless in the validator set in force; then
    ///   its share of the blocks it was expected to sign,
    ///   `min(1, signed / ceil(blocks / genesis validators))`.
    pub fn performance_bps(&self, target: &Did) -> u32 {
        let Some(t) = self.staking.targets.get(target) else {
            return 0;
        };
        if t.jailed {
            return 0;
        }
        let epoch = self.totals.epoch;
        if self.nodes.contains_key(target) {
            let worked = self.work.get(target).is_some_and(|w| *w > 0);
            return if worked && t.penalized_epoch != Some(epoch) {
                FULL_BPS
            } else {
                0
            };
        }
        let g = self.staking_globals();
        if !g.validator_set.contains(target) {
            return 0;
        }
        let signers = self.genesis.validators.len().max(1) as u64;
        let expected = g.epoch_blocks.div_ceil(signers);
        if expected == 0 {
            return 0;
        }
        let signed = g.signed.get(target).copied().unwrap_or(0).min(expected);
        (u128::from(signed) * u128::from(FULL_BPS) / u128::from(expected)) as u32
    }

    /// The stakers' share of an epoch's `emission`, split (see the module docs
    /// and docs/design/staking.md for the rounding).
    pub(super) fn plan_staking(&self, emission: Amount) -> Result<StakingPlan, EntryError> {
        if self.genesis.staking.is_none() || emission == 0 {
            return Ok(StakingPlan::default());
        }
        let share = self.params().staking_share_bps;
        let s = mul_div_floor(emission, share.into(), FULL_BPS.into())
            .ok_or(EntryError::Overflow("staking share"))?;
        if s == 0 {
            return Ok(StakingPlan::default());
        }
        let mut targets = Vec::new();
        let mut total: u128 = 0;
        for (d, t) in self.staking.targets.iter() {
            let perf = self.performance_bps(d);
            if t.power == 0 || perf == 0 {
                continue;
            }
            let w = t
                .power
                .checked_mul(perf.into())
                .ok_or(EntryError::Overflow("stake weight"))?;
            total = total
                .checked_add(w)
                .ok_or(EntryError::Overflow("stake weight"))?;
            targets.push((*d, t.clone(), w));
        }
        if total == 0 {
            // Nobody's stake earned anything: the share stays in the pool.
            return Ok(StakingPlan::default());
        }
        let mut plan = StakingPlan {
            cut: s,
            ..StakingPlan::default()
        };
        let mut by_target: BTreeMap<Did, Vec<(Did, Amount)>> = BTreeMap::new();
        for ((t, delegator), a) in self.staking.delegations.iter() {
            by_target.entry(*t).or_default().push((*delegator, *a));
        }
        let mut paid: Amount = 0;
        for (d, t, w) in targets {
            let r = mul_div_floor(s, w, total).ok_or(EntryError::Overflow("target reward"))?;
            if r == 0 {
                continue;
            }
            paid = add(paid, r, "staking paid")?;
            let commission = mul_div_floor(r, t.commission_bps.into(), FULL_BPS.into())
                .ok_or(EntryError::Overflow("commission"))?;
            let rest = r - commission;
            let mut to_delegators: Amount = 0;
            for (delegator, a) in by_target.get(&d).map(Vec::as_slice).unwrap_or(&[]) {
                let x = mul_div_floor(rest, *a, t.power)
                    .ok_or(EntryError::Overflow("delegator reward"))?;
                if x > 0 {
                    to_delegators += x;
                    plan.payouts.push((*delegator, d, x, false));
                }
            }
            // Commission plus the delegators' rounding remainder.
            let op = r - to_delegators;
            if op > 0 {
                plan.payouts.push((self.reward_account(&d), d, op, true));
            }
        }
        plan.to_treasury = s - paid;
        Ok(plan)
    }

    /// Applies the staking part of an epoch close: rewards, matured
    /// unbondings, the next validator set, a fresh block count.
    pub(super) fn close_staking(
        &mut self,
        epoch: u64,
        plan: &StakingPlan,
        ctx: &EntryCtx,
    ) -> Result<(), EntryError> {
        if self.genesis.staking.is_none() {
            return Ok(());
        }
        for (account, target, amount, commission) in &plan.payouts {
            self.credit(account, *amount)?;
            let mut t = self
                .staking
                .targets
                .get(target)
                .cloned()
                .ok_or(EntryError::Internal("rewarded target"))?;
            t.rewards_total = add(t.rewards_total, *amount, "target rewards")?;
            self.staking.targets.insert(*target, t);
            self.push_event(
                ctx.height,
                ctx.index,
                *account,
                EventKind::StakingReward {
                    epoch,
                    target: *target,
                    amount: *amount,
                    commission: *commission,
                },
            );
        }
        let mut g = self.staking_globals();
        g.staking_released = add(g.staking_released, plan.cut, "staking released")?;
        g.treasury = add(g.treasury, plan.to_treasury, "treasury")?;
        self.set_globals(g);
        self.tally_proposals(epoch, ctx)?;
        // Unbondings whose wait ends with this epoch become liquid.
        let due: Vec<((u64, Did, Did), Amount)> = self
            .staking
            .unbonding
            .iter()
            .take_while(|((last, _, _), _)| *last <= epoch)
            .map(|(k, a)| (*k, *a))
            .collect();
        let mut released: Amount = 0;
        for ((last, target, delegator), amount) in due {
            self.staking.unbonding.remove(&(last, target, delegator));
            self.credit(&delegator, amount)?;
            released = add(released, amount, "unbonded")?;
            self.push_event(
                ctx.height,
                ctx.index,
                delegator,
                EventKind::UnbondReleased { target, amount },
            );
        }
        let mut g = self.staking_globals();
        g.unbonding = sub(g.unbonding, released, "unbonding total")?;
        g.validator_set = self.next_validator_set();
        g.epoch_blocks = 0;
        g.signed.clear();
        self.set_globals(g);
        Ok(())
    }

    /// Checks the staking maps against the globals (O(state)); returns the
    /// tokens held by staking and governance (bonded + unbonding + treasury +
    /// deposits) and the emission released to stakers.
    pub(super) fn check_staking_invariants(&self) -> Result<(Amount, Amount), String> {
        let g = self.staking_globals();
        let mut bonded: Amount = 0;
        let mut per_target: BTreeMap<Did, Amount> = BTreeMap::new();
        for ((t, _), a) in self.staking.delegations.iter() {
            if *a == 0 {
                return Err("zero delegation kept".into());
            }
            bonded += a;
            *per_target.entry(*t).or_insert(0) += a;
        }
        if bonded != g.bonded {
            return Err(format!("delegations {bonded} != bonded {}", g.bonded));
        }
        for (d, t) in self.staking.targets.iter() {
            if per_target.get(d).copied().unwrap_or(0) != t.power {
                return Err(format!("target {d} power disagrees with its delegations"));
            }
        }
        let unbonding: Amount = self.staking.unbonding.iter().map(|(_, a)| *a).sum();
        if unbonding != g.unbonding {
            return Err(format!("unbonding {unbonding} != total {}", g.unbonding));
        }
        let deposits: Amount = self
            .staking
            .proposals
            .iter()
            .filter(|(_, p)| p.is_open())
            .map(|(_, p)| p.deposit)
            .sum();
        if deposits != g.deposits {
            return Err(format!("deposits {deposits} != total {}", g.deposits));
        }
        let held = [g.bonded, g.unbonding, g.treasury, g.deposits]
            .iter()
            .try_fold(0u128, |a, x| a.checked_add(*x))
            .ok_or("staking totals overflow")?;
        Ok((held, g.staking_released))
    }

    /// Validates a parameter change against the current parameters and
    /// returns the parameters it would put in force (`None` for a treasury spend).
    pub(super) fn changed_params(
        &self,
        change: &ParamChange,
    ) -> Result<Option<ChainParams>, EntryError> {
        let bad = |m: &str| Err(EntryError::InvalidParamChange(m.to_string()));
        let mut p = self.params();
        match change {
            ParamChange::DefaultQuorum(v) => {
                if *v == Some(0) {
                    return bad("default quorum must be at least 1");
                }
                p.default_quorum = *v;
            }
            ParamChange::DefaultReplicas(v) => {
                if *v == Some(0) {
                    return bad("default replicas must be at least 1");
                }
                p.default_replicas = *v;
            }
            ParamChange::StakingShareBps(v) => {
                if *v > crate::genesis::MAX_STAKING_SHARE_BPS {
                    return bad("the staking share may not exceed 5000 bps");
                }
                p.staking_share_bps = *v;
            }
            ParamChange::ContributionWeight { kind, weight } => {
                p.contribution_weights.insert(*kind, *weight);
                if !p.contribution_weights.values().any(|w| *w > 0) {
                    return bad("at least one contribution kind must keep a positive weight");
                }
            }
            ParamChange::SpeedCeiling(v) => {
                if *v == Some(0) {
                    return bad("the speed ceiling must be positive");
                }
                p.speed_ceiling = *v;
            }
            ParamChange::RegionSpreadPermille(v) => {
                if v.is_some_and(|x| x > 1_000) {
                    return bad("region spread is at most 1000 permille");
                }
                p.region_spread_permille = *v;
            }
            ParamChange::KAnonymity(v) => {
                if *v == Some(0) {
                    return bad("k must be at least 1");
                }
                p.k_anonymity = *v;
            }
            ParamChange::ValidatorSetSize(v) => {
                if *v == 0 || *v as usize > crate::genesis::MAX_VALIDATORS {
                    return bad("validator set size must be 1 to 64");
                }
                p.validator_set_size = *v;
            }
            ParamChange::UnbondingEpochs(v) => {
                if *v == 0 || *v > 10_000 {
                    return bad("unbonding period must be 1 to 10000 epochs");
                }
                p.unbonding_epochs = *v;
            }
            ParamChange::TreasurySpend { amount, .. } => {
                if *amount == 0 {
                    return bad("a treasury spend must be positive");
                }
                return Ok(None);
            }
        }
        Ok(Some(p))
    }
}
