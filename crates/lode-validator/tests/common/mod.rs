//! A toy in-memory application and a cluster of in-process engines on
//! 127.0.0.1 (ports chosen up front) for the engine tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lode_ledger::consensus::{CommitCertificate, Validator, ValidatorSet};
use lode_proto::{Did, Hash32, Keypair, canonical};
use lode_validator::{App, AppError, EngineConfig, EngineHandle, Equivocation, Timeouts};
use serde::{Deserialize, Serialize};

/// Tests with engines run one at a time (2 shared cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn chain_id() -> Hash32 {
    Hash32::sha256(b"lode-validator tests")
}

/// A toy block: canonical {height, prev id, payload}; id = sha256 of the bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToyBlock {
    pub height: u64,
    pub prev: Hash32,
    pub payload: String,
}

/// A node's committed chain and what it was told.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub blocks: BTreeMap<u64, (Hash32, Vec<u8>, CommitCertificate)>,
    pub evidence: Vec<Equivocation>,
}

impl Chain {
    pub fn height(&self) -> u64 {
        self.blocks.keys().next_back().copied().unwrap_or(0)
    }
    fn id(&self, h: u64) -> Hash32 {
        self.blocks.get(&h).map_or(Hash32::default(), |b| b.0)
    }
}

pub type Shared = Arc<Mutex<Chain>>;

pub struct ToyApp {
    pub me: Did,
    /// Filler bytes in each proposed block (multi-chunk streams when large).
    pub filler: usize,
    /// Proposes blocks with a wrong parent (honest validators vote them invalid).
    pub bad: bool,
    pub set: ValidatorSet,
    pub chain: Shared,
}

fn lock(c: &Shared) -> MutexGuard<'_, Chain> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

impl App for ToyApp {
    fn chain_id(&self) -> Hash32 {
        chain_id()
    }
    fn committed_height(&self) -> u64 {
        lock(&self.chain).height()
    }
    fn validator_set(&self, _height: u64) -> Result<ValidatorSet, AppError> {
        Ok(self.set.clone())
    }
    fn propose(&mut self, height: u64, round: u32) -> Result<(Hash32, Vec<u8>), AppError> {
        let c = lock(&self.chain);
        if height != c.height() + 1 {
            return Err(AppError::Other(format!(
                "propose {height} at {}",
                c.height()
            )));
        }
        let b = ToyBlock {
            height,
            prev: if self.bad {
                Hash32([0xbb; 32])
            } else {
                c.id(height - 1)
            },
            payload: format!(
                "{} @{height}/{round} {}",
                self.me.short(),
                "x".repeat(self.filler)
            ),
        };
        let bytes = canonical::encode(&b).map_err(|e| AppError::Other(e.to_string()))?;
        Ok((Hash32::sha256(&bytes), bytes))
    }
    fn check(&mut self, height: u64, _proposer: Did, bytes: &[u8]) -> Result<Hash32, AppError> {
        let c = lock(&self.chain);
        if height != c.height() + 1 {
            return Err(AppError::Other(format!("check {height} at {}", c.height())));
        }
        let b: ToyBlock = canonical::decode(bytes).map_err(|e| AppError::Invalid(e.to_string()))?;
        if b.height != height || b.prev != c.id(height - 1) {
            return Err(AppError::Invalid("wrong height or parent".into()));
        }
        Ok(Hash32::sha256(bytes))
    }
    fn commit(
        &mut self,
        height: u64,
        block: Hash32,
        bytes: &[u8],
        cert: CommitCertificate,
    ) -> Result<(), AppError> {
        let mut c = lock(&self.chain);
        if height != c.height() + 1 {
            return Err(AppError::Other(format!(
                "commit {height} at {}",
                c.height()
            )));
        }
        if Hash32::sha256(bytes) != block {
            return Err(AppError::Other("bytes do not hash to the block".into()));
        }
        c.blocks.insert(height, (block, bytes.to_vec(), cert));
        Ok(())
    }
    fn decided(&self, height: u64) -> Result<Option<(Vec<u8>, CommitCertificate)>, AppError> {
        Ok(lock(&self.chain)
            .blocks
            .get(&height)
            .map(|(_, b, c)| (b.clone(), c.clone())))
    }
    fn evidence(&mut self, evidence: Vec<Equivocation>) {
        lock(&self.chain).evidence.extend(evidence);
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One validator of a test cluster.
pub struct Node {
    pub key: Keypair,
    pub power: u64,
    pub home: PathBuf,
    pub addr: SocketAddr,
    pub chain: Shared,
    pub handle: Option<EngineHandle>,
    pub equivocate: bool,
    pub filler: usize,
    pub bad: bool,
}

impl Node {
    pub fn did(&self) -> Did {
        self.key.did()
    }
    pub fn height(&self) -> u64 {
        lock(&self.chain).height()
    }
    pub fn chain(&self) -> Chain {
        lock(&self.chain).clone()
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub set: ValidatorSet,
    _dir: tempfile::TempDir,
}

pub fn test_timeouts() -> Timeouts {
    Timeouts {
        propose: Duration::from_millis(300),
        propose_delta: Duration::from_millis(100),
        prevote: Duration::from_millis(150),
        prevote_delta: Duration::from_millis(100),
        precommit: Duration::from_millis(150),
        precommit_delta: Duration::from_millis(100),
    }
}

impl Cluster {
    /// Validators with these powers (not started).
    pub fn new(powers: &[u64]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Node> = powers
            .iter()
            .enumerate()
            .map(|(i, p)| Node {
                key: Keypair::from_secret_bytes(&[i as u8 + 11; 32]),
                power: *p,
                home: dir.path().join(format!("v{i}")),
                addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
                chain: Shared::default(),
                handle: None,
                equivocate: false,
                filler: 0,
                bad: false,
            })
            .collect();
        let set = ValidatorSet::new(
            nodes
                .iter()
                .map(|n| Validator {
                    did: n.did(),
                    power: n.power,
                })
                .collect(),
        )
        .unwrap();
        Self {
            nodes,
            set,
            _dir: dir,
        }
    }

    fn config(&self, i: usize) -> EngineConfig {
        let n = &self.nodes[i];
        let peers = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, m)| m.addr)
            .collect();
        let mut cfg = EngineConfig::new(n.home.clone(), n.key.clone(), n.addr, peers);
        cfg.timeouts = test_timeouts();
        cfg.max_block_bytes = 1024 * 1024;
        cfg.test_equivocate = n.equivocate;
        cfg
    }

    /// Starts validator `i` with a fresh app over its chain (retrying while
    /// the previous engine's WAL lock and port are released).
    pub async fn start(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let app = ToyApp {
                me: self.nodes[i].did(),
                filler: self.nodes[i].filler,
                bad: self.nodes[i].bad,
                set: self.set.clone(),
                chain: self.nodes[i].chain.clone(),
            };
            match lode_validator::start(self.config(i), app).await {
                Ok(h) => {
                    self.nodes[i].handle = Some(h);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("start v{i}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("start v{i}: {e}"),
            }
        }
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i).await;
        }
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(h) = self.nodes[i].handle.take() {
            let _ = h.stop().await;
        }
    }

    /// Restarts validator `i` with a fresh app restored to its committed blocks.
    pub async fn restart_fresh(&mut self, i: usize) {
        let restored = self.nodes[i].chain();
        self.nodes[i].chain = Arc::new(Mutex::new(Chain {
            blocks: restored.blocks,
            evidence: Vec::new(),
        }));
        self.start(i).await;
    }

    pub async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// Waits until `f` holds, or panics after `secs`.
    pub async fn wait(&self, secs: u64, what: &str, f: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(self) {
            if Instant::now() > deadline {
                let hs: Vec<u64> = self.nodes.iter().map(|n| n.height()).collect();
                panic!("timed out waiting for {what}; heights {hs:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// No two nodes committed different blocks at one height; every
    /// certificate verifies against the set.
    pub fn assert_consistent(&self) {
        let mut ids: BTreeMap<u64, Hash32> = BTreeMap::new();
        for n in &self.nodes {
            for (h, (id, bytes, cert)) in &n.chain().blocks {
                if let Some(prev) = ids.insert(*h, *id) {
                    assert_eq!(prev, *id, "two blocks at height {h}");
                }
                assert_eq!(Hash32::sha256(bytes), *id);
                cert.verify(chain_id(), *h, *id, &self.set)
                    .unwrap_or_else(|e| panic!("certificate at {h}: {e}"));
                assert!(cert.verify(Hash32([1; 32]), *h, *id, &self.set).is_err());
            }
        }
    }
}
