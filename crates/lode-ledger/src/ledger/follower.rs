//! A gateway's copy of a replicated chain (issue 14): the gateway is a client
//! of the validators, not a block producer.
//!
//! ```text
//! submit(entry)     → checked against the chain head plus everything this
//!                     gateway has queued (as coming in its batch)
//! seal_block(t)     → the open entries become ONE signed `GatewayBatch`
//!                     (nonce = the gateway's next), written durably to the
//!                     store's outbox (fsync): durable from here, retried
//!                     until a validator includes it
//! apply_remote(b,c) → a block decided by the validators, with its commit
//!                     certificate checked against the set in force; then
//!                     this gateway's batches not in the chain yet are
//!                     re-applied on top of the new head
//! ```
//!
//! The state seen through [`Ledger::state`] is the committed chain plus the
//! in-flight batches plus the open entries: what the gateway has promised.
//! A batch of this gateway's that the chain holds under its nonce is done; one
//! whose nonce the chain passed with other content, or that no longer
//! applies, is dropped and its entries are queued again one by one (those that
//! still apply go into the next batch; the others are reported).

use super::{
    Ledger, LedgerConfig, LedgerError, OpenReport, create_chain, load_state, snapshot_if_due,
};
use crate::block::Block;
use crate::consensus::CommitCertificate;
use crate::entry::{Entry, GatewayBatch, MAX_BATCH_ENTRIES};
use crate::error::{BlockError, EntryError};
use crate::genesis::Genesis;
use crate::producer::{Producer, complete_genesis};
use crate::state::Mark;
use crate::store::{AppendBatch, BlockStore};
use lode_proto::{Hash32, Keypair, canonical};
use std::path::Path;
use std::sync::Arc;

/// A batch durable in the outbox and not yet in a committed block.
#[derive(Debug, Clone)]
struct InFlight {
    nonce: u64,
    batch: Entry,
    /// Its canonical bytes (what goes to the validators), made once.
    bytes: Arc<Vec<u8>>,
}

impl InFlight {
    fn new(nonce: u64, batch: Entry) -> Result<InFlight, LedgerError> {
        let bytes = Arc::new(canonical::encode(&batch)?);
        Ok(InFlight {
            nonce,
            batch,
            bytes,
        })
    }
}

/// Follower bookkeeping.
#[derive(Debug)]
pub(crate) struct Follow {
    /// Batches durable in the outbox and not yet in a committed block, by nonce.
    inflight: Vec<InFlight>,
    /// The state's mark after the in-flight batches (the open entries start here).
    pending_mark: Mark,
}

/// What applying a validators' block did here.
#[derive(Debug, Default)]
pub struct RemoteBlock {
    pub sealed: Option<super::SealedBlock>,
    /// This gateway's batches the block included.
    pub included_batches: u64,
    /// Entries that no longer apply and were dropped, with why.
    pub dropped: Vec<(Entry, EntryError)>,
}

impl Ledger {
    /// Opens (creating if needed) a gateway's copy of the replicated chain
    /// `genesis` in `dir`; `key` signs its batches and must be a listed gateway.
    /// Batches left in the outbox by a previous run are applied again.
    pub fn open_follower(
        dir: &Path,
        genesis: &Genesis,
        key: Keypair,
        config: LedgerConfig,
    ) -> Result<Ledger, LedgerError> {
        let g = complete_genesis(genesis, &key)?;
        let Some(c) = &g.consensus else {
            return Err(LedgerError::NotReplicated);
        };
        if !c.gateways.contains(&key.did()) {
            return Err(LedgerError::NotAGateway(key.did()));
        }
        let (store, producer, report) = if dir.join(crate::store::DB_FILE).exists() {
            let store = BlockStore::open(dir)?;
            let (state, report) = load_state(&store, true)?;
            if *state.genesis() != g {
                return Err(LedgerError::GenesisMismatch);
            }
            (store, Producer::resume(state, key)?, report)
        } else {
            let (store, producer) = create_chain(dir, &g, key, &config)?;
            (store, producer, OpenReport::default())
        };
        let mut l = Self::assemble(store, producer, config, report);
        l.producer.set_gateway_mode();
        l.follower = Some(Follow {
            inflight: Vec::new(),
            pending_mark: l.producer.state().mark(),
        });
        let mut outbox = Vec::new();
        for (nonce, bytes) in l.store.outbox()? {
            // A row that does not decode is skipped: one bad record never
            // stops a start (its nonce is taken again by the next batch).
            if let Ok(e) = canonical::decode::<Entry>(&bytes) {
                outbox.push(InFlight {
                    nonce,
                    batch: e,
                    bytes: Arc::new(bytes),
                });
            }
        }
        l.rebase(outbox, Vec::new(), Vec::new())?;
        Ok(l)
    }

    /// Whether this is a gateway's copy of a replicated chain.
    pub fn is_follower(&self) -> bool {
        self.follower.is_some()
    }

    /// This gateway's batches not yet seen in a committed block: (nonce,
    /// canonical entry bytes), in nonce order (what to send to validators).
    pub fn inflight(&self) -> Vec<(u64, Arc<Vec<u8>>)> {
        self.inflight_from(0)
    }

    /// A number that grows whenever what was submitted before becomes
    /// durable: the height on a producing ledger, the gateway's next batch
    /// nonce on a follower (kept across restarts by the chain and the outbox).
    /// An entry submitted when it was `m` is durable once it exceeds `m`.
    pub fn seal_mark(&self) -> u64 {
        match &self.follower {
            // The open entries are not in a batch: count the batches only.
            Some(f) => f.inflight.last().map_or_else(
                || {
                    self.producer
                        .state()
                        .next_nonce(&self.producer.validator().did())
                },
                |b| b.nonce + 1,
            ),
            None => self.height(),
        }
    }

    /// In-flight batches with a nonce of at least `from` (shared bytes: cheap).
    pub fn inflight_from(&self, from: u64) -> Vec<(u64, Arc<Vec<u8>>)> {
        self.follower.as_ref().map_or_else(Vec::new, |f| {
            f.inflight
                .iter()
                .filter(|b| b.nonce >= from)
                .map(|b| (b.nonce, b.bytes.clone()))
                .collect()
        })
    }

    /// Number of in-flight batches.
    pub fn inflight_len(&self) -> usize {
        self.follower.as_ref().map_or(0, |f| f.inflight.len())
    }

    /// Follower `seal_block`: the open entries become durable signed batches.
    pub(super) fn seal_batch(
        &mut self,
        now_ms: u64,
    ) -> Result<Option<super::SealedBlock>, LedgerError> {
        let Some(f) = self.follower.as_mut() else {
            return Ok(None);
        };
        if self.producer.pending_len() == 0 {
            return Ok(None);
        }
        if self.producer.pending_len() <= MAX_BATCH_ENTRIES {
            return self.seal_one_batch(now_ms).map(Some);
        }
        let entries = self.producer.drain_pending(&f.pending_mark);
        let count = entries.len();
        let key = self.producer.validator().clone();
        let chain = self.producer.state().chain_id();
        let mut chunks = entries.chunks(MAX_BATCH_ENTRIES).peekable();
        while let Some(chunk) = chunks.next() {
            let nonce = self.producer.state().next_nonce(&key.did());
            let made = Entry::sign(
                &key,
                nonce,
                now_ms,
                &GatewayBatch {
                    chain,
                    entries: chunk.to_vec(),
                },
            )
            .map_err(LedgerError::from)
            .and_then(|batch| {
                let bytes = canonical::encode(&batch)?;
                self.producer.apply_batch(&batch)?;
                Ok((batch, bytes))
            });
            let written =
                made.and_then(
                    |(batch, bytes)| match self.store.put_outbox(nonce, &bytes) {
                        Ok(()) => Ok(batch),
                        Err(e) => {
                            if let Some(f) = &self.follower {
                                self.producer.state_mut().rollback(&f.pending_mark);
                            }
                            Err(e.into())
                        }
                    },
                );
            match written.and_then(|batch| InFlight::new(nonce, batch)) {
                Ok(b) => {
                    let mark = self.producer.state().mark();
                    if let Some(f) = self.follower.as_mut() {
                        f.inflight.push(b);
                        f.pending_mark = mark;
                    }
                }
                Err(e) => {
                    // Not durable: the entries of this and later chunks stay open.
                    let rest: Vec<Entry> = chunk
                        .iter()
                        .cloned()
                        .chain(chunks.flat_map(|c| c.iter().cloned()))
                        .collect();
                    for entry in rest {
                        let _ = self.producer.submit_checked(entry, true);
                    }
                    return Err(e);
                }
            }
        }
        let st = self.producer.state();
        Ok(Some(super::SealedBlock {
            height: st.height(),
            hash: st.head_hash(),
            timestamp_ms: now_ms,
            entries: count,
            state_root: st.state_root(),
            epochs_closed: Vec::new(),
        }))
    }

    /// The open entries (at most one batch's worth) become one batch without
    /// being applied again: they were applied as this gateway's when
    /// submitted, so the batch only adds its nonce. On a failed write the
    /// nonce is undone and the entries stay open.
    fn seal_one_batch(&mut self, now_ms: u64) -> Result<super::SealedBlock, LedgerError> {
        let key = self.producer.validator().clone();
        let me = key.did();
        let chain = self.producer.state().chain_id();
        let nonce = self.producer.state().next_nonce(&me);
        let entries = self.producer.pending_entries().to_vec();
        let count = entries.len();
        let batch = Entry::sign(&key, nonce, now_ms, &GatewayBatch { chain, entries })?;
        let b = InFlight::new(nonce, batch)?;
        let before = self.producer.state().mark();
        self.producer.state_mut().bump_nonce(&me, nonce)?;
        if let Err(e) = self.store.put_outbox(nonce, &b.bytes) {
            self.producer.state_mut().rollback(&before);
            return Err(e.into());
        }
        self.producer.forget_pending();
        let mark = self.producer.state().mark();
        if let Some(f) = self.follower.as_mut() {
            f.inflight.push(b);
            f.pending_mark = mark;
        }
        let st = self.producer.state();
        Ok(super::SealedBlock {
            height: st.height(),
            hash: st.head_hash(),
            timestamp_ms: now_ms,
            entries: count,
            state_root: st.state_root(),
            epochs_closed: Vec::new(),
        })
    }

    /// Applies the next block decided by the validators, after checking its
    /// certificate against the validator set in force; writes it (with the
    /// certificate) durably; then re-applies this gateway's batches and open
    /// entries on the new head.
    pub fn apply_remote(
        &mut self,
        block: Block,
        cert: &CommitCertificate,
    ) -> Result<RemoteBlock, LedgerError> {
        let Some(f) = self.follower.as_mut() else {
            return Err(LedgerError::NotReplicated);
        };
        let height = block.header.height;
        let inflight = std::mem::take(&mut f.inflight);
        let pending = self.producer.take_pending();
        let me = self.producer.validator().did();
        let fail = |error: BlockError| LedgerError::Block { height, error };
        let staged = self
            .producer
            .state()
            .check_certificate(&block, cert)
            .map_err(fail)
            .and_then(|()| {
                let encoded = canonical::encode(cert)?;
                let staged = self.producer.stage(block).map_err(fail)?;
                Ok((staged, encoded))
            })
            .and_then(|(staged, cert_bytes)| {
                let bytes = staged.block.to_bytes()?;
                let r = self.store.append(&AppendBatch {
                    height,
                    block: &bytes,
                    events: &staged.events,
                    claims: &staged.claims,
                    certificate: Some(&cert_bytes),
                });
                match r {
                    Ok(()) => Ok(staged),
                    Err(e) => {
                        self.producer.unstage(staged);
                        Err(e.into())
                    }
                }
            });
        let staged = match staged {
            Ok(s) => s,
            Err(e) => {
                // Nothing changed: put the batches and entries back.
                self.rebase(inflight, Vec::new(), pending)?;
                return Err(e);
            }
        };
        let mine: Vec<(u64, Hash32)> = staged
            .block
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::GatewayBatch(env) if env.signer == me => {
                    let nonce = crate::entry::decode_payload::<GatewayBatch>(env)
                        .ok()?
                        .nonce;
                    Some((nonce, Hash32::sha256(&env.payload)))
                }
                _ => None,
            })
            .collect();
        let epochs_closed = staged.block.epochs_closed();
        let block = self.producer.finish(staged);
        let h = &block.header;
        let sealed = super::SealedBlock {
            height,
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
        // Which of this gateway's batches the block settled.
        let mut included = 0;
        let mut lost = Vec::new();
        let mut rest = Vec::new();
        for b in inflight {
            match mine.iter().find(|(n, _)| *n == b.nonce) {
                Some((_, hash)) => {
                    let same = b
                        .batch
                        .envelope()
                        .is_some_and(|env| Hash32::sha256(&env.payload) == *hash);
                    if same {
                        included += 1;
                    } else {
                        // The chain holds another batch under this nonce
                        // (one made before a rebase): ours was not included.
                        lost.push(b.batch);
                    }
                }
                None => rest.push(b),
            }
        }
        let mut requeue = Vec::new();
        for b in lost {
            requeue.extend(batch_entries(&b));
        }
        let dropped = self.rebase(rest, requeue, pending)?;
        Ok(RemoteBlock {
            sealed: Some(sealed),
            included_batches: included,
            dropped,
        })
    }

    /// Re-applies in-flight batches (in nonce order; from the first that no
    /// longer applies or whose nonce is no longer next, their entries are
    /// queued again one by one), then `requeue` and the open entries
    /// `pending`. Prunes the outbox of what is on the chain or dropped.
    /// Returns the entries that no longer apply.
    fn rebase(
        &mut self,
        inflight: Vec<InFlight>,
        requeue: Vec<Entry>,
        pending: Vec<Entry>,
    ) -> Result<Vec<(Entry, EntryError)>, LedgerError> {
        let me = self.producer.validator().did();
        let mut kept = Vec::new();
        let mut again = Vec::new();
        let chain_next = self.producer.state().next_nonce(&me);
        for b in inflight {
            if b.nonce < chain_next {
                // On the chain already (a restart after it was included).
                continue;
            }
            let next = self.producer.state().next_nonce(&me);
            if again.is_empty() && b.nonce == next && self.producer.apply_batch(&b.batch).is_ok() {
                kept.push(b);
            } else {
                again.extend(batch_entries(&b.batch));
            }
        }
        let mark = self.producer.state().mark();
        if let Some(f) = self.follower.as_mut() {
            f.inflight = kept;
            f.pending_mark = mark;
        }
        let mut dropped = Vec::new();
        for e in again.into_iter().chain(requeue).chain(pending) {
            match self.producer.submit_checked(e.clone(), false) {
                Ok(()) => {}
                Err(crate::producer::ProduceError::Entry(err)) => dropped.push((e, err)),
                Err(other) => {
                    dropped.push((
                        e,
                        EntryError::Malformed {
                            kind: "entry",
                            reason: other.to_string(),
                        },
                    ));
                }
            }
        }
        // Rows of dropped batches stay until a new batch takes their nonce:
        // their entries are only in memory until the next seal, and every
        // entry is idempotent on the ledger (nonces, unique ids, credited
        // sets), so re-applying one after a crash can duplicate nothing.
        self.store.prune_outbox(chain_next, &[])?;
        Ok(dropped)
    }
}

fn batch_entries(batch: &Entry) -> Vec<Entry> {
    match batch {
        Entry::GatewayBatch(env) => crate::entry::decode_payload::<GatewayBatch>(env)
            .map(|p| p.message.entries)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}
