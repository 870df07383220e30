//! Spike: N Malachite validators (tokio tasks in one process, real libp2p on
//! loopback, one WAL each) deciding trivial "Lode blocks" for H heights.
//!
//! usage: lode-malachite-spike [N validators = 1] [H heights = 5] [base port = 27000]

mod codec;
mod ctx;
mod signing;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eyre::{eyre, Result};
use malachitebft_app_channel::app::config::{ConsensusConfig, NodeConfig, ValueSyncConfig};
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, LinearTimeouts, Round, Validity, Value as _,
    ValidatorSet as _,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{Keypair, LocallyProposedValue, ProposedValue};
use malachitebft_app_channel::{
    AppMsg, Channels, ConsensusContext, EngineBuilder, NetworkContext, NetworkIdentity, NetworkMsg,
    RequestContext, Signer as _, SyncContext, WalContext,
};

use crate::codec::BorshCodec;
use crate::ctx::*;
use crate::signing::{LodeSigner, LodeVerifier};

#[derive(Clone, Debug, Default)]
struct Config {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for Config {
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

fn key(i: usize) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&sha256(&[b"spike/key", &[i as u8]]))
}

fn genesis(n: usize) -> ValidatorSet {
    ValidatorSet::new(
        (0..n)
            .map(|i| {
                let pk = key(i).verifying_key().to_bytes();
                // stake-weighted: validator i has power i+1
                Validator { address: Address(pk), public_key: PubKey(pk), power: (i as u64) + 1 }
            })
            .collect(),
    )
}

fn timeouts() -> LinearTimeouts {
    LinearTimeouts {
        propose: Duration::from_millis(500),
        propose_delta: Duration::from_millis(100),
        prevote: Duration::from_millis(200),
        prevote_delta: Duration::from_millis(100),
        precommit: Duration::from_millis(200),
        precommit_delta: Duration::from_millis(100),
        rebroadcast: Duration::from_millis(1000),
        max_timeout: Duration::from_secs(10),
    }
}

fn params(vs: &ValidatorSet) -> HeightParams<LodeCtx> {
    HeightParams::new(vs.clone(), timeouts(), None)
}

/// The application state of one validator (in Lode: the Ledger + BlockStore).
struct App {
    me: Address,
    signer: LodeSigner,
    vs: ValidatorSet,
    /// decided blocks with their commit certificates (Lode: the block store)
    chain: BTreeMap<u64, (BlockValue, CommitCertificate<LodeCtx>)>,
    /// proposals seen, by height (Lode: must be persisted for crash recovery)
    undecided: BTreeMap<u64, Vec<ProposedValue<LodeCtx>>>,
    stream_seq: u64,
    /// where decided blocks + certificates are persisted (None = memory only)
    store: Option<std::path::PathBuf>,
    missing: Option<u64>,
}

impl App {
    fn persist(&self) -> Result<()> {
        if let Some(path) = &self.store {
            let rows: Vec<(&BlockValue, &CommitCertificate<LodeCtx>)> = self.chain.values().map(|(v, c)| (v, c)).collect();
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, borsh::to_vec(&rows)?)?;
            std::fs::rename(tmp, path)?;
        }
        Ok(())
    }

    fn load(&mut self) -> Result<()> {
        if let Some(path) = &self.store {
            if let Ok(bytes) = std::fs::read(path) {
                let rows: Vec<(BlockValue, CommitCertificate<LodeCtx>)> = borsh::from_slice(&bytes)?;
                for (v, c) in rows {
                    self.chain.insert(c.height.0, (v, c));
                }
                println!("[{}] loaded {} blocks from disk", self.me, self.chain.len());
            }
        }
        Ok(())
    }

    fn tip_id(&self) -> [u8; 32] {
        self.chain.values().next_back().map(|(v, _)| v.id().0).unwrap_or([0; 32])
    }

    async fn run(mut self, mut ch: Channels<LodeCtx>, heights: u64, started: Instant) -> Result<()> {
        while let Some(msg) = ch.consensus.recv().await {
            match msg {
                AppMsg::ConsensusReady { reply } => {
                    let start = Height(self.chain.keys().next_back().map_or(1, |h| h + 1));
                    reply.send((start, params(&self.vs))).map_err(|_| eyre!("reply"))?;
                }
                AppMsg::StartedRound { height, round, reply_value, .. } => {
                    let seen = self.undecided.get(&height.0).cloned().unwrap_or_default();
                    let seen = seen.into_iter().filter(|v| v.round == round).collect();
                    let _ = reply_value.send(seen);
                }
                AppMsg::GetValue { height, round, reply, .. } => {
                    // Re-propose the same value if we already built one for this height
                    // (never two different blocks from one proposer at one height).
                    let value = match self.undecided.get(&height.0).and_then(|vs| vs.iter().find(|v| v.proposer == self.me)) {
                        Some(v) => v.value.clone(),
                        None => {
                            let parent = self.tip_id();
                            let n: usize = std::env::var("SPIKE_ENTRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
                            let entries: Vec<Vec<u8>> = (0..n).map(|i| { let mut e = format!("entry@{}#{}", height.0, i).into_bytes(); e.resize(100, 0); e }).collect();
                            let state_root = sha256(&[&parent, &entries[0]]);
                            let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
                            let entries_root = BlockValue::compute_entries_root(&entries);
                            BlockValue { height: height.0, parent, timestamp_ms: ts, entries, entries_root, state_root }
                        }
                    };
                    self.undecided.entry(height.0).or_default().push(ProposedValue {
                        height, round, valid_round: Round::Nil, proposer: self.me, value: value.clone(), validity: Validity::Valid,
                    });
                    let _ = reply.send(LocallyProposedValue::new(height, round, value.clone()));
                    // Stream the block to the other validators as one part + Fin.
                    let mut part = ProposalPart { height, round, pol_round: Round::Nil, proposer: self.me, value, signature: Sig([0; 64]) };
                    part.signature = self.signer.sign_raw(&part_bytes(&part));
                    self.stream_seq += 1;
                    let sid = StreamId::new(Bytes::from([height.0.to_be_bytes(), (round.as_i64() as u64).to_be_bytes(), self.stream_seq.to_be_bytes()].concat()));
                    ch.network.send(NetworkMsg::PublishProposalPart(StreamMessage::new(sid.clone(), 0, StreamContent::Data(part)))).await?;
                    ch.network.send(NetworkMsg::PublishProposalPart(StreamMessage::new(sid, 1, StreamContent::Fin))).await?;
                }
                AppMsg::ExtendVote { reply, .. } => {
                    let _ = reply.send(None);
                }
                AppMsg::VerifyVoteExtensions { extensions, reply, .. } => {
                    let _ = reply.send(extensions.into_iter().map(|(a, _)| (a, Ok(()))).collect());
                }
                AppMsg::RestreamProposal { .. } => {}
                AppMsg::GetHistoryMinHeight { reply } => {
                    let _ = reply.send(Height(1));
                }
                AppMsg::ReceivedProposalPart { part, reply, .. } => {
                    let out = match part.content {
                        StreamContent::Data(p) => {
                            let valid = self
                                .vs
                                .get_by_address(&p.proposer)
                                .map(|v| signing::verify(&part_bytes(&p), &p.signature, &v.public_key).is_valid())
                                .unwrap_or(false)
                                && BlockValue::compute_entries_root(&p.value.entries) == p.value.entries_root;
                            // Lode: re-execute the entries and compare the state root here.
                            let pv = ProposedValue {
                                height: p.height, round: p.round, valid_round: p.pol_round, proposer: p.proposer,
                                value: p.value, validity: Validity::from_bool(valid),
                            };
                            self.undecided.entry(p.height.0).or_default().push(pv.clone());
                            Some(pv)
                        }
                        StreamContent::Fin => None,
                    };
                    let _ = reply.send(out);
                }
                AppMsg::Decided { certificate, reply, .. } => {
                    let h = certificate.height.0;
                    let value = self
                        .undecided
                        .get(&h)
                        .and_then(|vs| vs.iter().find(|v| v.value.id() == certificate.value_id))
                        .map(|v| v.value.clone());
                    let Some(value) = value else {
                        // Known restart edge case: the engine decided (from WAL/votes) a value
                        // whose proposal we no longer hold. Restart the height and let sync fetch it.
                        println!("[{}] decided unknown value at h={h}: restarting height", self.me);
                        self.missing = Some(h);
                        let _ = reply.send(());
                        continue;
                    };
                    let power: u64 = certificate
                        .commit_signatures
                        .iter()
                        .filter_map(|s| self.vs.get_by_address(&s.address).map(|v| v.power))
                        .sum();
                    println!(
                        "[{}] t={:>6}ms DECIDED h={} round={} id={} signers={} power={}/{}",
                        self.me, started.elapsed().as_millis(), h, certificate.round, certificate.value_id,
                        certificate.commit_signatures.len(), power, self.vs.total_voting_power()
                    );
                    self.chain.insert(h, (value, certificate));
                    self.persist()?;
                    self.undecided.retain(|k, _| *k > h);
                    let _ = reply.send(());
                }
                AppMsg::Finalized { certificate, evidence, reply, .. } => {
                    if !evidence.is_empty() {
                        let vs: Vec<String> = evidence.votes.iter().map(|(a, _)| a.to_string()).collect();
                        let ps: Vec<String> = evidence.proposals.iter().map(|(a, _)| a.to_string()).collect();
                        println!("[{}] h={} EVIDENCE double-vote by {:?}, double-proposal by {:?}", self.me, certificate.height, vs, ps);
                    }
                    if self.missing.take() == Some(certificate.height.0) {
                        let _ = reply.send(Next::Restart(certificate.height, params(&self.vs)));
                        continue;
                    }
                    let next = certificate.height.0 + 1;
                    let _ = reply.send(Next::Start(Height(next), params(&self.vs)));
                    if next > heights {
                        // give peers a moment to finish too
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        return Ok(());
                    }
                }
                AppMsg::GetDecidedValues { range, reply } => {
                    let out = (range.start().0..=range.end().0)
                        .filter_map(|h| self.chain.get(&h))
                        .map(|(v, c)| RawDecidedValue {
                            value_bytes: Bytes::from(borsh::to_vec(v).unwrap()),
                            certificate: ExtendedCommitCertificate::from_commit_certificate_and_extensions(c.clone(), Default::default()),
                        })
                        .collect();
                    let _ = reply.send(out);
                }
                AppMsg::ProcessSyncedValue { height, round, proposer, value_bytes, reply } => {
                    let out = match borsh::from_slice::<BlockValue>(&value_bytes) {
                        Ok(value) => {
                            let pv = ProposedValue { height, round, valid_round: Round::Nil, proposer, value, validity: Validity::Valid };
                            self.undecided.entry(height.0).or_default().push(pv.clone());
                            SyncedValueOutcome::Verdict(pv)
                        }
                        Err(_) => SyncedValueOutcome::PeerFault,
                    };
                    let _ = reply.send(out);
                }
            }
        }
        Err(eyre!("consensus channel closed"))
    }
}

fn part_bytes(p: &ProposalPart) -> Vec<u8> {
    use malachitebft_app_channel::app::types::core::Value as _;
    let mut out = b"spike/part/v1\0".to_vec();
    // signs the block id (which covers the entries through entries_root)
    out.extend(borsh::to_vec(&(p.height, p.round, p.pol_round, p.proposer, p.value.id())).unwrap());
    out
}

async fn start_validator(i: usize, n: usize, heights: u64, base_port: u16, dir: &std::path::Path, started: Instant, persist: bool) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let sk = key(i);
    let me = Address(sk.verifying_key().to_bytes());
    let signer = LodeSigner(sk.clone());
    let vs = genesis(n);

    let mut cfg = Config { moniker: format!("v{i}"), ..Default::default() };
    cfg.consensus.p2p.listen_addr = format!("/ip4/127.0.0.1/tcp/{}", base_port + i as u16).parse()?;
    cfg.consensus.p2p.persistent_peers = (0..n)
        .filter(|j| *j != i)
        .map(|j| format!("/ip4/127.0.0.1/tcp/{}", base_port + j as u16).parse())
        .collect::<Result<_, _>>()?;
    cfg.value_sync.enabled = true;
    if std::env::var("SPIKE_PUBSUB").as_deref() == Ok("broadcast") {
        cfg.consensus.p2p.protocol = malachitebft_app_channel::app::config::PubSubProtocol::Broadcast;
    }

    // Separate libp2p identity (a Lode validator would keep a second key file).
    let net_key = Keypair::ed25519_from_bytes(sha256(&[b"spike/net", &[i as u8]])).map_err(|e| eyre!("{e}"))?;
    let peer_id = net_key.public().to_peer_id().to_bytes();
    let proof = signer.sign_validator_proof(me.0.to_vec(), peer_id).await.map_err(|e| eyre!("{e}"))?;
    let proof_bytes = BorshCodec.encode(&proof)?;
    let identity = NetworkIdentity::new_validator(cfg.moniker.clone(), net_key, me.to_string(), proof_bytes);

    let wal = dir.join(format!("v{i}")).join("consensus.wal");
    std::fs::create_dir_all(wal.parent().unwrap())?;

    let byzantine = std::env::var("SPIKE_EQUIVOCATE").ok().and_then(|s| s.parse::<usize>().ok()) == Some(i);
    let (channels, _engine) = if byzantine {
        use malachitebft_engine_byzantine::{ByzantineConfig, Trigger};
        println!("[{me}] BYZANTINE: equivocating votes and proposals");
        EngineBuilder::new(LodeCtx, cfg)
            .with_default_wal(WalContext::new(wal, BorshCodec))
            .with_byzantine_network(malachitebft_app_channel::ByzantineContext {
                identity,
                codec: BorshCodec,
                config: ByzantineConfig::new(Some(7))
                    .with_equivocate_votes(Trigger::Always)
                    .with_equivocate_proposals(Trigger::Always),
                signer: Box::new(signer.clone()),
                address: me,
                conflicting_value_fn: Some(Box::new(|v: &BlockValue| {
                    let mut out = v.clone();
                    out.state_root[0] ^= 1;
                    out
                })),
                conflicting_vote_value_fn: Some(Box::new(|id: Option<&ValueId>| {
                    let mut out = id.copied().unwrap_or(ValueId([0; 32]));
                    out.0[0] ^= 1;
                    out
                })),
            })
            .await?
            .with_default_sync(SyncContext::new(BorshCodec))
            .with_default_consensus(ConsensusContext::new_validator(me, Box::new(LodeVerifier), Box::new(signer.clone())))
            .with_default_request(RequestContext::new(100))
            .build()
            .await?
    } else {
        EngineBuilder::new(LodeCtx, cfg)
            .with_default_wal(WalContext::new(wal, BorshCodec))
            .with_default_network(NetworkContext::new(identity, BorshCodec))
            .with_default_sync(SyncContext::new(BorshCodec))
            .with_default_consensus(ConsensusContext::new_validator(me, Box::new(LodeVerifier), Box::new(signer.clone())))
            .with_default_request(RequestContext::new(100))
            .build()
            .await?
    };

    let store = persist.then(|| dir.join(format!("v{i}")).join("chain.borsh"));
    let mut app = App { me, signer, vs, chain: BTreeMap::new(), undecided: BTreeMap::new(), stream_seq: 0, store, missing: None };
    app.load()?;
    Ok(tokio::spawn(async move {
        let r = app.run(channels, heights, started).await;
        std::mem::forget(_engine); // keep the actors alive until the process ends
        r
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let heights: u64 = args.get(2).map_or(Ok(5), |s| s.parse())?;
    let base_port: u16 = args.get(3).map_or(Ok(27000), |s| s.parse())?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    // optional 4th/5th args: run only validator INDEX, persisting under DIR (one process each)
    if let (Some(i), Some(d)) = (args.get(4), args.get(5)) {
        let dir = std::path::PathBuf::from(d);
        tasks.push(start_validator(i.parse()?, n, heights, base_port, &dir, started, true).await?);
    } else {
        let dir = std::env::temp_dir().join(format!("lode-malachite-spike-{}", std::process::id()));
        for i in 0..n {
            tasks.push(start_validator(i, n, heights, base_port, &dir, started, false).await?);
        }
    }
    for t in tasks {
        t.await??;
    }
    println!("done: {n} validator(s), {heights} heights in {} ms", started.elapsed().as_millis());
    Ok(())
}
