//! The node: start-up (key, host, sandbox, self-benchmark) and the event loop that
//! talks to the gateway and drives the unit runners.
//!
//! The event loop owns all node state (tracker, outbox, session, clock) and reacts
//! to five kinds of events: a connection attempt ended, a poll answered, a unit
//! finished, the shutdown signal fired, or a timer (retry, heartbeat, grace period).
//! At most one *long* poll (asking for work, `want > 0`) and one *short* poll
//! (`want = 0`: reports, hand-backs, heartbeat) are in flight at a time, so finished
//! units are reported while the node waits for work, and everything that finished
//! while a poll was in flight goes out in the next one: one signature per batch.

use crate::backoff::Backoff;
use crate::bench::{BenchResult, self_benchmark};
use crate::client::{ClientError, GatewayClient, Reply};
use crate::clock::{GatewayClock, local_now_ms};
use crate::config::{NodeConfig, effective_slots};
use crate::error::NodeError;
use crate::host::{self, HostResources};
use crate::modules::{ModuleCache, ModuleError};
use crate::outbox::{Batch, Outbox};
use crate::outcome::{Disposition, check_limits_fit, classify, to_sandbox_limits};
use crate::tracker::{Finish, Tracker, UnitCell};
use crate::worker::{Done, Job, RunnerPool};
use lode_ledger::entry::{RegisterNode, ResultClaim};
use lode_proto::wire::{
    Assignment, NodeAuth, NodeCapacity, NodeHello, NodePoll, PollResponse, UnitRef, UnitReport,
};
use lode_proto::{Did, Envelope, EvmAddress, Hash32, KeyFile, Keypair};
use lode_sandbox::{MAX_WASM32_MEMORY, RunInput, Sandbox, SandboxConfig, WASM_PAGE};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

/// Extra time a request waits beyond the gateway's poll timeout.
const POLL_MARGIN: Duration = Duration::from_secs(10);
/// An empty answer to a long poll faster than this is followed by a pause of this
/// long before the next one, so a gateway that does not hold polls is not hammered.
const MIN_EMPTY_POLL: Duration = Duration::from_millis(250);
/// How often the node logs a status line.
const STATUS_EVERY: Duration = Duration::from_secs(300);
/// Compiled modules kept in memory.
const COMPILED_IN_MEMORY: usize = 32;
/// Queued work the node holds beyond its slots, in time (see [`prefetch_for`]).
pub const PREFETCH_WINDOW: Duration = Duration::from_millis(250);

/// Units to hold beyond the running ones so that `slots` runners stay busy for
/// [`PREFETCH_WINDOW`] when units take `avg_run_us` each, at most `max`.
pub fn prefetch_for(slots: u32, avg_run_us: u64, max: u32) -> u32 {
    let window = u64::try_from(PREFETCH_WINDOW.as_micros()).unwrap_or(u64::MAX);
    let per_slot = window / avg_run_us.max(1);
    u32::try_from(per_slot.saturating_mul(u64::from(slots)))
        .unwrap_or(u32::MAX)
        .min(max)
}

/// What the node found out about itself at start.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub did: Did,
    pub payout: EvmAddress,
    pub host: HostResources,
    /// What the node advertises.
    pub capacity: NodeCapacity,
    /// Largest memory limit a unit may have on this node (`memory / slots`).
    pub unit_memory_ceiling: u64,
    pub bench: BenchResult,
    /// `lode-node/<version>; <sandbox fingerprint>`.
    pub software: String,
}

/// What a node did between start and shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Sessions opened (1 + reconnections that needed a new hello).
    pub sessions: u32,
    /// Polls answered by the gateway.
    pub polls: u64,
    /// Units assigned and accepted.
    pub accepted: u64,
    /// Reports the gateway recorded.
    pub reported: u64,
    /// Reports the gateway refused.
    pub rejected: u64,
    /// Hand-backs the gateway received.
    pub handed_back: u64,
    /// Units cancelled by the gateway.
    pub cancelled: u64,
    /// Reports and hand-backs that could not be delivered before exit.
    pub undelivered: u64,
}

/// A node ready to run: key loaded, sandbox built, benchmark done.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    key: Arc<Keypair>,
    info: NodeInfo,
    client: GatewayClient,
    sandbox: Arc<Sandbox>,
    modules: Arc<ModuleCache>,
}

impl Node {
    /// Loads the key (which must carry a payout address), detects the host, builds
    /// the sandbox and runs the self-benchmark (about `config.benchmark_time`).
    /// Blocking: from async code, call it in `spawn_blocking` (or use [`run`]).
    pub fn new(config: NodeConfig) -> Result<Self, NodeError> {
        config.validate()?;
        let base = config.gateway_base()?;
        let kf = KeyFile::load(&config.key_file)?;
        let payout = kf
            .payout_address
            .ok_or_else(|| NodeError::NoPayoutAddress(config.key_file.clone()))?;
        let host = host::detect();
        let slots = effective_slots(host.cores, config.slots, config.max_cpu_pct);
        let memory = config
            .memory_bytes
            .unwrap_or(host.available_memory_bytes / 2)
            .max(WASM_PAGE);
        let unit_memory_ceiling = NodeCapacity {
            cores: host.cores,
            slots,
            queue: 0,
            memory_bytes: memory,
            speed_fuel_per_s: 0,
        }
        .unit_memory_bytes();
        debug_assert!(unit_memory_ceiling <= MAX_WASM32_MEMORY);

        let data_err = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| NodeError::DataDir { path, source }
        };
        let modules_dir = config.data_dir.join("modules");
        let compiled_dir = config.data_dir.join("compiled");
        std::fs::create_dir_all(&compiled_dir).map_err(data_err(&compiled_dir))?;

        let sandbox = Arc::new(Sandbox::new(SandboxConfig {
            cache_dir: Some(compiled_dir),
            max_concurrent_units: slots,
            max_memory_bytes: unit_memory_ceiling,
            // The wall-clock backstop needs no 2 ms precision; fewer wake-ups when idle.
            epoch_tick_us: 10_000,
            // The node keeps its own (bounded) map of compiled modules.
            memory_cache_modules: 0,
            ..SandboxConfig::default()
        })?);
        let bench =
            self_benchmark(&sandbox, config.benchmark_time).map_err(NodeError::Benchmark)?;
        host::release_free_memory();
        let modules = Arc::new(
            ModuleCache::new(
                Arc::clone(&sandbox),
                modules_dir.clone(),
                COMPILED_IN_MEMORY,
            )
            .map_err(data_err(&modules_dir))?,
        );
        let client = GatewayClient::new(
            base,
            config.connect_timeout,
            config.request_timeout,
            config.source_ip,
        )
        .map_err(NodeError::Http)?;
        let info = NodeInfo {
            did: kf.did(),
            payout,
            host,
            capacity: NodeCapacity {
                cores: host.cores,
                slots,
                queue: config.max_prefetch,
                memory_bytes: memory,
                speed_fuel_per_s: config.claim_speed.unwrap_or(bench.fuel_per_s),
            },
            unit_memory_ceiling,
            bench,
            software: format!(
                "lode-node/{}; {}",
                env!("CARGO_PKG_VERSION"),
                sandbox.fingerprint()
            ),
        };
        Ok(Self {
            config,
            key: Arc::new(kf.keypair),
            info,
            client,
            sandbox,
            modules,
        })
    }

    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    fn hello(&self) -> NodeHello {
        NodeHello {
            capacity: self.info.capacity.clone(),
            payout: self.info.payout,
            operator: self.config.operator,
            region: self.config.region.clone(),
            min_price_per_fuel: self.config.min_price_per_fuel,
            software: self.info.software.clone(),
        }
    }

    /// Runs until `shutdown` completes, then stops taking work, lets running units
    /// finish for up to `shutdown_grace`, reports them, hands back the rest and
    /// returns. Gateway trouble never ends it: the node reconnects with backoff.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<RunSummary, NodeError> {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let pool = RunnerPool::spawn(
            self.info.capacity.slots,
            Arc::clone(&self.sandbox),
            done_tx.clone(),
            self.config.behaviour,
            self.info.did,
            self.config.lower_priority,
        )
        .map_err(NodeError::Thread)?;
        tracing::info!(
            did = %self.info.did,
            payout = %self.info.payout,
            gateway = %self.client.base(),
            cores = self.info.host.cores,
            slots = self.info.capacity.slots,
            memory_mb = self.info.capacity.memory_bytes >> 20,
            unit_memory_ceiling_mb = self.info.unit_memory_ceiling >> 20,
            fuel_per_s = self.info.bench.fuel_per_s,
            rss_kb = crate::vm_rss_bytes().map(|b| b >> 10),
            "node started"
        );
        let ev = EventLoop {
            hello: self.hello(),
            tracker: Tracker::new(self.info.capacity.slots),
            outbox: Outbox::default(),
            clock: GatewayClock::default(),
            session: None,
            chain: None,
            connecting: None,
            long: None,
            short: None,
            retry_at: None,
            long_not_before: None,
            backoff: Backoff::new(self.config.backoff_base, self.config.backoff_max),
            last_poll_at: Instant::now(),
            next_status: Instant::now() + STATUS_EVERY,
            phase: Phase::Running,
            max_reports: self.config.poll_batch as usize,
            max_bytes: self.config.max_poll_bytes,
            summary: RunSummary::default(),
            unknown_session_streak: 0,
            transport_fail_streak: 0,
            avg_run_us: None,
            done_tx,
            done_rx,
            pool,
            node: self,
        };
        let storage = match &ev.node.config.storage_dir {
            Some(dir) => {
                let store = crate::storage::ShareStore::open(dir, ev.node.config.storage_bytes)?;
                tracing::info!(dir = %dir.display(), quota_bytes = store.quota(), free_bytes = store.free(), "offering storage");
                Some(tokio::spawn(crate::storage::run(
                    ev.node.client.clone(),
                    Arc::clone(&ev.node.key),
                    store,
                )))
            }
            None => None,
        };
        let summary = ev.run(shutdown).await;
        if let Some(s) = storage {
            s.abort();
        }
        Ok(summary)
    }
}

/// Starts a node with `config` and runs it until `shutdown` completes (see
/// [`Node::new`] and [`Node::run`]).
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, NodeError> {
    let node = tokio::task::spawn_blocking(move || Node::new(config))
        .await
        .map_err(|e| NodeError::Thread(std::io::Error::other(e.to_string())))??;
    node.run(shutdown).await
}

#[derive(Debug, Clone)]
struct Session {
    id: [u8; 16],
    gateway: Did,
    chain: Hash32,
    poll_timeout: Duration,
    heartbeat_every: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Shutdown requested: no new work; running units may finish until `grace_end`.
    Draining {
        grace_end: Instant,
    },
    /// Delivering the last reports and hand-backs until `until`.
    Flushing {
        until: Instant,
    },
}

type PollResult = Result<Reply<PollResponse>, ClientError>;
type ConnectResult = (GatewayClock, Result<Session, ClientError>);

#[derive(Debug)]
struct InFlight {
    handle: JoinHandle<PollResult>,
    batch: Batch,
    session: [u8; 16],
    want: u32,
    started: Instant,
}

struct EventLoop {
    node: Node,
    hello: NodeHello,
    tracker: Tracker,
    outbox: Outbox,
    clock: GatewayClock,
    session: Option<Session>,
    /// The chain of the last session: results are claimed on it.
    chain: Option<Hash32>,
    connecting: Option<JoinHandle<ConnectResult>>,
    long: Option<InFlight>,
    short: Option<InFlight>,
    retry_at: Option<Instant>,
    long_not_before: Option<Instant>,
    backoff: Backoff,
    last_poll_at: Instant,
    next_status: Instant,
    phase: Phase,
    max_reports: usize,
    max_bytes: usize,
    summary: RunSummary,
    unknown_session_streak: u32,
    /// Polls in a row that failed in transit (the gateway unreachable): the node
    /// does not call itself connected while this is above zero.
    transport_fail_streak: u32,
    /// Moving average of the time units spend in the sandbox.
    avg_run_us: Option<u64>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    pool: RunnerPool,
}

async fn join_task<T>(h: &mut Option<JoinHandle<T>>) -> Result<T, JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn join_poll(f: &mut Option<InFlight>) -> Result<PollResult, JoinError> {
    match f {
        Some(f) => (&mut f.handle).await,
        None => std::future::pending().await,
    }
}

impl EventLoop {
    async fn run(mut self, shutdown: impl Future<Output = ()>) -> RunSummary {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let now = Instant::now();
            if self.advance_phase(now) {
                return self.finish();
            }
            self.start_requests(now);
            let wake = self.next_wake(now);
            let running = self.phase == Phase::Running;
            tokio::select! {
                () = &mut shutdown, if running => self.begin_shutdown(),
                Some(done) = self.done_rx.recv() => {
                    self.on_done(done);
                    // Take everything that finished meanwhile: one batch, one poll.
                    while let Ok(done) = self.done_rx.try_recv() {
                        self.on_done(done);
                    }
                }
                r = join_task(&mut self.connecting) => {
                    self.connecting = None;
                    self.on_connected(r);
                }
                r = join_poll(&mut self.long) => {
                    if let Some(f) = self.long.take() {
                        self.on_poll(f, r, true);
                    }
                }
                r = join_poll(&mut self.short) => {
                    if let Some(f) = self.short.take() {
                        self.on_poll(f, r, false);
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Phase transitions; `true` when the node is done.
    fn advance_phase(&mut self, now: Instant) -> bool {
        if now >= self.next_status {
            self.next_status = now + STATUS_EVERY;
            tracing::info!(
                connected = self.session.is_some() && self.transport_fail_streak == 0,
                held = self.tracker.held(),
                reported = self.summary.reported,
                handed_back = self.summary.handed_back,
                rss_kb = crate::vm_rss_bytes().map(|b| b >> 10),
                "status"
            );
        }
        match self.phase {
            Phase::Running => false,
            Phase::Draining { grace_end } => {
                if self.tracker.is_idle() || now >= grace_end {
                    let left = self.tracker.abandon_all();
                    if !left.is_empty() {
                        tracing::warn!(
                            units = left.len(),
                            "grace period over: handing back units still running"
                        );
                    }
                    for u in left {
                        self.outbox.push_hand_back(u);
                    }
                    // Nothing more to wait for from a long poll: give its batch another
                    // way out. One already answered is kept: the loop reads its answer
                    // next (aborting it would lose that answer and send the batch twice).
                    // So is one carrying reports: a gateway answers those at once, and
                    // aborting it in flight would lose the answer just the same.
                    if self
                        .long
                        .as_ref()
                        .is_some_and(|f| !f.handle.is_finished() && f.batch.reports.is_empty())
                        && let Some(f) = self.long.take()
                    {
                        f.handle.abort();
                        self.outbox.restore(f.batch);
                    }
                    self.phase = Phase::Flushing {
                        until: now + self.node.config.final_flush,
                    };
                    // Possibly nothing left to say: done at once.
                    return self.advance_phase(now);
                }
                false
            }
            Phase::Flushing { until } => {
                let idle = self.long.is_none() && self.short.is_none();
                if self.outbox.is_empty() && idle {
                    return true;
                }
                if now >= until {
                    let n = self.outbox.pending_reports() + self.outbox.pending_hand_backs();
                    tracing::warn!(
                        undelivered = n,
                        "could not tell the gateway everything before exiting; it will re-issue those units when their leases end"
                    );
                    return true;
                }
                false
            }
        }
    }

    fn finish(mut self) -> RunSummary {
        for f in [self.long.take(), self.short.take()].into_iter().flatten() {
            f.handle.abort();
            self.outbox.restore(f.batch);
        }
        if let Some(c) = self.connecting.take() {
            c.abort();
        }
        self.summary.undelivered =
            (self.outbox.pending_reports() + self.outbox.pending_hand_backs()) as u64;
        tracing::info!(
            reported = self.summary.reported,
            handed_back = self.summary.handed_back,
            undelivered = self.summary.undelivered,
            "node stopped"
        );
        self.summary
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = self.next_status;
        let mut consider = |t: Instant| wake = wake.min(t);
        if let Some(t) = self.retry_at {
            consider(t);
        }
        if let Some(t) = self.long_not_before {
            consider(t);
        }
        if let Some(s) = &self.session
            && self.long.is_none()
            && self.short.is_none()
        {
            consider(self.last_poll_at + s.heartbeat_every);
        }
        match self.phase {
            Phase::Running => {}
            Phase::Draining { grace_end } => consider(grace_end),
            Phase::Flushing { until } => consider(until),
        }
        wake.max(now)
    }

    /// Starts a connection attempt or polls, as the state calls for.
    fn start_requests(&mut self, now: Instant) {
        if let Some(t) = self.retry_at {
            if now < t {
                return;
            }
            self.retry_at = None;
        }
        let running = self.phase == Phase::Running;
        let Some(session) = self.session.clone() else {
            if self.connecting.is_none() && (running || !self.outbox.is_empty()) {
                self.connect();
            }
            return;
        };
        let long_allowed = self.long_not_before.is_none_or(|t| now >= t);
        if running && self.long.is_none() && long_allowed && self.tracker.free() > 0 {
            self.long_not_before = None;
            let want = self.tracker.free().min(self.node.config.poll_batch);
            self.long = Some(self.poll(&session, want));
        }
        // Not `else`: a long poll takes at most one batch of reports, and what it
        // left must not wait for its answer (up to the poll timeout).
        if self.short.is_none()
            && (!self.outbox.is_empty()
                || (self.long.is_none() && now >= self.last_poll_at + session.heartbeat_every))
        {
            self.short = Some(self.poll(&session, 0));
        }
    }

    fn connect(&mut self) {
        let client = self.node.client.clone();
        let key = Arc::clone(&self.node.key);
        let hello = self.hello.clone();
        let mut clock = self.clock;
        let chain_file = self.node.config.data_dir.join("chain_id");
        tracing::debug!(gateway = %client.base(), "saying hello");
        self.connecting = Some(tokio::spawn(async move {
            let h = match client.hello(&key, &clock, &hello).await {
                Ok(h) => h,
                Err(e) => return (clock, Err(e)),
            };
            // A node joins one chain: a gateway that now serves another (a reset
            // devnet, a different network on the same URL) is refused loudly,
            // never silently re-registered with.
            if let Err(e) = crate::config::pin_chain(&chain_file, &h.value.chain_id) {
                return (clock, Err(e));
            }
            clock.observe(h.value.now_ms, h.sent_ms, h.received_ms);
            // The ledger does not know this node (or knows another payout address or
            // operator): register it, signed with the nonce the gateway gave.
            let register = match h.value.register_nonce {
                Some(nonce) => {
                    let entry = RegisterNode {
                        chain: h.value.chain_id,
                        operator: hello.operator.unwrap_or_else(|| key.did()),
                        payout: hello.payout,
                    };
                    match Envelope::seal(&key, &entry, nonce, clock.now_ms()) {
                        Ok(env) => Some(env),
                        Err(e) => {
                            return (
                                clock,
                                Err(ClientError::Protocol(format!(
                                    "cannot sign registration: {e}"
                                ))),
                            );
                        }
                    }
                }
                None => None,
            };
            let auth = NodeAuth {
                challenge: h.value.challenge,
                register,
            };
            let a = match client.auth(&key, &clock, &auth).await {
                Ok(a) => a,
                Err(e) => return (clock, Err(e)),
            };
            let heartbeat = Duration::from_millis(a.value.heartbeat_timeout_ms.max(300));
            let session = Session {
                id: a.value.session,
                gateway: h.value.gateway,
                chain: h.value.chain_id,
                poll_timeout: Duration::from_millis(a.value.poll_timeout_ms)
                    .min(Duration::from_secs(600)),
                heartbeat_every: heartbeat / 3,
            };
            (clock, Ok(session))
        }));
    }

    fn poll(&mut self, session: &Session, want: u32) -> InFlight {
        let batch = self.outbox.take(self.max_reports, self.max_bytes);
        let msg = NodePoll {
            session: session.id,
            want,
            reports: batch.reports.clone(),
            handed_back: batch.handed_back.clone(),
        };
        let client = self.node.client.clone();
        let key = Arc::clone(&self.node.key);
        let clock = self.clock;
        let timeout = session.poll_timeout + POLL_MARGIN;
        self.last_poll_at = Instant::now();
        tracing::trace!(
            want,
            reports = msg.reports.len(),
            handed_back = msg.handed_back.len(),
            "poll"
        );
        InFlight {
            handle: tokio::spawn(async move { client.poll(&key, &clock, &msg, timeout).await }),
            batch,
            session: session.id,
            want,
            started: Instant::now(),
        }
    }

    fn retry_later(&mut self) -> Duration {
        let d = self.backoff.next_delay(&mut rand::rng());
        self.retry_at = Some(Instant::now() + d);
        d
    }

    fn fix_clock(&mut self, e: &ClientError) {
        if let ClientError::Refused {
            date: Some(date), ..
        } = e
            && e.is_clock_skew()
            && self.clock.observe_http_date(date, local_now_ms())
        {
            tracing::warn!(
                offset_ms = self.clock.offset_ms(),
                "gateway refused our timestamp; correcting the clock from its Date header"
            );
        }
    }

    fn on_connected(&mut self, r: Result<ConnectResult, JoinError>) {
        let (clock, result) = match r {
            Ok(r) => r,
            Err(e) => (
                self.clock,
                Err(ClientError::Transport(format!("connect task: {e}"))),
            ),
        };
        self.clock = clock;
        match result {
            Ok(session) => {
                self.backoff.reset();
                self.summary.sessions += 1;
                tracing::info!(
                    gateway = %session.gateway,
                    session = %hex::encode(session.id),
                    poll_timeout_ms = session.poll_timeout.as_millis() as u64,
                    clock_offset_ms = self.clock.offset_ms(),
                    rss_kb = crate::vm_rss_bytes().map(|b| b >> 10),
                    "connected"
                );
                self.last_poll_at = Instant::now();
                self.chain = Some(session.chain);
                self.session = Some(session);
            }
            Err(e) => {
                self.fix_clock(&e);
                let d = self.retry_later();
                tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "cannot connect to the gateway");
            }
        }
    }

    fn on_poll(&mut self, f: InFlight, r: Result<PollResult, JoinError>, long: bool) {
        let result = match r {
            Ok(r) => r,
            Err(e) => Err(ClientError::Transport(format!("poll task: {e}"))),
        };
        match result {
            Ok(reply) => {
                self.clock
                    .observe(reply.value.now_ms, reply.sent_ms, reply.received_ms);
                self.backoff.reset();
                self.unknown_session_streak = 0;
                self.transport_fail_streak = 0;
                self.summary.polls += 1;
                // A pure request for work answered empty at once: the gateway does
                // not hold polls, so pace them.
                let idle_answer = reply.value.assignments.is_empty() && f.batch.is_empty();
                self.on_answer(f.batch, f.want, reply.value);
                if long && idle_answer && f.want > 0 && f.started.elapsed() < MIN_EMPTY_POLL {
                    self.long_not_before = Some(Instant::now() + MIN_EMPTY_POLL);
                }
            }
            Err(e) => self.on_poll_error(f, e),
        }
    }

    fn on_answer(&mut self, batch: Batch, want: u32, resp: PollResponse) {
        let rejected: HashSet<UnitRef> = resp.rejected.iter().map(|(u, _)| *u).collect();
        for (u, why) in &resp.rejected {
            tracing::warn!(job = %u.job, unit = u.unit, reason = %why, "gateway rejected a report");
        }
        self.summary.rejected += rejected.len() as u64;
        // `accepted` counts the recorded reports, in order, among those not rejected;
        // any beyond it were not recorded and go out again.
        let accepted = resp.accepted as usize;
        let mut recorded = 0usize;
        let mut again = Vec::new();
        for r in batch.reports {
            if rejected.contains(&r.unit) {
                continue;
            }
            if recorded < accepted {
                recorded += 1;
            } else {
                again.push(r);
            }
        }
        if !again.is_empty() {
            tracing::warn!(
                resend = again.len(),
                "gateway recorded only part of the reports; sending the rest again"
            );
            self.outbox.restore(Batch {
                reports: again,
                handed_back: Vec::new(),
            });
        }
        self.summary.reported += recorded as u64;
        self.summary.handed_back += batch.handed_back.len() as u64;

        for u in &resp.cancel {
            let c = self.tracker.cancel(u);
            self.outbox.cancel(u);
            self.summary.cancelled += 1;
            tracing::debug!(job = %u.job, unit = u.unit, effect = ?c, "unit cancelled by the gateway");
        }
        let accepting = self.phase == Phase::Running;
        let room = self.tracker.room_for(want, accepting);
        let admitted = self.tracker.admit(resp.assignments, room);
        if !admitted.hand_back.is_empty() {
            tracing::debug!(
                units = admitted.hand_back.len(),
                accepting,
                "handing back assignments this node cannot take"
            );
        }
        for u in admitted.hand_back {
            self.outbox.push_hand_back(u);
        }
        self.summary.accepted += admitted.run.len() as u64;
        for (a, cell) in admitted.run {
            self.start_unit(a, cell);
        }
    }

    fn on_poll_error(&mut self, f: InFlight, e: ClientError) {
        let InFlight { batch, session, .. } = f;
        if e.is_too_large() && !batch.reports.is_empty() {
            if batch.reports.len() == 1 {
                let u = batch.reports[0].unit;
                tracing::error!(job = %u.job, unit = u.unit, error = %e, "a single report is too large for the gateway; handing the unit back");
                self.outbox.push_hand_back(u);
                self.outbox.restore(Batch {
                    reports: Vec::new(),
                    handed_back: batch.handed_back,
                });
            } else {
                self.max_reports = (batch.reports.len() / 2).max(1);
                self.max_bytes = (self.max_bytes / 2).max(1);
                tracing::warn!(
                    max_reports = self.max_reports,
                    "poll too large for the gateway; sending smaller batches"
                );
                self.outbox.restore(batch);
            }
            return;
        }
        self.outbox.restore(batch);
        if e.is_unknown_session() {
            if self.session.as_ref().is_some_and(|s| s.id == session) {
                tracing::info!(
                    "the gateway does not know this session (restarted?); saying hello again"
                );
                self.session = None;
            }
            self.unknown_session_streak += 1;
            if self.unknown_session_streak > 1 {
                self.retry_later();
            }
        } else if e.is_clock_skew() {
            self.fix_clock(&e);
            self.retry_later();
        } else if e.is_transient() {
            self.transport_fail_streak += 1;
            let d = self.retry_later();
            tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, failures = self.transport_fail_streak, "poll failed; not connected");
            // The session is kept: a gateway that restarted refuses it, and the
            // node then says hello again (which re-checks the chain it serves).
        } else {
            let d = self.retry_later();
            tracing::error!(error = %e, retry_in_ms = d.as_millis() as u64, "gateway refused a poll; reconnecting");
            self.session = None;
        }
    }

    /// Prepares (module) and queues an admitted unit.
    fn start_unit(&mut self, a: Assignment, cell: Arc<UnitCell>) {
        let accepted_at = Instant::now();
        let unit = a.unit;
        let limits = to_sandbox_limits(&a.limits);
        let done = self.done_tx.clone();
        let finish = move |cell: &UnitCell, disposition: Disposition| {
            if cell.try_start() {
                let _ = done.send(Done {
                    unit,
                    disposition,
                    elapsed_ms: u64::try_from(accepted_at.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                    run_us: None,
                });
            }
        };
        if let Err(reason) = check_limits_fit(&limits, self.node.sandbox.config()) {
            finish(
                &cell,
                Disposition::HandBack(format!("limits do not fit this node: {reason}")),
            );
            return;
        }
        let modules = Arc::clone(&self.node.modules);
        let client = self.node.client.clone();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let hash = a.module;
            let max = modules.max_module_bytes();
            let fetched = modules
                .get(hash, || async move {
                    client.module(&hash, max).await.map_err(|e| e.to_string())
                })
                .await;
            match fetched {
                Ok(module) => {
                    let job = Job {
                        unit,
                        module,
                        input: RunInput {
                            stdin: a.input.stdin,
                            args: a.input.args,
                        },
                        limits,
                        cell: Arc::clone(&cell),
                        accepted_at,
                    };
                    if !pool.submit(job) {
                        finish(&cell, Disposition::HandBack("unit runners stopped".into()));
                    }
                }
                Err(ModuleError::Invalid { error, .. }) => finish(&cell, classify(Err(error))),
                Err(e) => {
                    tracing::warn!(job = %unit.job, unit = unit.unit, error = %e, "handing the unit back");
                    finish(&cell, Disposition::HandBack(e.to_string()));
                }
            }
        });
    }

    fn on_done(&mut self, d: Done) {
        if let Some(us) = d.run_us {
            self.observe_run_time(us);
        }
        match self.tracker.finish(&d.unit) {
            Finish::Deliver => match d.disposition {
                Disposition::Report(outcome) => {
                    let claim = self.chain.map(|chain| {
                        let (exit_code, fuel_used, output) = outcome.compared();
                        ResultClaim::of_result(
                            chain,
                            d.unit.job,
                            d.unit.unit,
                            &Hash32::sha256(output),
                            exit_code,
                            fuel_used,
                        )
                        .sign(&self.node.key)
                    });
                    self.outbox.push_report(UnitReport {
                        unit: d.unit,
                        outcome,
                        elapsed_ms: d.elapsed_ms,
                        claim,
                    })
                }
                Disposition::HandBack(why) => {
                    tracing::info!(job = %d.unit.job, unit = d.unit.unit, reason = %why, "handing the unit back");
                    self.outbox.push_hand_back(d.unit);
                }
            },
            Finish::Drop => {
                tracing::debug!(job = %d.unit.job, unit = d.unit.unit, "dropping the result of a unit no longer held");
            }
        }
    }

    /// Learns how long units take and sizes the prefetch allowance: enough queued
    /// units to keep every slot busy for [`PREFETCH_WINDOW`] (none for units that
    /// take longer than that), at most `max_prefetch`.
    fn observe_run_time(&mut self, us: u64) {
        let avg = match self.avg_run_us {
            Some(a) => a - a / 8 + us / 8,
            None => us,
        };
        self.avg_run_us = Some(avg);
        let slots = self.node.info.capacity.slots;
        let prefetch = prefetch_for(slots, avg, self.node.config.max_prefetch);
        self.tracker.set_capacity(slots.saturating_add(prefetch));
    }

    fn begin_shutdown(&mut self) {
        let grace = self.node.config.shutdown_grace;
        let unstarted = self.tracker.abandon_unstarted();
        tracing::info!(
            running = self.tracker.held(),
            handing_back = unstarted.len(),
            grace_ms = grace.as_millis() as u64,
            "shutting down: no new work; running units may finish"
        );
        for u in unstarted {
            self.outbox.push_hand_back(u);
        }
        self.phase = Phase::Draining {
            grace_end: Instant::now() + grace,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_follows_unit_time() {
        // 100 µs units, 2 slots: 2 × 2500 wanted, capped.
        assert_eq!(prefetch_for(2, 100, 256), 256);
        // 10 ms units: 25 per slot.
        assert_eq!(prefetch_for(2, 10_000, 256), 50);
        // Units longer than the window: nothing queued beyond the slots.
        assert_eq!(prefetch_for(2, 300_000, 256), 0);
        assert_eq!(prefetch_for(4, 2_000_000, 256), 0);
        assert_eq!(prefetch_for(2, 0, 7), 7);
    }
}
