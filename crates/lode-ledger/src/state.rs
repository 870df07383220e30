//! The pure ledger state machine: no IO, no clock (block time is an input).
//!
//! [`State::apply_block`] checks a block (height, link, time, validator,
//! signature, entries root), applies its entries in order and checks the state
//! root, all or nothing. [`apply`] is the same as a function returning a new
//! state. The [`crate::Ledger`] drives the same code entry by entry
//! ([`State::apply_entry`]) and seals blocks from the result.
//!
//! ## State root
//! `state_root = sha256("lode/ledger/state/v1" ‖ 0x00 ‖ canonical(Totals) ‖ LtHash(items))`
//! where `items` is every entry of every state map, encoded as
//! `tag ‖ canonical(key) ‖ canonical(value)` (tags: 1 accounts, 2 nodes,
//! 3 jobs, 4 credited units, 5 owed fees, 6 current-epoch work, 7 claims,
//! 8 allocations, 9 epoch records, 10 report credits, 11 published models,
//! 12 delegations, 13 stake targets, 14 unbonding entries, 15 staking globals,
//! 16 proposals, 17 votes; see [`staking`] and [`gov`]), and LtHash is the homomorphic set hash of
//! [`crate::lthash`]. The root is a function of the state alone (not of its
//! history), and updating it costs O(items changed in the block).
//!
//! ## Conservation
//! At every height, `total_supply` equals the sum of balances, escrow,
//! pool_remaining, reward_dust, locked, reserved and withdrawn, plus (staking
//! chains) bonded and unbonding stake, the treasury and proposal deposits (see
//! [`State::check_invariants`]). Issuance (tokens leaving the pool or vesting
//! locks) happens only when an epoch closes, by exactly the scheduled emission
//! (split among contributors, dust carried) and the scheduled vesting.

use crate::amount::{Amount, serde_amount};
use crate::block::{self, BLOCK_VERSION, Block, MAX_BLOCK_ENTRIES};
use crate::entry::{
    AdjustNode, ContributionKind, Entry, EpochClose, FULL_BPS, JobEscrow, JobId, MAX_QUORUM,
    MAX_TEXT_LEN, Payout, Penalty, PenaltyReason, RegisterNode, Settlement, Transfer, Withdraw,
    WorkReceipt, decode_payload,
};
use crate::error::{BlockError, EntryError};
use crate::genesis::{AllocationRole, Genesis, GenesisError};
use crate::lthash::LtHash;
use crate::merkle::{MerkleError, StandardMerkleTree};
use crate::par;
use crate::rewards::{gini, mul_div_floor, split_pro_rata};
use crate::tracked::TrackedMap;

pub mod gov;
pub mod models;
mod reports;
mod slashing;
pub mod staking;
pub use gov::{Proposal, ProposalStatus, Tally};
use lode_proto::canonical::CanonicalError;
use lode_proto::envelope::Payload;
use lode_proto::{Did, Envelope, EvmAddress, Hash32, Message};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
pub use staking::{ChainParams, StakeTarget, StakingGlobals};
use std::sync::Arc;

/// Domain tag of state roots.
pub const STATE_TAG: &str = "lode/ledger/state/v1";

/// An account: a did:key identity with a balance and a sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(with = "serde_amount")]
    pub balance: Amount,
    /// Next sequence number of entries this account signs.
    pub nonce: u64,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Account credited with the node's fees and rewards.
    pub operator: Did,
    /// EVM address the node declared for withdrawals.
    pub payout: EvmAddress,
    /// Reward multiplier (basis points, 10,000 = full weight).
    pub reward_bps: u32,
    pub registered_height: u64,
    /// All epoch rewards ever earned.
    #[serde(with = "serde_amount")]
    pub rewards_total: Amount,
    /// All fees ever paid for its verified work.
    #[serde(with = "serde_amount")]
    pub fees_total: Amount,
    pub receipts: u64,
    pub penalties: u64,
}

/// A job's escrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub requester: Did,
    #[serde(with = "serde_amount")]
    pub price_per_unit: Amount,
    /// Locked at escrow time.
    #[serde(with = "serde_amount")]
    pub escrowed: Amount,
    /// Earned by receipts, not yet paid.
    #[serde(with = "serde_amount")]
    pub owed: Amount,
    /// Paid to nodes' operators.
    #[serde(with = "serde_amount")]
    pub paid: Amount,
    /// Returned to the requester at close.
    #[serde(with = "serde_amount")]
    pub refunded: Amount,
    pub receipts: u64,
    pub closed: bool,
    pub created_height: u64,
}

impl Job {
    /// Escrow not yet owed, paid or refunded.
    pub fn available(&self) -> Amount {
        self.escrowed
            .saturating_sub(self.owed)
            .saturating_sub(self.paid)
            .saturating_sub(self.refunded)
    }

    /// Escrow still held by the job (owed included).
    pub fn held(&self) -> Amount {
        self.escrowed
            .saturating_sub(self.paid)
            .saturating_sub(self.refunded)
    }
}

/// Progress of one genesis allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationState {
    /// Released so far (launch unlock + vesting).
    #[serde(with = "serde_amount")]
    pub released: Amount,
}

/// What closing an epoch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: u64,
    pub close_height: u64,
    pub closed_at_ms: u64,
    #[serde(with = "serde_amount")]
    pub emission: Amount,
    #[serde(with = "serde_amount")]
    pub dust_in: Amount,
    #[serde(with = "serde_amount")]
    pub distributed: Amount,
    #[serde(with = "serde_amount")]
    pub dust_out: Amount,
    #[serde(with = "serde_amount")]
    pub vested: Amount,
    pub rewarded_nodes: u64,
    /// Sum of effective weights (weight × reward multiplier).
    pub total_weight: u128,
    pub claims_root: Hash32,
    pub claims_count: u64,
}

/// Scalar totals (committed in the state root directly).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Height of the last applied block.
    pub height: u64,
    /// Time of the last applied block.
    pub timestamp_ms: u64,
    /// The open epoch.
    pub epoch: u64,
    #[serde(with = "serde_amount")]
    pub total_supply: Amount,
    /// Contributors' pool not yet emitted.
    #[serde(with = "serde_amount")]
    pub pool_remaining: Amount,
    /// Rounding dust carried to the next epoch's split.
    #[serde(with = "serde_amount")]
    pub reward_dust: Amount,
    /// Sum of all account balances.
    #[serde(with = "serde_amount")]
    pub balances: Amount,
    /// Held in open jobs' escrow (owed fees included).
    #[serde(with = "serde_amount")]
    pub escrow: Amount,
    /// Vesting allocations' tokens not yet released.
    #[serde(with = "serde_amount")]
    pub locked: Amount,
    /// Released to allocations without a beneficiary.
    #[serde(with = "serde_amount")]
    pub reserved: Amount,
    /// Left the network (claimable on EVM chains).
    #[serde(with = "serde_amount")]
    pub withdrawn: Amount,
    /// Emission paid to contributors so far.
    #[serde(with = "serde_amount")]
    pub rewards_paid: Amount,
    /// Released by allocations so far (launch unlocks + vesting).
    #[serde(with = "serde_amount")]
    pub released: Amount,
    /// Fees paid from escrow to nodes so far.
    #[serde(with = "serde_amount")]
    pub fees_paid: Amount,
    /// Sum of current-epoch raw weights.
    pub epoch_weight: u128,
    /// Claims root published by the last epoch close.
    pub claims_root: Hash32,
    pub claims_count: u64,
}

/// A balance-relevant fact about an account, for its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub height: u64,
    /// Entry index within the block.
    pub index: u32,
    pub account: Did,
    pub kind: EventKind,
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    GenesisUnlock {
        allocation: String,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    Vested {
        allocation: String,
        epoch: u64,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    Sent {
        to: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
        memo: String,
    },
    Received {
        from: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
        memo: String,
    },
    EscrowLocked {
        job: JobId,
        #[serde(with = "serde_amount")]
        amount: Amount,
        #[serde(with = "serde_amount")]
        price_per_unit: Amount,
    },
    Refunded {
        job: JobId,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    FeeEarned {
        job: JobId,
        node: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    Reward {
        epoch: u64,
        node: Did,
        /// The node's effective weight (weight × multiplier) and the epoch's total.
        weight: u128,
        total_weight: u128,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    Withdrawn {
        to: EvmAddress,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    NodeRegistered {
        node: Did,
        operator: Did,
        payout: EvmAddress,
    },
    Penalized {
        node: Did,
        reason: PenaltyReason,
        job: Option<JobId>,
        unit: Option<u64>,
        forfeited_weight: u128,
        detail: String,
    },
    RewardWeightSet {
        node: Did,
        reward_bps: u32,
        reason: String,
    },
    /// A browser node's report was confirmed (see [`crate::entry::ReportCredit`]).
    ReportCredited {
        node: Did,
        domain: Hash32,
        amount: u64,
        weight: u128,
        detail: String,
    },
    /// Liquid balance bonded as stake behind `target`.
    Bonded {
        target: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    /// Unbonding started; liquid at the close of epoch `liquid_after_epoch`.
    UnbondStarted {
        target: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
        liquid_after_epoch: u64,
    },
    /// An unbonding ended: the tokens are liquid again.
    UnbondReleased {
        target: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    CommissionSet {
        target: Did,
        bps: u32,
    },
    /// A staking reward (a delegator's share, or the operator's commission).
    StakingReward {
        epoch: u64,
        target: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
        commission: bool,
    },
    /// Stake of this account behind `target` was slashed (to the treasury).
    Slashed {
        target: Did,
        reason: crate::entry::SlashReason,
        fraction_bps: u32,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    ProposalSubmitted {
        proposal: u64,
        #[serde(with = "serde_amount")]
        deposit: Amount,
    },
    Voted {
        proposal: u64,
        option: crate::entry::VoteOption,
    },
    DepositReturned {
        proposal: u64,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    /// Paid by a passed treasury-spend proposal.
    TreasuryPaid {
        proposal: u64,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
    /// This stake target (jailed) was put back in play in `epoch`: it may
    /// re-enter the validator set at the next epoch boundary.
    Unjailed {
        epoch: u64,
    },
}

impl EventKind {
    /// (credited, debited) base units of the account's balance.
    pub fn balance_delta(&self) -> (Amount, Amount) {
        match self {
            EventKind::GenesisUnlock { amount, .. }
            | EventKind::Vested { amount, .. }
            | EventKind::Received { amount, .. }
            | EventKind::Refunded { amount, .. }
            | EventKind::FeeEarned { amount, .. }
            | EventKind::Reward { amount, .. }
            | EventKind::UnbondReleased { amount, .. }
            | EventKind::StakingReward { amount, .. }
            | EventKind::DepositReturned { amount, .. }
            | EventKind::TreasuryPaid { amount, .. } => (*amount, 0),
            EventKind::Sent { amount, .. }
            | EventKind::EscrowLocked { amount, .. }
            | EventKind::Withdrawn { amount, .. }
            | EventKind::Bonded { amount, .. }
            | EventKind::ProposalSubmitted {
                deposit: amount, ..
            } => (0, *amount),
            _ => (0, 0),
        }
    }
}

/// A node's earnings in the open epoch, in real time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEarnings {
    pub node: Did,
    pub epoch: u64,
    pub epoch_ends_at_ms: u64,
    /// Weighted contribution so far this epoch.
    pub weight: u128,
    pub reward_bps: u32,
    /// The node's effective weight and the epoch's total so far.
    pub effective_weight: u128,
    pub total_effective_weight: u128,
    /// What the node would receive if the epoch closed now
    /// (its share of this epoch's emission plus carried dust).
    #[serde(with = "serde_amount")]
    pub estimated_reward: Amount,
    /// Fees its receipts earned that are not settled yet.
    #[serde(with = "serde_amount")]
    pub unsettled_fees: Amount,
}

/// Where every token is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyReport {
    #[serde(with = "serde_amount")]
    pub total_supply: Amount,
    #[serde(with = "serde_amount")]
    pub balances: Amount,
    #[serde(with = "serde_amount")]
    pub escrow: Amount,
    #[serde(with = "serde_amount")]
    pub pool_remaining: Amount,
    #[serde(with = "serde_amount")]
    pub reward_dust: Amount,
    #[serde(with = "serde_amount")]
    pub locked: Amount,
    #[serde(with = "serde_amount")]
    pub reserved: Amount,
    #[serde(with = "serde_amount")]
    pub withdrawn: Amount,
    /// Issued so far: contributor rewards + allocation releases.
    #[serde(with = "serde_amount")]
    pub issued: Amount,
}

/// Who has received the tokens issued so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairnessReport {
    #[serde(with = "serde_amount")]
    pub issued: Amount,
    /// Contributors first, then every other allocation in genesis order.
    pub shares: Vec<FairnessShare>,
    /// Paid to stakers from the contributors' pool (staking rewards, issue 15;
    /// genesis keeps it at most as much as the contributors receive).
    #[serde(default, with = "serde_amount")]
    pub stakers_issued: Amount,
    /// Stakers' share of all issued tokens, parts per million (floor).
    #[serde(default)]
    pub stakers_share_ppm: u64,
    /// Gini coefficient of cumulative rewards over nodes that earned any (0 = equal).
    pub contributor_gini: f64,
    pub rewarded_nodes: usize,
    pub registered_nodes: usize,
    pub epochs_closed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FairnessShare {
    pub allocation: String,
    pub role: AllocationRole,
    /// Allocated at genesis.
    #[serde(with = "serde_amount")]
    pub allocated: Amount,
    /// Issued to it so far.
    #[serde(with = "serde_amount")]
    pub issued: Amount,
    /// Share of all issued tokens, parts per million (floor).
    pub share_ppm: u64,
}

/// Context of one entry.
#[derive(Debug, Clone, Copy)]
pub struct EntryCtx {
    /// Height of the block the entry goes into.
    pub height: u64,
    pub index: u32,
    /// Block time; `None` while the block is still open (only epoch closes need it).
    pub block_time_ms: Option<u64>,
    /// The entry's signature was already verified (e.g. in parallel).
    pub signature_checked: bool,
    /// On a replicated chain, the gateway whose signed batch carries the entry.
    pub gateway: Option<Did>,
}

/// A block applied but not yet committed (see `State::stage_block`).
#[derive(Debug, Clone)]
pub(crate) struct StagedBlock {
    pub(crate) lt: LtHash,
    pub(crate) root: Hash32,
    pub(crate) hash: Hash32,
    pub(crate) mark: Mark,
}

/// A rollback point.
#[derive(Debug, Clone)]
pub struct Mark {
    maps: [usize; 11],
    staking: [usize; 8],
    totals: Totals,
    events: usize,
}

/// The ledger state.
#[derive(Debug, Clone)]
pub struct State {
    genesis: Arc<Genesis>,
    chain_id: Hash32,
    head_hash: Hash32,
    totals: Totals,
    accounts: TrackedMap<Did, Account>,
    nodes: TrackedMap<Did, Node>,
    jobs: TrackedMap<JobId, Job>,
    credited: TrackedMap<(JobId, u64, [u8; 32]), ()>,
    owed: TrackedMap<(JobId, [u8; 32]), Amount>,
    work: TrackedMap<Did, u128>,
    claims: TrackedMap<EvmAddress, Amount>,
    allocations: TrackedMap<String, AllocationState>,
    epochs: TrackedMap<u64, EpochRecord>,
    /// (domain hash, node) → height of its [`crate::entry::ReportCredit`]
    /// (see [`crate::reports`]).
    pub(crate) report_credits: TrackedMap<(Hash32, [u8; 32]), u64>,
    /// Community models in force by name (see [`models`]).
    pub(crate) models: TrackedMap<String, models::ModelRecord>,
    /// Staking, slashing and governance (see [`staking`], [`gov`]).
    pub(crate) staking: staking::StakingMaps,
    /// Commitment to the maps as of the last commit.
    lthash: LtHash,
    /// Totals as of the last commit.
    committed_totals: Totals,
    committed_root: Hash32,
    // --- not committed (caches, event sink) ---
    events: Option<Vec<Event>>,
    /// `claims.version()` when `totals.claims_root` was computed (`u64::MAX`: unknown).
    claims_root_version: u64,
    /// The claims tree last built, with `claims.version()` at that time.
    claims_cache: Option<(u64, Arc<StandardMerkleTree>)>,
}

const TAG_ACCOUNT: u8 = 1;
const TAG_NODE: u8 = 2;
const TAG_JOB: u8 = 3;
const TAG_CREDITED: u8 = 4;
const TAG_OWED: u8 = 5;
const TAG_WORK: u8 = 6;
const TAG_CLAIM: u8 = 7;
const TAG_ALLOCATION: u8 = 8;
const TAG_EPOCH: u8 = 9;
const TAG_REPORT_CREDIT: u8 = 10;
const TAG_MODEL: u8 = 11;

mod storage;

fn item_bytes<K: Serialize, V: Serialize>(tag: u8, k: &K, v: &V) -> Vec<u8> {
    let mut buf = Vec::with_capacity(96);
    buf.push(tag);
    // Encoding plain data (integers, byte arrays, strings) into a Vec cannot fail.
    let buf = postcard::to_extend(k, buf).unwrap_or_default();
    postcard::to_extend(v, buf).unwrap_or_default()
}

/// (add?, item bytes) pairs describing a commitment change.
type ItemDelta = Vec<(bool, Vec<u8>)>;

fn map_delta<K, V>(tag: u8, m: &TrackedMap<K, V>, out: &mut ItemDelta)
where
    K: Ord + Clone + Serialize,
    V: Clone + PartialEq + Serialize,
{
    for (k, old) in m.changes() {
        if let Some(o) = &old {
            out.push((false, item_bytes(tag, &k, o)));
        }
        if let Some(n) = m.get(&k) {
            out.push((true, item_bytes(tag, &k, n)));
        }
    }
}

fn map_items<K, V>(tag: u8, m: &TrackedMap<K, V>, out: &mut ItemDelta)
where
    K: Ord + Clone + Serialize,
    V: Clone + PartialEq + Serialize,
{
    for (k, v) in m.iter() {
        out.push((true, item_bytes(tag, k, v)));
    }
}

/// Sum of the LtHash vectors of the items (subtracting removals), in parallel.
fn lthash_of(items: &ItemDelta) -> LtHash {
    const PAR_MIN: usize = 4096;
    let t = par::threads();
    if items.len() < PAR_MIN || t == 1 {
        let mut h = LtHash::new();
        for (add, b) in items {
            if *add {
                h.insert(b);
            } else {
                h.remove(b);
            }
        }
        return h;
    }
    let chunk = items.len().div_ceil(t);
    let parts: Vec<LtHash> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    let mut h = LtHash::new();
                    for (add, b) in c {
                        if *add {
                            h.insert(b);
                        } else {
                            h.remove(b);
                        }
                    }
                    h
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut h = LtHash::new();
    for p in &parts {
        h.add(p);
    }
    h
}

fn root_of(totals: &Totals, lthash: &LtHash) -> Hash32 {
    let t = postcard::to_allocvec(totals).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(STATE_TAG.as_bytes());
    h.update([0u8]);
    h.update(&t);
    h.update(lthash.to_bytes());
    Hash32(h.finalize().into())
}

fn text_ok(field: &'static str, s: &str) -> Result<(), EntryError> {
    if s.len() > MAX_TEXT_LEN {
        return Err(EntryError::TextTooLong {
            field,
            len: s.len(),
            max: MAX_TEXT_LEN,
        });
    }
    Ok(())
}

fn add(a: Amount, b: Amount, what: &'static str) -> Result<Amount, EntryError> {
    a.checked_add(b).ok_or(EntryError::Overflow(what))
}

fn sub(a: Amount, b: Amount, what: &'static str) -> Result<Amount, EntryError> {
    a.checked_sub(b).ok_or(EntryError::Internal(what))
}

fn did_of(bytes: &[u8; 32]) -> Result<Did, EntryError> {
    Did::from_public_key_bytes(*bytes).map_err(|_| EntryError::Internal("stored node key"))
}

/// The computed outcome of closing an epoch.
#[derive(Debug, Clone)]
struct EpochPlan {
    entry: EpochClose,
    dust_in: Amount,
    total_weight: u128,
    /// (node, operator, effective weight, reward)
    rewards: Vec<(Did, Did, u128, Amount)>,
    /// (allocation index in genesis, amount)
    vesting: Vec<(usize, Amount)>,
    /// Stakers' share of the emission (nothing on chains without staking).
    staking: staking::StakingPlan,
}

/// Applies a block to a copy of `state`: the pure-function form of
/// [`State::apply_block`].
pub fn apply(state: &State, block: &Block) -> Result<State, BlockError> {
    let mut next = state.clone();
    next.apply_block(block)?;
    Ok(next)
}

impl State {
    // ------------------------------------------------------------------
    // Genesis

    /// The state right after the genesis entry (before the genesis block is
    /// sealed: the chain id is still unset). Validates the genesis.
    pub fn from_genesis(genesis: &Genesis) -> Result<State, GenesisError> {
        genesis.validate()?;
        let mut s = State {
            genesis: Arc::new(genesis.clone()),
            chain_id: Hash32::default(),
            head_hash: Hash32::default(),
            totals: Totals {
                total_supply: genesis.token.total_supply,
                pool_remaining: genesis.contributors_pool(),
                timestamp_ms: genesis.genesis_time_ms,
                ..Totals::default()
            },
            accounts: TrackedMap::default(),
            nodes: TrackedMap::default(),
            jobs: TrackedMap::default(),
            credited: TrackedMap::default(),
            owed: TrackedMap::default(),
            work: TrackedMap::default(),
            claims: TrackedMap::default(),
            allocations: TrackedMap::default(),
            epochs: TrackedMap::default(),
            report_credits: TrackedMap::default(),
            models: TrackedMap::default(),
            staking: staking::StakingMaps::default(),
            lthash: LtHash::new(),
            committed_totals: Totals::default(),
            committed_root: Hash32::default(),
            // Genesis unlock events are collected for the ledger's history index.
            events: Some(Vec::new()),
            claims_root_version: 0,
            claims_cache: None,
        };
        for a in &genesis.allocations {
            if a.role == AllocationRole::Contributors {
                s.allocations
                    .insert(a.name.clone(), AllocationState::default());
                continue;
            }
            s.totals.locked += a.locked();
            s.totals.released += a.unlocked_at_launch;
            s.allocations.insert(
                a.name.clone(),
                AllocationState {
                    released: a.unlocked_at_launch,
                },
            );
            if a.unlocked_at_launch > 0 {
                match &a.beneficiary {
                    Some(b) => {
                        let mut acct = s.accounts.get(b).cloned().unwrap_or_default();
                        acct.balance += a.unlocked_at_launch;
                        s.accounts.insert(*b, acct);
                        s.totals.balances += a.unlocked_at_launch;
                        s.push_event(
                            0,
                            0,
                            *b,
                            EventKind::GenesisUnlock {
                                allocation: a.name.clone(),
                                amount: a.unlocked_at_launch,
                            },
                        );
                    }
                    None => s.totals.reserved += a.unlocked_at_launch,
                }
            }
        }
        s.commit();
        Ok(s)
    }

    /// Checks and applies the genesis block (block 0).
    pub fn from_genesis_block(block: &Block) -> Result<State, BlockError> {
        let h = &block.header;
        let bad = |m: &str| BlockError::BadGenesisBlock(m.to_string());
        if h.version != BLOCK_VERSION {
            return Err(BlockError::UnsupportedVersion(h.version));
        }
        if h.height != 0 {
            return Err(BlockError::WrongHeight {
                expected: 0,
                found: h.height,
            });
        }
        if h.prev_hash != Hash32::default() {
            return Err(bad("previous hash must be zero"));
        }
        let [Entry::Genesis(g)] = block.entries.as_slice() else {
            return Err(bad("block 0 must hold exactly one genesis entry"));
        };
        if h.entry_count != 1 {
            return Err(BlockError::EntryCountMismatch {
                header: h.entry_count,
                actual: block.entries.len(),
            });
        }
        let mut s = State::from_genesis(g)?;
        if let Some(c) = &g.consensus {
            // A replicated chain's genesis block is signed by nobody: every
            // validator builds the same one from the agreed genesis file. Its
            // one accepted spelling names the first validator and carries a
            // zero signature.
            let first = c
                .validator_set()
                .map_err(|e| bad(&e.to_string()))?
                .validators()[0]
                .did;
            if h.validator != first || block.signature.0 != [0u8; 64] {
                return Err(bad(
                    "a replicated chain's genesis block names its first validator and carries no signature",
                ));
            }
        } else {
            if !g.validators.contains(&h.validator) {
                return Err(BlockError::NotAValidator(h.validator));
            }
            if !block.signature_valid() {
                return Err(BlockError::BadSignature);
            }
        }
        if h.timestamp_ms != g.genesis_time_ms {
            return Err(bad("timestamp must equal genesis_time_ms"));
        }
        let encoded = block::encode_entries(&block.entries)?;
        let root = block::entries_root(&encoded);
        if root != h.entries_root {
            return Err(BlockError::EntriesRootMismatch {
                header: h.entries_root,
                computed: root,
            });
        }
        if s.state_root() != h.state_root {
            return Err(BlockError::StateRootMismatch {
                header: h.state_root,
                computed: s.state_root(),
            });
        }
        s.set_genesis_hash(block.hash());
        s.events = None;
        Ok(s)
    }

    /// After the genesis block is sealed: records its hash as chain id and head.
    pub(crate) fn set_genesis_hash(&mut self, hash: Hash32) {
        self.chain_id = hash;
        self.head_hash = hash;
    }

    // ------------------------------------------------------------------
    // Queries

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The chain identity signed entries bind to: the genesis block hash.
    pub fn chain_id(&self) -> Hash32 {
        self.chain_id
    }

    /// Hash of the last applied block.
    pub fn head_hash(&self) -> Hash32 {
        self.head_hash
    }

    /// Height of the last applied block.
    pub fn height(&self) -> u64 {
        self.totals.height
    }

    /// Totals, including entries applied since the last block.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The open epoch.
    pub fn epoch(&self) -> u64 {
        self.totals.epoch
    }

    /// When the open epoch may be closed (ms since the Unix epoch).
    pub fn epoch_end_ms(&self) -> u64 {
        self.genesis.epoch_end_ms(self.totals.epoch)
    }

    pub fn account(&self, who: &Did) -> Option<&Account> {
        self.accounts.get(who)
    }

    pub fn balance(&self, who: &Did) -> Amount {
        self.accounts.get(who).map_or(0, |a| a.balance)
    }

    /// The nonce the account's next signed entry must carry.
    pub fn next_nonce(&self, who: &Did) -> u64 {
        self.accounts.get(who).map_or(0, |a| a.nonce)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&Did, &Account)> {
        self.accounts.iter()
    }

    pub fn node(&self, node: &Did) -> Option<&Node> {
        self.nodes.get(node)
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&Did, &Node)> {
        self.nodes.iter()
    }

    pub fn job(&self, job: &JobId) -> Option<&Job> {
        self.jobs.get(job)
    }

    pub fn jobs(&self) -> impl Iterator<Item = (&JobId, &Job)> {
        self.jobs.iter()
    }

    /// Whether (job, unit, node) was credited (while the job is open; a closed
    /// job accepts no receipts at all).
    pub fn is_credited(&self, job: &JobId, unit: u64, node: &Did) -> bool {
        self.credited
            .contains_key(&(*job, unit, *node.public_key_bytes()))
    }

    /// Number of (job, unit, node) credits held for open jobs.
    pub fn credited_len(&self) -> usize {
        self.credited.len()
    }

    /// Fees owed to nodes by an open job, sorted by node.
    pub fn job_owed(&self, job: &JobId) -> Result<Vec<Payout>, EntryError> {
        self.owed
            .range((*job, [0u8; 32])..=(*job, [0xffu8; 32]))
            .map(|((_, n), a)| {
                Ok(Payout {
                    node: did_of(n)?,
                    amount: *a,
                })
            })
            .collect()
    }

    /// Cumulative amount withdrawn to `address` (what its claims tree leaf holds).
    pub fn claimed_total(&self, address: &EvmAddress) -> Amount {
        self.claims.get(address).copied().unwrap_or(0)
    }

    /// (address, cumulative withdrawn), sorted by address.
    pub fn claims(&self) -> impl Iterator<Item = (&EvmAddress, &Amount)> {
        self.claims.iter()
    }

    /// The claims tree over the current cumulative withdrawals.
    pub fn claims_tree(&self) -> Result<StandardMerkleTree, MerkleError> {
        StandardMerkleTree::of(self.claims.iter().map(|(a, v)| (*a, *v)).collect())
    }

    pub fn epoch_record(&self, epoch: u64) -> Option<&EpochRecord> {
        self.epochs.get(&epoch)
    }

    pub fn epoch_records(&self) -> impl Iterator<Item = &EpochRecord> {
        self.epochs.iter().map(|(_, r)| r)
    }

    pub fn allocation_state(&self, name: &str) -> Option<&AllocationState> {
        self.allocations.get(&name.to_string())
    }

    /// A node's current-epoch standing and what it has earned so far.
    pub fn pending_earnings(&self, node: &Did) -> Option<PendingEarnings> {
        let n = self.nodes.get(node)?;
        let weight = self.work.get(node).copied().unwrap_or(0);
        let effective = weight.saturating_mul(n.reward_bps.into());
        let mut total: u128 = 0;
        for (d, w) in self.work.iter() {
            let bps = self.nodes.get(d).map_or(0, |x| x.reward_bps);
            total = total.saturating_add(w.saturating_mul(bps.into()));
        }
        let released = self
            .genesis
            .scheduled_emission(self.totals.epoch)
            .min(self.totals.pool_remaining);
        let emission = released - self.plan_staking(released).map_or(0, |p| p.cut);
        let available = emission.saturating_add(self.totals.reward_dust);
        let estimated = if total == 0 {
            0
        } else {
            mul_div_floor(available, effective, total).unwrap_or(0)
        };
        let unsettled: Amount = self
            .owed
            .iter()
            .filter(|((_, n), _)| n == node.public_key_bytes())
            .map(|(_, a)| *a)
            .sum();
        Some(PendingEarnings {
            node: *node,
            epoch: self.totals.epoch,
            epoch_ends_at_ms: self.epoch_end_ms(),
            weight,
            reward_bps: n.reward_bps,
            effective_weight: effective,
            total_effective_weight: total,
            estimated_reward: estimated,
            unsettled_fees: unsettled,
        })
    }

    /// Where every token is.
    pub fn supply(&self) -> SupplyReport {
        let t = &self.totals;
        SupplyReport {
            total_supply: t.total_supply,
            balances: t.balances,
            escrow: t.escrow,
            pool_remaining: t.pool_remaining,
            reward_dust: t.reward_dust,
            locked: t.locked,
            reserved: t.reserved,
            withdrawn: t.withdrawn,
            issued: t.rewards_paid.saturating_add(t.released),
        }
    }

    /// Share of issued tokens per allocation, and how evenly contributors were rewarded.
    pub fn fairness(&self) -> FairnessReport {
        let stakers_issued = self.staking_globals().staking_released;
        let issued = self
            .totals
            .rewards_paid
            .saturating_add(self.totals.released)
            .saturating_add(stakers_issued);
        let ppm = |x: Amount| -> u64 {
            if issued == 0 {
                0
            } else {
                mul_div_floor(x, 1_000_000, issued).map_or(0, |v| v as u64)
            }
        };
        let mut shares = Vec::new();
        for a in &self.genesis.allocations {
            let got = match a.role {
                AllocationRole::Contributors => self.totals.rewards_paid,
                AllocationRole::Vesting => self.allocations.get(&a.name).map_or(0, |s| s.released),
            };
            shares.push(FairnessShare {
                allocation: a.name.clone(),
                role: a.role,
                allocated: a.amount,
                issued: got,
                share_ppm: ppm(got),
            });
        }
        shares.sort_by_key(|s| s.role);
        let rewards: Vec<Amount> = self
            .nodes
            .iter()
            .map(|(_, n)| n.rewards_total)
            .filter(|r| *r > 0)
            .collect();
        FairnessReport {
            issued,
            shares,
            stakers_issued,
            stakers_share_ppm: ppm(stakers_issued),
            contributor_gini: gini(&rewards),
            rewarded_nodes: rewards.len(),
            registered_nodes: self.nodes.len(),
            epochs_closed: self.epochs.len() as u64,
        }
    }

    /// The state root of the last committed block.
    pub fn state_root(&self) -> Hash32 {
        self.committed_root
    }

    /// Recomputes the state root from every item (O(state)); equals
    /// [`State::state_root`] when nothing is uncommitted. For audits and tests.
    pub fn recompute_state_root(&self) -> Hash32 {
        root_of(&self.committed_totals, &self.full_lthash())
    }

    fn full_lthash(&self) -> LtHash {
        let mut items = ItemDelta::new();
        map_items(TAG_ACCOUNT, &self.accounts, &mut items);
        map_items(TAG_NODE, &self.nodes, &mut items);
        map_items(TAG_JOB, &self.jobs, &mut items);
        map_items(TAG_CREDITED, &self.credited, &mut items);
        map_items(TAG_OWED, &self.owed, &mut items);
        map_items(TAG_WORK, &self.work, &mut items);
        map_items(TAG_CLAIM, &self.claims, &mut items);
        map_items(TAG_ALLOCATION, &self.allocations, &mut items);
        map_items(TAG_EPOCH, &self.epochs, &mut items);
        map_items(TAG_REPORT_CREDIT, &self.report_credits, &mut items);
        map_items(TAG_MODEL, &self.models, &mut items);
        self.staking.items(&mut items);
        lthash_of(&items)
    }

    /// Checks conservation and every running total against the maps (O(state)).
    pub fn check_invariants(&self) -> Result<(), String> {
        let t = &self.totals;
        let balances: Amount = self.accounts.iter().map(|(_, a)| a.balance).sum();
        if balances != t.balances {
            return Err(format!("balances {balances} != total {}", t.balances));
        }
        let mut escrow: Amount = 0;
        let mut owed_by_jobs: Amount = 0;
        for (id, j) in self.jobs.iter() {
            let spent = j
                .owed
                .checked_add(j.paid)
                .and_then(|x| x.checked_add(j.refunded));
            if spent.is_none_or(|s| s > j.escrowed) {
                return Err(format!("job {id} pays more than its escrow"));
            }
            if j.closed && (j.owed != 0 || j.held() != 0) {
                return Err(format!("closed job {id} still holds escrow"));
            }
            escrow += j.held();
            owed_by_jobs += j.owed;
        }
        if escrow != t.escrow {
            return Err(format!("escrow {escrow} != total {}", t.escrow));
        }
        let owed: Amount = self.owed.iter().map(|(_, a)| *a).sum();
        if owed != owed_by_jobs {
            return Err(format!("owed entries {owed} != jobs' owed {owed_by_jobs}"));
        }
        let withdrawn: Amount = self.claims.iter().map(|(_, a)| *a).sum();
        if withdrawn != t.withdrawn {
            return Err(format!("claims {withdrawn} != withdrawn {}", t.withdrawn));
        }
        let weight: u128 = self.work.iter().map(|(_, w)| *w).sum();
        if weight != t.epoch_weight {
            return Err(format!("work {weight} != epoch weight {}", t.epoch_weight));
        }
        let mut locked: Amount = 0;
        let mut released: Amount = 0;
        for a in &self.genesis.allocations {
            if a.role == AllocationRole::Vesting {
                let r = self.allocations.get(&a.name).map_or(0, |s| s.released);
                if r > a.amount {
                    return Err(format!("allocation {} over-released", a.name));
                }
                locked += a.amount - r;
                released += r;
            }
        }
        if locked != t.locked || released != t.released {
            return Err("vesting totals disagree with allocations".into());
        }
        let (staked, staking_released) = self.check_staking_invariants()?;
        let sum = [
            t.balances,
            t.escrow,
            t.pool_remaining,
            t.reward_dust,
            t.locked,
            t.reserved,
            t.withdrawn,
            staked,
        ]
        .iter()
        .try_fold(0u128, |acc, x| acc.checked_add(*x));
        if sum != Some(t.total_supply) {
            return Err(format!(
                "conservation broken: parts add up to {sum:?}, supply is {}",
                t.total_supply
            ));
        }
        let pool = self.genesis.contributors_pool();
        if t.pool_remaining + t.rewards_paid + t.reward_dust + staking_released != pool {
            return Err("contributors' pool does not add up".into());
        }
        for ((job, _, _), ()) in self.credited.iter() {
            if self.jobs.get(job).is_none_or(|j| j.closed) {
                return Err(format!("credit kept for closed or unknown job {job}"));
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Builders for validator-authored entries

    /// The exact settlement entry for a job: pays every owed fee and, when
    /// `close`, refunds the rest of the escrow and closes the job.
    pub fn settlement(&self, job: &JobId, close: bool) -> Result<Settlement, EntryError> {
        let j = self.jobs.get(job).ok_or(EntryError::UnknownJob(*job))?;
        if j.closed {
            return Err(EntryError::JobClosed(*job));
        }
        let payouts = self.job_owed(job)?;
        if !close && payouts.is_empty() {
            return Err(EntryError::NothingToSettle(*job));
        }
        let refund = if close { j.available() } else { 0 };
        Ok(Settlement {
            job: *job,
            payouts,
            refund,
            close,
        })
    }

    /// Whether the open epoch can be closed at block time `now_ms`.
    pub fn epoch_due(&self, now_ms: u64) -> bool {
        now_ms >= self.epoch_end_ms()
    }

    /// The epoch-close entry for block time `now_ms`, or `None` if the open
    /// epoch has not ended. Computes (and caches) the claims tree root.
    pub fn epoch_close(&mut self, now_ms: u64) -> Result<Option<EpochClose>, EntryError> {
        if !self.epoch_due(now_ms) {
            return Ok(None);
        }
        let claims = self.claims_root_now();
        Ok(Some(
            self.plan_epoch_close(self.totals.epoch, claims)?.entry,
        ))
    }

    fn claims_root_now(&mut self) -> (Hash32, u64) {
        let v = self.claims.version();
        if v == self.claims_root_version {
            return (self.totals.claims_root, self.totals.claims_count);
        }
        match self.current_claims_tree() {
            Some(t) => (Hash32(t.root()), t.len() as u64),
            None => (Hash32::default(), 0),
        }
    }

    /// The claims tree over the current cumulative withdrawals, built once
    /// and cached until the next withdrawal (`None` when nobody withdrew yet).
    /// Right after an epoch close this is the tree that close published.
    pub fn current_claims_tree(&mut self) -> Option<Arc<StandardMerkleTree>> {
        let v = self.claims.version();
        if let Some((cv, t)) = &self.claims_cache
            && *cv == v
        {
            return Some(Arc::clone(t));
        }
        // Reuse the leaf hashes of the last tree: only new or changed claims are hashed.
        let prev = self.claims_cache.take().map(|(_, t)| t);
        let values = self.claims.iter().map(|(a, v)| (*a, *v)).collect();
        let t = Arc::new(StandardMerkleTree::of_reusing(values, prev.as_deref()).ok()?);
        self.claims_cache = Some((v, Arc::clone(&t)));
        Some(t)
    }

    fn plan_epoch_close(&self, epoch: u64, claims: (Hash32, u64)) -> Result<EpochPlan, EntryError> {
        let t = &self.totals;
        let mut nodes = Vec::with_capacity(self.work.len());
        let mut weights = Vec::with_capacity(self.work.len());
        for (node, w) in self.work.iter() {
            let n = self
                .nodes
                .get(node)
                .ok_or(EntryError::Internal("work for an unregistered node"))?;
            let eff = w
                .checked_mul(n.reward_bps.into())
                .ok_or(EntryError::Overflow("effective weight"))?;
            nodes.push((*node, n.operator));
            weights.push(eff);
        }
        let total_weight = weights
            .iter()
            .try_fold(0u128, |a, w| a.checked_add(*w))
            .ok_or(EntryError::Overflow("total weight"))?;
        let dust_in = t.reward_dust;
        let mut staking_plan = staking::StakingPlan::default();
        let (emission, rewards, dust) = if total_weight == 0 {
            // Nobody contributed: this epoch's emission stays in the pool.
            (0, Vec::new(), dust_in)
        } else {
            let released = self.genesis.scheduled_emission(epoch).min(t.pool_remaining);
            // The stakers' share comes off the top; `emission` (the figure
            // the entry carries) is the contributors' part.
            staking_plan = self.plan_staking(released)?;
            let emission = released - staking_plan.cut;
            let available = add(emission, dust_in, "available rewards")?;
            let (shares, dust) =
                split_pro_rata(available, &weights).ok_or(EntryError::Overflow("reward split"))?;
            let rewards = nodes
                .into_iter()
                .zip(weights)
                .zip(shares)
                .filter(|(_, r)| *r > 0)
                .map(|(((node, op), w), r)| (node, op, w, r))
                .collect();
            (emission, rewards, dust)
        };
        let distributed = rewards
            .iter()
            .try_fold(0u128, |a: u128, r: &(Did, Did, u128, Amount)| {
                a.checked_add(r.3)
            })
            .ok_or(EntryError::Overflow("distributed"))?;
        let mut vesting = Vec::new();
        let mut vested: Amount = 0;
        let closed_after = epoch + 1;
        for (i, a) in self.genesis.allocations.iter().enumerate() {
            if a.role != AllocationRole::Vesting {
                continue;
            }
            let released = self.allocations.get(&a.name).map_or(0, |s| s.released);
            let due = a.unlocked_at_launch + a.vested_after(closed_after);
            let step = due.saturating_sub(released);
            if step > 0 {
                vested = add(vested, step, "vested")?;
                vesting.push((i, step));
            }
        }
        Ok(EpochPlan {
            entry: EpochClose {
                epoch,
                emission,
                distributed,
                dust,
                vested,
                rewarded_nodes: rewards.len() as u64,
                claims_root: claims.0,
                claims_count: claims.1,
            },
            dust_in,
            total_weight,
            rewards,
            vesting,
            staking: staking_plan,
        })
    }

    // ------------------------------------------------------------------
    // Applying

    /// Turns on (or off) collection of account events (for history indexes).
    pub fn record_events(&mut self, on: bool) {
        self.events = if on { Some(Vec::new()) } else { None };
    }

    /// Takes the events collected so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        match &mut self.events {
            Some(v) => std::mem::take(v),
            None => Vec::new(),
        }
    }

    fn push_event(&mut self, height: u64, index: u32, account: Did, kind: EventKind) {
        if let Some(ev) = &mut self.events {
            ev.push(Event {
                height,
                index,
                account,
                kind,
            });
        }
    }

    /// Payout addresses whose cumulative withdrawal changed since the last
    /// commit, with their current value.
    pub(crate) fn changed_claims(&self) -> Vec<(EvmAddress, Amount)> {
        self.claims
            .changes()
            .into_iter()
            .map(|(a, _)| (a, self.claimed_total(&a)))
            .collect()
    }

    /// Number of collected, untaken events.
    pub(crate) fn events_len(&self) -> usize {
        self.events.as_ref().map_or(0, Vec::len)
    }

    /// Puts back the first `keep` of previously taken events.
    pub(crate) fn restore_events(&mut self, mut events: Vec<Event>, keep: usize) {
        if self.events.is_some() {
            events.truncate(keep);
            self.events = Some(events);
        }
    }

    /// A rollback point.
    pub fn mark(&self) -> Mark {
        Mark {
            maps: [
                self.accounts.mark(),
                self.nodes.mark(),
                self.jobs.mark(),
                self.credited.mark(),
                self.owed.mark(),
                self.work.mark(),
                self.claims.mark(),
                self.allocations.mark(),
                self.epochs.mark(),
                self.report_credits.mark(),
                self.models.mark(),
            ],
            staking: self.staking.marks(),
            totals: self.totals.clone(),
            events: self.events.as_ref().map_or(0, Vec::len),
        }
    }

    /// Undoes everything applied after `mark` (which must come from this
    /// state since its last commit).
    pub fn rollback(&mut self, mark: &Mark) {
        let m = &mark.maps;
        self.accounts.rollback(m[0]);
        self.nodes.rollback(m[1]);
        self.jobs.rollback(m[2]);
        self.credited.rollback(m[3]);
        self.owed.rollback(m[4]);
        self.work.rollback(m[5]);
        self.claims.rollback(m[6]);
        self.allocations.rollback(m[7]);
        self.epochs.rollback(m[8]);
        self.report_credits.rollback(m[9]);
        self.models.rollback(m[10]);
        self.staking.rollback(&mark.staking);
        self.totals = mark.totals.clone();
        if let Some(ev) = &mut self.events {
            ev.truncate(mark.events);
        }
    }

    /// The mark of the last commit (rolling back to it drops everything uncommitted).
    pub(crate) fn committed_mark(&self) -> Mark {
        let mut m = self.mark();
        m.maps = [0; 11];
        m.staking = [0; 8];
        m.totals = self.committed_totals.clone();
        m.events = 0;
        m
    }

    /// Whether entries were applied since the last commit.
    pub fn has_uncommitted(&self) -> bool {
        let m = self.mark();
        m.maps.iter().chain(m.staking.iter()).any(|m| *m > 0)
            || self.totals != self.committed_totals
    }

    /// The LtHash and root the state would commit to now (O(changed items)).
    fn pending_commitment(&self) -> (LtHash, Hash32) {
        let mut items = ItemDelta::new();
        map_delta(TAG_ACCOUNT, &self.accounts, &mut items);
        map_delta(TAG_NODE, &self.nodes, &mut items);
        map_delta(TAG_JOB, &self.jobs, &mut items);
        map_delta(TAG_CREDITED, &self.credited, &mut items);
        map_delta(TAG_OWED, &self.owed, &mut items);
        map_delta(TAG_WORK, &self.work, &mut items);
        map_delta(TAG_CLAIM, &self.claims, &mut items);
        map_delta(TAG_ALLOCATION, &self.allocations, &mut items);
        map_delta(TAG_EPOCH, &self.epochs, &mut items);
        map_delta(TAG_REPORT_CREDIT, &self.report_credits, &mut items);
        map_delta(TAG_MODEL, &self.models, &mut items);
        self.staking.delta(&mut items);
        let mut lt = self.lthash.clone();
        lt.add(&lthash_of(&items));
        let root = root_of(&self.totals, &lt);
        (lt, root)
    }

    fn commit_with(&mut self, lt: LtHash, root: Hash32) {
        self.accounts.commit();
        self.nodes.commit();
        self.jobs.commit();
        self.credited.commit();
        self.owed.commit();
        self.work.commit();
        self.claims.commit();
        self.allocations.commit();
        self.epochs.commit();
        self.report_credits.commit();
        self.models.commit();
        self.staking.commit();
        self.lthash = lt;
        self.committed_totals = self.totals.clone();
        self.committed_root = root;
    }

    fn commit(&mut self) -> Hash32 {
        let (lt, root) = self.pending_commitment();
        self.commit_with(lt, root);
        root
    }

    /// Sets the block height and time (for the block being built) and returns
    /// the state root the block will carry. Does not commit.
    /// `validator` signs the block (counted for staking performance).
    pub(crate) fn prepare_root(
        &mut self,
        height: u64,
        time_ms: u64,
        validator: &Did,
    ) -> (LtHash, Hash32) {
        self.note_block(validator);
        self.totals.height = height;
        self.totals.timestamp_ms = time_ms;
        self.pending_commitment()
    }

    /// Commits after the block carrying `root` was sealed with hash `hash`.
    pub(crate) fn finish_block(&mut self, lt: LtHash, root: Hash32, hash: Hash32) {
        self.commit_with(lt, root);
        self.head_hash = hash;
    }

    /// Checks and applies a whole block, all or nothing.
    pub fn apply_block(&mut self, block: &Block) -> Result<(), BlockError> {
        let s = self.stage_block(block)?;
        self.finish_block(s.lt, s.root, s.hash);
        Ok(())
    }

    /// Whether blocks are decided by a validator set with certificates.
    pub fn replicated(&self) -> bool {
        self.genesis.consensus.is_some()
    }

    /// The validator set that decides the next block (see
    /// [`crate::consensus::ValidatorSet::in_force`]).
    pub fn validators_in_force(
        &self,
    ) -> Result<crate::consensus::ValidatorSet, crate::consensus::CertError> {
        crate::consensus::ValidatorSet::in_force(self)
    }

    /// Checks that `cert` finalizes `block` as the next block of this chain:
    /// precommits of more than 2/3 of the power in force (call before
    /// applying the block).
    pub fn check_certificate(
        &self,
        block: &Block,
        cert: &crate::consensus::CommitCertificate,
    ) -> Result<(), BlockError> {
        let set = self.validators_in_force()?;
        cert.verify(self.chain_id, block.header.height, block.hash(), &set)?;
        Ok(())
    }

    /// Checks and applies a whole block without committing it: on success the
    /// state holds the block's changes, which [`State::rollback`] to the
    /// returned mark undoes, or `finish_block` makes the new head.
    pub(crate) fn stage_block(&mut self, block: &Block) -> Result<StagedBlock, BlockError> {
        let h = &block.header;
        if h.version != BLOCK_VERSION {
            return Err(BlockError::UnsupportedVersion(h.version));
        }
        if h.height != self.totals.height + 1 {
            return Err(BlockError::WrongHeight {
                expected: self.totals.height + 1,
                found: h.height,
            });
        }
        if h.prev_hash != self.head_hash {
            return Err(BlockError::WrongPrevHash {
                expected: self.head_hash,
                found: h.prev_hash,
            });
        }
        if h.timestamp_ms < self.totals.timestamp_ms {
            return Err(BlockError::TimestampRegressed {
                previous: self.totals.timestamp_ms,
                found: h.timestamp_ms,
            });
        }
        if self.replicated() {
            // The proposer must be in the set in force; the certificate (checked
            // by the caller) is what makes the block final.
            if self.validators_in_force()?.power_of(&h.validator).is_none() {
                return Err(BlockError::NotAValidator(h.validator));
            }
        } else if !self.genesis.validators.contains(&h.validator) {
            return Err(BlockError::NotAValidator(h.validator));
        }
        if block.entries.len() > MAX_BLOCK_ENTRIES {
            return Err(BlockError::TooManyEntries(block.entries.len()));
        }
        if h.entry_count as usize != block.entries.len() {
            return Err(BlockError::EntryCountMismatch {
                header: h.entry_count,
                actual: block.entries.len(),
            });
        }
        // Cheap checks first: the entries root, then the signature.
        let encoded = block::encode_entries(&block.entries)?;
        let leaves = par::map(&encoded, 4096, |b| block::leaf_hash(b));
        let root = block::merkle_root_of_leaves(&leaves);
        if root != h.entries_root {
            return Err(BlockError::EntriesRootMismatch {
                header: h.entries_root,
                computed: root,
            });
        }
        if !block.signature_valid() {
            return Err(BlockError::BadSignature);
        }
        // Signatures do not depend on state: check them all, in parallel.
        let sig_ok = par::map(&block.entries, 64, |e| e.signature_valid());
        if let Some(i) = sig_ok.iter().position(|ok| !ok) {
            let e = &block.entries[i];
            return Err(BlockError::Entry {
                index: i,
                kind: e.kind_name(),
                error: EntryError::BadSignature {
                    kind: e.kind_name(),
                    signer: e.envelope().map_or(h.validator, |v| v.signer),
                },
            });
        }
        let start = self.mark();
        for (i, e) in block.entries.iter().enumerate() {
            let ctx = EntryCtx {
                height: h.height,
                index: i as u32,
                block_time_ms: Some(h.timestamp_ms),
                signature_checked: true,
                gateway: None,
            };
            if let Err(error) = self.apply_entry(e, &ctx) {
                self.rollback(&start);
                return Err(BlockError::Entry {
                    index: i,
                    kind: e.kind_name(),
                    error,
                });
            }
        }
        let (lt, computed) = self.prepare_root(h.height, h.timestamp_ms, &h.validator);
        if computed != h.state_root {
            self.rollback(&start);
            return Err(BlockError::StateRootMismatch {
                header: h.state_root,
                computed,
            });
        }
        Ok(StagedBlock {
            lt,
            root: computed,
            hash: block.hash(),
            mark: start,
        })
    }

    /// Applies one entry, all or nothing.
    pub fn apply_entry(&mut self, entry: &Entry, ctx: &EntryCtx) -> Result<(), EntryError> {
        let mark = self.mark();
        let holder = if self.replicated() {
            self.gateway_rules(entry, ctx)?
        } else {
            None
        };
        let r = match entry {
            Entry::Genesis(_) => Err(EntryError::GenesisOutsideBlockZero),
            Entry::RegisterNode(e) => self.apply_register(e, ctx),
            Entry::Transfer(e) => self.apply_transfer(e, ctx),
            Entry::JobEscrow(e) => self.apply_escrow(e, ctx),
            Entry::Withdraw(e) => self.apply_withdraw(e, ctx),
            Entry::WorkReceipt(r) => self.apply_receipt(r),
            Entry::Settlement(s) => self.apply_settlement(s, ctx),
            Entry::EpochClose(c) => self.apply_epoch_close(c, ctx),
            Entry::Penalty(p) => self.apply_penalty(p, ctx),
            Entry::AdjustNode(a) => self.apply_adjust(a, ctx),
            Entry::ReportCredit(r) => self.apply_report_credit(r, ctx),
            Entry::PublishModel(m) => self.apply_publish_model(m, ctx.height),
            Entry::StorageContract(e) => self.apply_storage_contract(e, ctx),
            Entry::StorageShare(s) => self.apply_storage_share(s),
            Entry::Bond(e) => self.apply_bond(e, ctx),
            Entry::Delegate(e) => self.apply_delegate(e, ctx),
            Entry::Unbond(e) => self.apply_unbond(e, ctx),
            Entry::SetCommission(e) => self.apply_set_commission(e, ctx),
            Entry::Propose(e) => self.apply_propose(e, ctx),
            Entry::Vote(e) => self.apply_vote(e, ctx),
            Entry::Slash(s) => self.apply_slash(s, ctx),
            Entry::Unjail(e) => self.apply_unjail(e, ctx),
            Entry::GatewayBatch(e) => self.apply_gateway_batch(e, ctx),
        };
        if let (Ok(()), Some((job, gateway))) = (&r, holder) {
            self.staking.job_gateways.insert(job, gateway);
        }
        if r.is_err() {
            self.rollback(&mark);
        }
        r
    }

    /// Who may submit what on a replicated chain (checked before applying):
    /// gateway-made entries only inside a listed gateway's batch, and for a
    /// job only from the gateway holding its escrow; escrows and storage
    /// contracts only inside a batch, which makes that gateway the holder
    /// (returned, recorded once the entry applies). Account entries and
    /// double-sign slashes (self-proving evidence) come from anyone.
    fn gateway_rules(
        &self,
        entry: &Entry,
        ctx: &EntryCtx,
    ) -> Result<Option<(JobId, Did)>, EntryError> {
        let kind = entry.kind_name();
        let job = match entry {
            Entry::WorkReceipt(r) => Some(r.job),
            Entry::Settlement(s) => Some(s.job),
            Entry::StorageShare(s) => Some(s.file),
            Entry::Penalty(p) => p.job,
            Entry::Slash(s) if s.reason == crate::entry::SlashReason::DoubleSign => {
                return Ok(None);
            }
            Entry::AdjustNode(_)
            | Entry::ReportCredit(_)
            | Entry::PublishModel(_)
            | Entry::Slash(_) => None,
            Entry::JobEscrow(_) | Entry::StorageContract(_) => {
                let gateway = ctx.gateway.ok_or(EntryError::GatewayOnly(kind))?;
                let job = match entry {
                    Entry::JobEscrow(e) => self.open::<JobEscrow>(e, ctx, kind)?.message.job,
                    Entry::StorageContract(e) => {
                        self.open::<crate::entry::StorageContract>(e, ctx, kind)?
                            .message
                            .manifest
                            .file
                    }
                    _ => return Ok(None),
                };
                return Ok(Some((job, gateway)));
            }
            _ => return Ok(None),
        };
        let gateway = ctx.gateway.ok_or(EntryError::GatewayOnly(kind))?;
        if let Some(job) = job
            && self.staking.job_gateways.get(&job) != Some(&gateway)
        {
            return Err(EntryError::NotJobHolder { job, gateway });
        }
        Ok(None)
    }

    /// The gateway holding a job's escrow (replicated chains).
    pub fn job_gateway(&self, job: &JobId) -> Option<Did> {
        self.staking.job_gateways.get(job).copied()
    }

    /// Whether `did` is a gateway of this replicated chain.
    pub fn is_gateway(&self, did: &Did) -> bool {
        self.genesis
            .consensus
            .as_ref()
            .is_some_and(|c| c.gateways.contains(did))
    }

    /// The cheap checks of a gateway batch, for a mempool's admission: a
    /// replicated chain, the signature's payload decodes for this chain, the
    /// signer is a listed gateway, the size, the nonce not behind; and, for
    /// the batch that is next, every inner entry's kind and the holder rule
    /// (escrows in the same batch count). The entries themselves are checked
    /// when a block is built (all or nothing). Changes nothing.
    pub fn precheck_batch(&self, e: &Envelope) -> Result<(), EntryError> {
        const KIND: &str = "gateway_batch";
        let malformed = |reason: String| EntryError::Malformed { kind: KIND, reason };
        if !self.replicated() {
            return Err(malformed(
                "gateway batches exist only on replicated chains".into(),
            ));
        }
        let p = decode_payload::<crate::entry::GatewayBatch>(e)
            .map_err(|err| malformed(err.to_string()))?;
        self.check_chain(&p.message.chain)?;
        if !self.is_gateway(&e.signer) {
            return Err(EntryError::NotAGateway(e.signer));
        }
        let n = p.message.entries.len();
        if n == 0 || n > crate::entry::MAX_BATCH_ENTRIES {
            return Err(malformed(format!(
                "{n} entries; between 1 and {} are allowed",
                crate::entry::MAX_BATCH_ENTRIES
            )));
        }
        let next = self.next_nonce(&e.signer);
        if p.nonce != next {
            return Err(EntryError::BadNonce {
                account: e.signer,
                expected: next,
                found: p.nonce,
            });
        }
        let mut held = std::collections::BTreeSet::new();
        for (index, inner) in p.message.entries.iter().enumerate() {
            let job = match inner {
                Entry::Genesis(_) | Entry::EpochClose(_) | Entry::GatewayBatch(_) => {
                    return Err(EntryError::InBatch {
                        index,
                        error: Box::new(EntryError::Malformed {
                            kind: inner.kind_name(),
                            reason: "not allowed in a gateway batch".into(),
                        }),
                    });
                }
                Entry::JobEscrow(env) => {
                    if let Ok(m) = decode_payload::<JobEscrow>(env) {
                        held.insert(m.message.job);
                    }
                    None
                }
                Entry::StorageContract(env) => {
                    if let Ok(m) = decode_payload::<crate::entry::StorageContract>(env) {
                        held.insert(m.message.manifest.file);
                    }
                    None
                }
                Entry::WorkReceipt(r) => Some(r.job),
                Entry::Settlement(s) => Some(s.job),
                Entry::StorageShare(s) => Some(s.file),
                Entry::Penalty(p) => p.job,
                _ => None,
            };
            if let Some(job) = job
                && !held.contains(&job)
                && self.staking.job_gateways.get(&job) != Some(&e.signer)
            {
                return Err(EntryError::InBatch {
                    index,
                    error: Box::new(EntryError::NotJobHolder {
                        job,
                        gateway: e.signer,
                    }),
                });
            }
        }
        Ok(())
    }

    fn apply_gateway_batch(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        const KIND: &str = "gateway_batch";
        if !self.replicated() {
            return Err(EntryError::Malformed {
                kind: KIND,
                reason: "gateway batches exist only on replicated chains".into(),
            });
        }
        if ctx.gateway.is_some() {
            return Err(EntryError::Malformed {
                kind: KIND,
                reason: "batches do not nest".into(),
            });
        }
        let p = self.open::<crate::entry::GatewayBatch>(e, ctx, KIND)?;
        self.check_chain(&p.message.chain)?;
        if !self.is_gateway(&e.signer) {
            return Err(EntryError::NotAGateway(e.signer));
        }
        let n = p.message.entries.len();
        if n == 0 || n > crate::entry::MAX_BATCH_ENTRIES {
            return Err(EntryError::Malformed {
                kind: KIND,
                reason: format!(
                    "{n} entries; between 1 and {} are allowed",
                    crate::entry::MAX_BATCH_ENTRIES
                ),
            });
        }
        self.use_nonce(&e.signer, p.nonce)?;
        for (i, inner) in p.message.entries.iter().enumerate() {
            if matches!(
                inner,
                Entry::Genesis(_) | Entry::EpochClose(_) | Entry::GatewayBatch(_)
            ) {
                return Err(EntryError::InBatch {
                    index: i,
                    error: Box::new(EntryError::Malformed {
                        kind: inner.kind_name(),
                        reason: "not allowed in a gateway batch".into(),
                    }),
                });
            }
            let inner_ctx = EntryCtx {
                gateway: Some(e.signer),
                ..*ctx
            };
            self.apply_entry(inner, &inner_ctx)
                .map_err(|error| EntryError::InBatch {
                    index: i,
                    error: Box::new(error),
                })?;
        }
        Ok(())
    }

    fn open<T: Message + Serialize + DeserializeOwned>(
        &self,
        e: &Envelope,
        ctx: &EntryCtx,
        kind: &'static str,
    ) -> Result<Payload<T>, EntryError> {
        let verified = ctx.signature_checked
            || (e.kind == T::KIND && e.signer.verify_tagged(T::KIND, &e.payload, &e.signature));
        if !verified {
            return Err(EntryError::BadSignature {
                kind,
                signer: e.signer,
            });
        }
        decode_payload::<T>(e).map_err(|err: CanonicalError| EntryError::Malformed {
            kind,
            reason: err.to_string(),
        })
    }

    fn check_chain(&self, chain: &Hash32) -> Result<(), EntryError> {
        if *chain != self.chain_id {
            return Err(EntryError::WrongChain {
                expected: self.chain_id,
                found: *chain,
            });
        }
        Ok(())
    }

    /// Uses `who`'s next sequence number `nonce` (a follower sealing a batch
    /// whose entries it already applied; see `Ledger::open_follower`).
    pub(crate) fn bump_nonce(&mut self, who: &Did, nonce: u64) -> Result<(), EntryError> {
        self.use_nonce(who, nonce)
    }

    fn use_nonce(&mut self, who: &Did, nonce: u64) -> Result<(), EntryError> {
        let mut a = self.accounts.get(who).cloned().unwrap_or_default();
        if a.nonce != nonce {
            return Err(EntryError::BadNonce {
                account: *who,
                expected: a.nonce,
                found: nonce,
            });
        }
        a.nonce = a
            .nonce
            .checked_add(1)
            .ok_or(EntryError::Overflow("nonce"))?;
        self.accounts.insert(*who, a);
        Ok(())
    }

    fn credit(&mut self, who: &Did, amount: Amount) -> Result<(), EntryError> {
        let mut a = self.accounts.get(who).cloned().unwrap_or_default();
        a.balance = add(a.balance, amount, "balance")?;
        self.totals.balances = add(self.totals.balances, amount, "balances total")?;
        self.accounts.insert(*who, a);
        Ok(())
    }

    fn debit(&mut self, who: &Did, amount: Amount) -> Result<(), EntryError> {
        let mut a = self.accounts.get(who).cloned().unwrap_or_default();
        if a.balance < amount {
            return Err(EntryError::InsufficientBalance {
                account: *who,
                balance: a.balance,
                needed: amount,
            });
        }
        a.balance -= amount;
        self.totals.balances = sub(self.totals.balances, amount, "balances total")?;
        self.accounts.insert(*who, a);
        Ok(())
    }

    fn apply_register(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<RegisterNode>(e, ctx, "register_node")?;
        self.check_chain(&p.message.chain)?;
        let node = e.signer;
        self.use_nonce(&node, p.nonce)?;
        let n = match self.nodes.get(&node) {
            Some(old) => Node {
                operator: p.message.operator,
                payout: p.message.payout,
                ..old.clone()
            },
            None => Node {
                operator: p.message.operator,
                payout: p.message.payout,
                reward_bps: FULL_BPS,
                registered_height: ctx.height,
                rewards_total: 0,
                fees_total: 0,
                receipts: 0,
                penalties: 0,
            },
        };
        self.nodes.insert(node, n);
        let kind = EventKind::NodeRegistered {
            node,
            operator: p.message.operator,
            payout: p.message.payout,
        };
        self.push_event(ctx.height, ctx.index, node, kind.clone());
        if p.message.operator != node {
            self.push_event(ctx.height, ctx.index, p.message.operator, kind);
        }
        Ok(())
    }

    fn apply_transfer(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<Transfer>(e, ctx, "transfer")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        text_ok("memo", &m.memo)?;
        if m.amount == 0 {
            return Err(EntryError::ZeroAmount);
        }
        let from = e.signer;
        self.use_nonce(&from, p.nonce)?;
        self.debit(&from, m.amount)?;
        self.credit(&m.to, m.amount)?;
        self.push_event(
            ctx.height,
            ctx.index,
            from,
            EventKind::Sent {
                to: m.to,
                amount: m.amount,
                memo: m.memo.clone(),
            },
        );
        self.push_event(
            ctx.height,
            ctx.index,
            m.to,
            EventKind::Received {
                from,
                amount: m.amount,
                memo: m.memo.clone(),
            },
        );
        Ok(())
    }

    fn apply_escrow(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<JobEscrow>(e, ctx, "job_escrow")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        if self.jobs.contains_key(&m.job) {
            return Err(EntryError::JobExists(m.job));
        }
        self.lock_escrow(e.signer, m.job, m.amount, m.price_per_unit, ctx)
    }

    /// Locks `amount` of `requester`'s balance as the escrow of `job` (a job
    /// or a storage contract), paying `price_per_unit` per unit of receipts.
    fn lock_escrow(
        &mut self,
        requester: Did,
        job: JobId,
        amount: Amount,
        price_per_unit: Amount,
        ctx: &EntryCtx,
    ) -> Result<(), EntryError> {
        self.debit(&requester, amount)?;
        self.totals.escrow = add(self.totals.escrow, amount, "escrow total")?;
        self.jobs.insert(
            job,
            Job {
                requester,
                price_per_unit,
                escrowed: amount,
                owed: 0,
                paid: 0,
                refunded: 0,
                receipts: 0,
                closed: false,
                created_height: ctx.height,
            },
        );
        self.push_event(
            ctx.height,
            ctx.index,
            requester,
            EventKind::EscrowLocked {
                job,
                amount,
                price_per_unit,
            },
        );
        Ok(())
    }

    fn apply_withdraw(&mut self, e: &Envelope, ctx: &EntryCtx) -> Result<(), EntryError> {
        let p = self.open::<Withdraw>(e, ctx, "withdraw")?;
        let m = &p.message;
        self.check_chain(&m.chain)?;
        if m.amount == 0 {
            return Err(EntryError::ZeroAmount);
        }
        let who = e.signer;
        self.use_nonce(&who, p.nonce)?;
        self.debit(&who, m.amount)?;
        let c = self.claims.get(&m.to).copied().unwrap_or(0);
        self.claims.insert(m.to, add(c, m.amount, "claim")?);
        self.totals.withdrawn = add(self.totals.withdrawn, m.amount, "withdrawn total")?;
        self.push_event(
            ctx.height,
            ctx.index,
            who,
            EventKind::Withdrawn {
                to: m.to,
                amount: m.amount,
            },
        );
        Ok(())
    }

    /// A registered node's record (a copy to modify), or `UnknownNode`.
    fn node_record(&self, node: &Did) -> Result<Node, EntryError> {
        self.nodes
            .get(node)
            .cloned()
            .ok_or(EntryError::UnknownNode(*node))
    }

    /// What crediting `amount` of `kind` to `node` adds, checked and changing
    /// nothing: (the weight, the node's new epoch weight, the epoch's new total).
    fn weigh(
        &self,
        node: &Did,
        kind: ContributionKind,
        amount: u64,
    ) -> Result<(u128, u128, u128), EntryError> {
        let weight = self
            .weight_of(kind)
            .ok_or(EntryError::UnweightedKind(kind))?;
        let w = u128::from(amount)
            .checked_mul(weight.into())
            .ok_or(EntryError::Overflow("weight"))?;
        let node_work = self
            .work
            .get(node)
            .copied()
            .unwrap_or(0)
            .checked_add(w)
            .ok_or(EntryError::Overflow("node weight"))?;
        let epoch_weight = self
            .totals
            .epoch_weight
            .checked_add(w)
            .ok_or(EntryError::Overflow("epoch weight"))?;
        Ok((w, node_work, epoch_weight))
    }

    fn apply_receipt(&mut self, r: &WorkReceipt) -> Result<(), EntryError> {
        let job = self
            .jobs
            .get(&r.job)
            .ok_or(EntryError::UnknownJob(r.job))?
            .clone();
        if job.closed {
            return Err(EntryError::JobClosed(r.job));
        }
        let mut node = self.node_record(&r.node)?;
        let (w, node_work, epoch_weight) = self.weigh(&r.node, r.kind, r.amount)?;
        if r.quorum.is_empty() || r.quorum.len() > MAX_QUORUM {
            return Err(EntryError::QuorumSize(r.quorum.len()));
        }
        if !r.quorum.windows(2).all(|w| w[0] < w[1]) {
            return Err(EntryError::QuorumNotSorted);
        }
        if r.quorum.binary_search(&r.node).is_err() {
            return Err(EntryError::NodeNotInQuorum { node: r.node });
        }
        for q in &r.quorum {
            if !self.nodes.contains_key(q) {
                return Err(EntryError::UnregisteredQuorumMember(*q));
            }
        }
        let key = (r.job, r.unit, *r.node.public_key_bytes());
        if self.credited.contains_key(&key) {
            return Err(EntryError::AlreadyCredited {
                job: r.job,
                unit: r.unit,
                node: r.node,
            });
        }
        let fee = u128::from(r.amount)
            .checked_mul(job.price_per_unit)
            .ok_or(EntryError::Overflow("fee"))?;
        let available = job.available();
        if fee > available {
            return Err(EntryError::EscrowExhausted {
                job: r.job,
                available,
                needed: fee,
            });
        }
        // All checks passed; mutate.
        self.credited.insert(key, ());
        let owed_key = (r.job, *r.node.public_key_bytes());
        let o = self.owed.get(&owed_key).copied().unwrap_or(0);
        self.owed.insert(owed_key, add(o, fee, "owed")?);
        let mut job = job;
        job.owed = add(job.owed, fee, "job owed")?;
        job.receipts += 1;
        self.jobs.insert(r.job, job);
        node.receipts += 1;
        self.nodes.insert(r.node, node);
        if w > 0 {
            self.work.insert(r.node, node_work);
        }
        self.totals.epoch_weight = epoch_weight;
        Ok(())
    }

    fn apply_settlement(&mut self, s: &Settlement, ctx: &EntryCtx) -> Result<(), EntryError> {
        let expected = self.settlement(&s.job, s.close)?;
        if expected != *s {
            return Err(EntryError::SettlementMismatch {
                job: s.job,
                expected: Box::new(expected),
            });
        }
        let mut job = self
            .jobs
            .get(&s.job)
            .ok_or(EntryError::UnknownJob(s.job))?
            .clone();
        let mut paid: Amount = 0;
        for p in &s.payouts {
            let mut node = self
                .nodes
                .get(&p.node)
                .ok_or(EntryError::UnknownNode(p.node))?
                .clone();
            self.owed.remove(&(s.job, *p.node.public_key_bytes()));
            let operator = node.operator;
            self.credit(&operator, p.amount)?;
            node.fees_total = add(node.fees_total, p.amount, "node fees")?;
            self.nodes.insert(p.node, node);
            paid = add(paid, p.amount, "settlement")?;
            self.push_event(
                ctx.height,
                ctx.index,
                operator,
                EventKind::FeeEarned {
                    job: s.job,
                    node: p.node,
                    amount: p.amount,
                },
            );
        }
        job.owed = sub(job.owed, paid, "job owed")?;
        job.paid = add(job.paid, paid, "job paid")?;
        self.totals.fees_paid = add(self.totals.fees_paid, paid, "fees total")?;
        let mut released = paid;
        if s.close {
            job.refunded = add(job.refunded, s.refund, "refund")?;
            job.closed = true;
            released = add(released, s.refund, "released escrow")?;
            if s.refund > 0 {
                self.credit(&job.requester, s.refund)?;
                self.push_event(
                    ctx.height,
                    ctx.index,
                    job.requester,
                    EventKind::Refunded {
                        job: s.job,
                        amount: s.refund,
                    },
                );
            }
            // A closed job accepts no receipts: its credits can go.
            let keys: Vec<_> = self
                .credited
                .range((s.job, 0, [0u8; 32])..=(s.job, u64::MAX, [0xffu8; 32]))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                self.credited.remove(&k);
            }
        }
        self.totals.escrow = sub(self.totals.escrow, released, "escrow total")?;
        self.jobs.insert(s.job, job);
        Ok(())
    }

    fn apply_epoch_close(&mut self, c: &EpochClose, ctx: &EntryCtx) -> Result<(), EntryError> {
        let now = ctx
            .block_time_ms
            .ok_or(EntryError::EpochCloseNeedsBlockTime)?;
        let epoch = self.totals.epoch;
        if c.epoch != epoch {
            return Err(EntryError::EpochMismatch {
                expected: epoch,
                found: c.epoch,
            });
        }
        let ends = self.genesis.epoch_end_ms(epoch);
        if now < ends {
            return Err(EntryError::EpochNotOver {
                epoch,
                ends_at_ms: ends,
                timestamp_ms: now,
            });
        }
        let claims = self.claims_root_now();
        let plan = self.plan_epoch_close(epoch, claims)?;
        if plan.entry != *c {
            return Err(EntryError::EpochCloseMismatch {
                expected: Box::new(plan.entry),
            });
        }
        for (node, operator, w, r) in &plan.rewards {
            self.credit(operator, *r)?;
            let mut n = self
                .nodes
                .get(node)
                .ok_or(EntryError::Internal("rewarded node"))?
                .clone();
            n.rewards_total = add(n.rewards_total, *r, "node rewards")?;
            self.nodes.insert(*node, n);
            self.push_event(
                ctx.height,
                ctx.index,
                *operator,
                EventKind::Reward {
                    epoch,
                    node: *node,
                    weight: *w,
                    total_weight: plan.total_weight,
                    amount: *r,
                },
            );
        }
        let t = &mut self.totals;
        t.pool_remaining = sub(t.pool_remaining, c.emission, "pool")?;
        t.pool_remaining = sub(t.pool_remaining, plan.staking.cut, "pool")?;
        t.reward_dust = c.dust;
        t.rewards_paid = add(t.rewards_paid, c.distributed, "rewards total")?;
        let genesis = Arc::clone(&self.genesis);
        for (i, step) in &plan.vesting {
            let a = &genesis.allocations[*i];
            let mut st = self.allocations.get(&a.name).cloned().unwrap_or_default();
            st.released = add(st.released, *step, "allocation released")?;
            self.allocations.insert(a.name.clone(), st);
            self.totals.locked = sub(self.totals.locked, *step, "locked")?;
            self.totals.released = add(self.totals.released, *step, "released")?;
            match &a.beneficiary {
                Some(b) => {
                    self.credit(b, *step)?;
                    self.push_event(
                        ctx.height,
                        ctx.index,
                        *b,
                        EventKind::Vested {
                            allocation: a.name.clone(),
                            epoch,
                            amount: *step,
                        },
                    );
                }
                None => {
                    self.totals.reserved = add(self.totals.reserved, *step, "reserved")?;
                }
            }
        }
        let nodes: Vec<Did> = self.work.iter().map(|(d, _)| *d).collect();
        for d in nodes {
            self.work.remove(&d);
        }
        // Staking rewards (planned above), tallies, matured unbondings, the
        // next validator set.
        self.close_staking(epoch, &plan.staking, ctx)?;
        self.totals.epoch_weight = 0;
        self.epochs.insert(
            epoch,
            EpochRecord {
                epoch,
                close_height: ctx.height,
                closed_at_ms: now,
                emission: c.emission,
                dust_in: plan.dust_in,
                distributed: c.distributed,
                dust_out: c.dust,
                vested: c.vested,
                rewarded_nodes: c.rewarded_nodes,
                total_weight: plan.total_weight,
                claims_root: c.claims_root,
                claims_count: c.claims_count,
            },
        );
        self.totals.epoch = epoch + 1;
        self.totals.claims_root = c.claims_root;
        self.totals.claims_count = c.claims_count;
        self.claims_root_version = self.claims.version();
        Ok(())
    }

    fn apply_penalty(&mut self, p: &Penalty, ctx: &EntryCtx) -> Result<(), EntryError> {
        text_ok("detail", &p.detail)?;
        let mut n = self
            .nodes
            .get(&p.node)
            .ok_or(EntryError::UnknownNode(p.node))?
            .clone();
        let w = self.work.get(&p.node).copied().unwrap_or(0);
        let forfeited = w.min(p.forfeit_weight);
        if forfeited > 0 {
            if w == forfeited {
                self.work.remove(&p.node);
            } else {
                self.work.insert(p.node, w - forfeited);
            }
            self.totals.epoch_weight = self
                .totals
                .epoch_weight
                .checked_sub(forfeited)
                .ok_or(EntryError::Internal("epoch weight"))?;
        }
        n.penalties += 1;
        let operator = n.operator;
        self.nodes.insert(p.node, n);
        self.note_penalty(&p.node);
        let kind = EventKind::Penalized {
            node: p.node,
            reason: p.reason,
            job: p.job,
            unit: p.unit,
            forfeited_weight: forfeited,
            detail: p.detail.clone(),
        };
        self.push_node_event(ctx, p.node, operator, kind);
        Ok(())
    }

    fn apply_adjust(&mut self, a: &AdjustNode, ctx: &EntryCtx) -> Result<(), EntryError> {
        text_ok("reason", &a.reason)?;
        if a.reward_bps > FULL_BPS {
            return Err(EntryError::InvalidBps(a.reward_bps));
        }
        let mut n = self
            .nodes
            .get(&a.node)
            .ok_or(EntryError::UnknownNode(a.node))?
            .clone();
        n.reward_bps = a.reward_bps;
        let operator = n.operator;
        self.nodes.insert(a.node, n);
        let kind = EventKind::RewardWeightSet {
            node: a.node,
            reward_bps: a.reward_bps,
            reason: a.reason.clone(),
        };
        self.push_node_event(ctx, a.node, operator, kind);
        Ok(())
    }

    /// An event about a node, in the node's history and (when another account
    /// operates it) in its operator's, so a contributor sees why.
    fn push_node_event(&mut self, ctx: &EntryCtx, node: Did, operator: Did, kind: EventKind) {
        if operator != node {
            self.push_event(ctx.height, ctx.index, operator, kind.clone());
        }
        self.push_event(ctx.height, ctx.index, node, kind);
    }

    // ------------------------------------------------------------------
    // Snapshots

    /// Canonical bytes of the committed state (no uncommitted entries allowed).
    pub fn to_snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        if self.has_uncommitted() {
            return Err(SnapshotError::Uncommitted);
        }
        let genesis = lode_proto::canonical::encode(&*self.genesis)
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        let s = SnapshotRef {
            version: SNAPSHOT_VERSION,
            genesis: &genesis,
            chain_id: self.chain_id,
            head_hash: self.head_hash,
            totals: &self.totals,
            accounts: &self.accounts,
            nodes: &self.nodes,
            jobs: &self.jobs,
            credited: &self.credited,
            owed: &self.owed,
            work: &self.work,
            claims: &self.claims,
            allocations: &self.allocations,
            epochs: &self.epochs,
            report_credits: &self.report_credits,
            models: &self.models,
            staking: &self.staking,
        };
        postcard::to_allocvec(&s).map_err(|e| SnapshotError::Decode(e.to_string()))
    }

    /// Rebuilds a state from [`State::to_snapshot`] bytes, recomputing its
    /// commitment from every item (a snapshot is never trusted: the caller
    /// compares [`State::state_root`] with the block header at that height).
    pub fn from_snapshot(bytes: &[u8]) -> Result<State, SnapshotError> {
        let decode = |e: postcard::Error| SnapshotError::Decode(e.to_string());
        let (version, _) = postcard::take_from_bytes::<u32>(bytes).map_err(decode)?;
        let s: SnapshotOwned = match version {
            SNAPSHOT_VERSION => {
                postcard::from_bytes::<SnapshotOwnedV3<staking::StakingMaps>>(bytes)
                    .map_err(decode)?
                    .owned()?
            }
            4 => postcard::from_bytes::<SnapshotOwnedV3<staking::StakingMapsV4>>(bytes)
                .map_err(decode)?
                .owned()?,
            3 => postcard::from_bytes::<SnapshotOwnedV3<staking::StakingMapsV3>>(bytes)
                .map_err(decode)?
                .owned()?,
            2 => postcard::from_bytes::<SnapshotOwnedV2>(bytes)
                .map_err(decode)?
                .into(),
            v => return Err(SnapshotError::Version(v)),
        };
        let mut st = State {
            genesis: Arc::new(s.genesis),
            chain_id: s.chain_id,
            head_hash: s.head_hash,
            totals: s.totals.clone(),
            accounts: s.accounts,
            nodes: s.nodes,
            jobs: s.jobs,
            credited: s.credited,
            owed: s.owed,
            work: s.work,
            claims: s.claims,
            allocations: s.allocations,
            epochs: s.epochs,
            report_credits: s.report_credits,
            models: s.models,
            staking: s.staking,
            lthash: LtHash::new(),
            committed_totals: s.totals,
            committed_root: Hash32::default(),
            events: None,
            claims_root_version: u64::MAX,
            claims_cache: None,
        };
        st.lthash = st.full_lthash();
        st.committed_root = root_of(&st.committed_totals, &st.lthash);
        Ok(st)
    }
}

/// 2: report credits and published models. 3: the genesis as its canonical
/// bytes (its binary form ends with optional sections, so it must be the last
/// value of what holds it) and the staking/governance maps. 4: the epochs
/// jailed targets were jailed in (`jailed_epochs`). 5: the job holders of a
/// replicated chain (`job_gateways`). Versions 2 to 4 are still read.
const SNAPSHOT_VERSION: u32 = 5;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    genesis: &'a Vec<u8>,
    chain_id: Hash32,
    head_hash: Hash32,
    totals: &'a Totals,
    accounts: &'a TrackedMap<Did, Account>,
    nodes: &'a TrackedMap<Did, Node>,
    jobs: &'a TrackedMap<JobId, Job>,
    credited: &'a TrackedMap<(JobId, u64, [u8; 32]), ()>,
    owed: &'a TrackedMap<(JobId, [u8; 32]), Amount>,
    work: &'a TrackedMap<Did, u128>,
    claims: &'a TrackedMap<EvmAddress, Amount>,
    allocations: &'a TrackedMap<String, AllocationState>,
    epochs: &'a TrackedMap<u64, EpochRecord>,
    report_credits: &'a TrackedMap<(Hash32, [u8; 32]), u64>,
    models: &'a TrackedMap<String, models::ModelRecord>,
    staking: &'a staking::StakingMaps,
}

struct SnapshotOwned {
    genesis: Genesis,
    chain_id: Hash32,
    head_hash: Hash32,
    totals: Totals,
    accounts: TrackedMap<Did, Account>,
    nodes: TrackedMap<Did, Node>,
    jobs: TrackedMap<JobId, Job>,
    credited: TrackedMap<(JobId, u64, [u8; 32]), ()>,
    owed: TrackedMap<(JobId, [u8; 32]), Amount>,
    work: TrackedMap<Did, u128>,
    claims: TrackedMap<EvmAddress, Amount>,
    allocations: TrackedMap<String, AllocationState>,
    epochs: TrackedMap<u64, EpochRecord>,
    report_credits: TrackedMap<(Hash32, [u8; 32]), u64>,
    models: TrackedMap<String, models::ModelRecord>,
    staking: staking::StakingMaps,
}

/// A version 3 or 4 snapshot; `S` is the staking maps of that version.
#[derive(Deserialize)]
struct SnapshotOwnedV3<S> {
    _version: u32,
    genesis: Vec<u8>,
    chain_id: Hash32,
    head_hash: Hash32,
    totals: Totals,
    accounts: TrackedMap<Did, Account>,
    nodes: TrackedMap<Did, Node>,
    jobs: TrackedMap<JobId, Job>,
    credited: TrackedMap<(JobId, u64, [u8; 32]), ()>,
    owed: TrackedMap<(JobId, [u8; 32]), Amount>,
    work: TrackedMap<Did, u128>,
    claims: TrackedMap<EvmAddress, Amount>,
    allocations: TrackedMap<String, AllocationState>,
    epochs: TrackedMap<u64, EpochRecord>,
    report_credits: TrackedMap<(Hash32, [u8; 32]), u64>,
    models: TrackedMap<String, models::ModelRecord>,
    staking: S,
}

impl<S: Into<staking::StakingMaps>> SnapshotOwnedV3<S> {
    fn owned(self) -> Result<SnapshotOwned, SnapshotError> {
        let genesis: Genesis = lode_proto::canonical::decode(&self.genesis)
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        Ok(SnapshotOwned {
            genesis,
            chain_id: self.chain_id,
            head_hash: self.head_hash,
            totals: self.totals,
            accounts: self.accounts,
            nodes: self.nodes,
            jobs: self.jobs,
            credited: self.credited,
            owed: self.owed,
            work: self.work,
            claims: self.claims,
            allocations: self.allocations,
            epochs: self.epochs,
            report_credits: self.report_credits,
            models: self.models,
            staking: self.staking.into(),
        })
    }
}

/// A version 2 snapshot (before staking): the genesis inline, in its legacy form.
#[derive(Deserialize)]
struct SnapshotOwnedV2 {
    _version: u32,
    genesis: crate::genesis::GenesisV1,
    chain_id: Hash32,
    head_hash: Hash32,
    totals: Totals,
    accounts: TrackedMap<Did, Account>,
    nodes: TrackedMap<Did, Node>,
    jobs: TrackedMap<JobId, Job>,
    credited: TrackedMap<(JobId, u64, [u8; 32]), ()>,
    owed: TrackedMap<(JobId, [u8; 32]), Amount>,
    work: TrackedMap<Did, u128>,
    claims: TrackedMap<EvmAddress, Amount>,
    allocations: TrackedMap<String, AllocationState>,
    epochs: TrackedMap<u64, EpochRecord>,
    report_credits: TrackedMap<(Hash32, [u8; 32]), u64>,
    models: TrackedMap<String, models::ModelRecord>,
}

impl From<SnapshotOwnedV2> for SnapshotOwned {
    fn from(s: SnapshotOwnedV2) -> Self {
        SnapshotOwned {
            genesis: s.genesis.into(),
            chain_id: s.chain_id,
            head_hash: s.head_hash,
            totals: s.totals,
            accounts: s.accounts,
            nodes: s.nodes,
            jobs: s.jobs,
            credited: s.credited,
            owed: s.owed,
            work: s.work,
            claims: s.claims,
            allocations: s.allocations,
            epochs: s.epochs,
            report_credits: s.report_credits,
            models: s.models,
            staking: staking::StakingMaps::default(),
        }
    }
}

/// Why a snapshot could not be taken or loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("state has uncommitted entries")]
    Uncommitted,
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    #[error("snapshot version {0} is not supported")]
    Version(u32),
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    /// The version 2 layout: the genesis inline (a genesis without the
    /// optional sections serializes to exactly its legacy form), no staking maps.
    #[derive(Serialize)]
    struct V2<'a> {
        version: u32,
        genesis: &'a Genesis,
        chain_id: Hash32,
        head_hash: Hash32,
        totals: &'a Totals,
        accounts: &'a TrackedMap<Did, Account>,
        nodes: &'a TrackedMap<Did, Node>,
        jobs: &'a TrackedMap<JobId, Job>,
        credited: &'a TrackedMap<(JobId, u64, [u8; 32]), ()>,
        owed: &'a TrackedMap<(JobId, [u8; 32]), Amount>,
        work: &'a TrackedMap<Did, u128>,
        claims: &'a TrackedMap<EvmAddress, Amount>,
        allocations: &'a TrackedMap<String, AllocationState>,
        epochs: &'a TrackedMap<u64, EpochRecord>,
        report_credits: &'a TrackedMap<(Hash32, [u8; 32]), u64>,
        models: &'a TrackedMap<String, models::ModelRecord>,
    }

    #[test]
    fn version_2_and_3_snapshots_still_load() {
        let k = lode_proto::Keypair::from_secret_bytes(&[9; 32]);
        let (p, _) = crate::Producer::genesis(&Genesis::default_genesis(), k).unwrap();
        let s = p.state();
        let v2 = postcard::to_allocvec(&V2 {
            version: 2,
            genesis: &s.genesis,
            chain_id: s.chain_id,
            head_hash: s.head_hash,
            totals: &s.totals,
            accounts: &s.accounts,
            nodes: &s.nodes,
            jobs: &s.jobs,
            credited: &s.credited,
            owed: &s.owed,
            work: &s.work,
            claims: &s.claims,
            allocations: &s.allocations,
            epochs: &s.epochs,
            report_credits: &s.report_credits,
            models: &s.models,
        })
        .unwrap();
        let back = State::from_snapshot(&v2).unwrap();
        assert_eq!(back.state_root(), s.state_root());
        assert_eq!(back.genesis(), s.genesis());
        let now = s.to_snapshot().unwrap();
        let v5 = State::from_snapshot(&now).unwrap();
        assert_eq!(v5.state_root(), s.state_root());
        // Version 4: the same layout without the trailing (here empty, one
        // zero byte) `job_gateways` map; version 3 also without `jailed_epochs`.
        assert_eq!((now[0], now.last()), (5, Some(&0)));
        let mut v4 = now.clone();
        v4[0] = 4;
        v4.pop();
        assert_eq!(
            State::from_snapshot(&v4).unwrap().state_root(),
            s.state_root()
        );
        let mut v3 = v4.clone();
        v3[0] = 3;
        v3.pop();
        let v3 = State::from_snapshot(&v3).unwrap();
        assert_eq!(v3.state_root(), s.state_root());
        assert_eq!(
            State::from_snapshot(&postcard::to_allocvec(&1u32).unwrap()).unwrap_err(),
            SnapshotError::Version(1)
        );
    }
}
