//! The ledger a gateway runs: the pure state machine plus the durable block
//! store and the validator key.
//!
//! ```text
//! submit(entry)  → checked and applied to the open block (not yet durable)
//! seal_block(t)  → closes every epoch due at t, signs a block of the open
//!                  entries, writes it durably (fsync) → durable from here
//! ```
//!
//! The in-memory state always includes the open block, so queries see
//! submitted entries at once; the gateway should acknowledge anything that
//! must survive a crash only after `seal_block` returned.

use crate::amount::Amount;
use crate::block::Block;
use crate::entry::{Entry, JobId, Settlement};
use crate::error::{BlockError, EntryError};
use crate::genesis::{Genesis, GenesisError};
use crate::merkle::{self, LEAF_ENCODING, MerkleError, StandardMerkleTree};
use crate::producer::{ProduceError, Producer, complete_genesis};
use crate::state::{Event, State};
use crate::store::{AppendBatch, BlockStore, StoreError};
use lode_proto::canonical::CanonicalError;
use lode_proto::{Did, EvmAddress, Hash32, Keypair};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Tunables of a running ledger (not part of the chain's rules).
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// `submit` refuses entries beyond this many in the open block.
    pub max_block_entries: usize,
    /// Write a state snapshot every this many blocks (and after every epoch close).
    pub snapshot_every_blocks: u64,
    /// Snapshots kept.
    pub keep_snapshots: usize,
    /// Index account events for `history`.
    pub index_history: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            max_block_entries: 50_000,
            snapshot_every_blocks: 1_000,
            keep_snapshots: 2,
            index_history: true,
        }
    }
}

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error("entry rejected: {0}")]
    Entry(#[from] EntryError),
    #[error("block {height} is invalid: {error}")]
    Block { height: u64, error: BlockError },
    #[error("block {height} cannot be decoded: {error}")]
    Decode { height: u64, error: CanonicalError },
    #[error("block {0} is missing from the store")]
    MissingBlock(u64),
    #[error("the ledger store is empty")]
    Empty,
    #[error("{0} is not a validator of this chain")]
    NotAValidator(Did),
    #[error("not a replicated chain (the genesis has no [consensus] section)")]
    NotReplicated,
    #[error("{0} is not a gateway of this chain (genesis [consensus] gateways)")]
    NotAGateway(Did),
    #[error("the ledger in this directory was created from a different genesis")]
    GenesisMismatch,
    #[error("the open block is full ({0} entries): seal it first")]
    BlockFull(usize),
    #[error("{0} entries are made by the ledger itself and cannot be submitted")]
    NotSubmittable(&'static str),
    #[error("epoch {0} is not closed yet")]
    EpochNotClosed(u64),
    #[error("no withdrawals had been made by the end of epoch {0}: its claims tree is empty")]
    NoClaims(u64),
    #[error("{address} has no claim in epoch {epoch}")]
    NoClaimFor { address: EvmAddress, epoch: u64 },
    #[error("claims index disagrees with the ledger at epoch {0}; run `lode ledger verify`")]
    ClaimsIndexMismatch(u64),
    #[error("encoding: {0}")]
    Encoding(#[from] CanonicalError),
    #[error(transparent)]
    Merkle(#[from] MerkleError),
}

impl From<ProduceError> for LedgerError {
    fn from(e: ProduceError) -> Self {
        match e {
            ProduceError::Genesis(g) => LedgerError::Genesis(g),
            ProduceError::Entry(x) => LedgerError::Entry(x),
            ProduceError::NotSubmittable(k) => LedgerError::NotSubmittable(k),
            ProduceError::BlockFull(n) => LedgerError::BlockFull(n),
            ProduceError::NotAValidator(d) => LedgerError::NotAValidator(d),
            ProduceError::Encoding(c) => LedgerError::Encoding(c),
        }
    }
}

/// What opening a ledger found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReport {
    pub head: u64,
    /// Snapshot the state was loaded from (None: replayed from genesis).
    pub snapshot_height: Option<u64>,
    pub replayed_blocks: u64,
    /// A last block that failed verification and was dropped (height, reason).
    pub dropped_tail: Option<(u64, String)>,
}

/// A block that was sealed and written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBlock {
    pub height: u64,
    pub hash: Hash32,
    pub timestamp_ms: u64,
    pub entries: usize,
    pub state_root: Hash32,
    /// Epochs closed in this block.
    pub epochs_closed: Vec<u64>,
}

/// A claim proof for one payout address, ready for a claim contract:
/// `MerkleProof.verify(proof, root, keccak256(bytes.concat(keccak256(abi.encode(address, amount)))))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimProof {
    pub format: String,
    /// Genesis block hash of the chain.
    pub chain_id: String,
    pub epoch: u64,
    pub root: String,
    pub address: EvmAddress,
    /// Cumulative amount withdrawn to the address (base units, decimal).
    pub amount: String,
    pub leaf: String,
    pub proof: Vec<String>,
    #[serde(rename = "leafEncoding")]
    pub leaf_encoding: Vec<String>,
}

mod follower;
pub use follower::RemoteBlock;

/// A running ledger (single writer).
#[derive(Debug)]
pub struct Ledger {
    store: BlockStore,
    producer: Producer,
    config: LedgerConfig,
    last_snapshot: u64,
    report: OpenReport,
    /// A gateway's copy of a replicated chain (see [`Ledger::open_follower`]).
    follower: Option<follower::Follow>,
}

/// Loads the state at the head of `store`: newest valid snapshot, then
/// replays the blocks after it with full verification. A failing LAST block
/// is a torn tail: dropped when `repair` (writer), an error otherwise.
pub(crate) fn load_state(
    store: &BlockStore,
    repair: bool,
) -> Result<(State, OpenReport), LedgerError> {
    let head = store.head()?.ok_or(LedgerError::Empty)?;
    let mut report = OpenReport {
        head,
        ..OpenReport::default()
    };
    let read = |h: u64| -> Result<Block, LedgerError> {
        read_block(store, h)?.ok_or(LedgerError::MissingBlock(h))
    };
    let mut state = None;
    for (h, bytes) in store.snapshots()? {
        if h > head {
            continue;
        }
        let Ok(s) = State::from_snapshot(&bytes) else {
            continue;
        };
        let Ok(b) = read(h) else { continue };
        if s.height() == h && s.state_root() == b.header.state_root && s.head_hash() == b.hash() {
            report.snapshot_height = Some(h);
            state = Some(s);
            break;
        }
    }
    let mut state = match state {
        Some(s) => s,
        None => State::from_genesis_block(&read(0)?)
            .map_err(|error| LedgerError::Block { height: 0, error })?,
    };
    let mut h = state.height() + 1;
    while h <= head {
        let r = read(h).and_then(|b| {
            state
                .apply_block(&b)
                .map_err(|error| LedgerError::Block { height: h, error })
        });
        if let Err(e) = r {
            if h == head && repair {
                store.drop_from(h)?;
                report.dropped_tail = Some((h, e.to_string()));
                report.head = h - 1;
                break;
            }
            return Err(e);
        }
        report.replayed_blocks += 1;
        h += 1;
    }
    Ok((state, report))
}

impl Ledger {
    /// Creates a new chain in `dir` from `genesis`, signed by `validator`.
    /// An empty validator list in the genesis is filled with `validator`.
    pub fn create(
        dir: &Path,
        genesis: &Genesis,
        validator: Keypair,
        config: LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        let (store, producer) = create_chain(dir, genesis, validator, &config)?;
        Ok(Self::assemble(
            store,
            producer,
            config,
            OpenReport::default(),
        ))
    }

    fn assemble(
        store: BlockStore,
        mut producer: Producer,
        config: LedgerConfig,
        report: OpenReport,
    ) -> Ledger {
        producer.set_max_block_entries(config.max_block_entries);
        producer.state_mut().record_events(config.index_history);
        Ledger {
            store,
            producer,
            last_snapshot: report.snapshot_height.unwrap_or(0),
            config,
            report,
            follower: None,
        }
    }

    /// Opens an existing chain in `dir` (recovering a torn tail, see [`OpenReport`]).
    pub fn open(
        dir: &Path,
        validator: Keypair,
        config: LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        let store = BlockStore::open(dir)?;
        let (state, report) = load_state(&store, true)?;
        let producer = Producer::resume(state, validator)?;
        Ok(Self::assemble(store, producer, config, report))
    }

    /// Opens the chain in `dir`, creating it from `genesis` if there is none.
    /// An existing chain must have been created from the same genesis.
    pub fn open_or_create(
        dir: &Path,
        genesis: &Genesis,
        validator: Keypair,
        config: LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        if dir.join(crate::store::DB_FILE).exists() {
            let g = complete_genesis(genesis, &validator)?;
            let l = Self::open(dir, validator, config)?;
            if *l.state().genesis() != g {
                return Err(LedgerError::GenesisMismatch);
            }
            Ok(l)
        } else {
            Self::create(dir, genesis, validator, config)
        }
    }

    /// What opening found.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The state including the open block.
    pub fn state(&self) -> &State {
        self.producer.state()
    }

    /// Chain identity (genesis block hash): what signed entries bind to.
    pub fn chain_id(&self) -> Hash32 {
        self.state().chain_id()
    }

    /// The validator's identity.
    pub fn validator(&self) -> Did {
        self.producer.validator().did()
    }

    /// Height of the last durable block.
    pub fn height(&self) -> u64 {
        self.state().height()
    }

    /// Entries in the open block.
    pub fn pending_len(&self) -> usize {
        self.producer.pending_len()
    }

    /// Checks `entry` against the current state and adds it to the open
    /// block. On error nothing changes. Not durable until [`Ledger::seal_block`].
    pub fn submit(&mut self, entry: Entry) -> Result<(), LedgerError> {
        Ok(self.producer.submit(entry)?)
    }

    /// Submits many entries, verifying their signatures in parallel first.
    /// Returns one result per entry, in order; each succeeds or fails alone.
    pub fn submit_batch(&mut self, entries: Vec<Entry>) -> Vec<Result<(), LedgerError>> {
        let ok = crate::par::map(&entries, 64, |e| e.signature_valid());
        entries
            .into_iter()
            .zip(ok)
            .map(|(e, sig_ok)| {
                if sig_ok {
                    Ok(self.producer.submit_checked(e, true)?)
                } else {
                    let signer = e.envelope().map_or(self.validator(), |v| v.signer);
                    Err(LedgerError::Entry(EntryError::BadSignature {
                        kind: e.kind_name(),
                        signer,
                    }))
                }
            })
            .collect()
    }

    /// The settlement entry that pays what `job` owes (and closes it when `close`).
    pub fn settlement(&self, job: &JobId, close: bool) -> Result<Settlement, LedgerError> {
        Ok(self.state().settlement(job, close)?)
    }

    /// Whether sealing at `now_ms` would close an epoch.
    pub fn epoch_due(&self, now_ms: u64) -> bool {
        // A follower never closes epochs: the validators' blocks do.
        self.follower.is_none()
            && self
                .state()
                .epoch_due(now_ms.max(self.state().totals().timestamp_ms))
    }

    /// Closes every epoch that has ended by `now_ms`, then signs and durably
    /// writes (fsync) a block of all open entries. Returns `None` if there was
    /// nothing to write. The block time is `max(now_ms, previous block time)`.
    /// On error the open entries stay open (a later call retries).
    pub fn seal_block(&mut self, now_ms: u64) -> Result<Option<SealedBlock>, LedgerError> {
        if self.follower.is_some() {
            return self.seal_batch(now_ms);
        }
        let Some(p) = self.producer.prepare(now_ms)? else {
            return Ok(None);
        };
        let r = self.store.append(&AppendBatch {
            height: p.block.header.height,
            block: &p.bytes,
            events: &p.events,
            claims: &p.claims,
            certificate: None,
        });
        if let Err(e) = r {
            self.producer.abort(p);
            return Err(e.into());
        }
        let epochs_closed = p.epochs_closed.clone();
        let block = self.producer.commit(p);
        let h = &block.header;
        let sealed = SealedBlock {
            height: h.height,
            hash: block.hash(),
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
        Ok(Some(sealed))
    }

    /// Writes a snapshot of the state at the head, if the open block is empty
    /// and the head has none yet (e.g. at a clean shutdown, so the next open
    /// replays no block). Returns whether one was written.
    pub fn snapshot_head(&mut self) -> Result<bool, LedgerError> {
        let height = self.height();
        if self.follower.is_some() || self.pending_len() > 0 || height == self.last_snapshot {
            return Ok(false);
        }
        let bytes = snapshot_bytes(self.state())?;
        self.store
            .put_snapshot(height, &bytes, self.config.keep_snapshots)?;
        self.last_snapshot = height;
        Ok(true)
    }

    // ------------------------------------------------------------------
    // Queries backed by the store

    /// Block `height`, decoded.
    pub fn block(&self, height: u64) -> Result<Option<Block>, LedgerError> {
        read_block(&self.store, height)
    }

    /// The newest `limit` events of an account, newest first.
    pub fn history(&self, account: &Did, limit: usize) -> Result<Vec<Event>, LedgerError> {
        Ok(self.store.history(account, self.height(), limit)?)
    }

    /// The claims tree published at the close of `epoch`.
    pub fn claims_tree(&self, epoch: u64) -> Result<StandardMerkleTree, LedgerError> {
        claims_tree(&self.store, self.producer.state(), epoch)
    }

    /// The claim proof of `address` in the tree of `epoch` (default: the last closed epoch).
    pub fn claim_proof(
        &self,
        address: &EvmAddress,
        epoch: Option<u64>,
    ) -> Result<ClaimProof, LedgerError> {
        claim_proof(&self.store, self.producer.state(), address, epoch)
    }

    /// The underlying store (for tooling).
    pub fn store(&self) -> &BlockStore {
        &self.store
    }
}

/// Writes block 0 of a new chain from `genesis` (and a snapshot of it) into
/// a new store in `dir`; the producer continues from it.
pub(crate) fn create_chain(
    dir: &Path,
    genesis: &Genesis,
    key: Keypair,
    config: &LedgerConfig,
) -> Result<(BlockStore, Producer), LedgerError> {
    let (mut producer, block) = Producer::genesis(genesis, key)?;
    let events = producer.state_mut().take_events();
    let store = BlockStore::create(dir)?;
    store.append(&AppendBatch {
        height: 0,
        block: &block.to_bytes()?,
        events: &events,
        claims: &[],
        certificate: None,
    })?;
    store.put_snapshot(0, &snapshot_bytes(producer.state())?, config.keep_snapshots)?;
    Ok((store, producer))
}

/// After `sealed` became the head: a snapshot every `snapshot_every_blocks`
/// and after every epoch close. Best effort: a missing snapshot only
/// lengthens the next open.
pub(crate) fn snapshot_if_due(
    store: &BlockStore,
    state: &State,
    sealed: &SealedBlock,
    config: &LedgerConfig,
    last_snapshot: &mut u64,
) {
    let due = sealed.height.saturating_sub(*last_snapshot) >= config.snapshot_every_blocks
        || !sealed.epochs_closed.is_empty();
    if due
        && let Ok(bytes) = snapshot_bytes(state)
        && store
            .put_snapshot(sealed.height, &bytes, config.keep_snapshots)
            .is_ok()
    {
        *last_snapshot = sealed.height;
    }
}

pub(crate) fn snapshot_bytes(state: &State) -> Result<Vec<u8>, LedgerError> {
    state
        .to_snapshot()
        .map_err(|e| LedgerError::Encoding(CanonicalError::Encode(e.to_string())))
}

pub(crate) fn read_block(store: &BlockStore, height: u64) -> Result<Option<Block>, LedgerError> {
    match store.block_bytes(height)? {
        None => Ok(None),
        Some(b) => Block::from_bytes(&b)
            .map(Some)
            .map_err(|error| LedgerError::Decode { height, error }),
    }
}

pub(crate) fn claims_tree(
    store: &BlockStore,
    state: &State,
    epoch: u64,
) -> Result<StandardMerkleTree, LedgerError> {
    let rec = state
        .epoch_record(epoch)
        .ok_or(LedgerError::EpochNotClosed(epoch))?;
    if rec.claims_count == 0 {
        return Err(LedgerError::NoClaims(epoch));
    }
    let values: Vec<(EvmAddress, Amount)> =
        store.claims_at(rec.close_height)?.into_iter().collect();
    let tree = StandardMerkleTree::of(values)?;
    if tree.root() != rec.claims_root.0 || tree.len() as u64 != rec.claims_count {
        return Err(LedgerError::ClaimsIndexMismatch(epoch));
    }
    Ok(tree)
}

pub(crate) fn claim_proof(
    store: &BlockStore,
    state: &State,
    address: &EvmAddress,
    epoch: Option<u64>,
) -> Result<ClaimProof, LedgerError> {
    let epoch = match epoch {
        Some(e) => e,
        None => state
            .epoch()
            .checked_sub(1)
            .ok_or(LedgerError::EpochNotClosed(0))?,
    };
    let tree = claims_tree(store, state, epoch)?;
    ClaimProof::from_tree(state.chain_id(), epoch, &tree, address).ok_or(LedgerError::NoClaimFor {
        address: *address,
        epoch,
    })
}

impl ClaimProof {
    /// The proof of `address` in `tree`, the claims tree published at the
    /// close of `epoch` of chain `chain_id` (None: the address has no leaf).
    /// For callers that keep a built tree to answer many proofs.
    pub fn from_tree(
        chain_id: Hash32,
        epoch: u64,
        tree: &StandardMerkleTree,
        address: &EvmAddress,
    ) -> Option<ClaimProof> {
        let i = tree.find(address)?;
        let (_, amount) = tree.values()[i];
        let proof = tree.proof(i).unwrap_or_default();
        Some(ClaimProof {
            format: "lode-claim-v1".into(),
            chain_id: chain_id.to_hex(),
            epoch,
            root: merkle::hex0x(&tree.root()),
            address: *address,
            amount: amount.to_string(),
            leaf: merkle::hex0x(&merkle::leaf_hash(address, amount)),
            proof: proof.iter().map(|p| merkle::hex0x(p)).collect(),
            leaf_encoding: LEAF_ENCODING.iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// A read-only view of a ledger directory (works while a gateway writes it).
#[derive(Debug)]
pub struct LedgerView {
    store: BlockStore,
    state: State,
    report: OpenReport,
    dir: PathBuf,
}

impl LedgerView {
    /// Opens `dir` read-only and loads the state at its head (newest valid
    /// snapshot plus a verified replay of the blocks after it).
    pub fn open(dir: &Path) -> Result<LedgerView, LedgerError> {
        let store = BlockStore::open_for_reading(dir)?;
        let (state, report) = load_state(&store, false)?;
        Ok(LedgerView {
            store,
            state,
            report,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    pub fn block(&self, height: u64) -> Result<Option<Block>, LedgerError> {
        read_block(&self.store, height)
    }

    pub fn history(&self, account: &Did, limit: usize) -> Result<Vec<Event>, LedgerError> {
        Ok(self.store.history(account, self.state.height(), limit)?)
    }

    pub fn claims_tree(&self, epoch: u64) -> Result<StandardMerkleTree, LedgerError> {
        claims_tree(&self.store, &self.state, epoch)
    }

    pub fn claim_proof(
        &self,
        address: &EvmAddress,
        epoch: Option<u64>,
    ) -> Result<ClaimProof, LedgerError> {
        claim_proof(&self.store, &self.state, address, epoch)
    }
}
