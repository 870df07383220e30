//! Ledger entries: what a block records.
//!
//! Two kinds of authority:
//! * **Account-originated** entries ([`RegisterNode`], [`Transfer`],
//!   [`JobEscrow`], [`Withdraw`]) are [`Envelope`]s signed by the account, each
//!   kind under its own domain tag (`Message::KIND`). They bind the chain (the
//!   genesis block hash) so a signature cannot be replayed on another chain, and
//!   the envelope nonce is the account's sequence number (except `JobEscrow`,
//!   whose job id is unique forever) so it cannot be replayed on this one.
//! * **Validator-authored** entries (receipts, settlements, epoch closes,
//!   penalties, node adjustments) carry no signature of their own: the block
//!   signature of a genesis validator authorizes them.
//!
//! Every entry is encoded canonically (`lode_proto::canonical`) in blocks.

use crate::amount::{Amount, serde_amount};
use crate::genesis::Genesis;
use lode_proto::canonical::{self, CanonicalError};
use lode_proto::envelope::Payload;
use lode_proto::{Did, Envelope, EvmAddress, Hash32, Keypair, Message};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Deserializing a `Did` validates its curve point (~8 µs). Receipts name the
/// same few thousand nodes over and over, so binary decoding of node keys in
/// validator-authored entries goes through a small per-thread cache of keys
/// already validated. The encoding is unchanged (32 raw bytes), and only
/// validated keys are ever cached.
mod cached_did {
    use lode_proto::Did;
    use serde::{Deserialize, Deserializer};
    use std::cell::RefCell;
    use std::collections::HashMap;

    const CAPACITY: usize = 1 << 16;

    thread_local! {
        static CACHE: RefCell<HashMap<[u8; 32], Did>> = RefCell::new(HashMap::new());
    }

    fn lookup<E: serde::de::Error>(bytes: [u8; 32]) -> Result<Did, E> {
        CACHE.with(|c| {
            if let Some(d) = c.borrow().get(&bytes) {
                return Ok(*d);
            }
            let d = Did::from_public_key_bytes(bytes).map_err(E::custom)?;
            let mut c = c.borrow_mut();
            if c.len() >= CAPACITY {
                c.clear();
            }
            c.insert(bytes, d);
            Ok(d)
        })
    }

    /// A `Did` decoded through the cache.
    pub struct CachedDid(pub Did);

    impl<'de> Deserialize<'de> for CachedDid {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            if d.is_human_readable() {
                return Ok(CachedDid(Did::deserialize(d)?));
            }
            let bytes = <[u8; 32]>::deserialize(d)?;
            Ok(CachedDid(lookup(bytes)?))
        }
    }

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<Did, D::Error> {
        Ok(CachedDid::deserialize(d)?.0)
    }

    pub fn many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Did>, D::Error> {
        Ok(Vec::<CachedDid>::deserialize(d)?
            .into_iter()
            .map(|c| c.0)
            .collect())
    }
}

/// A job's identifier (chosen by the gateway, e.g. the hash of the signed submission).
pub type JobId = Hash32;

/// Longest free-text field (memo, reason, detail) in bytes.
pub const MAX_TEXT_LEN: usize = 512;

/// Most nodes in a receipt's quorum.
pub const MAX_QUORUM: usize = 64;

/// The kind of a verified contribution. Receipts carry a kind and an amount so
/// that epoch splits can weight kinds (a genesis parameter) without a format
/// change. Variants are only ever appended (their index is the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContributionKind {
    /// Verified compute, in wasmtime fuel.
    Fuel,
    /// Time online, in seconds (not measured yet).
    Uptime,
    /// Data served, in bytes (not measured yet).
    Data,
    /// Storage provided, in byte-epochs (not measured yet).
    Storage,
    /// Confirmed scam/phishing reports from browser nodes: one per domain per
    /// Sybil group (see [`ReportCredit`]).
    Report,
}

impl ContributionKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Fuel => "fuel",
            Self::Uptime => "uptime",
            Self::Data => "data",
            Self::Storage => "storage",
            Self::Report => "report",
        }
    }
}

/// Why a node was penalized. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyReason {
    /// Returned a result the quorum rejected.
    InvalidResult,
    /// Disagrees with quorums more often than the threshold.
    QuorumDisagreement,
    /// Took work and let it expire, repeatedly.
    ExpiredWork,
    /// Claimed a speed impossible for its measured benchmark, or returned
    /// results faster than the work could have run.
    ImpossibleSpeed,
    /// Shares an IP address or operator with other nodes (Sybil policy).
    SharedIdentity,
    /// Anything else; the detail text says what.
    Other,
    /// Reported a site as harmful that was later judged benign.
    BenignReport,
    /// Failed a storage audit (wrong or missing proof, missed deadline); the
    /// detail holds the challenge seed and what was wrong, so anyone can re-check.
    FailedAudit,
}

impl PenaltyReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidResult => "invalid_result",
            Self::QuorumDisagreement => "quorum_disagreement",
            Self::ExpiredWork => "expired_work",
            Self::ImpossibleSpeed => "impossible_speed",
            Self::SharedIdentity => "shared_identity",
            Self::Other => "other",
            Self::BenignReport => "benign_report",
            Self::FailedAudit => "failed_audit",
        }
    }
}

// ---------------------------------------------------------------------------
// Account-originated messages (signed).

/// A node announces itself: who operates it (the account its fees and rewards
/// are credited to) and the EVM address it intends to withdraw to. Signed by
/// the node's own key; sequence = the node account's nonce. Re-registering
/// updates operator and payout address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterNode {
    pub chain: Hash32,
    pub operator: Did,
    pub payout: EvmAddress,
}

impl Message for RegisterNode {
    const KIND: &'static str = "lode/ledger/register-node/v1";
}

/// Moves tokens between accounts. Signed by the sender; sequence = its nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub chain: Hash32,
    pub to: Did,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
    pub memo: String,
}

impl Message for Transfer {
    const KIND: &'static str = "lode/ledger/transfer/v1";
}

/// A requester locks `amount` for job `job`, paying `price_per_unit` per unit
/// of verified contribution (fuel). Signed by the requester. The envelope nonce
/// is not a sequence here: a job id can be escrowed once, ever, so the entry
/// cannot be replayed and requesters can submit jobs concurrently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEscrow {
    pub chain: Hash32,
    pub job: JobId,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
    #[serde(with = "serde_amount")]
    pub price_per_unit: Amount,
}

impl Message for JobEscrow {
    const KIND: &'static str = "lode/ledger/job-escrow/v1";
}

/// Tokens leave the network: the account's balance decreases and the
/// cumulative amount claimable by `to` on an EVM chain increases. Signed by
/// the account; sequence = its nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdraw {
    pub chain: Hash32,
    pub to: EvmAddress,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
}

impl Message for Withdraw {
    const KIND: &'static str = "lode/ledger/withdraw/v1";
}

/// A requester stores a file: the manifest (size, coding, content hash and
/// one Merkle root per share) and an escrow of `amount` for `term_hours`, paying
/// `price_per_byte_hour` per byte-hour of audited storage (receipts of kind
/// [`ContributionKind::Storage`]). The file id is also the escrow's id (unique
/// forever, like a job's), so the nonce is not a sequence. `amount` must be
/// exactly [`lode_storage::Manifest::required_escrow`]. Signed by the requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageContract {
    pub chain: Hash32,
    pub manifest: lode_storage::Manifest,
    pub term_hours: u64,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
    #[serde(with = "serde_amount")]
    pub price_per_byte_hour: Amount,
}

impl Message for StorageContract {
    const KIND: &'static str = "lode/ledger/storage-contract/v1";
}

// ---------------------------------------------------------------------------
// Staking and governance (signed by the staker / voter; sequence = its nonce).
// See `docs/design/staking.md`.

/// Bonds `amount` of the signer's liquid balance as stake behind itself
/// (a self-bond: what makes an account a validator candidate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bond {
    pub chain: Hash32,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
}

impl Message for Bond {
    const KIND: &'static str = "lode/ledger/bond/v1";
}

/// Bonds `amount` of the signer's liquid balance behind `to`: a registered
/// node, a genesis validator, or an account with a self-bond.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegate {
    pub chain: Hash32,
    pub to: Did,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
}

impl Message for Delegate {
    const KIND: &'static str = "lode/ledger/delegate/v1";
}

/// Starts unbonding `amount` of the signer's stake behind `from` (the signer
/// itself for a self-bond). The tokens stay slashable and become liquid only
/// after `unbonding_epochs` epoch closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbond {
    pub chain: Hash32,
    pub from: Did,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
}

impl Message for Unbond {
    const KIND: &'static str = "lode/ledger/unbond/v1";
}

/// Sets the commission (basis points, at most the genesis maximum) that
/// `target` keeps from its stakers' rewards. Signed by the target itself or,
/// for a node, by its operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetCommission {
    pub chain: Hash32,
    pub target: Did,
    pub bps: u32,
}

impl Message for SetCommission {
    const KIND: &'static str = "lode/ledger/set-commission/v1";
}

/// Puts the signer, a jailed stake target (validator candidate or node), back
/// in play: it may re-enter the validator set at the next epoch boundary and
/// earn staking rewards again. Allowed from the epoch after the one it was
/// jailed in; never after a double sign (tombstoned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unjail {
    pub chain: Hash32,
}

impl Message for Unjail {
    const KIND: &'static str = "lode/ledger/unjail/v1";
}

/// A gateway's batch of entries on a replicated chain (issue 14): the
/// gateway-made entries (work receipts, settlements, penalties, …) it needs
/// on the ledger, and the account entries (escrows, storage contracts) it
/// took from its requesters, under one signature, so that validators check
/// one signature per batch, not per receipt. Signed by a gateway the genesis
/// lists; sequence = its nonce, so a batch is included at most once (a
/// resubmission after a crash is refused as a stale nonce) and a gateway's
/// batches apply in its order. All or nothing: one bad entry rejects the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayBatch {
    pub chain: Hash32,
    pub entries: Vec<Entry>,
}

impl Message for GatewayBatch {
    const KIND: &'static str = "lode/ledger/gateway-batch/v1";
}

/// Most entries in one gateway batch.
pub const MAX_BATCH_ENTRIES: usize = 20_000;

/// A governable parameter change, or a treasury spend. Only these (a typed
/// whitelist); variants are only ever appended. `None` for a gateway knob
/// means "the gateway's own configuration applies".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamChange {
    /// Default quorum (agreeing replicas) of a job.
    DefaultQuorum(Option<u32>),
    /// Default replicas of a job.
    DefaultReplicas(Option<u32>),
    /// Share of the emission paid to stakers (bps, <= 5000).
    StakingShareBps(u32),
    /// Reward weight of a contribution kind (the reward split between kinds).
    ContributionWeight { kind: ContributionKind, weight: u64 },
    /// Ceiling on declared speed (fuel per second) accepted in submissions.
    SpeedCeiling(Option<u64>),
    /// Sybil/region policy: region spread, permille (0 = off).
    RegionSpreadPermille(Option<u32>),
    /// k of the browser reports' k-anonymity.
    KAnonymity(Option<u32>),
    /// Size of the validator set computed from stake.
    ValidatorSetSize(u32),
    /// Epoch closes an unbonding waits.
    UnbondingEpochs(u64),
    /// Pays `amount` from the treasury to `to`.
    TreasurySpend {
        to: Did,
        #[serde(with = "serde_amount")]
        amount: Amount,
    },
}

/// Proposes `change`, locking `deposit` (at least the genesis minimum) of the
/// signer's balance until the tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Propose {
    pub chain: Hash32,
    pub change: ParamChange,
    #[serde(with = "serde_amount")]
    pub deposit: Amount,
    pub title: String,
}

impl Message for Propose {
    const KIND: &'static str = "lode/ledger/propose/v1";
}

/// A vote option (Cosmos x/gov).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteOption {
    Yes,
    No,
    Abstain,
    /// No with veto: a vetoed proposal's deposit goes to the treasury.
    Veto,
}

/// Votes on proposal `proposal`, weighted at the tally by the signer's bonded
/// stake. A second vote replaces the first (as in Cosmos).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub chain: Hash32,
    pub proposal: u64,
    pub option: VoteOption,
}

impl Message for Vote {
    const KIND: &'static str = "lode/ledger/vote/v1";
}

/// A node's signed claim of its result for a unit: the evidence a
/// [`Slash`] for a proven fault must carry. Never an entry by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultClaim {
    pub chain: Hash32,
    pub job: JobId,
    pub unit: u64,
    /// Digest of (output, exit code, fuel) the node reported.
    pub result: Hash32,
}

impl Message for ResultClaim {
    const KIND: &'static str = "lode/ledger/result-claim/v1";
}

impl ResultClaim {
    /// The claim of a result of unit `unit` of `job`: what replicas compare
    /// (the output's SHA-256, exit code, fuel).
    pub fn of_result(
        chain: Hash32,
        job: JobId,
        unit: u32,
        output_hash: &Hash32,
        exit_code: i32,
        fuel_used: u64,
    ) -> Self {
        Self {
            chain,
            job,
            unit: u64::from(unit),
            result: Self::result_hash(output_hash, exit_code, fuel_used),
        }
    }

    /// The `result` of a claim: SHA-256 over a domain tag, the output's SHA-256,
    /// the exit code and the fuel used (what replicas are compared on).
    pub fn result_hash(output_hash: &Hash32, exit_code: i32, fuel_used: u64) -> Hash32 {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(b"lode/result/v1");
        b.extend_from_slice(&output_hash.0);
        b.extend_from_slice(&exit_code.to_le_bytes());
        b.extend_from_slice(&fuel_used.to_le_bytes());
        Hash32::sha256(&b)
    }

    /// The claim as a standalone envelope: nonce 0, timestamp 0, so that the
    /// node's signature alone (sent with its result) rebuilds it.
    fn payload(&self) -> Vec<u8> {
        canonical::encode(&Payload {
            nonce: 0,
            timestamp_ms: 0,
            message: self,
        })
        .unwrap_or_default()
    }

    /// The node's signature of this claim.
    pub fn sign(&self, key: &Keypair) -> lode_proto::Signature {
        key.sign_tagged(Self::KIND, &self.payload())
    }

    /// The envelope `signer`'s `signature` makes of this claim, if it verifies.
    pub fn envelope(&self, signer: Did, signature: lode_proto::Signature) -> Option<Envelope> {
        let payload = self.payload();
        signer
            .verify_tagged(Self::KIND, &payload, &signature)
            .then(|| Envelope {
                kind: Self::KIND.to_string(),
                payload,
                signer,
                signature,
            })
    }
}

/// Why stake is slashed. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlashReason {
    /// A validator signed two different blocks at one height (also jails).
    DoubleSign,
    /// A validator missed too many blocks in an epoch (also jails).
    Downtime,
    /// A node signed a result proven wrong.
    ProvenFault,
}

/// The proof a [`Slash`] carries; the ledger checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlashEvidence {
    /// Two headers at one height with different hashes, both signed by the offender.
    DoubleSign {
        a: Box<crate::block::BlockHeader>,
        sig_a: lode_proto::Signature,
        b: Box<crate::block::BlockHeader>,
        sig_b: lode_proto::Signature,
    },
    /// Blocks the validator signed out of those it was expected to sign in `epoch`.
    Downtime {
        epoch: u64,
        signed: u64,
        expected: u64,
    },
    /// The node's signed [`ResultClaim`]; `accepted` is the verified result of
    /// the unit and `referee` the validator's own deterministic re-execution,
    /// which must equal `accepted` (a quorum alone never proves a fault).
    ProvenFault {
        claim: Envelope,
        accepted: Hash32,
        referee: Hash32,
    },
    /// Two consensus votes of one type at one height and round for
    /// different blocks (or a block and nil), both signed by the offender
    /// (`lode_ledger::consensus::vote_sign_bytes` on this chain): what a BFT
    /// validator set sees of a double signer.
    DoubleVote {
        vote: crate::consensus::VoteType,
        height: u64,
        round: u32,
        a: Option<Hash32>,
        sig_a: lode_proto::Signature,
        b: Option<Hash32>,
        sig_b: lode_proto::Signature,
    },
}

/// Slashes `fraction_bps` of the stake (bonded and unbonding, of the target
/// and of every delegator behind it) of `who`; the tokens go to the treasury.
/// Validator-authored, like [`Penalty`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slash {
    pub who: Did,
    pub fraction_bps: u32,
    pub reason: SlashReason,
    pub evidence: SlashEvidence,
}

/// A message that is recorded as a signed ledger entry.
pub trait SignedEntry: Message + Clone {
    /// Wraps a signed envelope of this message kind as an entry.
    fn wrap(envelope: Envelope) -> Entry;
}

impl SignedEntry for RegisterNode {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::RegisterNode(envelope)
    }
}
impl SignedEntry for Transfer {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Transfer(envelope)
    }
}
impl SignedEntry for JobEscrow {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::JobEscrow(envelope)
    }
}
impl SignedEntry for Withdraw {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Withdraw(envelope)
    }
}
impl SignedEntry for StorageContract {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::StorageContract(envelope)
    }
}
impl SignedEntry for Bond {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Bond(envelope)
    }
}
impl SignedEntry for Delegate {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Delegate(envelope)
    }
}
impl SignedEntry for Unbond {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Unbond(envelope)
    }
}
impl SignedEntry for SetCommission {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::SetCommission(envelope)
    }
}
impl SignedEntry for Propose {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Propose(envelope)
    }
}
impl SignedEntry for Vote {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Vote(envelope)
    }
}
impl SignedEntry for Unjail {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::Unjail(envelope)
    }
}
impl SignedEntry for GatewayBatch {
    fn wrap(envelope: Envelope) -> Entry {
        Entry::GatewayBatch(envelope)
    }
}

// ---------------------------------------------------------------------------
// Validator-authored entries.

/// One verified replica of one work unit: `node` ran unit `unit` of `job`,
/// producing `result`, and the nodes in `quorum` (sorted, including `node`)
/// agreed on it. Credits `amount` of `kind` to the node for this epoch and a
/// fee of `amount * price_per_unit` owed to it from the job's escrow.
/// A (job, unit, node) is credited at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkReceipt {
    pub job: JobId,
    pub unit: u64,
    #[serde(deserialize_with = "cached_did::one")]
    pub node: Did,
    pub kind: ContributionKind,
    pub amount: u64,
    pub result: Hash32,
    #[serde(deserialize_with = "cached_did::many")]
    pub quorum: Vec<Did>,
}

/// A payment to a node's operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    #[serde(deserialize_with = "cached_did::one")]
    pub node: Did,
    #[serde(with = "serde_amount")]
    pub amount: Amount,
}

/// Pays a job's owed fees from escrow to the nodes' operators (exactly what
/// the receipts owe, sorted by node) and, when `close`, refunds the rest of the
/// escrow to the requester and closes the job. [`crate::State::settlement`]
/// builds the exact entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub job: JobId,
    pub payouts: Vec<Payout>,
    #[serde(with = "serde_amount")]
    pub refund: Amount,
    pub close: bool,
}

/// Closes epoch `epoch`: releases its emission to contributors, releases
/// vesting, and publishes the claims root. Every figure is recomputed when
/// applied and must match; [`crate::State::epoch_close`] builds the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochClose {
    pub epoch: u64,
    /// Emission released from the contributors' pool (0 if nobody contributed).
    #[serde(with = "serde_amount")]
    pub emission: Amount,
    /// Paid to contributors (emission plus dust carried in, minus dust carried out).
    #[serde(with = "serde_amount")]
    pub distributed: Amount,
    /// Rounding dust carried to the next epoch.
    #[serde(with = "serde_amount")]
    pub dust: Amount,
    /// Released by vesting schedules.
    #[serde(with = "serde_amount")]
    pub vested: Amount,
    /// Nodes that received a reward.
    pub rewarded_nodes: u64,
    /// OpenZeppelin StandardMerkleTree root over (payout address, cumulative
    /// withdrawn); all zero when nothing has been withdrawn yet.
    pub claims_root: Hash32,
    /// Leaves in that tree.
    pub claims_count: u64,
}

/// Withholds rewards from a node for a stated reason: forfeits up to
/// `forfeit_weight` of the node's current-epoch weight (the forfeited share
/// goes to everyone else through the pro-rata split).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalty {
    #[serde(deserialize_with = "cached_did::one")]
    pub node: Did,
    pub reason: PenaltyReason,
    pub job: Option<JobId>,
    pub unit: Option<u64>,
    pub forfeit_weight: u128,
    pub detail: String,
}

/// Sets a node's reward multiplier in basis points (10,000 = full weight),
/// applied to its whole epoch at close: down-weighting flagged nodes, or
/// making a Sybil group share one node's weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustNode {
    #[serde(deserialize_with = "cached_did::one")]
    pub node: Did,
    pub reward_bps: u32,
    pub reason: String,
}

/// Most report units one [`ReportCredit`] may carry.
pub const MAX_REPORT_CREDIT: u64 = 1_000;

/// A browser node's report of a scam or phishing domain was confirmed: credits
/// `amount` units of [`ContributionKind::Report`] to the node for this epoch.
/// Written by the gateway that aggregated the reports, once per (domain, node):
/// the ledger refuses a second credit for the same pair. `domain` is the
/// SHA-256 of the registrable domain (as the threat feed keys it); `groups` is
/// how many distinct Sybil groups reported it when it was confirmed; `detail`
/// says by which rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportCredit {
    pub domain: Hash32,
    #[serde(deserialize_with = "cached_did::one")]
    pub node: Did,
    pub amount: u64,
    pub groups: u32,
    pub detail: String,
}

/// The network's community model `name` (e.g. the scam classifier, `lode-guard`)
/// is now the one hashing to `sha256` (the SHA-256 its self-hashed file records).
/// Browsers check the model a gateway serves against this before using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishModel {
    pub name: String,
    pub sha256: Hash32,
    pub feature_version: u32,
    pub detail: String,
}

/// Share `share` of stored file `file` is now held by `node` (placement or
/// repair); the node confirmed it holds bytes with the manifest's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageShare {
    pub file: JobId,
    pub share: u16,
    #[serde(deserialize_with = "cached_did::one")]
    pub node: Did,
    /// Why (placement, repair and what it replaced).
    pub reason: String,
}

/// Full weight in basis points.
pub const FULL_BPS: u32 = 10_000;

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// Tokenomics and validators; only in block 0.
    Genesis(Box<Genesis>),
    RegisterNode(Envelope),
    Transfer(Envelope),
    JobEscrow(Envelope),
    Withdraw(Envelope),
    WorkReceipt(WorkReceipt),
    Settlement(Settlement),
    EpochClose(EpochClose),
    Penalty(Penalty),
    AdjustNode(AdjustNode),
    ReportCredit(ReportCredit),
    PublishModel(PublishModel),
    /// A storage contract (signed [`StorageContract`]).
    StorageContract(Envelope),
    StorageShare(StorageShare),
    /// Staking (signed [`Bond`], [`Delegate`], [`Unbond`], [`SetCommission`]).
    Bond(Envelope),
    Delegate(Envelope),
    Unbond(Envelope),
    SetCommission(Envelope),
    /// Governance (signed [`Propose`], [`Vote`]).
    Propose(Envelope),
    Vote(Envelope),
    Slash(Slash),
    /// A jailed stake target back in play (signed [`Unjail`]).
    Unjail(Envelope),
    /// A gateway's signed batch of entries (signed [`GatewayBatch`]; replicated chains).
    GatewayBatch(Envelope),
}

impl Entry {
    /// Signs an account-originated message. `nonce` is the signer's next
    /// sequence number ([`crate::State::next_nonce`]; any value for `JobEscrow`).
    pub fn sign<T: SignedEntry>(
        key: &Keypair,
        nonce: u64,
        timestamp_ms: u64,
        message: &T,
    ) -> Result<Entry, CanonicalError> {
        Ok(T::wrap(Envelope::seal(key, message, nonce, timestamp_ms)?))
    }

    /// Short name of the entry kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Entry::Genesis(_) => "genesis",
            Entry::RegisterNode(_) => "register_node",
            Entry::Transfer(_) => "transfer",
            Entry::JobEscrow(_) => "job_escrow",
            Entry::Withdraw(_) => "withdraw",
            Entry::WorkReceipt(_) => "work_receipt",
            Entry::Settlement(_) => "settlement",
            Entry::EpochClose(_) => "epoch_close",
            Entry::Penalty(_) => "penalty",
            Entry::AdjustNode(_) => "adjust_node",
            Entry::ReportCredit(_) => "report_credit",
            Entry::PublishModel(_) => "publish_model",
            Entry::StorageContract(_) => "storage_contract",
            Entry::StorageShare(_) => "storage_share",
            Entry::Bond(_) => "bond",
            Entry::Delegate(_) => "delegate",
            Entry::Unbond(_) => "unbond",
            Entry::SetCommission(_) => "set_commission",
            Entry::Propose(_) => "propose",
            Entry::Vote(_) => "vote",
            Entry::Slash(_) => "slash",
            Entry::Unjail(_) => "unjail",
            Entry::GatewayBatch(_) => "gateway_batch",
        }
    }

    /// The signed envelope, for account-originated entries.
    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Entry::RegisterNode(e)
            | Entry::Transfer(e)
            | Entry::JobEscrow(e)
            | Entry::Withdraw(e)
            | Entry::StorageContract(e)
            | Entry::Bond(e)
            | Entry::Delegate(e)
            | Entry::Unbond(e)
            | Entry::SetCommission(e)
            | Entry::Propose(e)
            | Entry::Vote(e)
            | Entry::Unjail(e)
            | Entry::GatewayBatch(e) => Some(e),
            _ => None,
        }
    }

    /// Checks the signature of an account-originated entry (kind tag included).
    /// `true` for validator-authored entries, which carry none.
    pub fn signature_valid(&self) -> bool {
        match self {
            Entry::RegisterNode(e) => sig_ok::<RegisterNode>(e),
            Entry::Transfer(e) => sig_ok::<Transfer>(e),
            Entry::JobEscrow(e) => sig_ok::<JobEscrow>(e),
            Entry::Withdraw(e) => sig_ok::<Withdraw>(e),
            Entry::StorageContract(e) => sig_ok::<StorageContract>(e),
            Entry::Bond(e) => sig_ok::<Bond>(e),
            Entry::Delegate(e) => sig_ok::<Delegate>(e),
            Entry::Unbond(e) => sig_ok::<Unbond>(e),
            Entry::SetCommission(e) => sig_ok::<SetCommission>(e),
            Entry::Propose(e) => sig_ok::<Propose>(e),
            Entry::Vote(e) => sig_ok::<Vote>(e),
            Entry::Unjail(e) => sig_ok::<Unjail>(e),
            // The batch's signature, then the account entries inside it
            // (batches do not nest: that also bounds this recursion).
            Entry::GatewayBatch(e) => {
                sig_ok::<GatewayBatch>(e)
                    && decode_payload::<GatewayBatch>(e).is_ok_and(|p| {
                        p.message.entries.iter().all(|inner| {
                            !matches!(inner, Entry::GatewayBatch(_)) && inner.signature_valid()
                        })
                    })
            }
            _ => true,
        }
    }

    /// A JSON view with signed payloads decoded (for `lode ledger show`).
    /// Does not check signatures.
    pub fn to_view(&self) -> serde_json::Value {
        use serde_json::json;
        fn signed<T: Message + Serialize>(e: &Envelope) -> serde_json::Value {
            match decode_payload::<T>(e) {
                Ok(p) => json!({
                    "signer": e.signer.to_string(),
                    "nonce": p.nonce,
                    "timestamp_ms": p.timestamp_ms,
                    "message": p.message,
                }),
                Err(err) => json!({ "signer": e.signer.to_string(), "error": err.to_string() }),
            }
        }
        let body = match self {
            Entry::Genesis(g) => serde_json::to_value(g).unwrap_or_default(),
            Entry::RegisterNode(e) => signed::<RegisterNode>(e),
            Entry::Transfer(e) => signed::<Transfer>(e),
            Entry::JobEscrow(e) => signed::<JobEscrow>(e),
            Entry::Withdraw(e) => signed::<Withdraw>(e),
            Entry::WorkReceipt(r) => serde_json::to_value(r).unwrap_or_default(),
            Entry::Settlement(s) => serde_json::to_value(s).unwrap_or_default(),
            Entry::EpochClose(c) => serde_json::to_value(c).unwrap_or_default(),
            Entry::Penalty(p) => serde_json::to_value(p).unwrap_or_default(),
            Entry::AdjustNode(a) => serde_json::to_value(a).unwrap_or_default(),
            Entry::ReportCredit(r) => serde_json::to_value(r).unwrap_or_default(),
            Entry::PublishModel(m) => serde_json::to_value(m).unwrap_or_default(),
            Entry::StorageContract(e) => signed::<StorageContract>(e),
            Entry::StorageShare(s) => serde_json::to_value(s).unwrap_or_default(),
            Entry::Bond(e) => signed::<Bond>(e),
            Entry::Delegate(e) => signed::<Delegate>(e),
            Entry::Unbond(e) => signed::<Unbond>(e),
            Entry::SetCommission(e) => signed::<SetCommission>(e),
            Entry::Propose(e) => signed::<Propose>(e),
            Entry::Vote(e) => signed::<Vote>(e),
            Entry::Slash(s) => serde_json::to_value(s).unwrap_or_default(),
            Entry::Unjail(e) => signed::<Unjail>(e),
            Entry::GatewayBatch(e) => match decode_payload::<GatewayBatch>(e) {
                Ok(p) => json!({
                    "signer": e.signer.to_string(),
                    "nonce": p.nonce,
                    "timestamp_ms": p.timestamp_ms,
                    "entries": p.message.entries.iter().map(Entry::to_view).collect::<Vec<_>>(),
                }),
                Err(err) => json!({ "signer": e.signer.to_string(), "error": err.to_string() }),
            },
        };
        json!({ "kind": self.kind_name(), "entry": body })
    }
}

fn sig_ok<T: Message>(e: &Envelope) -> bool {
    e.kind == T::KIND && e.signer.verify_tagged(T::KIND, &e.payload, &e.signature)
}

/// Decodes the payload of an envelope of message kind `T` (kind checked,
/// signature NOT checked).
pub fn decode_payload<T: Message + Serialize + DeserializeOwned>(
    e: &Envelope,
) -> Result<Payload<T>, CanonicalError> {
    if e.kind != T::KIND {
        return Err(CanonicalError::Malformed(format!(
            "envelope kind {:?} where {:?} was expected",
            e.kind,
            T::KIND
        )));
    }
    canonical::decode::<Payload<T>>(&e.payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_node_keys_still_reject_invalid_points() {
        let node = Keypair::from_secret_bytes(&[6; 32]).did();
        let r = Entry::WorkReceipt(WorkReceipt {
            job: Hash32::default(),
            unit: 1,
            node,
            kind: ContributionKind::Fuel,
            amount: 2,
            result: Hash32::default(),
            quorum: vec![node],
        });
        let bytes = canonical::encode(&r).unwrap();
        // Decoding twice (second time from the cache) gives the same value.
        assert_eq!(canonical::decode::<Entry>(&bytes).unwrap(), r);
        assert_eq!(canonical::decode::<Entry>(&bytes).unwrap(), r);
        // 32 bytes that are not a curve point, in place of the quorum member.
        let bad = (0u8..=255)
            .map(|i| [i; 32])
            .find(|b| Did::from_public_key_bytes(*b).is_err())
            .unwrap();
        let pos = bytes.len() - 32;
        let mut tampered = bytes.clone();
        tampered[pos..].copy_from_slice(&bad);
        assert!(canonical::decode::<Entry>(&tampered).is_err());
    }

    #[test]
    fn signed_entries_verify_and_tags_separate_kinds() {
        let k = Keypair::from_secret_bytes(&[3; 32]);
        let chain = Hash32::sha256(b"chain");
        let t = Transfer {
            chain,
            to: Keypair::from_secret_bytes(&[4; 32]).did(),
            amount: 5,
            memo: String::new(),
        };
        let e = Entry::sign(&k, 0, 1, &t).unwrap();
        assert!(e.signature_valid());
        // Same envelope presented as another kind: rejected.
        let Entry::Transfer(env) = e.clone() else {
            unreachable!()
        };
        assert!(!Entry::Withdraw(env.clone()).signature_valid());
        // Tampered payload: rejected.
        let mut bad = env.clone();
        let last = bad.payload.len() - 1;
        bad.payload[last] ^= 1;
        assert!(!Entry::Transfer(bad).signature_valid());
        // Canonical round trip.
        let bytes = canonical::encode(&e).unwrap();
        assert_eq!(canonical::decode::<Entry>(&bytes).unwrap(), e);
        // JSON round trip (used to hand signed entries to a gateway).
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
        let view = e.to_view();
        assert_eq!(view["kind"], "transfer");
        assert_eq!(view["entry"]["message"]["amount"], "5");
    }
}
