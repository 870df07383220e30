//! Full verification of a ledger directory: replay from genesis, checking
//! every block's encoding, height, link, time, validator signature (on a
//! replicated chain: the proposer's, and the commit certificate against the
//! validator set in force at that height), entries root, every entry's
//! signature and rules, and every state root; then the
//! conservation invariants and the claims index. Never trusts snapshots.

use crate::block::Block;
use crate::consensus::CommitCertificate;
use crate::entry::Entry;
use crate::error::BlockError;
use crate::state::State;
use crate::store::{BlockStore, StoreError, for_each_block};
use lode_proto::Hash32;
use lode_proto::canonical::CanonicalError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub chain_id: Hash32,
    pub blocks: u64,
    pub head_height: u64,
    pub head_hash: Hash32,
    pub state_root: Hash32,
    pub entries: u64,
    /// Account-originated entries whose signatures were checked.
    pub signed_entries: u64,
    pub receipts: u64,
    pub epochs_closed: u64,
    pub accounts: u64,
    pub nodes: u64,
    /// Blocks whose commit certificate was checked (a replicated chain: every
    /// block after genesis, against the validator set in force at its height).
    #[serde(default)]
    pub certified_blocks: u64,
}

/// One block to verify: its height, its decoded bytes and, on a replicated
/// chain, its commit certificate's canonical bytes.
pub type BlockItem = (u64, Result<Block, CanonicalError>, Option<Vec<u8>>);

/// Why a block failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockFault {
    #[error("block is missing (gap in the chain)")]
    Missing,
    #[error("stored bytes do not decode: {0}")]
    Decode(CanonicalError),
    #[error("{0}")]
    Invalid(BlockError),
    #[error("state invariant broken after this block: {0}")]
    Invariant(String),
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the ledger: {0}")]
    Store(#[from] StoreError),
    #[error("the ledger is empty")]
    Empty,
    #[error("block {height} is bad: {fault}")]
    Block { height: u64, fault: BlockFault },
    #[error("claims index disagrees with the replayed state: {0}")]
    ClaimsIndex(String),
}

impl VerifyError {
    /// The first bad height, when a block is at fault.
    pub fn height(&self) -> Option<u64> {
        match self {
            VerifyError::Block { height, .. } => Some(*height),
            _ => None,
        }
    }
}

/// Verifies the ledger in `dir` (read-only; works while a gateway writes it;
/// a database left by a crashed writer is first recovered, see
/// [`BlockStore::open_for_reading`]).
pub fn verify(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let store = BlockStore::open_for_reading(dir)?;
    verify_store(&store)
}

/// Verifies an open store. Blocks are read and decoded on one thread while
/// the previous ones are applied on this one (at most a few blocks in flight).
pub fn verify_store(store: &BlockStore) -> Result<VerifyReport, VerifyError> {
    let (result, read) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<BlockItem>(4);
        let reader = s.spawn(move || {
            for_each_block(store, |height, bytes, cert| {
                tx.send((height, Block::from_bytes(bytes), cert.map(<[u8]>::to_vec)))
                    .is_ok()
            })
        });
        // Dropping the receiver (in verify_blocks) stops the reader at its next block.
        let result = verify_blocks(rx);
        (result, reader.join().unwrap_or(Ok(())))
    });
    let (report, state) = result?;
    read?;
    // The claims index (derived) must agree with the replayed state.
    let indexed = store.claims_at(state.height())?;
    let actual: std::collections::BTreeMap<_, _> = state.claims().map(|(a, v)| (*a, *v)).collect();
    if indexed != actual {
        return Err(VerifyError::ClaimsIndex(format!(
            "{} indexed addresses, {} in the state",
            indexed.len(),
            actual.len()
        )));
    }
    Ok(report)
}

/// Replays blocks `(height, decoded)` in order from genesis, checking every
/// block (encoding, height, link, time, validator signature, entries root,
/// entries, state root) and then the conservation invariants; returns the
/// report and the final state. Blocks may come from a store or from the
/// network (`lode ledger verify --from URL`). The first bad or missing height
/// is named.
pub fn verify_blocks(
    blocks: impl IntoIterator<Item = BlockItem>,
) -> Result<(VerifyReport, State), VerifyError> {
    let mut state: Option<State> = None;
    let mut expected: u64 = 0;
    let mut entries: u64 = 0;
    let mut signed: u64 = 0;
    let mut receipts: u64 = 0;
    let mut certified: u64 = 0;
    for (height, decoded, cert) in blocks {
        let fail = |fault| VerifyError::Block { height, fault };
        if height != expected {
            return Err(VerifyError::Block {
                height: expected,
                fault: BlockFault::Missing,
            });
        }
        let block = decoded.map_err(|e| fail(BlockFault::Decode(e)))?;
        match &mut state {
            None => {
                state = Some(
                    State::from_genesis_block(&block).map_err(|e| fail(BlockFault::Invalid(e)))?,
                )
            }
            Some(s) => {
                if s.replicated() {
                    let cert = cert
                        .ok_or_else(|| fail(BlockFault::Invalid(BlockError::MissingCertificate)))?;
                    let cert: CommitCertificate = lode_proto::canonical::decode(&cert)
                        .map_err(|e| fail(BlockFault::Decode(e)))?;
                    s.check_certificate(&block, &cert)
                        .map_err(|e| fail(BlockFault::Invalid(e)))?;
                    certified += 1;
                }
                s.apply_block(&block)
                    .map_err(|e| fail(BlockFault::Invalid(e)))?
            }
        }
        for e in &block.entries {
            let inner = match e {
                Entry::GatewayBatch(env) => {
                    crate::entry::decode_payload::<crate::entry::GatewayBatch>(env)
                        .map(|p| p.message.entries)
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            };
            for e in std::iter::once(e).chain(&inner) {
                entries += 1;
                if e.envelope().is_some() {
                    signed += 1;
                }
                if matches!(e, Entry::WorkReceipt(_)) {
                    receipts += 1;
                }
            }
        }
        expected += 1;
    }
    let state = state.ok_or(VerifyError::Empty)?;
    if let Err(m) = state.check_invariants() {
        return Err(VerifyError::Block {
            height: state.height(),
            fault: BlockFault::Invariant(m),
        });
    }
    let report = VerifyReport {
        chain_id: state.chain_id(),
        blocks: expected,
        head_height: state.height(),
        head_hash: state.head_hash(),
        state_root: state.state_root(),
        entries,
        signed_entries: signed,
        receipts,
        epochs_closed: state.epoch(),
        accounts: state.accounts().count() as u64,
        nodes: state.nodes().count() as u64,
        certified_blocks: certified,
    };
    Ok((report, state))
}
