//! A minimal gateway peer for tests: it speaks the real node-channel contract
//! (`lode_proto::wire::paths`) over a real socket and checks every envelope with
//! lode-proto (kind, signature, freshness, replay, challenge, session, signer), but
//! schedules nothing: tests queue assignments and read what the node reported.
//!
//! Each peer runs on its own thread and tokio runtime, so [`Peer::stop`] drops every
//! connection at once, like a gateway process that died.

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lode_proto::wire::{
    Assignment, AuthResponse, BINARY_CONTENT_TYPE, HelloResponse, NodeAuth, NodeHello, NodePoll,
    PollResponse, UnitRef, UnitReport, paths,
};
use lode_proto::{Did, Envelope, Hash32, Keypair, ReplayGuard, canonical};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A challenge, and the registration nonce and payout address if one was asked for.
type Pending = ([u8; 32], Option<(u64, lode_proto::EvmAddress)>);

/// Everything the peer saw and will hand out.
#[derive(Debug)]
pub struct PeerState {
    pub key: Keypair,
    /// The "ledger" chain id sent in hello answers.
    pub chain_id: Hash32,
    /// Nodes registered (by a verified `RegisterNode` in their auth), with payout.
    pub registered: HashMap<Did, lode_proto::EvmAddress>,
    pub registrations: u32,
    pub poll_timeout_ms: u64,
    pub heartbeat_timeout_ms: u64,
    /// Hold a poll that wants work even when it carried reports (as the real
    /// gateway does); by default such a poll is answered at once.
    pub hold_reporting_polls: bool,
    /// Added before each poll is answered: a network round trip. On loopback
    /// with optimized signatures a poll takes well under a millisecond, less
    /// than a quick unit, so without it no reports would ever be batched.
    pub poll_latency: Option<Duration>,
    guard: ReplayGuard,
    /// Outstanding challenge and (if registration was asked for) its nonce and
    /// the payout address of the hello.
    challenges: HashMap<Did, Pending>,
    sessions: HashMap<[u8; 16], Did>,
    /// Hellos received, with their signer.
    pub hellos: Vec<(Did, NodeHello)>,
    pub auths: u32,
    pub polls: u64,
    pub wants: Vec<u32>,
    /// Poll answers of `unknown_session`.
    pub unknown_sessions: u32,
    /// Work to hand out, in order.
    pub queue: VecDeque<Assignment>,
    /// Who holds which unit.
    pub issued: HashMap<UnitRef, Did>,
    pub reports: Vec<(Did, UnitReport)>,
    pub handed_back: Vec<(Did, UnitRef)>,
    pub rejected: Vec<UnitRef>,
    /// Sent (once) in the next poll answer.
    pub cancel: Vec<UnitRef>,
    /// Bytes served for a module hash (tests may serve the wrong ones).
    pub modules: HashMap<Hash32, Vec<u8>>,
    pub module_delay: HashMap<Hash32, Duration>,
    pub module_gets: Vec<Hash32>,
    /// Envelopes that failed verification, with the reason.
    pub refused: Vec<String>,
}

impl PeerState {
    pub fn new() -> Self {
        Self {
            key: Keypair::generate().unwrap(),
            chain_id: Hash32::sha256(b"peer chain"),
            registered: HashMap::new(),
            registrations: 0,
            poll_timeout_ms: 300,
            heartbeat_timeout_ms: 3_000,
            hold_reporting_polls: false,
            poll_latency: None,
            guard: ReplayGuard::default(),
            challenges: HashMap::new(),
            sessions: HashMap::new(),
            hellos: Vec::new(),
            auths: 0,
            polls: 0,
            wants: Vec::new(),
            unknown_sessions: 0,
            queue: VecDeque::new(),
            issued: HashMap::new(),
            reports: Vec::new(),
            handed_back: Vec::new(),
            rejected: Vec::new(),
            cancel: Vec::new(),
            modules: HashMap::new(),
            module_delay: HashMap::new(),
            module_gets: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Serves `bytes` under their own hash; returns the hash.
    pub fn add_module(&mut self, bytes: Vec<u8>) -> Hash32 {
        let h = Hash32::sha256(&bytes);
        self.modules.insert(h, bytes);
        h
    }

    pub fn report_of(&self, unit: &UnitRef) -> Option<&UnitReport> {
        self.reports
            .iter()
            .find(|(_, r)| r.unit == *unit)
            .map(|(_, r)| r)
    }

    pub fn was_handed_back(&self, unit: &UnitRef) -> bool {
        self.handed_back.iter().any(|(_, u)| u == unit)
    }
}

#[derive(Clone)]
struct App {
    state: Arc<Mutex<PeerState>>,
    work: Arc<Notify>,
}

/// A running peer.
pub struct Peer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<PeerState>>,
    work: Arc<Notify>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Peer {
    /// Starts a peer on `127.0.0.1:port` (0: any free port).
    pub fn start(state: PeerState, port: u16) -> Peer {
        Self::start_shared(Arc::new(Mutex::new(state)), port)
    }

    pub fn start_shared(state: Arc<Mutex<PeerState>>, port: u16) -> Peer {
        // Retry briefly: the port of a peer that just stopped may still be closing.
        let mut tries = 0;
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot bind 127.0.0.1:{port}: {e}"),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let work = Arc::new(Notify::new());
        let app = App {
            state: Arc::clone(&state),
            work: Arc::clone(&work),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let router = Router::new()
                    .route(paths::NODE_HELLO, post(hello))
                    .route(paths::NODE_AUTH, post(auth))
                    .route(paths::NODE_POLL, post(poll))
                    .route(&format!("{}/{{hash}}", paths::MODULES), get(module))
                    .with_state(app);
                tokio::select! {
                    r = std::future::IntoFuture::into_future(axum::serve(listener, router)) => r.unwrap(),
                    _ = stop_rx => {}
                }
            });
            // Kills every connection task at once, like a crashed process.
            rt.shutdown_background();
        });
        Peer {
            addr,
            state,
            work,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues work and wakes waiting polls.
    pub fn push(&self, a: Assignment) {
        self.state.lock().unwrap().queue.push_back(a);
        self.work.notify_waiters();
    }

    /// Wakes waiting polls (e.g. after queueing a cancel).
    pub fn wake(&self) {
        self.work.notify_waiters();
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut PeerState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Waits until `cond` holds (or panics after `timeout`).
    pub async fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&PeerState) -> bool) {
        let end = Instant::now() + timeout;
        loop {
            if cond(&self.state.lock().unwrap()) {
                return;
            }
            if Instant::now() > end {
                let s = self.state.lock().unwrap();
                panic!(
                    "timed out waiting for {what}: hellos {} polls {} reports {} handed back {} refused {:?}",
                    s.hellos.len(),
                    s.polls,
                    s.reports.len(),
                    s.handed_back.len(),
                    s.refused
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the peer abruptly (all connections dropped).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message.into()}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn binary<T: serde::Serialize>(value: &T) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, BINARY_CONTENT_TYPE)],
        canonical::encode(value).unwrap(),
    )
        .into_response()
}

/// Decodes and fully verifies an envelope of kind `M`.
fn open<M: lode_proto::Message>(
    s: &mut PeerState,
    body: &[u8],
) -> Result<lode_proto::Opened<M>, Box<Response>> {
    let env = match Envelope::from_bytes(body) {
        Ok(e) => e,
        Err(e) => {
            s.refused.push(format!("decode: {e}"));
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "malformed_envelope",
                e.to_string(),
            )));
        }
    };
    env.open::<M>(&mut s.guard, now_ms()).map_err(|e| {
        s.refused.push(e.to_string());
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            e.to_string(),
        ))
    })
}

async fn hello(State(app): State<App>, body: Bytes) -> Response {
    let mut s = app.state.lock().unwrap();
    let opened = match open::<NodeHello>(&mut s, &body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut challenge = [0u8; 32];
    getrandom_fill(&mut challenge);
    let payout = opened.message.payout;
    // Ask for a registration unless this node is known with this payout address.
    let register_nonce =
        (s.registered.get(&opened.signer) != Some(&payout)).then_some(u64::from(s.registrations));
    s.challenges.insert(
        opened.signer,
        (challenge, register_nonce.map(|n| (n, payout))),
    );
    s.hellos.push((opened.signer, opened.message));
    binary(&HelloResponse {
        challenge,
        chain_id: s.chain_id,
        register_nonce,
        gateway: s.key.did(),
        challenge_ttl_ms: 10_000,
        now_ms: now_ms(),
    })
}

async fn auth(State(app): State<App>, body: Bytes) -> Response {
    let mut s = app.state.lock().unwrap();
    let opened = match open::<NodeAuth>(&mut s, &body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let Some((challenge, registration)) = s.challenges.remove(&opened.signer) else {
        s.refused.push("auth without hello".into());
        return error(StatusCode::UNAUTHORIZED, "bad_challenge", "say hello first");
    };
    if challenge != opened.message.challenge {
        s.refused.push("wrong challenge".into());
        return error(StatusCode::UNAUTHORIZED, "bad_challenge", "wrong challenge");
    }
    match (registration, &opened.message.register) {
        (None, None) => {}
        (Some((nonce, payout)), Some(env)) => {
            let ok = env
                .open_signed::<lode_ledger::entry::RegisterNode>()
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    let m = &r.message;
                    if r.signer != opened.signer {
                        Err("registration signed by another key".into())
                    } else if r.nonce != nonce {
                        Err(format!("registration nonce {} != {nonce}", r.nonce))
                    } else if m.chain != s.chain_id {
                        Err("registration for another chain".into())
                    } else if m.payout != payout {
                        Err("registration payout differs from the hello".into())
                    } else {
                        Ok(())
                    }
                });
            if let Err(e) = ok {
                s.refused.push(format!("registration: {e}"));
                return error(StatusCode::UNAUTHORIZED, "bad_registration", e);
            }
            s.registered.insert(opened.signer, payout);
            s.registrations += 1;
        }
        (Some(_), None) => {
            s.refused.push("registration missing".into());
            return error(
                StatusCode::BAD_REQUEST,
                "registration_required",
                "register first",
            );
        }
        (None, Some(_)) => {
            s.refused.push("unexpected registration".into());
            return error(
                StatusCode::BAD_REQUEST,
                "unexpected_registration",
                "not asked for",
            );
        }
    }
    let mut session = [0u8; 16];
    getrandom_fill(&mut session);
    s.sessions.insert(session, opened.signer);
    s.auths += 1;
    binary(&AuthResponse {
        session,
        poll_timeout_ms: s.poll_timeout_ms,
        heartbeat_timeout_ms: s.heartbeat_timeout_ms,
    })
}

async fn poll(State(app): State<App>, body: Bytes) -> Response {
    let latency = app.state.lock().unwrap().poll_latency;
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    let (signer, want, timeout, accepted) = {
        let mut s = app.state.lock().unwrap();
        let opened = match open::<NodePoll>(&mut s, &body) {
            Ok(o) => o,
            Err(r) => return *r,
        };
        let poll = opened.message;
        match s.sessions.get(&poll.session) {
            Some(d) if *d == opened.signer => {}
            Some(_) => {
                s.refused.push("session of another node".into());
                return error(StatusCode::UNAUTHORIZED, "bad_session", "not your session");
            }
            None => {
                s.unknown_sessions += 1;
                return error(StatusCode::NOT_FOUND, "unknown_session", "say hello again");
            }
        }
        s.polls += 1;
        s.wants.push(poll.want);
        let mut rejected = Vec::new();
        let mut accepted = 0u32;
        for r in poll.reports {
            if s.issued.get(&r.unit) == Some(&opened.signer) {
                s.issued.remove(&r.unit);
                s.reports.push((opened.signer, r));
                accepted += 1;
            } else {
                s.rejected.push(r.unit);
                rejected.push((r.unit, "unit not assigned to this node".to_string()));
            }
        }
        for u in poll.handed_back {
            if s.issued.get(&u) == Some(&opened.signer) {
                s.issued.remove(&u);
            }
            s.handed_back.push((opened.signer, u));
        }
        let hold_anyway = s.hold_reporting_polls && s.queue.is_empty() && s.cancel.is_empty();
        if poll.want == 0 || !rejected.is_empty() || (accepted > 0 && !hold_anyway) {
            // Answer at once: nothing to wait for, or something to acknowledge.
            let assignments = take(&mut s, opened.signer, poll.want);
            let cancel = std::mem::take(&mut s.cancel);
            return binary(&PollResponse {
                accepted,
                rejected,
                assignments,
                cancel,
                now_ms: now_ms(),
            });
        }
        (
            opened.signer,
            poll.want,
            Duration::from_millis(s.poll_timeout_ms),
            accepted,
        )
    };
    // Long poll: wait for work (or a cancel) up to the poll timeout.
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let notified = app.work.notified();
        {
            let mut s = app.state.lock().unwrap();
            let ready = !s.queue.is_empty() || !s.cancel.is_empty();
            if ready || tokio::time::Instant::now() >= end {
                let assignments = take(&mut s, signer, want);
                let cancel = std::mem::take(&mut s.cancel);
                return binary(&PollResponse {
                    accepted,
                    rejected: vec![],
                    assignments,
                    cancel,
                    now_ms: now_ms(),
                });
            }
        }
        let _ = tokio::time::timeout_at(end, notified).await;
    }
}

fn take(s: &mut PeerState, node: Did, want: u32) -> Vec<Assignment> {
    let mut out = Vec::new();
    while out.len() < want as usize {
        let Some(a) = s.queue.pop_front() else { break };
        s.issued.insert(a.unit, node);
        out.push(a);
    }
    out
}

async fn module(State(app): State<App>, Path(hash): Path<String>) -> Response {
    let Ok(h) = hash.parse::<Hash32>() else {
        return error(StatusCode::BAD_REQUEST, "bad_hash", "not a sha256 hex");
    };
    let (bytes, delay) = {
        let mut s = app.state.lock().unwrap();
        s.module_gets.push(h);
        (s.modules.get(&h).cloned(), s.module_delay.get(&h).copied())
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    match bytes {
        Some(b) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/wasm")],
            b,
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown_module", "no such module"),
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    use rand::RngCore;
    rand::rng().fill_bytes(buf);
}

/// A set of unit refs, for assertions.
pub fn units(v: impl IntoIterator<Item = UnitRef>) -> HashSet<UnitRef> {
    v.into_iter().collect()
}
