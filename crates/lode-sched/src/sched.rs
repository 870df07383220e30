//! The scheduler state machine.
//!
//! Layout (chosen for the hot path, `request_work`):
//! * nodes, jobs, requesters live in dense vectors; keys map to indices once per call;
//! * requesters with ready work sit in a binary heap ordered by virtual time
//!   (stride scheduling, cost = the unit's fuel limit), so fair share costs
//!   `O(log requesters)` per assignment;
//! * a job's fresh units are a cursor over `0..units` (no queue of 100,000 entries);
//!   units that need another replica (second replica, spot-check, re-issue,
//!   tie-break) sit in a short per-job deque served first;
//! * replicas of a unit form a singly linked list inside the job's replica vector
//!   (pre-sized for `units × quorum`), so an assignment allocates nothing;
//! * leases are a binary heap of deadlines with lazy deletion.

use crate::config::{Config, REPUTATION_MAX};
use crate::error::{ConfigError, Error, InvalidJob, InvalidNode};
use crate::types::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

const NONE: u32 = u32::MAX;

// Unit flags.
const IN_RETRY: u8 = 1;
/// The unit's first replica went to a trusted node and was not chosen for a spot-check.
const TRUSTED_SINGLE: u8 = 2;
/// The trusted single replica was lost: decide again at the next assignment.
const REDECIDE: u8 = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
enum UnitStatus {
    Fresh,
    Active,
    Completed,
    Failed,
    Cancelled,
    /// Decided in an earlier session (resumed job).
    Done,
}

/// Lease state of one replica (its result, if any, is kept separately).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Running under a live lease.
    InFlight,
    /// Returned while its lease was live.
    Returned,
    /// The lease expired (a late result may still arrive).
    Expired,
    /// The node left (a late result may still arrive).
    NodeLeft,
    /// The node reported it could not run the unit.
    Errored,
    /// Cancelled because the unit was decided or the job cancelled.
    Cancelled,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Unit {
    status: UnitStatus,
    /// Agreeing results required (quorum, or 1 for a trusted single).
    needed: u8,
    /// Replicas still to issue.
    want: u8,
    issued: u8,
    in_flight: u8,
    results: u8,
    errors: u8,
    lost: u8,
    flags: u8,
    /// Head of this unit's replica list (newest first).
    head: u32,
    /// Replica holding the accepted result.
    canonical: u32,
}

impl Unit {
    fn fresh() -> Self {
        Self {
            status: UnitStatus::Fresh,
            needed: 0,
            want: 0,
            issued: 0,
            in_flight: 0,
            results: 0,
            errors: 0,
            lost: 0,
            flags: 0,
            head: NONE,
            canonical: NONE,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Replica {
    unit: u32,
    node: u32,
    op: u32,
    ip: u32,
    next: u32,
    state: ReplicaState,
    assigned_at: u64,
    deadline: u64,
    digest: Option<ResultDigest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job {
    id: JobId,
    requester: u32,
    seq: u64,
    limits: Limits,
    quorum: u8,
    max_replicas: u8,
    max_price: u128,
    priority: u8,
    adaptive: bool,
    region: Option<RegionPreference>,
    region_open_at: u64,
    units: Vec<Unit>,
    replicas: Vec<Replica>,
    retry: VecDeque<u32>,
    next_fresh: u32,
    remaining: u32,
    completed: u32,
    failed: u32,
    in_flight: u32,
    cancelled: bool,
    finished: bool,
    listed: bool,
    /// Nodes below this reputation may not run the job's units.
    min_rep: u32,
    /// When not empty, only nodes of these (interned) operators may run them.
    allowed_ops: Vec<u32>,
}

impl Job {
    fn has_ready(&self) -> bool {
        !self.retry.is_empty() || (self.next_fresh as usize) < self.units.len()
    }
}

/// Counters of a node's history, for monitoring and flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    pub assigned: u32,
    pub results: u32,
    pub valid: u32,
    pub invalid: u32,
    pub expired: u32,
    pub left: u32,
    pub errors: u32,
    pub accepted_on_trust: u32,
    pub slow: u32,
    pub too_fast: u32,
    /// Units whose first replica went to this node (colluders' share of these is
    /// the `f_p` of the collusion race, ARCHITECTURE.md).
    #[serde(default)]
    pub first_replicas: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Node<K> {
    key: K,
    online: bool,
    slots: u32,
    memory: u64,
    speed: u64,
    region: Region,
    latency_ms: u32,
    price_floor: u128,
    op: u32,
    ip: u32,
    cv: u32,
    rep: u32,
    /// Live leases: (job slot, replica index).
    leases: Vec<(u32, u32)>,
    stats: NodeStats,
    flags: u8,
    /// Stake-backed trust: the value of unverified results this node may hold
    /// ([`Event::StakeCover`]) and the value given to it on trust since its last
    /// verified result ([`crate::StakeTrust`]).
    #[serde(default)]
    cover: u128,
    #[serde(default)]
    exposure: u128,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Requester<K> {
    key: K,
    vtime: u128,
    /// Jobs that may have ready units: (255 - priority, seq, job slot), sorted.
    jobs: Vec<(u8, u64, u32)>,
    in_heap: bool,
}

enum Pick {
    Unit(u32, u32),
    NotForThisNode,
    Empty,
}

/// Scheduler-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub assigned: u64,
    pub results: u64,
    pub completed: u64,
    pub failed: u64,
    pub lost: u64,
    pub spot_checks: u64,
    pub trusted_singles: u64,
    /// Units of trusted nodes replicated because their stake did not cover
    /// them ([`crate::StakeTrust`]).
    #[serde(default)]
    pub stake_checks: u64,
}

/// Sizes and counters of the whole scheduler (for the gateway's `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedStats {
    pub nodes_known: u64,
    pub nodes_online: u64,
    pub jobs: u64,
    pub requesters: u64,
    pub live_leases: u64,
    /// Entries in the deadline heap (live plus settled ones not yet dropped).
    pub lease_heap_entries: u64,
    pub counters: Counters,
}

/// Progress of one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    pub units: u32,
    pub completed: u32,
    pub failed: u32,
    /// Undecided units (not completed, failed, cancelled or done earlier).
    pub remaining: u32,
    pub in_flight: u32,
    pub cancelled: bool,
    pub finished: bool,
}

/// A node as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub online: bool,
    pub trust: TrustState,
    pub trusted: bool,
    pub slots: u32,
    pub in_flight: u32,
    pub stats: NodeStats,
    pub flags: Vec<FlagKind>,
}

/// One replica of a unit, for inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView<K> {
    pub node: K,
    pub state: ReplicaState,
    pub result: Option<ResultDigest>,
    pub assigned_at: u64,
    pub deadline_ms: u64,
}

/// The scheduler and result verifier. See the crate documentation.
///
/// It is `Serialize`/`Deserialize`: a snapshot restores it exactly (RNG included),
/// so the gateway may persist snapshots, an event log, or both.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize",
    deserialize = "K: serde::de::DeserializeOwned + NodeKey"
))]
pub struct Scheduler<K: NodeKey> {
    cfg: Config,
    rng: ChaCha8Rng,
    now: u64,
    nodes: Vec<Node<K>>,
    #[serde(with = "pairs")]
    node_ix: HashMap<K, u32>,
    #[serde(with = "pairs")]
    operators: HashMap<OperatorId, u32>,
    #[serde(with = "pairs")]
    ip_groups: HashMap<IpGroup, u32>,
    jobs: Vec<Option<Job>>,
    job_gen: Vec<u32>,
    free_jobs: Vec<u32>,
    #[serde(with = "pairs")]
    job_ix: HashMap<JobId, u32>,
    job_seq: u64,
    requesters: Vec<Requester<K>>,
    #[serde(with = "pairs")]
    requester_ix: HashMap<K, u32>,
    ready: BinaryHeap<Reverse<(u128, u32)>>,
    vclock: u128,
    leases: BinaryHeap<Reverse<(u64, u32, u32, u32)>>,
    /// Live leases (the heap also holds settled ones until their deadline passes).
    live_leases: u64,
    /// Online nodes per region (for the geographic-spread cap on work).
    #[serde(default)]
    region_online: BTreeMap<Region, u32>,
    counters: Counters,
    #[serde(skip)]
    skipped: Vec<u32>,
    #[serde(skip)]
    deferred: Vec<(u32, u32)>,
    #[serde(skip)]
    scratch_leases: Vec<(u32, u32)>,
    #[serde(skip)]
    scratch_assign: Vec<Assignment>,
}

/// Index maps are snapshotted as `(key, index)` sequences ordered by index: any
/// serde format works (JSON needs string map keys) and the bytes are deterministic.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;
    use std::hash::Hash;

    pub fn serialize<S: Serializer, K: Serialize>(
        m: &HashMap<K, u32>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(&K, u32)> = m.iter().map(|(k, &i)| (k, i)).collect();
        v.sort_unstable_by_key(|e| e.1);
        s.collect_seq(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, K: Deserialize<'de> + Eq + Hash>(
        d: D,
    ) -> Result<HashMap<K, u32>, D::Error> {
        let v: Vec<(K, u32)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

fn flag_bit(k: FlagKind) -> u8 {
    match k {
        FlagKind::TooFast => 1,
        FlagKind::SlowerThanClaimed => 2,
        FlagKind::HighDissent => 4,
        FlagKind::RepeatedExpiry => 8,
        FlagKind::ImpossibleClaim => 16,
    }
}

/// Whether node (`nix`, operator `op`, IP group `ip`) may not hold another replica
/// of unit `u`: it, or a node of its operator or IP group, already had one.
fn conflicts(job: &Job, u: u32, nix: u32, op: u32, ip: u32) -> bool {
    let mut r = job.units[u as usize].head;
    while r != NONE {
        let rep = &job.replicas[r as usize];
        if rep.node == nix || rep.op == op || rep.ip == ip {
            return true;
        }
        r = rep.next;
    }
    false
}

/// Searches a job for a unit the node may take.
///
/// 1. The oldest unit awaiting another replica, if the node may hold it.
/// 2. Otherwise the next fresh unit. A node that may not hold the oldest awaiting
///    unit does *not* pick a later one: that would let a node steer toward units
///    held by particular others (colluders in two groups would pair up more often
///    than chance). The awaiting unit simply goes to the next eligible node, so
///    each replica is a fair draw among eligible requesters.
/// 3. With no fresh unit left, a bounded scan of the awaiting units (end of job).
fn pick_unit(job: &mut Job, nix: u32, op: u32, ip: u32, scan_limit: u32) -> Option<u32> {
    // Drop decided or satisfied entries at the front.
    while let Some(&u) = job.retry.front() {
        let unit = &job.units[u as usize];
        if unit.want == 0 || unit.status != UnitStatus::Active {
            job.units[u as usize].flags &= !IN_RETRY;
            job.retry.pop_front();
        } else {
            break;
        }
    }
    if let Some(&u) = job.retry.front()
        && !conflicts(job, u, nix, op, ip)
    {
        job.units[u as usize].flags &= !IN_RETRY;
        job.retry.pop_front();
        return Some(u);
    }
    while (job.next_fresh as usize) < job.units.len() {
        let u = job.next_fresh;
        job.next_fresh += 1;
        if job.units[u as usize].status == UnitStatus::Fresh {
            return Some(u);
        }
    }
    let mut i = 1usize;
    let mut scanned = 1u32;
    while i < job.retry.len() && scanned < scan_limit {
        let u = job.retry[i];
        let unit = &job.units[u as usize];
        if unit.want == 0 || unit.status != UnitStatus::Active {
            job.units[u as usize].flags &= !IN_RETRY;
            job.retry.remove(i);
            continue;
        }
        scanned += 1;
        if !conflicts(job, u, nix, op, ip) {
            job.units[u as usize].flags &= !IN_RETRY;
            job.retry.remove(i);
            return Some(u);
        }
        i += 1;
    }
    None
}

impl<K: NodeKey> Scheduler<K> {
    /// A scheduler with `config`, its RNG seeded with `seed`.
    pub fn new(config: Config, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            cfg: config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            nodes: Vec::new(),
            node_ix: HashMap::new(),
            operators: HashMap::new(),
            ip_groups: HashMap::new(),
            jobs: Vec::new(),
            job_gen: Vec::new(),
            free_jobs: Vec::new(),
            job_ix: HashMap::new(),
            job_seq: 0,
            requesters: Vec::new(),
            requester_ix: HashMap::new(),
            ready: BinaryHeap::new(),
            vclock: 0,
            leases: BinaryHeap::new(),
            live_leases: 0,
            region_online: BTreeMap::new(),
            counters: Counters::default(),
            skipped: Vec::new(),
            deferred: Vec::new(),
            scratch_leases: Vec::new(),
            scratch_assign: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Changes the knobs governance may change while running (the speed
    /// ceiling, at least 1, and the region spread); they apply from the next
    /// decision on.
    pub fn set_live_knobs(&mut self, max_claimed_speed: u64, region_spread_permille: u32) {
        self.cfg.flags.max_claimed_speed = max_claimed_speed.max(1);
        self.cfg.region_spread_permille = region_spread_permille;
    }

    /// Turns stake-backed trust on or off, or changes the reward it values
    /// unverified work with; applies from the next decision on.
    pub fn set_stake_trust(&mut self, stake_trust: Option<crate::StakeTrust>) {
        self.cfg.stake_trust = stake_trust;
    }

    /// Sets the value of unverified results `key` may hold (stake-backed trust).
    pub fn set_stake_cover(&mut self, key: &K, cover: u128) -> Result<(), Error> {
        let &nix = self.node_ix.get(key).ok_or(Error::UnknownNode)?;
        self.nodes[nix as usize].cover = cover;
        Ok(())
    }

    /// A node's stake cover and current exposure (stake-backed trust).
    pub fn stake_exposure(&self, key: &K) -> Option<(u128, u128)> {
        let &nix = self.node_ix.get(key)?;
        let n = &self.nodes[nix as usize];
        Some((n.cover, n.exposure))
    }

    /// The latest time seen (time never goes backwards inside the scheduler).
    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    fn advance(&mut self, now: u64) {
        if now > self.now {
            self.now = now;
        }
    }

    fn intern_op(&mut self, op: OperatorId) -> u32 {
        let n = self.operators.len() as u32;
        *self.operators.entry(op).or_insert(n)
    }

    fn intern_ip(&mut self, ip: IpGroup) -> u32 {
        let n = self.ip_groups.len() as u32;
        *self.ip_groups.entry(ip).or_insert(n)
    }

    fn node_index(&self, key: &K) -> Result<u32, Error> {
        self.node_ix.get(key).copied().ok_or(Error::UnknownNode)
    }

    // ------------------------------------------------------------------ nodes

    /// A node connected (or reconnected: capabilities are updated, trust is kept).
    ///
    /// A claimed speed above [`crate::FlagRules::max_claimed_speed`] is cut to the
    /// ceiling and flagged (`ImpossibleClaim`, once per node); the returned
    /// decisions carry that flag and its trust change (empty otherwise).
    pub fn node_joined(
        &mut self,
        key: K,
        info: NodeInfo,
        now: u64,
    ) -> Result<Vec<Decision<K>>, Error> {
        self.advance(now);
        if info.speed_fuel_per_s == 0 {
            return Err(Error::InvalidNode(InvalidNode::ZeroSpeed));
        }
        if let Some(t) = info.trust
            && t.reputation > REPUTATION_MAX
        {
            return Err(Error::InvalidNode(InvalidNode::ReputationTooHigh(
                t.reputation,
            )));
        }
        let op = self.intern_op(info.operator);
        let ip = self.intern_ip(info.ip_group);
        if let Some(&nix) = self.node_ix.get(&key) {
            let n = &self.nodes[nix as usize];
            if n.online {
                let old = n.region;
                self.region_left(old);
            }
            self.region_joined(info.region);
            let n = &mut self.nodes[nix as usize];
            n.online = true;
            n.slots = info.slots;
            n.memory = info.memory_bytes;
            n.speed = info.speed_fuel_per_s;
            n.region = info.region;
            n.latency_ms = info.latency_ms;
            n.price_floor = info.price_floor;
            n.op = op;
            n.ip = ip;
            return Ok(self.check_claim(nix));
        }
        let trust = info.trust.unwrap_or(TrustState {
            consecutive_valid: 0,
            reputation: self.cfg.reputation.initial,
        });
        let nix = self.nodes.len() as u32;
        self.region_joined(info.region);
        self.nodes.push(Node {
            key,
            online: true,
            slots: info.slots,
            memory: info.memory_bytes,
            speed: info.speed_fuel_per_s,
            region: info.region,
            latency_ms: info.latency_ms,
            price_floor: info.price_floor,
            op,
            ip,
            cv: trust.consecutive_valid,
            rep: trust.reputation,
            leases: Vec::with_capacity(info.slots.min(1024) as usize),
            stats: NodeStats::default(),
            flags: 0,
            cover: 0,
            // Trust carried over a restart comes without the exposure it had:
            // count it as used up, so the node's next unit is checked first.
            exposure: if info.trust.is_some() { u128::MAX } else { 0 },
        });
        self.node_ix.insert(key, nix);
        Ok(self.check_claim(nix))
    }

    fn region_joined(&mut self, r: Region) {
        *self.region_online.entry(r).or_insert(0) += 1;
    }

    fn region_left(&mut self, r: Region) {
        if let Some(c) = self.region_online.get_mut(&r) {
            *c -= 1;
            if *c == 0 {
                self.region_online.remove(&r);
            }
        }
    }

    /// How many units node `nix` may hold at once: its slots, scaled down when
    /// its region holds more than its share of the online nodes
    /// (`Config::region_spread_permille`), at least one.
    fn may_hold(&self, nix: u32) -> u32 {
        let n = &self.nodes[nix as usize];
        let regions = self.region_online.len() as u64;
        if regions <= 1 || self.cfg.region_spread_permille == 0 || n.slots == 0 {
            return n.slots;
        }
        let total: u64 = self.region_online.values().map(|&c| u64::from(c)).sum();
        let here = u64::from(self.region_online.get(&n.region).copied().unwrap_or(1));
        let f = region_factor_bps(here, total, regions, self.cfg.region_spread_permille);
        let hold = (u64::from(n.slots) * u64::from(f)).div_ceil(10_000);
        hold.clamp(1, u64::from(n.slots.max(1))) as u32
    }

    /// Caps a node's claimed speed at the believable ceiling, flagging a higher claim.
    fn check_claim(&mut self, nix: u32) -> Vec<Decision<K>> {
        let ceiling = self.cfg.flags.max_claimed_speed;
        let n = &mut self.nodes[nix as usize];
        let mut out = Vec::new();
        if n.speed > ceiling {
            let claimed_speed = n.speed;
            n.speed = ceiling;
            let flag = Flag::ImpossibleClaim {
                claimed_speed,
                ceiling,
            };
            self.raise(nix, flag, false, &mut out);
        }
        out
    }

    /// A node disconnected: its live leases are lost now and their units re-issued.
    /// It keeps its trust record; a late result from it still counts.
    pub fn node_left(
        &mut self,
        key: &K,
        now: u64,
        out: &mut Vec<Decision<K>>,
    ) -> Result<(), Error> {
        self.advance(now);
        let nix = self.node_index(key)?;
        if self.nodes[nix as usize].online {
            let region = self.nodes[nix as usize].region;
            self.region_left(region);
        }
        self.nodes[nix as usize].online = false;
        let mut leases = std::mem::take(&mut self.scratch_leases);
        leases.clear();
        leases.extend_from_slice(&self.nodes[nix as usize].leases);
        for &(j, r) in &leases {
            self.lose(j, r, LossCause::NodeLeft, out);
        }
        self.scratch_leases = leases;
        Ok(())
    }

    // ------------------------------------------------------------------- jobs

    /// Adds a job with all its units to run.
    pub fn add_job(&mut self, id: JobId, spec: JobSpec<K>, now: u64) -> Result<(), Error> {
        self.add_job_resuming(id, spec, &[], now)
    }

    /// Every check [`Self::add_job_resuming`] makes, without changing anything:
    /// a caller can run it before it writes anything durable for the job.
    pub fn validate_job(&self, id: JobId, spec: &JobSpec<K>, done: &[u32]) -> Result<(), Error> {
        if self.job_ix.contains_key(&id) {
            return Err(Error::DuplicateJob(id));
        }
        let bad = |e| Err(Error::InvalidJob(e));
        if spec.units == 0 {
            return bad(InvalidJob::NoUnits);
        }
        if spec.units > self.cfg.max_units_per_job {
            return bad(InvalidJob::TooManyUnits {
                units: spec.units,
                max: self.cfg.max_units_per_job,
            });
        }
        if spec.quorum == 0 {
            return bad(InvalidJob::ZeroQuorum);
        }
        if spec.max_replicas < spec.quorum {
            return bad(InvalidJob::MaxReplicasBelowQuorum {
                quorum: spec.quorum,
                max_replicas: spec.max_replicas,
            });
        }
        if spec.max_replicas > crate::MAX_REPLICAS_LIMIT {
            return bad(InvalidJob::TooManyReplicas(spec.max_replicas));
        }
        if spec.limits.fuel == 0 {
            return bad(InvalidJob::ZeroFuel);
        }
        if let Some(&index) = done.iter().find(|&&i| i >= spec.units) {
            return bad(InvalidJob::DoneIndexOutOfRange {
                index,
                units: spec.units,
            });
        }
        Ok(())
    }

    /// Restricts which nodes may run a job's units: a minimum reputation and,
    /// when `operators` is not empty, an allow-list of operators (a requester
    /// with sensitive inputs keeps them to nodes it trusts). Units already
    /// handed out are not recalled.
    pub fn restrict_job(
        &mut self,
        id: JobId,
        min_reputation: u32,
        operators: &[OperatorId],
    ) -> Result<(), Error> {
        let &slot = self.job_ix.get(&id).ok_or(Error::UnknownJob(id))?;
        let ops: Vec<u32> = operators.iter().map(|o| self.intern_op(*o)).collect();
        if let Some(job) = self.jobs[slot as usize].as_mut() {
            job.min_rep = min_reputation;
            job.allowed_ops = ops;
        }
        Ok(())
    }

    /// Adds a job whose units listed in `done` were decided in an earlier session
    /// (after a gateway restart); only the others are scheduled.
    pub fn add_job_resuming(
        &mut self,
        id: JobId,
        spec: JobSpec<K>,
        done: &[u32],
        now: u64,
    ) -> Result<(), Error> {
        self.validate_job(id, &spec, done)?;
        self.advance(now);
        let rix = match self.requester_ix.get(&spec.requester) {
            Some(&r) => r,
            None => {
                let r = self.requesters.len() as u32;
                self.requesters.push(Requester {
                    key: spec.requester,
                    vtime: self.vclock,
                    jobs: Vec::new(),
                    in_heap: false,
                });
                self.requester_ix.insert(spec.requester, r);
                r
            }
        };
        let mut units = vec![Unit::fresh(); spec.units as usize];
        let mut remaining = spec.units;
        for &i in done {
            let u = &mut units[i as usize];
            if u.status != UnitStatus::Done {
                u.status = UnitStatus::Done;
                remaining -= 1;
            }
        }
        // Reserve for one full round of replicas (no reallocation on the hot path),
        // bounded so a huge job cannot reserve gigabytes up front.
        let expected_replicas = (remaining as usize)
            .saturating_mul(usize::from(spec.quorum))
            .min(1 << 21);
        let job = Job {
            id,
            requester: rix,
            seq: self.job_seq,
            limits: spec.limits,
            quorum: spec.quorum,
            max_replicas: spec.max_replicas,
            max_price: spec.max_price_per_fuel,
            priority: spec.priority,
            adaptive: spec.adaptive_trust,
            region: spec.region,
            region_open_at: self.now.saturating_add(self.cfg.region_grace_ms),
            units,
            replicas: Vec::with_capacity(expected_replicas),
            retry: VecDeque::new(),
            next_fresh: 0,
            remaining,
            completed: 0,
            failed: 0,
            in_flight: 0,
            cancelled: false,
            finished: remaining == 0,
            listed: false,
            min_rep: 0,
            allowed_ops: Vec::new(),
        };
        self.job_seq += 1;
        let slot = match self.free_jobs.pop() {
            Some(s) => {
                self.jobs[s as usize] = Some(job);
                s
            }
            None => {
                self.jobs.push(Some(job));
                self.job_gen.push(0);
                (self.jobs.len() - 1) as u32
            }
        };
        self.job_ix.insert(id, slot);
        if remaining > 0 {
            self.ensure_listed(slot);
        }
        Ok(())
    }

    /// Cancels a job: undecided units are dropped, running replicas are cancelled
    /// (`Cancel` decisions) and `JobFinished { cancelled: true }` is emitted.
    /// Cancelling a finished job does nothing.
    pub fn cancel_job(
        &mut self,
        id: JobId,
        now: u64,
        out: &mut Vec<Decision<K>>,
    ) -> Result<(), Error> {
        self.advance(now);
        let j = *self.job_ix.get(&id).ok_or(Error::UnknownJob(id))?;
        if self.job(j).finished {
            return Ok(());
        }
        let n_units = self.job(j).units.len() as u32;
        for u in 0..n_units {
            let st = self.job(j).units[u as usize].status;
            match st {
                UnitStatus::Fresh => {}
                UnitStatus::Active => self.cancel_in_flight(j, u, out),
                _ => continue,
            }
            let job = self.job_mut(j);
            let unit = &mut job.units[u as usize];
            unit.status = UnitStatus::Cancelled;
            unit.want = 0;
            job.remaining -= 1;
        }
        let job = self.job_mut(j);
        job.retry.clear();
        job.next_fresh = job.units.len() as u32;
        job.cancelled = true;
        self.maybe_finish(j, out);
        Ok(())
    }

    /// Forgets a finished job (frees its memory). Later results for it get
    /// `UnknownJob`.
    pub fn remove_job(&mut self, id: JobId) -> Result<(), Error> {
        let j = *self.job_ix.get(&id).ok_or(Error::UnknownJob(id))?;
        if !self.job(j).finished {
            return Err(Error::JobNotFinished(id));
        }
        let r = self.job(j).requester as usize;
        self.requesters[r].jobs.retain(|e| e.2 != j);
        self.job_ix.remove(&id);
        self.jobs[j as usize] = None;
        self.job_gen[j as usize] = self.job_gen[j as usize].wrapping_add(1);
        self.free_jobs.push(j);
        Ok(())
    }

    fn job(&self, j: u32) -> &Job {
        self.jobs[j as usize]
            .as_ref()
            .unwrap_or_else(|| unreachable!("job slot {j} referenced after removal"))
    }

    fn job_mut(&mut self, j: u32) -> &mut Job {
        self.jobs[j as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("job slot {j} referenced after removal"))
    }

    /// Puts a job with ready units on its requester's list, and the requester in
    /// the fair-share heap.
    fn ensure_listed(&mut self, j: u32) {
        let job = self.jobs[j as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("listing a removed job"));
        if job.listed {
            let r = job.requester;
            self.activate(r);
            return;
        }
        job.listed = true;
        let entry = (255 - job.priority, job.seq, j);
        let r = job.requester;
        let list = &mut self.requesters[r as usize].jobs;
        let pos = list.binary_search(&entry).unwrap_or_else(|p| p);
        list.insert(pos, entry);
        self.activate(r);
    }

    fn activate(&mut self, r: u32) {
        let req = &mut self.requesters[r as usize];
        if !req.in_heap {
            req.in_heap = true;
            // A requester returning from idle starts at the current virtual time:
            // idle time earns no credit.
            req.vtime = req.vtime.max(self.vclock);
            self.ready.push(Reverse((req.vtime, r)));
        }
    }

    // ------------------------------------------------------------- matching

    /// The node asks for up to `max_units` units. Appends the assignments to `out`
    /// and returns how many. The node gets no more than its free slots (fewer in
    /// an over-served region, see `Config::region_spread_permille`; one unit in
    /// flight while on probation), only units it can run (memory, price, timeout,
    /// region), never a unit it or its operator or IP group already had.
    pub fn request_work(
        &mut self,
        node: &K,
        max_units: u32,
        now: u64,
        out: &mut Vec<Assignment>,
    ) -> Result<usize, Error> {
        self.advance(now);
        let nix = self.node_index(node)?;
        let n = &self.nodes[nix as usize];
        if !n.online {
            return Err(Error::NodeOffline);
        }
        let held = n.leases.len() as u32;
        let mut cap = max_units
            .min(self.cfg.max_batch)
            .min(self.may_hold(nix).saturating_sub(held));
        if n.rep < self.cfg.reputation.probation_below {
            cap = cap.min(1u32.saturating_sub(held));
        }
        if cap == 0 {
            return Ok(0);
        }
        let mut skipped = std::mem::take(&mut self.skipped);
        skipped.clear();
        let mut given = 0u32;
        while given < cap {
            let Some(Reverse((vt, r))) = self.ready.pop() else {
                break;
            };
            match self.pick(r, nix) {
                Pick::Unit(j, u) => {
                    self.vclock = self.vclock.max(vt);
                    let cost = u128::from(self.job(j).limits.fuel);
                    self.assign(j, u, nix, out);
                    given += 1;
                    let req = &mut self.requesters[r as usize];
                    req.vtime = vt + cost;
                    let still = req.jobs.iter().any(|&(_, _, j)| {
                        self.jobs[j as usize].as_ref().is_some_and(Job::has_ready)
                    });
                    if still {
                        self.ready.push(Reverse((req.vtime, r)));
                    } else {
                        req.in_heap = false;
                    }
                }
                Pick::NotForThisNode => skipped.push(r),
                Pick::Empty => self.requesters[r as usize].in_heap = false,
            }
        }
        for &r in &skipped {
            let vt = self.requesters[r as usize].vtime;
            self.ready.push(Reverse((vt, r)));
        }
        self.skipped = skipped;
        self.flush_deferred();
        self.compact_leases();
        Ok(given as usize)
    }

    /// Drops settled entries from the lease heap once they outnumber live ones
    /// (lazy deletion would otherwise keep one entry per assignment until its
    /// deadline, up to `lease_cap_ms`). Amortised O(1) per assignment.
    fn compact_leases(&mut self) {
        if self.leases.len() as u64 <= 2 * self.live_leases + 4096 {
            return;
        }
        let (jobs, gens) = (&self.jobs, &self.job_gen);
        self.leases.retain(|&Reverse((d, j, g, r))| {
            gens.get(j as usize) == Some(&g)
                && jobs[j as usize].as_ref().is_some_and(|job| {
                    let rep = &job.replicas[r as usize];
                    rep.state == ReplicaState::InFlight && rep.deadline == d
                })
        });
    }

    /// Chooses a unit of requester `r` for node `nix`: its jobs in priority order,
    /// the first one the node is eligible for that has a unit the node may take.
    fn pick(&mut self, r: u32, nix: u32) -> Pick {
        let node = &self.nodes[nix as usize];
        let now = self.now;
        let scan = self.cfg.retry_scan_limit;
        let req = &mut self.requesters[r as usize];
        let mut any_ready = false;
        let mut i = 0;
        while i < req.jobs.len() {
            let j = req.jobs[i].2;
            let Some(job) = self.jobs[j as usize].as_mut() else {
                req.jobs.remove(i);
                continue;
            };
            if !job.has_ready() {
                job.listed = false;
                req.jobs.remove(i);
                continue;
            }
            any_ready = true;
            i += 1;
            if node.memory < job.limits.memory_bytes || node.price_floor > job.max_price {
                continue;
            }
            if node.rep < job.min_rep
                || (!job.allowed_ops.is_empty() && !job.allowed_ops.contains(&node.op))
            {
                continue;
            }
            if let Some(t) = job.limits.timeout_ms {
                let run_ms = u128::from(job.limits.fuel) * 1000 / u128::from(node.speed);
                if run_ms > u128::from(t) {
                    continue;
                }
            }
            if let Some(p) = job.region
                && p.region != node.region
                && (p.strict || now < job.region_open_at)
            {
                continue;
            }
            if let Some(u) = pick_unit(job, nix, node.op, node.ip, scan) {
                return Pick::Unit(j, u);
            }
        }
        if any_ready {
            Pick::NotForThisNode
        } else {
            Pick::Empty
        }
    }

    fn lease_deadline(&self, fuel: u64, nix: u32) -> u64 {
        let n = &self.nodes[nix as usize];
        let run_ms = (u128::from(fuel) * 1000).div_ceil(u128::from(n.speed));
        let slack = run_ms * u128::from(self.cfg.lease_slack_percent) / 100;
        let dur = slack.max(u128::from(self.cfg.lease_floor_ms)) + 2 * u128::from(n.latency_ms);
        let dur = dur.min(u128::from(self.cfg.lease_cap_ms)) as u64;
        self.now.saturating_add(dur)
    }

    fn assign(&mut self, j: u32, u: u32, nix: u32, out: &mut Vec<Assignment>) {
        let deadline = self.lease_deadline(self.job(j).limits.fuel, nix);
        let now = self.now;
        let threshold = self.cfg.trust_threshold;
        let cv_cap = self.cfg.spot_check_cv_cap;
        let stake_trust = self.cfg.stake_trust;
        let grace = self.cfg.region_grace_ms;
        let gen_ = self.job_gen[j as usize];
        let node = &mut self.nodes[nix as usize];
        let job = self.jobs[j as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("assigning from a removed job"));
        let unit = &mut job.units[u as usize];
        let decide = match unit.status {
            UnitStatus::Fresh => {
                unit.status = UnitStatus::Active;
                node.stats.first_replicas += 1;
                true
            }
            _ => unit.flags & REDECIDE != 0,
        };
        if decide {
            unit.flags &= !(REDECIDE | TRUSTED_SINGLE);
            let needed = if job.quorum == 1 {
                1
            } else if job.adaptive && node.cv >= threshold {
                // Under stake-backed trust, a unit the node's stake does not
                // cover is replicated (a forced check); no RNG draw, so a run
                // without stake trust draws exactly as before.
                let value = stake_trust.map(|st| st.unit_value(job.limits.fuel, job.max_price));
                let covered = value.is_none_or(|v| {
                    node.exposure
                        .checked_add(v)
                        .is_some_and(|e| e <= node.cover)
                });
                // Spot-check with probability 1/CV, decided here, once, by the
                // seeded RNG. The assignment sent to the node is identical either way.
                let c = node.cv.min(cv_cap).max(1);
                if !covered {
                    self.counters.stake_checks += 1;
                    job.quorum
                } else if self.rng.random_range(0..c) == 0 {
                    self.counters.spot_checks += 1;
                    job.quorum
                } else {
                    self.counters.trusted_singles += 1;
                    unit.flags |= TRUSTED_SINGLE;
                    if let Some(v) = value {
                        node.exposure = node.exposure.saturating_add(v);
                    }
                    1
                }
            } else {
                job.quorum
            };
            unit.needed = needed;
            unit.want = needed.min(job.max_replicas - unit.issued);
        }
        debug_assert!(unit.want > 0, "assigning a unit that wants no replica");
        unit.want = unit.want.saturating_sub(1);
        unit.issued += 1;
        unit.in_flight += 1;
        let rix = job.replicas.len() as u32;
        job.replicas.push(Replica {
            unit: u,
            node: nix,
            op: node.op,
            ip: node.ip,
            next: unit.head,
            state: ReplicaState::InFlight,
            assigned_at: now,
            deadline,
            digest: None,
        });
        unit.head = rix;
        if unit.want > 0 {
            self.deferred.push((j, u));
        }
        job.in_flight += 1;
        if let Some(p) = job.region
            && p.region == node.region
        {
            job.region_open_at = now.saturating_add(grace);
        }
        node.leases.push((j, rix));
        node.stats.assigned += 1;
        self.leases.push(Reverse((deadline, j, gen_, rix)));
        self.live_leases += 1;
        self.counters.assigned += 1;
        out.push(Assignment {
            unit: UnitRef::new(job.id, u),
            deadline_ms: deadline,
            limits: job.limits,
        });
    }

    /// Units that still want replicas after a batch go (back) into their job's
    /// retry queue; done after the batch so one node never re-scans its own units.
    fn flush_deferred(&mut self) {
        let mut deferred = std::mem::take(&mut self.deferred);
        for &(j, u) in &deferred {
            self.queue_retry(j, u);
        }
        deferred.clear();
        self.deferred = deferred;
    }

    fn queue_retry(&mut self, j: u32, u: u32) {
        let job = self.job_mut(j);
        let unit = &mut job.units[u as usize];
        if unit.status == UnitStatus::Active && unit.want > 0 && unit.flags & IN_RETRY == 0 {
            unit.flags |= IN_RETRY;
            job.retry.push_back(u);
            self.ensure_listed(j);
        }
    }

    // --------------------------------------------------------------- results

    fn find_replica(&self, j: u32, u: u32, nix: u32) -> Option<u32> {
        let job = self.job(j);
        let mut r = job.units[u as usize].head;
        while r != NONE {
            let rep = &job.replicas[r as usize];
            if rep.node == nix {
                return Some(r);
            }
            r = rep.next;
        }
        None
    }

    fn locate(&self, node: &K, unit: UnitRef) -> Result<(u32, u32, u32, u32), Error> {
        let nix = self.node_index(node)?;
        let j = *self
            .job_ix
            .get(&unit.job)
            .ok_or(Error::UnknownJob(unit.job))?;
        let units = self.job(j).units.len() as u32;
        if unit.index >= units {
            return Err(Error::UnknownUnit { unit, units });
        }
        let r = self
            .find_replica(j, unit.index, nix)
            .ok_or(Error::NotAssigned(unit))?;
        Ok((nix, j, unit.index, r))
    }

    /// Removes a live lease from its node and unit counters.
    fn release(&mut self, j: u32, r: u32) {
        let job = self.jobs[j as usize]
            .as_mut()
            .unwrap_or_else(|| unreachable!("releasing a lease of a removed job"));
        let rep = &job.replicas[r as usize];
        let (nix, u) = (rep.node, rep.unit);
        job.units[u as usize].in_flight -= 1;
        job.in_flight -= 1;
        self.live_leases -= 1;
        let leases = &mut self.nodes[nix as usize].leases;
        if let Some(p) = leases.iter().position(|&e| e == (j, r)) {
            leases.swap_remove(p);
        }
    }

    /// A node returns a result for a unit it was assigned. Decisions (completion,
    /// failure, cancels, trust changes, flags) are appended to `out`.
    ///
    /// Results count even after the lease expired (late) as long as the unit is
    /// undecided; after that they are compared but never credited.
    pub fn submit_result(
        &mut self,
        node: &K,
        unit: UnitRef,
        digest: ResultDigest,
        now: u64,
        out: &mut Vec<Decision<K>>,
    ) -> Result<ResultOutcome, Error> {
        self.advance(now);
        let (nix, j, u, r) = self.locate(node, unit)?;
        let rep = &self.job(j).replicas[r as usize];
        if rep.digest.is_some() {
            return Err(Error::DuplicateResult(unit));
        }
        let limit = self.job(j).limits.fuel;
        if digest.fuel_used > limit {
            // The sandbox stops at the limit: such a claim cannot be genuine (and
            // would inflate what a trusted single result is paid).
            return Err(Error::FuelAboveLimit {
                unit,
                fuel_used: digest.fuel_used,
                limit,
            });
        }
        let was_live = rep.state == ReplicaState::InFlight;
        let assigned_at = rep.assigned_at;
        if was_live {
            self.release(j, r);
        }
        {
            let job = self.job_mut(j);
            let rep = &mut job.replicas[r as usize];
            rep.digest = Some(digest);
            if was_live {
                rep.state = ReplicaState::Returned;
            }
            job.units[u as usize].results += 1;
        }
        self.counters.results += 1;
        self.nodes[nix as usize].stats.results += 1;
        self.check_speed(nix, unit, digest.fuel_used, self.now - assigned_at, out);

        let st = self.job(j).units[u as usize].status;
        match st {
            UnitStatus::Active => Ok(self.evaluate(j, u, digest, out)),
            UnitStatus::Completed => {
                let job = self.job(j);
                let un = &job.units[u as usize];
                let canon = job.replicas[un.canonical as usize].digest;
                let agrees = canon == Some(digest);
                if un.needed >= 2 {
                    if agrees {
                        self.mark_valid(nix, out);
                    } else {
                        self.mark_invalid(nix, unit, out);
                    }
                }
                Ok(ResultOutcome::AfterDecision {
                    agrees: Some(agrees),
                })
            }
            _ => Ok(ResultOutcome::AfterDecision { agrees: None }),
        }
    }

    /// A node reports it could not run a unit (not a result: nothing is verified).
    /// The replica is lost and the unit re-issued when needed. Reporting on a lease
    /// already expired is accepted and changes nothing.
    pub fn report_failure(
        &mut self,
        node: &K,
        unit: UnitRef,
        now: u64,
        out: &mut Vec<Decision<K>>,
    ) -> Result<(), Error> {
        self.advance(now);
        let (_, j, _, r) = self.locate(node, unit)?;
        let rep = &self.job(j).replicas[r as usize];
        if rep.digest.is_some() {
            return Err(Error::DuplicateResult(unit));
        }
        if rep.state == ReplicaState::InFlight {
            self.lose(j, r, LossCause::Error, out);
        }
        Ok(())
    }

    /// Processes lease expiries up to `now`.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Decision<K>>) {
        self.advance(now);
        while let Some(&Reverse((d, j, g, r))) = self.leases.peek() {
            if d > self.now {
                break;
            }
            self.leases.pop();
            if self.job_gen.get(j as usize) != Some(&g) {
                continue;
            }
            let live = self.jobs[j as usize].as_ref().is_some_and(|job| {
                let rep = &job.replicas[r as usize];
                rep.state == ReplicaState::InFlight && rep.deadline == d
            });
            if live {
                self.lose(j, r, LossCause::Expired, out);
            }
        }
    }

    /// The earliest pending lease deadline (possibly of a lease already settled):
    /// call [`Scheduler::tick`] at or after it.
    pub fn next_deadline(&self) -> Option<u64> {
        self.leases.peek().map(|Reverse((d, ..))| *d)
    }

    fn lose(&mut self, j: u32, r: u32, cause: LossCause, out: &mut Vec<Decision<K>>) {
        self.release(j, r);
        self.counters.lost += 1;
        let job = self.job_mut(j);
        let rep = &mut job.replicas[r as usize];
        rep.state = match cause {
            LossCause::Expired => ReplicaState::Expired,
            LossCause::NodeLeft => ReplicaState::NodeLeft,
            LossCause::Error => ReplicaState::Errored,
        };
        let (nix, u) = (rep.node, rep.unit);
        let unit_ref = UnitRef::new(job.id, u);
        let unit = &mut job.units[u as usize];
        if cause == LossCause::Error {
            unit.errors += 1;
        } else {
            unit.lost += 1;
        }
        let rules = &self.cfg.reputation;
        let n = &mut self.nodes[nix as usize];
        let loss = match cause {
            LossCause::Expired => {
                n.stats.expired += 1;
                rules.lost_loss
            }
            LossCause::NodeLeft => {
                n.stats.left += 1;
                rules.lost_loss
            }
            LossCause::Error => {
                n.stats.errors += 1;
                rules.error_loss
            }
        };
        n.rep = n.rep.saturating_sub(loss);
        out.push(Decision::LeaseLost {
            node: n.key,
            unit: unit_ref,
            cause,
        });
        self.emit_trust(nix, TrustCause::Lost(cause), out);
        if cause != LossCause::Error {
            let n = &self.nodes[nix as usize];
            let lost = n.stats.expired + n.stats.left;
            let fr = &self.cfg.flags;
            if lost >= fr.min_expired
                && u64::from(lost) * 1000
                    > u64::from(fr.expiry_permille) * u64::from(n.stats.assigned)
            {
                let flag = Flag::RepeatedExpiry {
                    expired: lost,
                    assigned: n.stats.assigned,
                };
                self.raise(nix, flag, false, out);
            }
        }
        if self.job(j).units[u as usize].status == UnitStatus::Active {
            self.replan(j, u, out);
        }
    }

    /// The largest number of agreeing results among a unit's replicas, and the
    /// number of distinct outputs (at most `max_replicas` ≤ 32 entries: quadratic is fine).
    fn agreement(job: &Job, u: u32) -> (u8, u8) {
        let head = job.units[u as usize].head;
        let mut best = 0u8;
        let mut distinct = 0u8;
        let mut a = head;
        while a != NONE {
            let ra = &job.replicas[a as usize];
            if let Some(da) = ra.digest {
                let mut count = 0u8;
                let mut first = true;
                let mut b = head;
                while b != NONE {
                    let rb = &job.replicas[b as usize];
                    if rb.digest == Some(da) {
                        count += 1;
                        if b != a && count == 1 {
                            // An equal result sits earlier in the list.
                            first = false;
                        }
                    }
                    b = rb.next;
                }
                distinct += u8::from(first);
                best = best.max(count);
            }
            a = ra.next;
        }
        (best, distinct)
    }

    /// A result arrived for an undecided unit: complete it, or plan more replicas.
    fn evaluate(
        &mut self,
        j: u32,
        u: u32,
        d: ResultDigest,
        out: &mut Vec<Decision<K>>,
    ) -> ResultOutcome {
        let job = self.job(j);
        let unit = &job.units[u as usize];
        let mut count = 0u8;
        let mut r = unit.head;
        while r != NONE {
            let rep = &job.replicas[r as usize];
            if rep.digest == Some(d) {
                count += 1;
            }
            r = rep.next;
        }
        if count >= unit.needed {
            self.complete(j, u, d, count, out);
            ResultOutcome::Completed
        } else if self.replan(j, u, out) {
            ResultOutcome::Failed
        } else {
            ResultOutcome::Counted
        }
    }

    /// Recomputes how many more replicas an undecided unit needs; fails it when the
    /// quorum is out of reach. Returns whether it failed.
    fn replan(&mut self, j: u32, u: u32, out: &mut Vec<Decision<K>>) -> bool {
        let (m, distinct) = Self::agreement(self.job(j), u);
        let job = self.job_mut(j);
        let max_replicas = job.max_replicas;
        let unit = &mut job.units[u as usize];
        if unit.results == 0 && unit.in_flight == 0 && unit.flags & TRUSTED_SINGLE != 0 {
            // The trusted node's only replica is gone: whoever gets the unit next
            // is judged afresh (it may be untrusted, or be spot-checked).
            unit.flags |= REDECIDE;
        }
        let budget = max_replicas - unit.issued;
        if u32::from(m) + u32::from(unit.in_flight) + u32::from(budget) < u32::from(unit.needed) {
            let lost_or_errors = unit.errors + unit.lost;
            let reason = if unit.results > lost_or_errors {
                FailReason::NoConsensus {
                    results: unit.results,
                    largest_agreement: m,
                    distinct_outputs: distinct,
                    issued: unit.issued,
                }
            } else {
                FailReason::TooManyLost {
                    errors: unit.errors,
                    expired: unit.lost,
                    results: unit.results,
                    issued: unit.issued,
                }
            };
            self.fail(j, u, reason, out);
            return true;
        }
        let missing = unit.needed - m;
        unit.want = budget.min(missing.saturating_sub(unit.in_flight));
        if unit.want > 0 {
            self.queue_retry(j, u);
        }
        false
    }

    fn cancel_in_flight(&mut self, j: u32, u: u32, out: &mut Vec<Decision<K>>) {
        let mut r = self.job(j).units[u as usize].head;
        while r != NONE {
            let rep = &self.job(j).replicas[r as usize];
            let next = rep.next;
            if rep.state == ReplicaState::InFlight {
                let nix = rep.node;
                self.release(j, r);
                let job = self.job_mut(j);
                job.replicas[r as usize].state = ReplicaState::Cancelled;
                let unit = UnitRef::new(job.id, u);
                out.push(Decision::Cancel {
                    node: self.nodes[nix as usize].key,
                    unit,
                });
            }
            r = next;
        }
    }

    fn complete(
        &mut self,
        j: u32,
        u: u32,
        d: ResultDigest,
        agreeing: u8,
        out: &mut Vec<Decision<K>>,
    ) {
        let mut credited_ix: Vec<u32> = Vec::with_capacity(usize::from(agreeing));
        let mut dissent_ix: Vec<u32> = Vec::new();
        let job = self.job_mut(j);
        let unit_ref = UnitRef::new(job.id, u);
        let mut canonical = NONE;
        let mut r = job.units[u as usize].head;
        while r != NONE {
            let rep = &job.replicas[r as usize];
            match rep.digest {
                Some(x) if x == d => {
                    credited_ix.push(rep.node);
                    canonical = r;
                }
                Some(_) => dissent_ix.push(rep.node),
                None => {}
            }
            r = rep.next;
        }
        // Newest-first list: report in assignment order.
        credited_ix.reverse();
        dissent_ix.reverse();
        let unit = &mut job.units[u as usize];
        unit.status = UnitStatus::Completed;
        unit.want = 0;
        unit.canonical = canonical;
        let basis = if unit.needed >= 2 {
            Basis::Quorum { agreeing }
        } else if unit.flags & TRUSTED_SINGLE != 0 {
            Basis::Trusted
        } else {
            Basis::Single
        };
        job.completed += 1;
        job.remaining -= 1;
        self.counters.completed += 1;
        out.push(Decision::Completed(Completion {
            unit: unit_ref,
            result: d,
            credited: credited_ix
                .iter()
                .map(|&n| self.nodes[n as usize].key)
                .collect(),
            dissenters: dissent_ix
                .iter()
                .map(|&n| self.nodes[n as usize].key)
                .collect(),
            basis,
        }));
        self.cancel_in_flight(j, u, out);
        match basis {
            Basis::Quorum { .. } => {
                for &n in &credited_ix {
                    self.mark_valid(n, out);
                }
                for &n in &dissent_ix {
                    self.mark_invalid(n, unit_ref, out);
                }
            }
            Basis::Trusted => {
                for &n in &credited_ix {
                    self.nodes[n as usize].stats.accepted_on_trust += 1;
                }
            }
            Basis::Single => {}
        }
        self.maybe_finish(j, out);
    }

    fn fail(&mut self, j: u32, u: u32, reason: FailReason, out: &mut Vec<Decision<K>>) {
        if let FailReason::NoConsensus { .. } = reason {
            // Nobody's result was verified: every participant's run of consecutive
            // valid results ends. Without this, colluders that agree among
            // themselves and meet honest nodes only in units that fail (small
            // max_replicas) would climb to trusted unpunished.
            let job = self.job(j);
            let unit_ref = UnitRef::new(job.id, u);
            let mut who: Vec<u32> = Vec::new();
            let mut r = job.units[u as usize].head;
            while r != NONE {
                let rep = &job.replicas[r as usize];
                if rep.digest.is_some() {
                    who.push(rep.node);
                }
                r = rep.next;
            }
            for n in who.into_iter().rev() {
                self.nodes[n as usize].cv = 0;
                self.emit_trust(n, TrustCause::Inconclusive { unit: unit_ref }, out);
            }
        }
        let job = self.job_mut(j);
        let unit = &mut job.units[u as usize];
        unit.status = UnitStatus::Failed;
        unit.want = 0;
        job.failed += 1;
        job.remaining -= 1;
        let unit_ref = UnitRef::new(job.id, u);
        self.counters.failed += 1;
        out.push(Decision::Failed {
            unit: unit_ref,
            reason,
        });
        self.cancel_in_flight(j, u, out);
        self.maybe_finish(j, out);
    }

    fn maybe_finish(&mut self, j: u32, out: &mut Vec<Decision<K>>) {
        let job = self.job_mut(j);
        if job.remaining == 0 && !job.finished {
            job.finished = true;
            out.push(Decision::JobFinished {
                job: job.id,
                completed: job.completed,
                failed: job.failed,
                cancelled: job.cancelled,
            });
        }
    }

    // ----------------------------------------------------------------- trust

    fn emit_trust(&self, nix: u32, cause: TrustCause, out: &mut Vec<Decision<K>>) {
        let n = &self.nodes[nix as usize];
        out.push(Decision::Trust(TrustChange {
            node: n.key,
            trust: TrustState {
                consecutive_valid: n.cv,
                reputation: n.rep,
            },
            trusted: n.cv >= self.cfg.trust_threshold,
            cause,
        }));
    }

    fn mark_valid(&mut self, nix: u32, out: &mut Vec<Decision<K>>) {
        let gain = self.cfg.reputation.valid_gain;
        let n = &mut self.nodes[nix as usize];
        n.cv = n.cv.saturating_add(1);
        n.rep = (n.rep + gain).min(REPUTATION_MAX);
        n.stats.valid += 1;
        // A verified result: what it was given on trust before is behind a check.
        n.exposure = 0;
        self.emit_trust(nix, TrustCause::Valid, out);
    }

    fn mark_invalid(&mut self, nix: u32, unit: UnitRef, out: &mut Vec<Decision<K>>) {
        let loss = self.cfg.reputation.invalid_loss;
        let n = &mut self.nodes[nix as usize];
        n.cv = 0;
        n.rep = n.rep.saturating_sub(loss);
        n.stats.invalid += 1;
        let (invalid, verified) = (n.stats.invalid, n.stats.valid + n.stats.invalid);
        self.emit_trust(nix, TrustCause::Invalid { unit }, out);
        let fr = &self.cfg.flags;
        if verified >= fr.min_samples
            && u64::from(invalid) * 1000 > u64::from(fr.dissent_permille) * u64::from(verified)
        {
            self.raise(nix, Flag::HighDissent { invalid, verified }, false, out);
        }
    }

    /// Raises a flag (once per kind unless `repeat`), with a reputation penalty.
    fn raise(&mut self, nix: u32, flag: Flag, repeat: bool, out: &mut Vec<Decision<K>>) {
        let bit = flag_bit(flag.kind());
        let n = &mut self.nodes[nix as usize];
        if n.flags & bit != 0 && !repeat {
            return;
        }
        n.flags |= bit;
        n.rep = n.rep.saturating_sub(self.cfg.reputation.flag_loss);
        if flag.kind() == FlagKind::TooFast {
            // Work that cannot have run: no longer trusted.
            n.cv = 0;
        }
        out.push(Decision::Flagged { node: n.key, flag });
        self.emit_trust(nix, TrustCause::Flagged, out);
    }

    fn check_speed(
        &mut self,
        nix: u32,
        unit: UnitRef,
        fuel_used: u64,
        elapsed_ms: u64,
        out: &mut Vec<Decision<K>>,
    ) {
        let fr = &self.cfg.flags;
        let tol = u128::from(fr.speed_tolerance.max(1));
        let n = &self.nodes[nix as usize];
        let claimed = u128::from(n.speed);
        // observed speed = fuel_used * 1000 / elapsed_ms (fuel/s)
        let fuel_ms = u128::from(fuel_used) * 1000;
        let elapsed = u128::from(elapsed_ms);
        // Millisecond clocks: a result in the same millisecond counts as 1 ms, so
        // tiny units (a few thousand fuel) are never "too fast".
        if fuel_ms > claimed * tol * elapsed.max(1) {
            let flag = Flag::TooFast {
                unit,
                elapsed_ms,
                fuel_used,
                claimed_speed: n.speed,
            };
            self.nodes[nix as usize].stats.too_fast += 1;
            self.raise(nix, flag, true, out);
        } else if elapsed_ms > fr.slow_grace_ms
            && fuel_ms * u128::from(fr.slow_tolerance.max(1))
                < claimed * u128::from(elapsed_ms - fr.slow_grace_ms)
        {
            let n = &mut self.nodes[nix as usize];
            n.stats.slow += 1;
            let (slow, results) = (n.stats.slow, n.stats.results);
            if results >= fr.min_samples
                && u64::from(slow) * 1000 > u64::from(fr.slow_permille) * u64::from(results)
            {
                let observed = (fuel_ms / elapsed.max(1)).min(u128::from(u64::MAX)) as u64;
                let flag = Flag::SlowerThanClaimed {
                    slow_results: slow,
                    results,
                    claimed_speed: n.speed,
                    last_observed_speed: observed,
                };
                self.raise(nix, flag, false, out);
            }
        }
    }

    // --------------------------------------------------------------- queries

    /// A node's status, or `None` if unknown.
    pub fn node_status(&self, key: &K) -> Option<NodeStatus> {
        let n = &self.nodes[*self.node_ix.get(key)? as usize];
        let flags = [
            FlagKind::TooFast,
            FlagKind::SlowerThanClaimed,
            FlagKind::HighDissent,
            FlagKind::RepeatedExpiry,
            FlagKind::ImpossibleClaim,
        ]
        .into_iter()
        .filter(|&k| n.flags & flag_bit(k) != 0)
        .collect();
        Some(NodeStatus {
            online: n.online,
            trust: TrustState {
                consecutive_valid: n.cv,
                reputation: n.rep,
            },
            trusted: n.cv >= self.cfg.trust_threshold,
            slots: n.slots,
            in_flight: n.leases.len() as u32,
            stats: n.stats,
            flags,
        })
    }

    /// Whether the node is trusted (CV ≥ threshold).
    pub fn is_trusted(&self, key: &K) -> bool {
        self.node_ix
            .get(key)
            .is_some_and(|&i| self.nodes[i as usize].cv >= self.cfg.trust_threshold)
    }

    /// A job's progress, or `None` if unknown.
    pub fn job_progress(&self, id: JobId) -> Option<JobProgress> {
        let job = self.job(*self.job_ix.get(&id)?);
        Some(JobProgress {
            units: job.units.len() as u32,
            completed: job.completed,
            failed: job.failed,
            remaining: job.remaining,
            in_flight: job.in_flight,
            cancelled: job.cancelled,
            finished: job.finished,
        })
    }

    /// Every replica ever issued for a unit, oldest first.
    pub fn unit_replicas(&self, unit: UnitRef) -> Option<Vec<ReplicaView<K>>> {
        let job = self.job(*self.job_ix.get(&unit.job)?);
        let mut r = job.units.get(unit.index as usize)?.head;
        let mut v = Vec::new();
        while r != NONE {
            let rep = &job.replicas[r as usize];
            v.push(ReplicaView {
                node: self.nodes[rep.node as usize].key,
                state: rep.state,
                result: rep.digest,
                assigned_at: rep.assigned_at,
                deadline_ms: rep.deadline,
            });
            r = rep.next;
        }
        v.reverse();
        Some(v)
    }

    /// Sizes and counters, for monitoring.
    pub fn stats(&self) -> SchedStats {
        SchedStats {
            nodes_known: self.nodes.len() as u64,
            nodes_online: self.nodes.iter().filter(|n| n.online).count() as u64,
            jobs: self.job_ix.len() as u64,
            requesters: self.requesters.len() as u64,
            live_leases: self.live_leases,
            lease_heap_entries: self.leases.len() as u64,
            counters: self.counters,
        }
    }

    /// Checks the internal invariants; returns the first violation. Meant for tests
    /// and simulations (cost: linear in the state).
    pub fn validate(&self) -> Result<(), String> {
        let mut regions: BTreeMap<Region, u32> = BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.online) {
            *regions.entry(n.region).or_insert(0) += 1;
        }
        if regions != self.region_online {
            return Err(format!(
                "online nodes per region {regions:?} but counted {:?}",
                self.region_online
            ));
        }
        let mut leases_per_node = vec![0u32; self.nodes.len()];
        for (j, job) in self.jobs.iter().enumerate() {
            let Some(job) = job else { continue };
            let mut remaining = 0;
            let mut in_flight_total = 0;
            for (u, unit) in job.units.iter().enumerate() {
                let ur = UnitRef::new(job.id, u as u32);
                let mut r = unit.head;
                let mut seen: Vec<&Replica> = Vec::new();
                let (mut issued, mut live, mut results) = (0u8, 0u8, 0u8);
                while r != NONE {
                    let rep = &job.replicas[r as usize];
                    if rep.unit != u as u32 {
                        return Err(format!("{ur}: replica {r} linked to the wrong unit"));
                    }
                    for o in &seen {
                        if o.node == rep.node || o.op == rep.op || o.ip == rep.ip {
                            return Err(format!(
                                "{ur}: two replicas share a node, operator or IP group"
                            ));
                        }
                    }
                    issued += 1;
                    if rep.state == ReplicaState::InFlight {
                        live += 1;
                        leases_per_node[rep.node as usize] += 1;
                        if !self.nodes[rep.node as usize]
                            .leases
                            .contains(&(j as u32, r))
                        {
                            return Err(format!(
                                "{ur}: live replica missing from its node's leases"
                            ));
                        }
                    }
                    if rep.digest.is_some() {
                        results += 1;
                    }
                    seen.push(rep);
                    r = rep.next;
                }
                if issued != unit.issued || live != unit.in_flight || results != unit.results {
                    return Err(format!(
                        "{ur}: counters issued/in_flight/results {}/{}/{} but list has {issued}/{live}/{results}",
                        unit.issued, unit.in_flight, unit.results
                    ));
                }
                if unit.issued > job.max_replicas {
                    return Err(format!(
                        "{ur}: issued {} > max {}",
                        unit.issued, job.max_replicas
                    ));
                }
                match unit.status {
                    UnitStatus::Fresh | UnitStatus::Active => remaining += 1,
                    _ => {
                        if live != 0 {
                            return Err(format!("{ur}: decided but {live} replicas still live"));
                        }
                    }
                }
                if unit.status == UnitStatus::Fresh && issued != 0 {
                    return Err(format!("{ur}: fresh with replicas"));
                }
                in_flight_total += u32::from(live);
            }
            if remaining != job.remaining {
                return Err(format!(
                    "{}: remaining {} but counted {remaining}",
                    job.id, job.remaining
                ));
            }
            if in_flight_total != job.in_flight {
                return Err(format!("{}: in_flight mismatch", job.id));
            }
        }
        let live: u64 = leases_per_node.iter().map(|&x| u64::from(x)).sum();
        if live != self.live_leases {
            return Err(format!(
                "{} live leases counted, {live} found",
                self.live_leases
            ));
        }
        let in_heap: std::collections::HashSet<(u64, u32, u32, u32)> =
            self.leases.iter().map(|Reverse(e)| *e).collect();
        for (j, job) in self.jobs.iter().enumerate() {
            let Some(job) = job else { continue };
            for (r, rep) in job.replicas.iter().enumerate() {
                let key = (rep.deadline, j as u32, self.job_gen[j], r as u32);
                if rep.state == ReplicaState::InFlight && !in_heap.contains(&key) {
                    return Err(format!(
                        "{}: live lease missing from the deadline heap",
                        job.id
                    ));
                }
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.leases.len() as u32 != leases_per_node[i] {
                return Err(format!(
                    "node {:?}: {} leases listed, {} live",
                    n.key,
                    n.leases.len(),
                    leases_per_node[i]
                ));
            }
            if n.rep > REPUTATION_MAX {
                return Err(format!("node {:?}: reputation out of range", n.key));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- events

    /// Applies one event at time `now`; everything decided is appended to `out`
    /// (assignments as [`Decision::Assigned`], refusals as [`Decision::Rejected`]).
    /// Same seed and same events give the same decisions.
    pub fn apply(&mut self, now: u64, event: Event<K>, out: &mut Vec<Decision<K>>) {
        let res = match event {
            Event::NodeJoined { node, info } => {
                self.node_joined(node, info, now).map(|d| out.extend(d))
            }
            Event::NodeLeft { node } => self.node_left(&node, now, out),
            Event::JobSubmitted { job, spec, done } => self.add_job_resuming(job, spec, &done, now),
            Event::JobCancelled { job } => self.cancel_job(job, now, out),
            Event::JobRemoved { job } => self.remove_job(job),
            Event::WorkRequested { node, max_units } => {
                let mut buf = std::mem::take(&mut self.scratch_assign);
                buf.clear();
                let r = self.request_work(&node, max_units, now, &mut buf);
                out.extend(
                    buf.drain(..)
                        .map(|assignment| Decision::Assigned { node, assignment }),
                );
                self.scratch_assign = buf;
                r.map(|_| ())
            }
            Event::ResultReturned { node, unit, digest } => self
                .submit_result(&node, unit, digest, now, out)
                .map(|_| ()),
            Event::UnitFailed { node, unit } => self.report_failure(&node, unit, now, out),
            Event::StakeCover { node, cover } => {
                self.advance(now);
                self.set_stake_cover(&node, cover)
            }
            Event::Tick => {
                self.tick(now, out);
                Ok(())
            }
        };
        if let Err(error) = res {
            out.push(Decision::Rejected { error });
        }
    }
}

/// An input to the scheduler, for event-sourced drivers and replay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event<K> {
    NodeJoined {
        node: K,
        info: NodeInfo,
    },
    NodeLeft {
        node: K,
    },
    /// `done`: unit indices decided in an earlier session (usually empty).
    JobSubmitted {
        job: JobId,
        spec: JobSpec<K>,
        done: Vec<u32>,
    },
    JobCancelled {
        job: JobId,
    },
    JobRemoved {
        job: JobId,
    },
    WorkRequested {
        node: K,
        max_units: u32,
    },
    ResultReturned {
        node: K,
        unit: UnitRef,
        digest: ResultDigest,
    },
    UnitFailed {
        node: K,
        unit: UnitRef,
    },
    /// The value of unverified results the node's stake covers changed
    /// (stake-backed trust, [`crate::StakeTrust`]).
    StakeCover {
        node: K,
        cover: u128,
    },
    /// Process lease expiries up to the event's time.
    Tick,
}
