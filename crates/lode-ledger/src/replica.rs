//! A replicated chain's ledger at one validator (issue 14,
//! docs/design/validators.md §4): the block store, the state, and the three
//! steps a BFT engine drives at every height.
//!
//! ```text
//! propose(entries, t) → this validator's block: the entries that apply (the
//!                       others are returned with their errors), epochs due at
//!                       t closed, signed by the proposer; kept staged
//! check(bytes, …)     → another validator's block, re-executed on this state
//!                       (proposer in the set, height, time, roots); kept staged
//! commit(hash, cert)  → the decided block with its commit certificate,
//!                       verified against the set in force, written durably
//!                       (block + certificate in one transaction), then the head
//! ```
//!
//! At most one block is staged (applied, not committed) at a time; staging
//! another, or reading the committed state, undoes it first. A decided block
//! that was never staged here (catching up) is applied from its bytes.
//! The state machine is the same as a single-validator chain's: same
//! entries, same rewards, same claim roots.

use crate::block::Block;
use crate::consensus::{CertError, CommitCertificate, ValidatorSet};
use crate::entry::Entry;
use crate::error::EntryError;
use crate::genesis::Genesis;
use crate::ledger::{
    ClaimProof, LedgerConfig, LedgerError, OpenReport, SealedBlock, claim_proof, create_chain,
    load_state, read_block, snapshot_if_due,
};
use crate::producer::{Prepared, ProduceError, Producer, Staged, complete_genesis};
use crate::state::State;
use crate::store::{AppendBatch, BlockStore};
use lode_proto::{Did, EvmAddress, Hash32, Keypair, canonical};
use std::path::Path;

/// Largest clock lead a proposer's block time may have over a checker's clock.
pub const MAX_CLOCK_LEAD_MS: u64 = 2_000;

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Ledger(Box<LedgerError>),
    #[error("the genesis has no [consensus] section: not a replicated chain")]
    NotReplicated,
    /// The proposal is invalid (the validator votes against it).
    #[error("invalid proposal: {0}")]
    Invalid(String),
    #[error("certificate of block {height}: {error}")]
    Certificate { height: u64, error: CertError },
    #[error("block {0} was decided but its bytes are unknown here")]
    UnknownBlock(Hash32),
}

impl From<ProduceError> for ReplicaError {
    fn from(e: ProduceError) -> Self {
        ReplicaError::Ledger(Box::new(e.into()))
    }
}

impl From<LedgerError> for ReplicaError {
    fn from(e: LedgerError) -> Self {
        ReplicaError::Ledger(Box::new(e))
    }
}

enum Stage {
    Own(Box<Prepared>),
    Other(Box<Staged>),
}

impl Stage {
    fn hash(&self) -> Hash32 {
        match self {
            Stage::Own(p) => p.block.hash(),
            Stage::Other(s) => s.hash(),
        }
    }
}

/// What [`Replica::propose`] built.
#[derive(Debug)]
pub struct BlockProposal {
    pub hash: Hash32,
    pub height: u64,
    /// Canonical block bytes (what the engine streams to the others).
    pub bytes: Vec<u8>,
    /// Offered entries that did not apply, by index, with why.
    pub rejected: Vec<(usize, EntryError)>,
    /// How many of the offered entries the block holds.
    pub included: usize,
}

/// One validator's copy of a replicated chain.
pub struct Replica {
    store: BlockStore,
    producer: Producer,
    staged: Option<(Stage, ValidatorSet)>,
    /// Validator set in force for the next block, as of the committed head.
    next_set: ValidatorSet,
    committed: u64,
    config: LedgerConfig,
    last_snapshot: u64,
    report: OpenReport,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Replica(height {})", self.committed)
    }
}

fn set_of(state: &State) -> Result<ValidatorSet, ReplicaError> {
    state
        .validators_in_force()
        .map_err(|error| ReplicaError::Certificate {
            height: state.height() + 1,
            error,
        })
}

impl Replica {
    /// Creates the chain in `dir` from a replicated genesis: every validator
    /// builds the same (unsigned) genesis block, so the chain id agrees.
    pub fn create(
        dir: &Path,
        genesis: &Genesis,
        key: Keypair,
        config: LedgerConfig,
    ) -> Result<Replica, ReplicaError> {
        if genesis.consensus.is_none() {
            return Err(ReplicaError::NotReplicated);
        }
        let (store, producer) = create_chain(dir, genesis, key, &config)?;
        Self::assemble(store, producer, config, OpenReport::default())
    }

    /// Opens the chain in `dir` (a torn last block is dropped: the engine
    /// syncs it again from the others).
    pub fn open(dir: &Path, key: Keypair, config: LedgerConfig) -> Result<Replica, ReplicaError> {
        let store = BlockStore::open(dir).map_err(LedgerError::from)?;
        let (state, report) = load_state(&store, true)?;
        if !state.replicated() {
            return Err(ReplicaError::NotReplicated);
        }
        let producer = Producer::resume(state, key)?;
        Self::assemble(store, producer, config, report)
    }

    /// Opens the chain in `dir`, creating it from `genesis` if there is none;
    /// an existing chain must come from the same genesis.
    pub fn open_or_create(
        dir: &Path,
        genesis: &Genesis,
        key: Keypair,
        config: LedgerConfig,
    ) -> Result<Replica, ReplicaError> {
        if dir.join(crate::store::DB_FILE).exists() {
            let g = complete_genesis(genesis, &key)?;
            let r = Self::open(dir, key, config)?;
            if *r.producer.state().genesis() != g {
                return Err(LedgerError::GenesisMismatch.into());
            }
            Ok(r)
        } else {
            Self::create(dir, genesis, key, config)
        }
    }

    fn assemble(
        store: BlockStore,
        mut producer: Producer,
        config: LedgerConfig,
        report: OpenReport,
    ) -> Result<Replica, ReplicaError> {
        producer.set_max_block_entries(config.max_block_entries);
        producer.state_mut().record_events(config.index_history);
        let next_set = set_of(producer.state())?;
        Ok(Replica {
            committed: producer.state().height(),
            store,
            producer,
            staged: None,
            next_set,
            last_snapshot: report.snapshot_height.unwrap_or(0),
            config,
            report,
        })
    }

    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Height of the last committed block.
    pub fn height(&self) -> u64 {
        self.committed
    }

    pub fn chain_id(&self) -> Hash32 {
        self.producer.state().chain_id()
    }

    /// This validator's key's identity.
    pub fn key(&self) -> Did {
        self.producer.validator().did()
    }

    /// Hash of the last committed block (a staged block stays staged).
    pub fn head_hash(&self) -> Hash32 {
        self.producer.state().head_hash()
    }

    /// The validator set that decides the next block.
    pub fn validator_set(&self) -> &ValidatorSet {
        &self.next_set
    }

    /// The committed state (undoes a staged block first).
    pub fn state(&mut self) -> &State {
        self.unstage();
        self.producer.state()
    }

    fn unstage(&mut self) {
        match self.staged.take() {
            Some((Stage::Own(p), _)) => {
                self.producer.abort(*p);
                self.producer.take_pending();
            }
            Some((Stage::Other(s), _)) => self.producer.unstage(*s),
            None => {}
        }
    }

    /// Builds this validator's block for the next height from `entries` (in
    /// order; those that do not apply are left out and returned), closing
    /// every epoch due at `now_ms`. The block is kept staged for
    /// [`Replica::commit`].
    pub fn propose(
        &mut self,
        entries: &[Entry],
        now_ms: u64,
    ) -> Result<BlockProposal, ReplicaError> {
        self.unstage();
        let set = self.next_set.clone();
        let mut rejected = Vec::new();
        let mut included = 0;
        for (i, e) in entries.iter().enumerate() {
            match self.producer.submit(e.clone()) {
                Ok(()) => included += 1,
                Err(ProduceError::BlockFull(_)) => break,
                Err(ProduceError::Entry(err)) => rejected.push((i, err)),
                Err(ProduceError::NotSubmittable(kind)) => rejected.push((
                    i,
                    EntryError::Malformed {
                        kind,
                        reason: "made by the chain itself, not submittable".into(),
                    },
                )),
                Err(other) => {
                    self.producer.take_pending();
                    return Err(other.into());
                }
            }
        }
        let p = match self.producer.prepare_always(now_ms) {
            Ok(p) => p,
            Err(e) => {
                self.producer.take_pending();
                return Err(e.into());
            }
        };
        let proposal = BlockProposal {
            hash: p.block.hash(),
            height: p.block.header.height,
            bytes: p.bytes.clone(),
            rejected,
            included,
        };
        self.staged = Some((Stage::Own(Box::new(p)), set));
        Ok(proposal)
    }

    /// Checks another validator's proposal for the next height: it decodes,
    /// is for that height, names `proposer`, is not from the future (more than
    /// [`MAX_CLOCK_LEAD_MS`] ahead of `now_ms`) and re-executes to the same
    /// roots. A valid block is kept staged; returns its hash.
    pub fn check(
        &mut self,
        height: u64,
        proposer: Did,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<Hash32, ReplicaError> {
        let block = Block::from_bytes(bytes)
            .map_err(|e| ReplicaError::Invalid(format!("encoding: {e}")))?;
        if height != self.committed + 1 || block.header.height != height {
            return Err(ReplicaError::Invalid(format!(
                "block for height {} offered at height {height}; the next is {}",
                block.header.height,
                self.committed + 1
            )));
        }
        if block.header.validator != proposer {
            return Err(ReplicaError::Invalid(format!(
                "block names {} as proposer, the round's proposer is {proposer}",
                block.header.validator
            )));
        }
        if block.header.timestamp_ms > now_ms.saturating_add(MAX_CLOCK_LEAD_MS) {
            return Err(ReplicaError::Invalid(format!(
                "block time {} is more than {MAX_CLOCK_LEAD_MS} ms ahead of {now_ms}",
                block.header.timestamp_ms
            )));
        }
        let hash = block.hash();
        if self.staged.as_ref().is_some_and(|(s, _)| s.hash() == hash) {
            return Ok(hash);
        }
        self.unstage();
        let set = self.next_set.clone();
        let staged = self
            .producer
            .stage(block)
            .map_err(|e| ReplicaError::Invalid(e.to_string()))?;
        self.staged = Some((Stage::Other(Box::new(staged)), set));
        Ok(hash)
    }

    /// Commits the decided block `hash` of the next height with its
    /// certificate: the certificate is verified against the set in force,
    /// then block and certificate are written durably in one transaction.
    /// `bytes` are needed only if the block was not staged here.
    pub fn commit(
        &mut self,
        hash: Hash32,
        bytes: Option<&[u8]>,
        cert: &CommitCertificate,
    ) -> Result<SealedBlock, ReplicaError> {
        let height = self.committed + 1;
        if self.staged.as_ref().is_none_or(|(s, _)| s.hash() != hash) {
            let bytes = bytes.ok_or(ReplicaError::UnknownBlock(hash))?;
            let got = self.check_synced(height, bytes)?;
            if got != hash {
                return Err(ReplicaError::UnknownBlock(hash));
            }
        }
        let Some((stage, set)) = self.staged.take() else {
            return Err(ReplicaError::UnknownBlock(hash));
        };
        if let Err(error) = cert.verify(self.chain_id(), height, hash, &set) {
            self.staged = Some((stage, set));
            return Err(ReplicaError::Certificate { height, error });
        }
        let cert_bytes = canonical::encode(cert).map_err(LedgerError::from)?;
        let (block_bytes, events, claims) = match &stage {
            Stage::Own(p) => (p.bytes.clone(), &p.events, &p.claims),
            Stage::Other(s) => (
                s.block.to_bytes().map_err(LedgerError::from)?,
                &s.events,
                &s.claims,
            ),
        };
        let r = self.store.append(&AppendBatch {
            height,
            block: &block_bytes,
            events,
            claims,
            certificate: Some(&cert_bytes),
        });
        if let Err(e) = r {
            self.staged = Some((stage, set));
            return Err(LedgerError::from(e).into());
        }
        let (block, epochs_closed) = match stage {
            Stage::Own(p) => {
                let closed = p.epochs_closed.clone();
                (self.producer.commit(*p), closed)
            }
            Stage::Other(s) => {
                let closed = s.block.epochs_closed();
                (self.producer.finish(*s), closed)
            }
        };
        self.committed = height;
        self.next_set = set_of(self.producer.state())?;
        let h = &block.header;
        let sealed = SealedBlock {
            height,
            hash,
            timestamp_ms: h.timestamp_ms,
            entries: block.entries.len(),
            state_root: h.state_root,
            epochs_closed,
        };
        snapshot_if_due(
            &self.store,
            self.producer.state(),
            &sealed,
            &self.config,
            &mut self.last_snapshot,
        );
        Ok(sealed)
    }

    /// A block received while catching up: checked like a proposal, except
    /// its time (it may be old) and its proposer (the certificate decides).
    fn check_synced(&mut self, height: u64, bytes: &[u8]) -> Result<Hash32, ReplicaError> {
        let block = Block::from_bytes(bytes)
            .map_err(|e| ReplicaError::Invalid(format!("encoding: {e}")))?;
        if block.header.height != height {
            return Err(ReplicaError::Invalid(format!(
                "block for height {} offered at height {height}",
                block.header.height
            )));
        }
        self.unstage();
        let set = self.next_set.clone();
        let hash = block.hash();
        let staged = self
            .producer
            .stage(block)
            .map_err(|e| ReplicaError::Invalid(e.to_string()))?;
        self.staged = Some((Stage::Other(Box::new(staged)), set));
        Ok(hash)
    }

    /// Whether `entry` (signatures already checked) applies on the current
    /// state; changes nothing. A mempool's admission check.
    pub fn trial(&mut self, entry: &Entry) -> Result<(), EntryError> {
        let ctx = crate::state::EntryCtx {
            height: self.committed + 1,
            index: 0,
            block_time_ms: None,
            signature_checked: true,
            gateway: None,
        };
        let st = self.producer.state_mut();
        let mark = st.mark();
        let r = st.apply_entry(entry, &ctx);
        st.rollback(&mark);
        r
    }

    /// A mempool's admission check of `entry` (signatures already checked):
    /// a gateway batch gets the cheap checks of [`State::precheck_batch`]
    /// (its receipts are checked when a block is built, once); any other
    /// entry must apply on the current state ([`Replica::trial`]).
    pub fn admit(&mut self, entry: &Entry) -> Result<(), EntryError> {
        match entry {
            Entry::GatewayBatch(env) => self.producer.state().precheck_batch(env),
            other => self.trial(other),
        }
    }

    /// A committed block's canonical bytes and its certificate's.
    pub fn decided(&self, height: u64) -> Result<Option<crate::raw::Frame>, ReplicaError> {
        let Some(b) = self.store.block_bytes(height).map_err(LedgerError::from)? else {
            return Ok(None);
        };
        let c = self
            .store
            .certificate_bytes(height)
            .map_err(LedgerError::from)?;
        Ok(Some((b, c)))
    }

    /// A committed block, decoded.
    pub fn block(&self, height: u64) -> Result<Option<Block>, ReplicaError> {
        Ok(read_block(&self.store, height)?)
    }

    /// A committed block's certificate, decoded.
    pub fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, ReplicaError> {
        let Some(c) = self
            .store
            .certificate_bytes(height)
            .map_err(LedgerError::from)?
        else {
            return Ok(None);
        };
        Ok(Some(canonical::decode(&c).map_err(LedgerError::from)?))
    }

    /// The claim proof of `address` in the tree of `epoch` (default: the last closed).
    pub fn claim_proof(
        &mut self,
        address: &EvmAddress,
        epoch: Option<u64>,
    ) -> Result<ClaimProof, ReplicaError> {
        self.unstage();
        Ok(claim_proof(
            &self.store,
            self.producer.state(),
            address,
            epoch,
        )?)
    }

    /// The underlying store (for reads).
    pub fn store(&self) -> &BlockStore {
        &self.store
    }
}
