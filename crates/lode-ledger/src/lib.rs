//! Lode's ledger: a hash-chained, validator-signed, replayable record of node
//! registrations, verified work receipts, payments and epoch rewards.
//!
//! * [`State`] — the pure state machine (no IO, no clock):
//!   [`State::apply_block`] / [`apply`] check and apply a block all or nothing.
//! * [`Entry`] — what blocks record; account-originated entries are signed
//!   envelopes, the rest are authorized by the validator's block signature.
//! * [`Block`] — height, time, previous hash, entries root, state root, signature.
//! * [`Genesis`] — tokenomics (TOML): supply, allocations with vesting,
//!   halving emission, epoch length, contribution weights.
//! * [`Ledger`] — the gateway's handle: submit entries, seal durable blocks
//!   (redb, fsync), query balances, pending earnings, history and claim proofs.
//! * [`verify()`] — replays a ledger directory from genesis and names the first bad height.
//! * [`merkle`] — claim trees in the exact OpenZeppelin `StandardMerkleTree` format.
//!
//! Design notes: `docs/design/lode-ledger.md`.

pub mod amount;
pub mod block;
pub mod consensus;
pub mod entry;
pub mod error;
pub mod genesis;
pub mod ledger;
pub mod lthash;
pub mod merkle;
mod par;
pub mod producer;
pub mod raw;
pub mod replica;
pub mod rewards;
pub mod state;
pub mod store;
mod tracked;
pub mod verify;

pub use amount::{Amount, ONE_TOKEN, format_tokens, parse_amount};
pub use block::{Block, BlockHeader};
pub use entry::{
    AdjustNode, Bond, ContributionKind, Delegate, Entry, EpochClose, GatewayBatch, JobEscrow,
    JobId, MAX_BATCH_ENTRIES, ParamChange, Payout, Penalty, PenaltyReason, Propose, RegisterNode,
    ResultClaim, SetCommission, Settlement, SignedEntry, Slash, SlashEvidence, SlashReason,
    StorageContract, StorageShare, Transfer, Unbond, Unjail, Vote, VoteOption, Withdraw,
    WorkReceipt,
};
pub use error::{BlockError, EntryError};
pub use genesis::{
    Allocation, AllocationRole, ConsensusParams, Genesis, GenesisError, GovernanceParams,
    StakingParams,
};
pub use ledger::{
    ClaimProof, Ledger, LedgerConfig, LedgerError, LedgerView, OpenReport, RemoteBlock, SealedBlock,
};
pub use merkle::StandardMerkleTree;
pub use producer::{ProduceError, Producer, Staged};
pub use replica::{Replica, ReplicaError};
pub use state::{
    Account, ChainParams, EntryCtx, Event, EventKind, FairnessReport, Job, Node, PendingEarnings,
    Proposal, ProposalStatus, StakeTarget, StakingGlobals, State, SupplyReport, Tally, apply,
};
pub use store::{BlockStore, StoreError};
pub use verify::{BlockFault, BlockItem, VerifyError, VerifyReport, verify, verify_blocks};
