//! The engine: configuration ([`EngineConfig`]), start-up ([`start`],
//! [`run`]) and the loop answering Malachite's application messages on
//! behalf of an [`App`].
//!
//! Persistence and restarts (docs/design/validators.md §8): every proposal
//! built or received is stored ([`ProposalStore`]) before the engine hears of
//! it; `StartedRound` is answered from the store; the own block of a height
//! is re-proposed at later rounds (never a second `App::propose`);
//! `RestreamProposal` re-publishes stored parts; a `Decided` for a value the
//! store lacks is answered at `Finalized` with `Next::Restart` (value sync
//! then fetches it) — never a panic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use bytesize::ByteSize;
use lode_proto::{Hash32, Keypair};
use malachitebft_app_channel::app::config::{ConsensusConfig, NodeConfig, ValueSyncConfig};
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::StreamId;
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::{LinearTimeouts, Round, Validity};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{
    Keypair as NetKeypair, LocallyProposedValue, ProposedValue,
};
use malachitebft_app_channel::{
    AppMsg, Channels, ConsensusContext, EngineBuilder, EngineHandle as McHandle, NetworkContext,
    NetworkIdentity, NetworkMsg, RequestContext, Signer as _, SyncContext, WalContext,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::app::{App, AppError};
use crate::cert::{equivocations, from_lode, to_lode};
use crate::codec::LodeCodec;
use crate::ctx::{
    Address, Height, LodeCtx, ValidatorSet, Value, ValueId, round_u32, select_proposer,
};
use crate::parts::{Assembled, PartInit, Reassembler, split, stream};
use crate::signing::{LodeSigner, LodeVerifier, ProposalBody, verify_proposal};
use crate::store::{ProposalStore, StoreError, Stored};

/// Consensus timeouts (each grows by its delta per round).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub propose: Duration,
    pub propose_delta: Duration,
    pub prevote: Duration,
    pub prevote_delta: Duration,
    pub precommit: Duration,
    pub precommit_delta: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            propose: Duration::from_millis(500),
            propose_delta: Duration::from_millis(100),
            prevote: Duration::from_millis(200),
            prevote_delta: Duration::from_millis(100),
            precommit: Duration::from_millis(200),
            precommit_delta: Duration::from_millis(100),
        }
    }
}

impl Timeouts {
    fn linear(&self) -> LinearTimeouts {
        LinearTimeouts {
            propose: self.propose,
            propose_delta: self.propose_delta,
            prevote: self.prevote,
            prevote_delta: self.prevote_delta,
            precommit: self.precommit,
            precommit_delta: self.precommit_delta,
            rebroadcast: Duration::from_secs(1),
            max_timeout: Duration::from_secs(10),
        }
    }
}

/// Default bound on a block's bytes.
pub const DEFAULT_MAX_BLOCK_BYTES: usize = 32 * 1024 * 1024;

/// How a validator runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Holds the consensus WAL (`consensus.wal`) and the proposal store (`proposals.redb`).
    pub home: PathBuf,
    /// The validator's Lode key (its did is its consensus address; the libp2p
    /// identity is derived from it).
    pub key: Keypair,
    pub listen: SocketAddr,
    pub peers: Vec<SocketAddr>,
    pub timeouts: Timeouts,
    pub max_block_bytes: usize,
    /// Test only: equivocate every vote and proposal (Malachite's byzantine proxy).
    #[doc(hidden)]
    pub test_equivocate: bool,
}

impl EngineConfig {
    /// A configuration with the default timeouts and block bound.
    pub fn new(home: PathBuf, key: Keypair, listen: SocketAddr, peers: Vec<SocketAddr>) -> Self {
        Self {
            home,
            key,
            listen,
            peers,
            timeouts: Timeouts::default(),
            max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
            test_equivocate: false,
        }
    }

    /// Decided values per sync response.
    fn sync_batch(&self) -> usize {
        (16 * 1024 * 1024 / self.max_block_bytes.max(1)).clamp(1, 10)
    }

    /// The largest message the codec accepts (a sync response of a full batch).
    fn max_message(&self) -> usize {
        self.sync_batch() * self.max_block_bytes + 1024 * 1024
    }
}

/// Why the engine stopped or did not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("application: {0}")]
    App(#[from] AppError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("engine start-up: {0}")]
    Start(String),
    #[error("the consensus engine stopped: {0}")]
    Stopped(String),
}

/// A running engine. [`EngineHandle::stop`] shuts it down (dropping the
/// handle does too); [`EngineHandle::join`] waits for it to end on its own.
#[derive(Debug)]
pub struct EngineHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), EngineError>>,
}

impl EngineHandle {
    /// Stops the engine (network, WAL, consensus actors and the app loop) and
    /// waits until it has released its port, WAL and store.
    pub async fn stop(mut self) -> Result<(), EngineError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task
            .await
            .map_err(|e| EngineError::Stopped(e.to_string()))?
    }

    /// Waits for the engine to end (an error of the application or engine).
    pub async fn join(self) -> Result<(), EngineError> {
        let EngineHandle { stop, task } = self;
        let r = task.await.map_err(|e| EngineError::Stopped(e.to_string()));
        drop(stop);
        r?
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Runs a validator until the application or the engine fails.
pub async fn run(cfg: EngineConfig, app: impl App) -> Result<(), EngineError> {
    start(cfg, app).await?.join().await
}

#[derive(Clone, Debug, Default)]
struct NodeCfg {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for NodeCfg {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn multiaddr(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => format!("/ip4/{}/tcp/{}", v.ip(), v.port()),
        SocketAddr::V6(v) => format!("/ip6/{}/tcp/{}", v.ip(), v.port()),
    }
}

fn start_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Start(e.to_string())
}

/// Domain tag of the libp2p key derived from a validator's Lode key.
const NET_KEY_TAG: &[u8] = b"lode/validator/p2p-key/v1\0";

/// Starts a validator: opens its store and WAL under `cfg.home`, joins the
/// network and spawns the application loop.
pub async fn start(cfg: EngineConfig, app: impl App) -> Result<EngineHandle, EngineError> {
    std::fs::create_dir_all(&cfg.home)?;
    let store = ProposalStore::open(&cfg.home.join("proposals.redb"))?;
    let chain = app.chain_id();
    let me = Address(cfg.key.did());
    let signer = LodeSigner::new(cfg.key.clone(), chain);
    let codec = LodeCodec::new(cfg.max_message());

    let mut node = NodeCfg {
        moniker: me.0.short(),
        ..Default::default()
    };
    node.consensus.p2p.listen_addr = multiaddr(&cfg.listen).parse().map_err(start_err)?;
    node.consensus.p2p.persistent_peers = cfg
        .peers
        .iter()
        .map(|p| multiaddr(p).parse())
        .collect::<Result<_, _>>()
        .map_err(start_err)?;
    node.consensus.p2p.rpc_max_size = ByteSize::b(cfg.max_message() as u64);
    node.value_sync.enabled = true;
    node.value_sync.batch_size = cfg.sync_batch();
    node.value_sync.max_response_size = ByteSize::b(cfg.max_message() as u64);
    node.value_sync.status_update_interval = Duration::from_secs(1);
    node.value_sync.request_timeout = Duration::from_secs(5);

    // The libp2p identity: an Ed25519 key derived from the Lode key, bound to
    // the consensus key by a signed validator proof.
    let net_secret = Hash32::sha256_parts(&[NET_KEY_TAG, cfg.key.secret_bytes().as_ref()]);
    let net_key = NetKeypair::ed25519_from_bytes(net_secret.0).map_err(start_err)?;
    let peer_id = net_key.public().to_peer_id().to_bytes();
    let proof = signer
        .sign_validator_proof(me.0.public_key_bytes().to_vec(), peer_id)
        .await
        .map_err(start_err)?;
    let proof_bytes = codec.encode(&proof).map_err(start_err)?;
    let identity =
        NetworkIdentity::new_validator(node.moniker.clone(), net_key, me.to_string(), proof_bytes);
    let wal = WalContext::new(cfg.home.join("consensus.wal"), codec);
    let consensus = ConsensusContext::new_validator(
        me,
        Box::new(LodeVerifier::new(chain)),
        Box::new(signer.clone()),
    );

    let (channels, handle) = if cfg.test_equivocate {
        use malachitebft_engine_byzantine::{ByzantineConfig, Trigger};
        warn!(validator = %me, "test flag: equivocating every vote and proposal");
        EngineBuilder::new(LodeCtx, node)
            .with_default_wal(wal)
            .with_byzantine_network(malachitebft_app_channel::ByzantineContext {
                identity,
                codec,
                config: ByzantineConfig::new(Some(7))
                    .with_equivocate_votes(Trigger::Always)
                    .with_equivocate_proposals(Trigger::Always),
                signer: Box::new(signer.clone()),
                address: me,
                conflicting_value_fn: Some(Box::new(|v: &Value| {
                    let mut id = v.id;
                    id.0.0[0] ^= 1;
                    Value::by_ref(id)
                })),
                conflicting_vote_value_fn: Some(Box::new(|id: Option<&ValueId>| {
                    let mut out = id.copied().unwrap_or(ValueId(Hash32([0; 32])));
                    out.0.0[0] ^= 1;
                    out
                })),
            })
            .await
            .map_err(start_err)?
            .with_default_sync(SyncContext::new(codec))
            .with_default_consensus(consensus)
            .with_default_request(RequestContext::new(100))
            .build()
            .await
            .map_err(start_err)?
    } else {
        EngineBuilder::new(LodeCtx, node)
            .with_default_wal(wal)
            .with_default_network(NetworkContext::new(identity, codec))
            .with_default_sync(SyncContext::new(codec))
            .with_default_consensus(consensus)
            .with_default_request(RequestContext::new(100))
            .build()
            .await
            .map_err(start_err)?
    };

    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let state = Loop {
        app,
        me,
        chain,
        signer,
        store,
        reasm: Reassembler::new(cfg.max_block_bytes),
        timeouts: cfg.timeouts.linear(),
        max_block: cfg.max_block_bytes,
        missing: None,
        pending: BTreeMap::new(),
        nonce,
        network: channels.network.clone(),
    };
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(state.run(channels, handle, stop_rx));
    Ok(EngineHandle {
        stop: Some(stop_tx),
        task,
    })
}

/// Runs an application call that may block: under `block_in_place` on a
/// multi-threaded runtime, directly otherwise.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Proposals buffered per future height (checked when it starts).
const MAX_PENDING_PER_HEIGHT: usize = 16;
/// How many heights ahead proposals are buffered.
const PENDING_HEIGHTS: u64 = 2;
/// Decided values served per sync request at most.
const MAX_SYNC_VALUES: u64 = 16;

struct Loop<A> {
    app: A,
    me: Address,
    chain: Hash32,
    signer: LodeSigner,
    store: ProposalStore,
    reasm: Reassembler,
    timeouts: LinearTimeouts,
    max_block: usize,
    /// A height decided for a value the store lacks: restart it at `Finalized`.
    missing: Option<u64>,
    /// Complete proposals for heights after the next one, checked when it starts.
    pending: BTreeMap<u64, Vec<Assembled>>,
    nonce: u64,
    network: tokio::sync::mpsc::Sender<NetworkMsg<LodeCtx>>,
}

impl<A: App> Loop<A> {
    async fn run(
        mut self,
        mut ch: Channels<LodeCtx>,
        engine: McHandle,
        mut stop: oneshot::Receiver<()>,
    ) -> Result<(), EngineError> {
        let result = loop {
            tokio::select! {
                _ = &mut stop => break Ok(()),
                msg = ch.consensus.recv() => match msg {
                    None => break Err(EngineError::Stopped("the consensus channel closed".into())),
                    Some(msg) => {
                        if let Err(e) = self.handle(msg).await {
                            warn!(validator = %self.me, error = %e, "engine stops");
                            break Err(e);
                        }
                    }
                },
            }
        };
        engine
            .actor
            .get_cell()
            .stop_children_and_wait(Some("lode: shutdown".into()), Some(Duration::from_secs(10)))
            .await;
        engine.actor.stop(Some("lode: shutdown".into()));
        let _ = engine.handle.await;
        drop(ch);
        result
    }

    fn params(&self, height: u64) -> Result<HeightParams<LodeCtx>, EngineError> {
        let set = blocking(|| self.app.validator_set(height))?;
        Ok(HeightParams::new(
            ValidatorSet::from(&set),
            self.timeouts,
            None,
        ))
    }

    fn proposed(s: &Stored) -> ProposedValue<LodeCtx> {
        ProposedValue {
            height: Height(s.height),
            round: Round::new(s.round),
            valid_round: s.pol_round,
            proposer: s.proposer,
            value: Value {
                id: s.block,
                bytes: s.bytes.clone(),
            },
            validity: Validity::from_bool(s.valid),
        }
    }

    async fn handle(&mut self, msg: AppMsg<LodeCtx>) -> Result<(), EngineError> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let committed = blocking(|| self.app.committed_height());
                self.store.prune_through(committed)?;
                let h = committed + 1;
                info!(validator = %self.me, height = h, "consensus ready");
                let _ = reply.send((Height(h), self.params(h)?));
            }
            AppMsg::StartedRound {
                height,
                round,
                reply_value,
                ..
            } => {
                let h = height.0;
                let pending = self.pending.remove(&h).unwrap_or_default();
                self.pending.retain(|k, _| *k > h);
                for a in pending {
                    self.accept(a)?;
                }
                let values = self
                    .store
                    .at_round(h, round_u32(round))?
                    .iter()
                    .map(Self::proposed)
                    .collect();
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                reply,
                ..
            } => {
                let h = height.0;
                let r = round_u32(round);
                let (block, bytes) = match self.store.own(h, self.me)? {
                    Some(own) => {
                        debug!(height = h, round = r, "re-proposing the stored own block");
                        (own.block, own.bytes)
                    }
                    None => match blocking(|| self.app.propose(h, r)) {
                        Ok((id, bytes)) if bytes.len() <= self.max_block => {
                            (ValueId(id), Bytes::from(bytes))
                        }
                        Ok((_, bytes)) => {
                            warn!(
                                height = h,
                                len = bytes.len(),
                                "the app built a block over the bound: not proposing"
                            );
                            return Ok(());
                        }
                        Err(e) => {
                            warn!(height = h, error = %e, "the app built no block: not proposing");
                            return Ok(());
                        }
                    },
                };
                self.store.put(&Stored {
                    height: h,
                    round: r,
                    pol_round: Round::Nil,
                    proposer: self.me,
                    block,
                    bytes: bytes.clone(),
                    valid: true,
                })?;
                let value = Value {
                    id: block,
                    bytes: bytes.clone(),
                };
                let _ = reply.send(LocallyProposedValue::new(height, round, value));
                self.publish(h, round, Round::Nil, block, &bytes).await?;
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                address,
                value_id,
            } => {
                if address != self.me {
                    return Ok(());
                }
                match self.store.find(height.0, value_id)? {
                    Some(s) => {
                        self.store.put(&Stored {
                            round: round_u32(round),
                            pol_round: valid_round,
                            proposer: self.me,
                            ..s.clone()
                        })?;
                        self.publish(height.0, round, valid_round, value_id, &s.bytes)
                            .await?;
                    }
                    None => {
                        warn!(height = height.0, block = %value_id, "asked to re-stream a proposal not stored")
                    }
                }
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let out = match self.reasm.push(published_by, part) {
                    Ok(Some(a)) => self.received(a)?,
                    Ok(None) => None,
                    Err(e) => {
                        warn!(peer = %from, error = %e, "refused a proposal stream");
                        None
                    }
                };
                let _ = reply.send(out);
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                let h = certificate.height.0;
                if self.store.find(h, certificate.value_id)?.is_none() {
                    warn!(height = h, block = %certificate.value_id, "decided a block not stored: the height restarts and sync fetches it");
                    self.missing = Some(h);
                }
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate,
                evidence,
                reply,
                ..
            } => {
                let h = certificate.height.0;
                let ev = equivocations(&evidence);
                if !ev.is_empty() {
                    blocking(|| self.app.evidence(ev));
                }
                if self.missing == Some(h) {
                    self.missing = None;
                    let _ = reply.send(Next::Restart(Height(h), self.params(h)?));
                    return Ok(());
                }
                let committed = blocking(|| self.app.committed_height());
                if committed < h {
                    let Some(s) = self.store.find(h, certificate.value_id)? else {
                        let _ = reply.send(Next::Restart(Height(h), self.params(h)?));
                        return Ok(());
                    };
                    let cert = to_lode(&certificate);
                    blocking(|| self.app.commit(h, s.block.0, &s.bytes, cert))?;
                    debug!(validator = %self.me, height = h, round = %certificate.round, block = %s.block, "committed");
                }
                self.store.prune_through(h)?;
                let _ = reply.send(Next::Start(Height(h + 1), self.params(h + 1)?));
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let (start, end) = (range.start().0, range.end().0);
                let mut out = Vec::new();
                for h in start..=end.min(start.saturating_add(MAX_SYNC_VALUES - 1)) {
                    match blocking(|| self.app.decided(h)) {
                        Ok(Some((bytes, cert))) => out.push(RawDecidedValue {
                            value_bytes: Bytes::from(bytes),
                            certificate: from_lode(&cert),
                        }),
                        Ok(None) => break,
                        Err(e) => {
                            warn!(height = h, error = %e, "cannot serve a decided block");
                            break;
                        }
                    }
                }
                let _ = reply.send(out);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let out = self.synced(height.0, round, proposer, value_bytes)?;
                let _ = reply.send(out);
            }
        }
        Ok(())
    }

    /// Publishes the parts of a proposal (signed by this validator).
    async fn publish(
        &mut self,
        height: u64,
        round: Round,
        pol_round: Round,
        block: ValueId,
        bytes: &[u8],
    ) -> Result<(), EngineError> {
        let body = ProposalBody {
            chain: self.chain,
            height,
            round: round_u32(round),
            block: block.0,
            pol_round: pol_round.as_u32(),
            proposer: self.me.0,
        };
        let sig = self.signer.proposal_signature(&body);
        let init = PartInit {
            height: Height(height),
            round,
            pol_round,
            proposer: self.me,
            block,
            len: bytes.len() as u64,
        };
        self.nonce = self.nonce.wrapping_add(1);
        let mut id = Vec::with_capacity(52);
        id.extend_from_slice(&height.to_be_bytes());
        id.extend_from_slice(&round_u32(round).to_be_bytes());
        id.extend_from_slice(self.me.0.public_key_bytes());
        id.extend_from_slice(&self.nonce.to_be_bytes());
        for msg in stream(StreamId::new(Bytes::from(id)), split(init, bytes, sig)) {
            self.network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await
                .map_err(|e| EngineError::Stopped(e.to_string()))?;
        }
        Ok(())
    }

    /// A complete proposal stream: checked now if it is for the next height,
    /// kept for later if it is a little ahead, dropped otherwise.
    fn received(&mut self, a: Assembled) -> Result<Option<ProposedValue<LodeCtx>>, EngineError> {
        let h = a.init.height.0;
        let committed = blocking(|| self.app.committed_height());
        if h <= committed || h > committed + 1 + PENDING_HEIGHTS {
            return Ok(None);
        }
        if h > committed + 1 {
            let q = self.pending.entry(h).or_default();
            if q.len() < MAX_PENDING_PER_HEIGHT {
                q.push(a);
            }
            return Ok(None);
        }
        self.accept(a)
    }

    /// Checks a complete proposal for the next height and stores it.
    fn accept(&mut self, a: Assembled) -> Result<Option<ProposedValue<LodeCtx>>, EngineError> {
        let i = &a.init;
        let h = i.height.0;
        let r = round_u32(i.round);
        if let Some(s) = self
            .store
            .at_round(h, r)?
            .into_iter()
            .find(|s| s.block == i.block && s.proposer == i.proposer)
        {
            return Ok(Some(Self::proposed(&s)));
        }
        if i.proposer == self.me {
            return Ok(None);
        }
        let set = ValidatorSet::from(&blocking(|| self.app.validator_set(h))?);
        if select_proposer(&set, h, r).map(|v| v.address) != Some(i.proposer) {
            warn!(height = h, round = r, proposer = %i.proposer, "a proposal by a validator not the round's proposer");
            return Ok(None);
        }
        let body = ProposalBody {
            chain: self.chain,
            height: h,
            round: r,
            block: i.block.0,
            pol_round: i.pol_round.as_u32(),
            proposer: i.proposer.0,
        };
        if !verify_proposal(&body, &a.signature) {
            warn!(height = h, round = r, proposer = %i.proposer, "a proposal with a bad signature");
            return Ok(None);
        }
        let valid = match blocking(|| self.app.check(h, i.proposer.0, &a.bytes)) {
            Ok(id) if id == i.block.0 => true,
            Ok(id) => {
                warn!(height = h, claimed = %i.block, actual = %ValueId(id), "a proposal whose id is not its block's hash");
                false
            }
            Err(AppError::Invalid(m)) => {
                warn!(height = h, round = r, proposer = %i.proposer, reason = %m, "an invalid proposal");
                false
            }
            Err(AppError::Other(m)) => {
                warn!(height = h, round = r, error = %m, "could not check a proposal");
                return Ok(None);
            }
        };
        let s = Stored {
            height: h,
            round: r,
            pol_round: i.pol_round,
            proposer: i.proposer,
            block: i.block,
            bytes: a.bytes,
            valid,
        };
        self.store.put(&s)?;
        Ok(Some(Self::proposed(&s)))
    }

    /// A block fetched by value sync.
    fn synced(
        &mut self,
        height: u64,
        round: Round,
        proposer: Address,
        bytes: Bytes,
    ) -> Result<SyncedValueOutcome<LodeCtx>, EngineError> {
        if bytes.len() > self.max_block {
            return Ok(SyncedValueOutcome::PeerFault);
        }
        match blocking(|| self.app.check(height, proposer.0, &bytes)) {
            Ok(id) => {
                let s = Stored {
                    height,
                    round: round_u32(round),
                    pol_round: Round::Nil,
                    proposer,
                    block: ValueId(id),
                    bytes,
                    valid: true,
                };
                self.store.put(&s)?;
                Ok(SyncedValueOutcome::Verdict(Self::proposed(&s)))
            }
            Err(AppError::Invalid(m)) => {
                warn!(height, reason = %m, "a synced block is invalid");
                Ok(SyncedValueOutcome::PeerFault)
            }
            Err(AppError::Other(m)) => {
                debug!(height, error = %m, "could not check a synced block");
                Ok(SyncedValueOutcome::LocalTransientError)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The loop alone (no network): own-block reuse across rounds and
    //! restarts, the unknown-decided restart, received streams.

    use super::*;
    use crate::parts::{split, stream};
    use lode_ledger::consensus::{CommitCertificate, Validator, ValidatorSet as LedgerSet};
    use lode_proto::Did;
    use malachitebft_app_channel::app::types::PeerId;
    use malachitebft_app_channel::app::types::core::CommitCertificate as McCert;
    use malachitebft_core_consensus::MisbehaviorEvidence;
    use std::sync::{Arc, Mutex};
    use tokio::sync::mpsc;

    #[derive(Default)]
    struct Log {
        proposed: u32,
        committed: Vec<(u64, Hash32)>,
    }

    struct Mock {
        set: LedgerSet,
        log: Arc<Mutex<Log>>,
    }

    impl App for Mock {
        fn chain_id(&self) -> Hash32 {
            Hash32([4; 32])
        }
        fn committed_height(&self) -> u64 {
            self.log.lock().unwrap().committed.len() as u64
        }
        fn validator_set(&self, _: u64) -> Result<LedgerSet, AppError> {
            Ok(self.set.clone())
        }
        fn propose(&mut self, height: u64, round: u32) -> Result<(Hash32, Vec<u8>), AppError> {
            self.log.lock().unwrap().proposed += 1;
            let bytes = vec![height as u8; 300_000 + round as usize];
            Ok((Hash32::sha256(&bytes), bytes))
        }
        fn check(&mut self, _: u64, _: Did, bytes: &[u8]) -> Result<Hash32, AppError> {
            if bytes.starts_with(b"bad") {
                return Err(AppError::Invalid("bad".into()));
            }
            Ok(Hash32::sha256(bytes))
        }
        fn commit(
            &mut self,
            height: u64,
            block: Hash32,
            _: &[u8],
            _: CommitCertificate,
        ) -> Result<(), AppError> {
            self.log.lock().unwrap().committed.push((height, block));
            Ok(())
        }
        fn decided(&self, _: u64) -> Result<Option<(Vec<u8>, CommitCertificate)>, AppError> {
            Ok(None)
        }
        fn evidence(&mut self, _: Vec<crate::Equivocation>) {}
    }

    fn peer() -> PeerId {
        let k = NetKeypair::ed25519_from_bytes([5; 32]).unwrap();
        PeerId::from_bytes(&k.public().to_peer_id().to_bytes()).unwrap()
    }

    fn keys() -> (Keypair, Keypair) {
        (
            Keypair::from_secret_bytes(&[1; 32]),
            Keypair::from_secret_bytes(&[2; 32]),
        )
    }

    fn new_loop(
        home: &std::path::Path,
        log: Arc<Mutex<Log>>,
    ) -> (Loop<Mock>, mpsc::Receiver<NetworkMsg<LodeCtx>>) {
        let (me, other) = keys();
        let set = LedgerSet::new(vec![
            Validator {
                did: me.did(),
                power: 1,
            },
            Validator {
                did: other.did(),
                power: 1,
            },
        ])
        .unwrap();
        let (tx, rx) = mpsc::channel(1000);
        let chain = Hash32([4; 32]);
        let l = Loop {
            app: Mock { set, log },
            me: Address(me.did()),
            chain,
            signer: LodeSigner::new(me, chain),
            store: ProposalStore::open(&home.join("proposals.redb")).unwrap(),
            reasm: Reassembler::new(1 << 20),
            timeouts: Timeouts::default().linear(),
            max_block: 1 << 20,
            missing: None,
            pending: BTreeMap::new(),
            nonce: 0,
            network: tx,
        };
        (l, rx)
    }

    async fn get_value(l: &mut Loop<Mock>, h: u64, r: u32) -> ValueId {
        let (reply, rx) = oneshot::channel();
        l.handle(AppMsg::GetValue {
            height: Height(h),
            round: Round::new(r),
            timeout: Duration::from_secs(1),
            reply,
        })
        .await
        .unwrap();
        rx.await.unwrap().value.id
    }

    async fn started(l: &mut Loop<Mock>, h: u64, r: u32) -> Vec<ProposedValue<LodeCtx>> {
        let (reply_value, rx) = oneshot::channel();
        l.handle(AppMsg::StartedRound {
            height: Height(h),
            round: Round::new(r),
            proposer: l.me,
            role: malachitebft_app_channel::app::consensus::Role::Proposer,
            reply_value,
        })
        .await
        .unwrap();
        rx.await.unwrap()
    }

    fn cert(h: u64, id: ValueId) -> McCert<LodeCtx> {
        McCert {
            height: Height(h),
            round: Round::new(0),
            value_id: id,
            commit_signatures: vec![],
        }
    }

    async fn decide(l: &mut Loop<Mock>, h: u64, id: ValueId) -> Next<LodeCtx> {
        let (reply, rx) = oneshot::channel();
        l.handle(AppMsg::Decided {
            certificate: cert(h, id),
            extensions: Default::default(),
            reply,
        })
        .await
        .unwrap();
        rx.await.unwrap();
        let (reply, rx) = oneshot::channel();
        l.handle(AppMsg::Finalized {
            certificate: cert(h, id),
            extensions: Default::default(),
            evidence: MisbehaviorEvidence {
                proposals: Default::default(),
                votes: Default::default(),
            },
            reply,
        })
        .await
        .unwrap();
        rx.await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn own_block_is_reproposed_across_rounds_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let (mut l, mut net) = new_loop(dir.path(), log.clone());
        let v0 = get_value(&mut l, 1, 0).await;
        let v1 = get_value(&mut l, 1, 1).await;
        assert_eq!(v0, v1);
        assert_eq!(log.lock().unwrap().proposed, 1);
        // 300 KB: Init, 3 data chunks, Fin, end marker; twice
        let mut published = 0;
        while net.try_recv().is_ok() {
            published += 1;
        }
        assert_eq!(published, 12);
        drop(l);

        let fresh = Arc::new(Mutex::new(Log::default()));
        let (mut l, _net) = new_loop(dir.path(), fresh.clone());
        let seen = started(&mut l, 1, 1).await;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].value.id, v0);
        assert_eq!(seen[0].validity, Validity::Valid);
        assert_eq!(get_value(&mut l, 1, 2).await, v0);
        assert_eq!(fresh.lock().unwrap().proposed, 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unknown_decided_value_restarts_the_height() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let (mut l, _net) = new_loop(dir.path(), log.clone());
        let next = decide(&mut l, 1, ValueId(Hash32([9; 32]))).await;
        assert!(matches!(next, Next::Restart(Height(1), _)));
        assert!(log.lock().unwrap().committed.is_empty());
        let id = get_value(&mut l, 1, 0).await;
        let next = decide(&mut l, 1, id).await;
        assert!(matches!(next, Next::Start(Height(2), _)));
        assert_eq!(log.lock().unwrap().committed, vec![(1, id.0)]);
        // pruned once committed
        assert!(l.store.at_height(1).unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn received_streams_are_checked_signed_and_stored() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let (mut l, _net) = new_loop(dir.path(), log);
        let (_, other) = keys();
        let set = ValidatorSet::from(&l.app.set);
        let round = (0..100)
            .find(|r| select_proposer(&set, 1, *r).unwrap().address == Address(other.did()))
            .unwrap();
        let chain = l.chain;
        let deliver = async |l: &mut Loop<Mock>, bytes: &[u8], signer: &Keypair, n: u8| {
            let block = ValueId(Hash32::sha256(bytes));
            let body = ProposalBody {
                chain,
                height: 1,
                round,
                block: block.0,
                pol_round: None,
                proposer: other.did(),
            };
            let sig = LodeSigner::new(signer.clone(), chain).proposal_signature(&body);
            let init = PartInit {
                height: Height(1),
                round: Round::new(round),
                pol_round: Round::Nil,
                proposer: Address(other.did()),
                block,
                len: bytes.len() as u64,
            };
            let mut last = None;
            for part in stream(StreamId::new(Bytes::from(vec![n])), split(init, bytes, sig)) {
                let (reply, rx) = oneshot::channel();
                l.handle(AppMsg::ReceivedProposalPart {
                    from: peer(),
                    published_by: None,
                    part,
                    reply,
                })
                .await
                .unwrap();
                last = rx.await.unwrap();
            }
            last
        };
        let good = deliver(&mut l, &[7u8; 200_000], &other, 1).await.unwrap();
        assert_eq!(good.validity, Validity::Valid);
        let bad = deliver(&mut l, b"bad block", &other, 2).await.unwrap();
        assert_eq!(bad.validity, Validity::Invalid);
        let (me, _) = keys();
        assert!(deliver(&mut l, b"forged", &me, 3).await.is_none());
        let stored = l.store.at_round(1, round).unwrap();
        assert_eq!(stored.len(), 2);
    }
}
