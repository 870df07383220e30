//! Block production without IO: the validator's side of the state machine.
//!
//! A [`Producer`] holds the state, the validator key and the open block.
//! [`Producer::submit`] checks and applies an entry to the open block;
//! [`Producer::prepare`] closes due epochs and builds the signed block;
//! the caller then makes it durable and calls [`Producer::commit`] (or
//! [`Producer::abort`], which leaves the open entries open). [`Producer::seal`]
//! does prepare + commit in one step for in-memory use (tests, simulations).

use crate::amount::Amount;
use crate::block::{self, BLOCK_VERSION, Block, BlockHeader, MAX_BLOCK_ENTRIES};
use crate::entry::Entry;
use crate::error::EntryError;
use crate::genesis::{Genesis, GenesisError};
use crate::lthash::LtHash;
use crate::state::{EntryCtx, Event, Mark, State};
use lode_proto::canonical::CanonicalError;
use lode_proto::{EvmAddress, Hash32, Keypair};

/// Why producing a block failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error("entry rejected: {0}")]
    Entry(#[from] EntryError),
    #[error("{0} entries are made by the producer itself and cannot be submitted")]
    NotSubmittable(&'static str),
    #[error("the open block is full ({0} entries): seal it first")]
    BlockFull(usize),
    #[error("{0} is not a validator of this chain")]
    NotAValidator(lode_proto::Did),
    #[error("encoding: {0}")]
    Encoding(#[from] CanonicalError),
}

/// A signed block ready to be made durable.
#[derive(Debug)]
pub struct Prepared {
    pub block: Block,
    /// Canonical bytes of `block`.
    pub bytes: Vec<u8>,
    /// Account events of the block (for a history index).
    pub events: Vec<Event>,
    /// Payout addresses whose cumulative withdrawal changed, with the new value.
    pub claims: Vec<(EvmAddress, Amount)>,
    pub epochs_closed: Vec<u64>,
    lt: LtHash,
    mark: Mark,
    events_before: usize,
    pending_before: usize,
}

/// Another validator's block, applied but not committed (replicated chains).
#[derive(Debug)]
pub struct Staged {
    pub block: Block,
    staged: crate::state::StagedBlock,
    /// Account events of the block (for a history index).
    pub events: Vec<crate::state::Event>,
    /// Payout addresses whose cumulative withdrawal changed, with the new value.
    pub claims: Vec<(EvmAddress, Amount)>,
}

impl Staged {
    pub fn hash(&self) -> Hash32 {
        self.staged.hash
    }
}

/// The validator's block producer.
#[derive(Debug, Clone)]
pub struct Producer {
    state: State,
    validator: Keypair,
    pending: Vec<Entry>,
    max_block_entries: usize,
    /// A gateway following a replicated chain: its entries go into its own
    /// signed batches, so they are checked as coming from it.
    as_gateway: bool,
}

impl Producer {
    /// Starts a chain: validates the genesis (an empty validator list is
    /// filled with `validator`) and returns the producer and the signed
    /// genesis block.
    pub fn genesis(
        genesis: &Genesis,
        validator: Keypair,
    ) -> Result<(Producer, Block), ProduceError> {
        let g = complete_genesis(genesis, &validator)?;
        let mut state = State::from_genesis(&g)?;
        let entries = vec![Entry::Genesis(Box::new(g.clone()))];
        let encoded = block::encode_entries(&entries)?;
        let replicated = g.consensus.is_some();
        let header = BlockHeader {
            version: BLOCK_VERSION,
            height: 0,
            timestamp_ms: g.genesis_time_ms,
            prev_hash: Hash32::default(),
            entries_root: block::entries_root(&encoded),
            entry_count: 1,
            state_root: state.state_root(),
            validator: match &g.consensus {
                Some(c) => first_validator(c)?,
                None => validator.did(),
            },
        };
        let block = if replicated {
            Block {
                header,
                signature: lode_proto::Signature([0; 64]),
                entries,
            }
        } else {
            Block::seal(header, entries, &validator)
        };
        state.set_genesis_hash(block.hash());
        Ok((Producer::resume(state, validator)?, block))
    }

    /// Continues from a state (e.g. loaded from a store).
    pub fn resume(state: State, validator: Keypair) -> Result<Producer, ProduceError> {
        // On a replicated chain the set changes with staking; whether this key
        // may propose a given block is the consensus engine's question.
        if !state.replicated() && !state.genesis().validators.contains(&validator.did()) {
            return Err(ProduceError::NotAValidator(validator.did()));
        }
        Ok(Producer {
            state,
            validator,
            pending: Vec::new(),
            max_block_entries: 50_000,
            as_gateway: false,
        })
    }

    /// Caps the open block (at most the consensus limit minus room for epoch closes).
    pub fn set_max_block_entries(&mut self, n: usize) {
        self.max_block_entries = n.clamp(1, MAX_BLOCK_ENTRIES - 1024);
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The claims tree over current cumulative withdrawals (cached; right
    /// after an epoch close, the tree it published).
    pub fn claims_tree(&mut self) -> Option<std::sync::Arc<crate::merkle::StandardMerkleTree>> {
        self.state.current_claims_tree()
    }

    pub fn validator(&self) -> &Keypair {
        &self.validator
    }

    /// Entries in the open block.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Checks `entry` and applies it to the open block; on error nothing changes.
    pub fn submit(&mut self, entry: Entry) -> Result<(), ProduceError> {
        self.submit_checked(entry, false)
    }

    /// Like [`Producer::submit`] for an entry whose signature the caller verified.
    pub fn submit_checked(
        &mut self,
        entry: Entry,
        signature_checked: bool,
    ) -> Result<(), ProduceError> {
        if matches!(entry, Entry::Genesis(_) | Entry::EpochClose(_)) {
            return Err(ProduceError::NotSubmittable(entry.kind_name()));
        }
        if self.pending.len() >= self.max_block_entries {
            return Err(ProduceError::BlockFull(self.pending.len()));
        }
        let ctx = EntryCtx {
            height: self.state.height() + 1,
            index: self.pending.len() as u32,
            block_time_ms: None,
            signature_checked,
            gateway: self.as_gateway.then(|| self.validator.did()),
        };
        self.state.apply_entry(&entry, &ctx)?;
        self.pending.push(entry);
        Ok(())
    }

    /// Makes this producer a gateway's view of a replicated chain (see
    /// `Ledger::open_follower`): submitted entries are checked as coming in
    /// its batch.
    pub(crate) fn set_gateway_mode(&mut self) {
        self.as_gateway = true;
    }

    /// Applies one of this gateway's own batches (outside the open block).
    pub(crate) fn apply_batch(&mut self, batch: &Entry) -> Result<(), EntryError> {
        let ctx = EntryCtx {
            height: self.state.height() + 1,
            index: 0,
            block_time_ms: None,
            signature_checked: true,
            gateway: None,
        };
        self.state.apply_entry(batch, &ctx)
    }

    /// The open block's entries.
    pub(crate) fn pending_entries(&self) -> &[Entry] {
        &self.pending
    }

    /// Empties the open block, keeping its entries applied (they went into
    /// a batch that holds them).
    pub(crate) fn forget_pending(&mut self) {
        self.pending.clear();
    }

    /// Undoes the open block's entries back to `mark` (taken when it was
    /// empty) and returns them.
    pub(crate) fn drain_pending(&mut self, mark: &crate::state::Mark) -> Vec<Entry> {
        self.state.rollback(mark);
        std::mem::take(&mut self.pending)
    }

    /// Closes every epoch ended by `now_ms` and signs a block of the open
    /// entries (block time `max(now_ms, previous)`); `None` if there is
    /// nothing to write. Until [`Producer::commit`] or [`Producer::abort`],
    /// nothing else may be done with this producer.
    pub fn prepare(&mut self, now_ms: u64) -> Result<Option<Prepared>, ProduceError> {
        self.prepare_block(now_ms, false)
    }

    /// Like [`Producer::prepare`], also when the block would be empty (a
    /// replicated chain decides a block at every height).
    pub fn prepare_always(&mut self, now_ms: u64) -> Result<Prepared, ProduceError> {
        self.prepare_block(now_ms, true)?
            .ok_or(ProduceError::Encoding(CanonicalError::Encode(
                "no block prepared".into(),
            )))
    }

    fn prepare_block(
        &mut self,
        now_ms: u64,
        allow_empty: bool,
    ) -> Result<Option<Prepared>, ProduceError> {
        let time = now_ms.max(self.state.totals().timestamp_ms);
        let height = self.state.height() + 1;
        let mark = self.state.mark();
        let events_before = self.state.events_len();
        let pending_before = self.pending.len();
        let mut epochs_closed = Vec::new();
        if let Err(e) = self.close_due_epochs(time, height, &mut epochs_closed) {
            self.state.rollback(&mark);
            self.pending.truncate(pending_before);
            return Err(e);
        }
        if self.pending.is_empty() && !allow_empty {
            return Ok(None);
        }
        let encoded = match block::encode_entries(&self.pending) {
            Ok(e) => e,
            Err(e) => {
                self.state.rollback(&mark);
                self.pending.truncate(pending_before);
                return Err(e.into());
            }
        };
        let leaves = crate::par::map(&encoded, 4096, |b| block::leaf_hash(b));
        let (lt, root) = self.state.prepare_root(height, time, &self.validator.did());
        let header = BlockHeader {
            version: BLOCK_VERSION,
            height,
            timestamp_ms: time,
            prev_hash: self.state.head_hash(),
            entries_root: block::merkle_root_of_leaves(&leaves),
            entry_count: self.pending.len() as u32,
            state_root: root,
            validator: self.validator.did(),
        };
        let signature = self
            .validator
            .sign_tagged(block::BLOCK_TAG, header.hash().as_bytes());
        let bytes = encode_block(&header, &signature, &encoded);
        let claims = self.state.changed_claims();
        let events = self.state.take_events();
        let block = Block {
            header,
            signature,
            entries: std::mem::take(&mut self.pending),
        };
        Ok(Some(Prepared {
            block,
            bytes,
            events,
            claims,
            epochs_closed,
            lt,
            mark,
            events_before,
            pending_before,
        }))
    }

    /// The prepared block is durable: make it the new head. Returns the block.
    pub fn commit(&mut self, p: Prepared) -> Block {
        self.state
            .finish_block(p.lt, p.block.header.state_root, p.block.hash());
        p.block
    }

    /// The prepared block could not be made durable: undo the epoch closes
    /// and keep the submitted entries open.
    pub fn abort(&mut self, p: Prepared) {
        self.state.rollback(&p.mark);
        self.state.restore_events(p.events, p.events_before);
        let mut entries = p.block.entries;
        entries.truncate(p.pending_before);
        self.pending = entries;
    }

    /// Rolls the open block back (the state returns to the last committed
    /// block) and returns its entries.
    pub fn take_pending(&mut self) -> Vec<Entry> {
        if self.state.has_uncommitted() {
            let m = self.state.committed_mark();
            self.state.rollback(&m);
        }
        self.state.take_events();
        std::mem::take(&mut self.pending)
    }

    /// Checks and applies another validator's block without committing it
    /// (the open block must be empty: see [`Producer::take_pending`]).
    pub fn stage(&mut self, block: Block) -> Result<Staged, crate::BlockError> {
        debug_assert!(self.pending.is_empty());
        let staged = self.state.stage_block(&block)?;
        let events = self.state.take_events();
        let claims = self.state.changed_claims();
        Ok(Staged {
            block,
            staged,
            events,
            claims,
        })
    }

    /// A staged block was decided: make it the head (after it is durable).
    pub fn finish(&mut self, s: Staged) -> Block {
        self.state
            .finish_block(s.staged.lt, s.staged.root, s.staged.hash);
        s.block
    }

    /// A staged block was not decided: undo it.
    pub fn unstage(&mut self, s: Staged) {
        self.state.rollback(&s.staged.mark);
    }

    /// prepare + commit, for in-memory chains.
    pub fn seal(&mut self, now_ms: u64) -> Result<Option<Block>, ProduceError> {
        Ok(self.prepare(now_ms)?.map(|p| self.commit(p)))
    }

    fn close_due_epochs(
        &mut self,
        time: u64,
        height: u64,
        closed: &mut Vec<u64>,
    ) -> Result<(), ProduceError> {
        while self.pending.len() < MAX_BLOCK_ENTRIES {
            let Some(c) = self.state.epoch_close(time)? else {
                break;
            };
            let epoch = c.epoch;
            let entry = Entry::EpochClose(c);
            let ctx = EntryCtx {
                height,
                index: self.pending.len() as u32,
                block_time_ms: Some(time),
                signature_checked: true,
                gateway: None,
            };
            self.state.apply_entry(&entry, &ctx)?;
            self.pending.push(entry);
            closed.push(epoch);
        }
        Ok(())
    }
}

/// Fills an empty validator list (with `validator`, or on a replicated chain
/// with the `[consensus]` validators) and validates. On a single-validator
/// chain `validator` must be listed.
pub fn complete_genesis(genesis: &Genesis, validator: &Keypair) -> Result<Genesis, ProduceError> {
    let mut g = genesis.clone();
    if g.validators.is_empty() {
        match &g.consensus {
            Some(c) => {
                let mut dids: Vec<lode_proto::Did> = c.validators.iter().map(|v| v.did).collect();
                dids.sort();
                g.validators = dids;
            }
            None => g.validators.push(validator.did()),
        }
    }
    g.validate()?;
    if g.consensus.is_none() && !g.validators.contains(&validator.did()) {
        return Err(ProduceError::NotAValidator(validator.did()));
    }
    Ok(g)
}

fn first_validator(c: &crate::genesis::ConsensusParams) -> Result<lode_proto::Did, ProduceError> {
    let set = c
        .validator_set()
        .map_err(|e| GenesisError::BadConsensus(e.to_string()))?;
    Ok(set.validators()[0].did)
}

/// Canonical block bytes assembled from pre-encoded entries (identical to
/// `canonical::encode(&block)`; avoids encoding every entry twice).
fn encode_block(
    header: &BlockHeader,
    signature: &lode_proto::Signature,
    encoded: &[Vec<u8>],
) -> Vec<u8> {
    let total: usize = encoded.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(total + 256);
    out = postcard::to_extend(header, out).unwrap_or_default();
    out = postcard::to_extend(signature, out).unwrap_or_default();
    out = postcard::to_extend(&(encoded.len() as u64), out).unwrap_or_default();
    for e in encoded {
        out.extend_from_slice(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::canonical;

    #[test]
    fn assembled_bytes_equal_canonical_encoding() {
        let k = Keypair::from_secret_bytes(&[9; 32]);
        let g = Genesis::default_genesis();
        let (_, b) = Producer::genesis(&g, k.clone()).unwrap();
        let encoded = block::encode_entries(&b.entries).unwrap();
        assert_eq!(
            encode_block(&b.header, &b.signature, &encoded),
            canonical::encode(&b).unwrap()
        );
    }
}
