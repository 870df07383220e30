//! A seeded discrete-event simulation of a Lode network driving a [`Scheduler`]
//! through [`Scheduler::apply`] only, so every run can be recorded and replayed.
//!
//! Nodes pull work when they have free slots (polling every `poll_ms` when they
//! got nothing), run each unit for `fuel_used / speed` (± jitter) and return a
//! result according to their [`Behavior`]. Time is simulated milliseconds. The
//! simulation owns a second seeded RNG (runtimes, wrong outputs, cheating coins);
//! the scheduler's RNG is separate.

use crate::sched::{Event, Scheduler};
use crate::types::*;
use crate::{Config, ConfigError, ReplicaState};
use lode_proto::Hash32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// How a simulated node behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Honest,
    /// Crashes halfway through the `after_units`-th unit it starts and never comes
    /// back. `detected`: the gateway notices (node left) after `detect_ms`;
    /// otherwise only the lease deadlines reveal it.
    Crash {
        after_units: u32,
        detected: bool,
    },
    /// Always returns a random wrong output.
    RandomWrong,
    /// Honest while untrusted; while trusted, wrong with probability
    /// `wrong_permille`/1000 (it knows its own trust status).
    Intermittent {
        wrong_permille: u32,
    },
    /// Returns the colluding group's common wrong output for every unit.
    Colluder,
}

/// A simulated node.
#[derive(Clone, Copy, Debug)]
pub struct SimNode {
    pub info: NodeInfo,
    pub behavior: Behavior,
    /// Bonded stake behind the node, in value units (1 per fuel of a unit at
    /// price 1); used when [`SimSetup::stake`] is set.
    pub stake: u128,
}

impl SimNode {
    /// A node with its own operator and IP group.
    pub fn new(i: u64, slots: u32, speed: u64, behavior: Behavior) -> Self {
        Self {
            info: NodeInfo {
                slots,
                memory_bytes: 4 << 30,
                speed_fuel_per_s: speed,
                region: Region::default(),
                latency_ms: 20,
                price_floor: 0,
                operator: OperatorId::from_u64(i),
                ip_group: IpGroup::from_u64(i),
                trust: None,
            },
            behavior,
            stake: 0,
        }
    }
}

/// A job submitted at a given time.
#[derive(Clone, Copy, Debug)]
pub struct SimJob {
    pub id: JobId,
    pub submit_at_ms: u64,
    pub spec: JobSpec<u64>,
}

/// A whole simulation. Node keys are their indices in `nodes`.
#[derive(Clone, Debug)]
pub struct SimSetup {
    pub config: Config,
    pub seed: u64,
    pub nodes: Vec<SimNode>,
    pub jobs: Vec<SimJob>,
    pub poll_ms: u64,
    pub detect_ms: u64,
    pub tick_ms: u64,
    /// Stop at this simulated time even if jobs remain.
    pub max_time_ms: u64,
    /// Run times vary uniformly by ± this many ‰.
    pub jitter_permille: u32,
    /// Keep every event and decision (for determinism and replay checks).
    pub record: bool,
    /// Run [`Scheduler::validate`] every this many events (0: never).
    pub validate_every: u64,
    /// Slashing of proven faults, with stake-backed trust when
    /// `config.stake_trust` is set (see [`SimStake`]).
    pub stake: Option<SimStake>,
}

/// How the simulated ledger slashes and covers (stake-backed trust).
///
/// A node whose result a quorum found wrong is slashed `slash_bps` of its
/// stake when the result is really wrong (the referee re-run of the gateway;
/// in the simulation: [`correct_digest`]), never for losing to colluders. Its
/// cover is `stake × slash_bps / 10,000 / multiple`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimStake {
    pub slash_bps: u32,
    pub multiple: u32,
}

impl SimStake {
    pub fn cover(&self, stake: u128) -> u128 {
        stake * u128::from(self.slash_bps) / 10_000 / u128::from(self.multiple.max(1))
    }
}

impl SimSetup {
    pub fn new(seed: u64) -> Self {
        Self {
            config: Config::default(),
            seed,
            nodes: Vec::new(),
            jobs: Vec::new(),
            poll_ms: 1_000,
            detect_ms: 30_000,
            tick_ms: 1_000,
            max_time_ms: 1_000_000_000,
            jitter_permille: 100,
            record: false,
            validate_every: 0,
            stake: None,
        }
    }
}

/// A job spec for simulations: `units` units of `fuel` fuel each.
pub fn job_spec(
    requester: u64,
    units: u32,
    fuel: u64,
    quorum: u8,
    max_replicas: u8,
    adaptive: bool,
) -> JobSpec<u64> {
    JobSpec {
        requester,
        units,
        limits: Limits {
            fuel,
            memory_bytes: 64 << 20,
            timeout_ms: None,
        },
        quorum,
        max_replicas,
        max_price_per_fuel: 1,
        priority: 0,
        adaptive_trust: adaptive,
        region: None,
    }
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_of(a: u64, b: u64, salt: u64) -> Hash32 {
    let mut out = [0u8; 32];
    let mut s = mix(a ^ mix(b ^ mix(salt)));
    for chunk in out.chunks_mut(8) {
        s = mix(s);
        chunk.copy_from_slice(&s.to_le_bytes());
    }
    Hash32(out)
}

/// Fuel a unit really uses (deterministic, between half and all of the limit).
pub fn fuel_of(unit: UnitRef, limit: u64) -> u64 {
    let half = (limit / 2).max(1);
    half + mix(unit.job.0 ^ (u64::from(unit.index) << 32)) % half
}

/// The correct result of a unit.
pub fn correct_digest(unit: UnitRef, limit: u64) -> ResultDigest {
    ResultDigest {
        output_hash: hash_of(unit.job.0, u64::from(unit.index), 0),
        exit_code: 0,
        fuel_used: fuel_of(unit, limit),
    }
}

/// The colluders' common wrong result of a unit.
pub fn colluder_digest(unit: UnitRef, limit: u64) -> ResultDigest {
    ResultDigest {
        output_hash: hash_of(unit.job.0, u64::from(unit.index), 0x0c01_10de),
        ..correct_digest(unit, limit)
    }
}

/// Statistics of one behaviour class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    pub nodes: u32,
    /// Results returned.
    pub results: u64,
    /// Wrong results returned.
    pub wrong: u64,
    /// Results that were the first replica of their unit.
    pub primary: u64,
    /// Wrong results of this class accepted (credited) as a unit's canonical result.
    pub wrong_accepted: u64,
    /// Units credited to this class.
    pub credited: u64,
    /// Times a node of this class became trusted.
    pub became_trusted: u64,
    /// Decided (completed or failed) units whose first replica went to this class...
    pub primary_units: u64,
    /// ...and of those, the ones replicated (verified by a quorum, or failed with
    /// two or more replicas).
    pub primary_units_replicated: u64,
    /// Value (fuel × price) this class was paid for wrong results accepted: the
    /// most a cheater gains by not computing them.
    pub wrong_value_accepted: u128,
    /// Proven faults slashed, and the stake they took.
    pub slashes: u64,
    pub slashed: u128,
}

impl ClassStats {
    /// What cheating earned this class net of slashing (negative: a loss).
    pub fn cheating_profit(&self) -> i128 {
        self.wrong_value_accepted as i128 - self.slashed as i128
    }
}

/// What a simulation observed.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub end_ms: u64,
    pub units: u64,
    pub completed: u64,
    /// Completed units whose accepted result is wrong.
    pub wrong_accepted: u64,
    /// Units of trusted nodes replicated because their stake did not cover them.
    pub stake_checks: u64,
    /// Units completed more than once (must be 0).
    pub double_completions: u64,
    /// A node credited twice for one unit (must be 0).
    pub double_credits: u64,
    pub failed: Vec<(UnitRef, FailReason)>,
    pub assigned: u64,
    pub results: u64,
    /// Replicas cancelled before returning.
    pub cancelled: u64,
    /// Completions by basis: (quorum, trusted, single).
    pub basis: (u64, u64, u64),
    /// Leases lost: (time, node, unit, cause).
    pub lost: Vec<(u64, u64, UnitRef, LossCause)>,
    /// Leases a crashing node held when it crashed: (time, node, unit).
    pub crashed_leases: Vec<(u64, u64, UnitRef)>,
    /// Lost leases of undecided units never followed by a new assignment of the
    /// unit (nor a failure of it). Must be empty.
    pub not_reissued: Vec<(u64, u64, UnitRef)>,
    /// Per job: time it finished.
    pub finished_at: BTreeMap<JobId, u64>,
    /// Per job: completed units of every job at the moment it finished.
    pub progress_at_finish: BTreeMap<JobId, BTreeMap<JobId, u32>>,
    /// Per job: completed units of every job at the moment it was submitted.
    pub progress_at_submit: BTreeMap<JobId, BTreeMap<JobId, u32>>,
    /// Results returned and accepted per behaviour class.
    pub honest: ClassStats,
    pub crash: ClassStats,
    pub random_wrong: ClassStats,
    pub intermittent: ClassStats,
    pub colluder: ClassStats,
    pub flags: u64,
    pub rejected: u64,
    /// Every (time, event) and decision, when recording.
    pub events: Vec<(u64, Event<u64>)>,
    pub decisions: Vec<Decision<u64>>,
}

impl SimReport {
    /// Extra replicas assigned per completed unit: `assigned / completed − 1`.
    pub fn overhead(&self) -> f64 {
        self.assigned as f64 / self.completed.max(1) as f64 - 1.0
    }

    fn class(&mut self, b: Behavior) -> &mut ClassStats {
        match b {
            Behavior::Honest => &mut self.honest,
            Behavior::Crash { .. } => &mut self.crash,
            Behavior::RandomWrong => &mut self.random_wrong,
            Behavior::Intermittent { .. } => &mut self.intermittent,
            Behavior::Colluder => &mut self.colluder,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    Submit(usize),
    Poll(u64),
    Finish(u64, UnitRef),
    Crash(u64),
    Detect(u64),
    Tick,
}

struct NodeSim {
    alive: bool,
    started: u32,
    running: Vec<UnitRef>,
    poll_pending: bool,
}

struct Sim {
    setup: SimSetup,
    sched: Scheduler<u64>,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    now: u64,
    nodes: Vec<NodeSim>,
    fuel_limit: HashMap<JobId, u64>,
    report: SimReport,
    out: Vec<Decision<u64>>,
    jobs_open: usize,
    completed: HashSet<UnitRef>,
    decided: HashSet<UnitRef>,
    completed_per_job: BTreeMap<JobId, u32>,
    /// Units with a lost lease awaiting re-issue: unit -> (time, node).
    awaiting_reissue: HashMap<UnitRef, Vec<(u64, u64)>>,
    /// Stake per node (stake-backed trust) and covers to send to the scheduler.
    stake: Vec<u128>,
    covers: Vec<(u64, u128)>,
    events_applied: u64,
    violation: Option<SimError>,
}

/// Why a simulation stopped short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("invalid scheduler configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("scheduler invariant violated at t = {at_ms} ms: {what}")]
    Invariant { at_ms: u64, what: String },
}

/// Runs a simulation to completion (all jobs finished) or `max_time_ms`.
pub fn run(setup: SimSetup) -> Result<SimReport, SimError> {
    let sched = Scheduler::new(setup.config.clone(), setup.seed)?;
    let n = setup.nodes.len();
    let mut sim = Sim {
        rng: ChaCha8Rng::seed_from_u64(setup.seed ^ 0x5157_5eed),
        sched,
        queue: BinaryHeap::new(),
        seq: 0,
        now: 0,
        nodes: (0..n)
            .map(|_| NodeSim {
                alive: true,
                started: 0,
                running: Vec::new(),
                poll_pending: false,
            })
            .collect(),
        fuel_limit: setup
            .jobs
            .iter()
            .map(|j| (j.id, j.spec.limits.fuel))
            .collect(),
        report: SimReport::default(),
        out: Vec::new(),
        jobs_open: setup.jobs.len(),
        completed: HashSet::new(),
        decided: HashSet::new(),
        completed_per_job: BTreeMap::new(),
        awaiting_reissue: HashMap::new(),
        stake: setup.nodes.iter().map(|n| n.stake).collect(),
        covers: Vec::new(),
        events_applied: 0,
        violation: None,
        setup,
    };
    sim.go();
    sim.report.stake_checks = sim.sched.counters().stake_checks;
    match sim.violation {
        Some(e) => Err(e),
        None => Ok(sim.report),
    }
}

impl Sim {
    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    fn apply(&mut self, ev: Event<u64>) {
        if self.setup.record {
            self.report.events.push((self.now, ev.clone()));
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.sched.apply(self.now, ev, &mut out);
        for d in &out {
            self.observe(d);
        }
        if self.setup.record {
            self.report.decisions.extend(out.iter().cloned());
        }
        self.out = out;
        self.events_applied += 1;
        for (node, cover) in std::mem::take(&mut self.covers) {
            self.apply(Event::StakeCover { node, cover });
        }
        let every = self.setup.validate_every;
        if every > 0
            && self.violation.is_none()
            && self.events_applied.is_multiple_of(every)
            && let Err(what) = self.sched.validate()
        {
            self.violation = Some(SimError::Invariant {
                at_ms: self.now,
                what,
            });
        }
    }

    fn behavior(&self, node: u64) -> Behavior {
        self.setup.nodes[node as usize].behavior
    }

    fn observe(&mut self, d: &Decision<u64>) {
        match d {
            Decision::Assigned { node, assignment } => {
                self.report.assigned += 1;
                let u = assignment.unit;
                self.awaiting_reissue.remove(&u);
                let n = *node as usize;
                let ns = &mut self.nodes[n];
                ns.running.push(u);
                ns.started += 1;
                let info = self.setup.nodes[n].info;
                let fuel = fuel_of(u, assignment.limits.fuel);
                let base = fuel.saturating_mul(1000) / info.speed_fuel_per_s.max(1);
                let j = i64::from(self.setup.jitter_permille);
                let jit = if j > 0 {
                    self.rng.random_range(-j..=j)
                } else {
                    0
                };
                let run = (base as i64 + base as i64 * jit / 1000).max(1) as u64;
                let at = self.now + run + u64::from(info.latency_ms);
                if let Behavior::Crash { after_units, .. } = self.behavior(*node)
                    && self.nodes[n].started == after_units
                {
                    self.push(self.now + run / 2, Ev::Crash(*node));
                }
                self.push(at, Ev::Finish(*node, u));
            }
            Decision::Completed(c) => {
                if !self.completed.insert(c.unit) {
                    self.report.double_completions += 1;
                }
                self.decided.insert(c.unit);
                self.awaiting_reissue.remove(&c.unit);
                self.report.completed += 1;
                *self.completed_per_job.entry(c.unit.job).or_default() += 1;
                match c.basis {
                    Basis::Quorum { .. } => self.report.basis.0 += 1,
                    Basis::Trusted => self.report.basis.1 += 1,
                    Basis::Single => self.report.basis.2 += 1,
                }
                let limit = self.fuel_limit[&c.unit.job];
                let wrong = c.result != correct_digest(c.unit, limit);
                let value = u128::from(c.result.fuel_used);
                if wrong {
                    self.report.wrong_accepted += 1;
                }
                let first = self
                    .sched
                    .unit_replicas(c.unit)
                    .and_then(|v| v.first().map(|r| r.node));
                if let Some(first) = first {
                    let b = self.behavior(first);
                    let cs = self.report.class(b);
                    cs.primary_units += 1;
                    if matches!(c.basis, Basis::Quorum { .. }) {
                        cs.primary_units_replicated += 1;
                    }
                }
                let mut seen = HashSet::new();
                for &n in &c.credited {
                    if !seen.insert(n) {
                        self.report.double_credits += 1;
                    }
                    let b = self.behavior(n);
                    let cs = self.report.class(b);
                    cs.credited += 1;
                    if wrong {
                        cs.wrong_accepted += 1;
                        cs.wrong_value_accepted += value;
                    }
                }
            }
            Decision::Failed { unit, reason } => {
                let reps = self.sched.unit_replicas(*unit).unwrap_or_default();
                if let Some(first) = reps.first() {
                    let b = self.behavior(first.node);
                    let cs = self.report.class(b);
                    cs.primary_units += 1;
                    if reps.len() >= 2 {
                        cs.primary_units_replicated += 1;
                    }
                }
                self.decided.insert(*unit);
                self.awaiting_reissue.remove(unit);
                self.report.failed.push((*unit, *reason));
            }
            Decision::Cancel { node, unit } => {
                self.report.cancelled += 1;
                let ns = &mut self.nodes[*node as usize];
                if let Some(p) = ns.running.iter().position(|x| x == unit) {
                    ns.running.swap_remove(p);
                    if ns.alive {
                        self.schedule_poll(*node, self.now);
                    }
                }
            }
            Decision::LeaseLost { node, unit, cause } => {
                self.report.lost.push((self.now, *node, *unit, *cause));
                if !self.decided.contains(unit) {
                    self.awaiting_reissue
                        .entry(*unit)
                        .or_default()
                        .push((self.now, *node));
                }
                // An expired node keeps computing and may return a late result;
                // a node that left is gone (its runs were dropped when it crashed).
                if *cause != LossCause::Expired {
                    let ns = &mut self.nodes[*node as usize];
                    if let Some(p) = ns.running.iter().position(|x| x == unit) {
                        ns.running.swap_remove(p);
                    }
                }
            }
            Decision::Trust(t) => {
                if let TrustCause::Invalid { unit } = t.cause {
                    self.proven_fault(t.node, unit);
                }
                if t.trusted && t.cause == TrustCause::Valid {
                    let th = self.setup.config.trust_threshold;
                    if t.trust.consecutive_valid == th {
                        let b = self.behavior(t.node);
                        self.report.class(b).became_trusted += 1;
                    }
                }
            }
            Decision::Flagged { .. } => self.report.flags += 1,
            Decision::JobFinished { job, .. } => {
                self.report.finished_at.insert(*job, self.now);
                self.report
                    .progress_at_finish
                    .insert(*job, self.completed_per_job.clone());
                self.jobs_open = self.jobs_open.saturating_sub(1);
            }
            Decision::Rejected { .. } => self.report.rejected += 1,
        }
    }

    /// A quorum disagreed with `node` on `unit`: slash it if its result is really
    /// wrong (the referee), never for losing to colluders.
    fn proven_fault(&mut self, node: u64, unit: UnitRef) {
        let Some(st) = self.setup.stake else { return };
        let limit = self.fuel_limit[&unit.job];
        let right = correct_digest(unit, limit);
        let wrong = self
            .sched
            .unit_replicas(unit)
            .unwrap_or_default()
            .iter()
            .any(|r| r.node == node && r.result.is_some_and(|d| d != right));
        let stake = self.stake[node as usize];
        if !wrong || stake == 0 {
            return;
        }
        let cut = stake * u128::from(st.slash_bps) / 10_000;
        self.stake[node as usize] = stake - cut;
        let b = self.behavior(node);
        let cs = self.report.class(b);
        cs.slashes += 1;
        cs.slashed += cut;
        if self.setup.config.stake_trust.is_some() {
            self.covers.push((node, st.cover(stake - cut)));
        }
    }

    fn schedule_poll(&mut self, node: u64, at: u64) {
        let ns = &mut self.nodes[node as usize];
        if !ns.poll_pending && ns.alive {
            ns.poll_pending = true;
            self.push(at, Ev::Poll(node));
        }
    }

    fn go(&mut self) {
        for i in 0..self.setup.nodes.len() {
            let info = self.setup.nodes[i].info;
            self.apply(Event::NodeJoined {
                node: i as u64,
                info,
            });
            if let (Some(st), Some(_)) = (self.setup.stake, self.setup.config.stake_trust) {
                let cover = st.cover(self.stake[i]);
                self.apply(Event::StakeCover {
                    node: i as u64,
                    cover,
                });
            }
        }
        for k in 0..self.setup.jobs.len() {
            let at = self.setup.jobs[k].submit_at_ms;
            self.push(at, Ev::Submit(k));
        }
        for i in 0..self.setup.nodes.len() as u64 {
            let at = self.rng.random_range(0..self.setup.poll_ms.max(1));
            self.schedule_poll(i, at);
        }
        self.push(self.setup.tick_ms, Ev::Tick);
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            if at > self.setup.max_time_ms || self.jobs_open == 0 || self.violation.is_some() {
                break;
            }
            self.now = at;
            match ev {
                Ev::Submit(k) => {
                    let j = self.setup.jobs[k];
                    self.report.units += u64::from(j.spec.units);
                    self.report
                        .progress_at_submit
                        .insert(j.id, self.completed_per_job.clone());
                    self.apply(Event::JobSubmitted {
                        job: j.id,
                        spec: j.spec,
                        done: Vec::new(),
                    });
                    // Idle nodes notice new work at their next poll.
                }
                Ev::Poll(n) => self.poll(n),
                Ev::Finish(n, u) => self.finish(n, u),
                Ev::Crash(n) => {
                    let ns = &mut self.nodes[n as usize];
                    ns.alive = false;
                    let running = std::mem::take(&mut ns.running);
                    for u in running {
                        self.report.crashed_leases.push((self.now, n, u));
                    }
                    if let Behavior::Crash { detected: true, .. } = self.behavior(n) {
                        self.push(self.now + self.setup.detect_ms, Ev::Detect(n));
                    }
                }
                Ev::Detect(n) => self.apply(Event::NodeLeft { node: n }),
                Ev::Tick => {
                    self.apply(Event::Tick);
                    self.push(self.now + self.setup.tick_ms, Ev::Tick);
                }
            }
        }
        self.report.end_ms = self.now;
        let mut left: Vec<(u64, u64, UnitRef)> = self
            .awaiting_reissue
            .iter()
            .flat_map(|(u, v)| v.iter().map(|&(t, n)| (t, n, *u)))
            .collect();
        left.sort();
        self.report.not_reissued = left;
    }

    fn poll(&mut self, n: u64) {
        let ns = &mut self.nodes[n as usize];
        ns.poll_pending = false;
        if !ns.alive {
            return;
        }
        let slots = self.setup.nodes[n as usize].info.slots;
        let free = slots.saturating_sub(ns.running.len() as u32);
        if free == 0 {
            return;
        }
        self.apply(Event::WorkRequested {
            node: n,
            max_units: free,
        });
        let ns = &self.nodes[n as usize];
        if ns.alive && (ns.running.len() as u32) < slots {
            self.schedule_poll(n, self.now + self.setup.poll_ms);
        }
    }

    fn finish(&mut self, n: u64, u: UnitRef) {
        let ns = &mut self.nodes[n as usize];
        if !ns.alive {
            return;
        }
        let Some(p) = ns.running.iter().position(|x| *x == u) else {
            // Cancelled meanwhile.
            return;
        };
        ns.running.swap_remove(p);
        let limit = self.fuel_limit[&u.job];
        let right = correct_digest(u, limit);
        let b = self.behavior(n);
        let digest = match b {
            Behavior::Honest | Behavior::Crash { .. } => right,
            Behavior::RandomWrong => self.random_wrong(right),
            Behavior::Intermittent { wrong_permille } => {
                if self.sched.is_trusted(&n) && self.rng.random_range(0..1000) < wrong_permille {
                    self.random_wrong(right)
                } else {
                    right
                }
            }
            Behavior::Colluder => colluder_digest(u, limit),
        };
        let primary = self
            .sched
            .unit_replicas(u)
            .and_then(|v| v.first().map(|r| r.node == n))
            .unwrap_or(false);
        let cs = self.report.class(b);
        cs.results += 1;
        if digest != right {
            cs.wrong += 1;
        }
        if primary {
            cs.primary += 1;
        }
        self.report.results += 1;
        self.apply(Event::ResultReturned {
            node: n,
            unit: u,
            digest,
        });
        self.schedule_poll(n, self.now);
    }

    fn random_wrong(&mut self, right: ResultDigest) -> ResultDigest {
        let mut h = [0u8; 32];
        self.rng.fill(&mut h[..]);
        ResultDigest {
            output_hash: Hash32(h),
            ..right
        }
    }
}

/// Replays recorded events into a fresh scheduler and returns its decisions.
pub fn replay(
    config: Config,
    seed: u64,
    events: &[(u64, Event<u64>)],
) -> Result<Vec<Decision<u64>>, ConfigError> {
    let mut s = Scheduler::new(config, seed)?;
    let mut out = Vec::new();
    for (t, e) in events {
        s.apply(*t, e.clone(), &mut out);
    }
    Ok(out)
}

/// Count of replicas in each lease state for a unit (diagnostics).
pub fn replica_states(s: &Scheduler<u64>, unit: UnitRef) -> Vec<ReplicaState> {
    s.unit_replicas(unit)
        .map(|v| v.into_iter().map(|r| r.state).collect())
        .unwrap_or_default()
}

/// Scenario: `honest` honest nodes and `cheaters` intermittent cheaters (wrong
/// `wrong_permille`‰ of the time while trusted), one slot each, equal speed,
/// one job of `units` units at quorum `q` (max replicas `2q + 4`).
pub fn cheater_scenario(
    seed: u64,
    honest: u64,
    cheaters: u64,
    wrong_permille: u32,
    units: u32,
    q: u8,
    adaptive: bool,
) -> SimSetup {
    let mut setup = SimSetup::new(seed);
    for i in 0..honest + cheaters {
        let b = if i % (honest + cheaters) < cheaters {
            Behavior::Intermittent { wrong_permille }
        } else {
            Behavior::Honest
        };
        setup.nodes.push(SimNode::new(i, 1, 1_000_000_000, b));
    }
    setup.jobs.push(SimJob {
        id: JobId(1),
        submit_at_ms: 0,
        spec: job_spec(1, units, 1_000_000_000, q, 2 * q + 4, adaptive),
    });
    setup
}

/// Scenario: `nodes` nodes of which a share `f` collude (same wrong output), one
/// slot each, equal speed; one job of `units` units at quorum `q`, `max_replicas`.
/// `groups`: `None` — each colluder has its own operator and IP group (disguised);
/// `Some(g)` — colluders share `g` operator/IP groups.
#[allow(clippy::too_many_arguments)]
pub fn collusion_scenario(
    seed: u64,
    nodes: u64,
    f: f64,
    groups: Option<u32>,
    units: u32,
    q: u8,
    max_replicas: u8,
    adaptive: bool,
) -> SimSetup {
    let mut setup = SimSetup::new(seed);
    let colluders = (f * nodes as f64).round() as u64;
    for i in 0..nodes {
        let mut node = if i < colluders {
            SimNode::new(i, 1, 1_000_000_000, Behavior::Colluder)
        } else {
            SimNode::new(i, 1, 1_000_000_000, Behavior::Honest)
        };
        if let (true, Some(g)) = (i < colluders, groups) {
            let grp = 1_000_000 + i % u64::from(g.max(1));
            node.info.operator = OperatorId::from_u64(grp);
            node.info.ip_group = IpGroup::from_u64(grp);
        }
        setup.nodes.push(node);
    }
    setup.jobs.push(SimJob {
        id: JobId(1),
        submit_at_ms: 0,
        spec: job_spec(1, units, 1_000_000_000, q, max_replicas, adaptive),
    });
    setup
}

/// Scenario: [`cheater_scenario`] (adaptive, quorum `q`) with stake: every node
/// has `stake_units` units' worth of stake (a unit's value is its fuel limit,
/// 10⁹, at price 1), proven faults are slashed `slash_bps`, and, when
/// `stake_trust`, a trusted node's result is accepted alone only within its
/// cover, `stake × slash_bps / 10,000 / multiple` ([`crate::StakeTrust`]).
#[allow(clippy::too_many_arguments)]
pub fn stake_scenario(
    seed: u64,
    honest: u64,
    cheaters: u64,
    wrong_permille: u32,
    units: u32,
    q: u8,
    stake_units: u128,
    stake_trust: bool,
    multiple: u32,
) -> SimSetup {
    let mut setup = cheater_scenario(seed, honest, cheaters, wrong_permille, units, q, true);
    let unit_value = 1_000_000_000u128;
    for n in &mut setup.nodes {
        n.stake = stake_units * unit_value;
    }
    setup.stake = Some(SimStake {
        slash_bps: 1_000,
        multiple,
    });
    if stake_trust {
        setup.config.stake_trust = Some(crate::StakeTrust::default());
    }
    setup
}
