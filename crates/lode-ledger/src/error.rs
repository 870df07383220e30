//! Typed errors of the pure state machine.

use crate::amount::Amount;
use crate::entry::{ContributionKind, EpochClose, JobId, Settlement};
use crate::genesis::GenesisError;
use lode_proto::{CanonicalError, Did, Hash32};

/// Why an entry was rejected. Applying a rejected entry changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("on a replicated chain {0} entries come only inside a gateway's signed batch")]
    GatewayOnly(&'static str),
    #[error("{0} is not a gateway of this chain")]
    NotAGateway(Did),
    #[error("gateway {gateway} does not hold the escrow of job {job}")]
    NotJobHolder {
        job: crate::entry::JobId,
        gateway: Did,
    },
    #[error("entry {index} of the gateway batch: {error}")]
    InBatch {
        index: usize,
        error: Box<EntryError>,
    },
    #[error("the signature of this {kind} entry does not verify for {signer}")]
    BadSignature { kind: &'static str, signer: Did },
    #[error("this {kind} entry is malformed: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("entry is signed for chain {found}, this chain is {expected}")]
    WrongChain { expected: Hash32, found: Hash32 },
    #[error("nonce {found} from {account} is not its next sequence number {expected}")]
    BadNonce {
        account: Did,
        expected: u64,
        found: u64,
    },
    #[error("{account} has {balance} base units, {needed} needed")]
    InsufficientBalance {
        account: Did,
        balance: Amount,
        needed: Amount,
    },
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("{field} is {len} bytes, the limit is {max}")]
    TextTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
    #[error("node {0} is not registered")]
    UnknownNode(Did),
    #[error("job {0} does not exist")]
    UnknownJob(JobId),
    #[error("job {0} already exists (job ids are unique forever)")]
    JobExists(JobId),
    #[error("job {0} is closed")]
    JobClosed(JobId),
    #[error("node {node} is not in the quorum that verified its receipt")]
    NodeNotInQuorum { node: Did },
    #[error("quorum must be sorted and free of duplicates")]
    QuorumNotSorted,
    #[error("quorum has {0} members; between 1 and {max} are allowed", max = crate::entry::MAX_QUORUM)]
    QuorumSize(usize),
    #[error("quorum member {0} is not a registered node")]
    UnregisteredQuorumMember(Did),
    #[error("unit {unit} of job {job} was already credited to {node}")]
    AlreadyCredited { job: JobId, unit: u64, node: Did },
    #[error("job {job} has {available} base units of escrow left, {needed} needed")]
    EscrowExhausted {
        job: JobId,
        available: Amount,
        needed: Amount,
    },
    #[error("contribution kind {} has no reward weight in genesis", .0.as_str())]
    UnweightedKind(ContributionKind),
    #[error("settlement of job {job} does not match what its receipts owe: expected {expected:?}")]
    SettlementMismatch {
        job: JobId,
        expected: Box<Settlement>,
    },
    #[error("job {0} has nothing to settle")]
    NothingToSettle(JobId),
    #[error("epoch {found} cannot close: the current epoch is {expected}")]
    EpochMismatch { expected: u64, found: u64 },
    #[error("epoch {epoch} ends at {ends_at_ms} ms; the block time is {timestamp_ms} ms")]
    EpochNotOver {
        epoch: u64,
        ends_at_ms: u64,
        timestamp_ms: u64,
    },
    #[error("epoch close figures do not match the recomputation: expected {expected:?}")]
    EpochCloseMismatch { expected: Box<EpochClose> },
    #[error("an epoch close is only applied while sealing a block (it needs the block time)")]
    EpochCloseNeedsBlockTime,
    #[error("reward multiplier {0} bps exceeds 10000")]
    InvalidBps(u32),
    #[error("a genesis entry may only appear alone in block 0")]
    GenesisOutsideBlockZero,
    #[error("the report of domain {domain} was already credited to {node}")]
    ReportAlreadyCredited { domain: Hash32, node: Did },
    #[error("a report credit carries between 1 and {max} units, not {0}", max = crate::entry::MAX_REPORT_CREDIT)]
    ReportAmount(u64),
    #[error("model {name} is already published with hash {sha256}")]
    ModelAlreadyPublished { name: String, sha256: Hash32 },
    #[error("staking is not enabled on this chain (no [staking] in genesis)")]
    StakingDisabled,
    #[error("governance is not enabled on this chain (no [governance] in genesis)")]
    GovernanceDisabled,
    #[error(
        "{0} cannot be staked behind: not a registered node, a genesis validator or a self-bonded account"
    )]
    UnknownStakeTarget(Did),
    #[error("the signer has {bonded} base units bonded behind {target}, {needed} needed")]
    InsufficientStake {
        target: Did,
        bonded: Amount,
        needed: Amount,
    },
    #[error("commission {bps} bps exceeds the maximum {max} bps")]
    CommissionTooHigh { bps: u32, max: u32 },
    #[error(
        "{signer} may not set the commission of {target} (only the target or its node's operator)"
    )]
    NotTargetOperator { signer: Did, target: Did },
    #[error("deposit {deposit} is below the minimum {min}")]
    DepositTooLow { deposit: Amount, min: Amount },
    #[error("proposal {0} does not exist")]
    UnknownProposal(u64),
    #[error("voting on proposal {proposal} ended with epoch {ended}")]
    VotingClosed { proposal: u64, ended: u64 },
    #[error("invalid parameter change: {0}")]
    InvalidParamChange(String),
    #[error("slash of {bps} bps is outside 1..={max} for this reason")]
    SlashFraction { bps: u32, max: u32 },
    #[error("slash evidence does not prove the fault: {0}")]
    BadEvidence(String),
    #[error("{0} is not a stake target: nothing was ever bonded behind it, so it was never jailed")]
    NotStakeTarget(Did),
    #[error("{0} is not jailed")]
    NotJailed(Did),
    #[error("{0} was slashed for double signing (tombstoned) and can never be unjailed")]
    Tombstoned(Did),
    #[error(
        "{target} was jailed in epoch {jailed_epoch}; it may unjail from epoch {unjail_from} on (now {epoch})"
    )]
    StillJailed {
        target: Did,
        jailed_epoch: u64,
        unjail_from: u64,
        epoch: u64,
    },
    #[error("internal inconsistency: {0}")]
    Internal(&'static str),
}

/// Why a block was rejected. Applying a rejected block changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block format version {0} is not supported")]
    UnsupportedVersion(u16),
    #[error("block height {found}, expected {expected}")]
    WrongHeight { expected: u64, found: u64 },
    #[error("previous-block hash {found} does not match the chain head {expected}")]
    WrongPrevHash { expected: Hash32, found: Hash32 },
    #[error("block time {found} ms is before the previous block's {previous} ms")]
    TimestampRegressed { previous: u64, found: u64 },
    #[error("block signer {0} is not a validator in force")]
    NotAValidator(Did),
    #[error("block signature does not verify")]
    BadSignature,
    #[error("header says {header} entries, the block holds {actual}")]
    EntryCountMismatch { header: u32, actual: usize },
    #[error("block holds {0} entries, more than the limit")]
    TooManyEntries(usize),
    #[error("entries root {computed} does not match the header's {header}")]
    EntriesRootMismatch { header: Hash32, computed: Hash32 },
    #[error("state root after applying is {computed}, the header says {header}")]
    StateRootMismatch { header: Hash32, computed: Hash32 },
    #[error("entry {index} ({kind}) is invalid: {error}")]
    Entry {
        index: usize,
        kind: &'static str,
        error: EntryError,
    },
    #[error("block encoding: {0}")]
    Encoding(#[from] CanonicalError),
    #[error("genesis block is invalid: {0}")]
    BadGenesisBlock(String),
    #[error("commit certificate: {0}")]
    Certificate(#[from] crate::consensus::CertError),
    #[error("a block of a replicated chain needs its commit certificate")]
    MissingCertificate,
    #[error(transparent)]
    Genesis(#[from] GenesisError),
}
