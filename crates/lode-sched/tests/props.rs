//! Property tests: random sequences of joins, departures, jobs, requests, results
//! (right, colluding-wrong, random-wrong, forged), failures, time and cancels.
//! After every step: no unit assigned twice to one node or to two nodes sharing
//! an operator or IP group; results from unassigned nodes rejected; each unit
//! completed at most once, crediting exactly the nodes that returned the accepted
//! result; the scheduler's internal invariants hold. Same seed and events give
//! the same decisions, also across a snapshot/restore.

use lode_proto::Hash32;
use lode_sched::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
enum Op {
    Join {
        node: u8,
        op: u8,
        ip: u8,
        slots: u8,
        cv: u8,
    },
    Leave {
        node: u8,
    },
    AddJob {
        units: u8,
        quorum: u8,
        extra: u8,
        adaptive: bool,
        requester: u8,
    },
    Request {
        node: u8,
        n: u8,
    },
    Result {
        pick: u16,
        kind: u8,
    },
    Forged {
        node: u8,
        job: u8,
        unit: u8,
    },
    Fail {
        pick: u16,
    },
    Advance {
        ms: u16,
    },
    Cancel {
        job: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..12u8, 0..6u8, 0..6u8, 1..4u8, 0..30u8)
            .prop_map(|(node, op, ip, slots, cv)| Op::Join { node, op, ip, slots, cv }),
        1 => (0..12u8).prop_map(|node| Op::Leave { node }),
        2 => (1..12u8, 1..4u8, 0..3u8, any::<bool>(), 0..3u8)
            .prop_map(|(units, quorum, extra, adaptive, requester)| Op::AddJob { units, quorum, extra, adaptive, requester }),
        6 => (0..12u8, 1..5u8).prop_map(|(node, n)| Op::Request { node, n }),
        8 => (any::<u16>(), 0..3u8).prop_map(|(pick, kind)| Op::Result { pick, kind }),
        1 => (0..12u8, 0..4u8, 0..12u8).prop_map(|(node, job, unit)| Op::Forged { node, job, unit }),
        1 => any::<u16>().prop_map(|pick| Op::Fail { pick }),
        2 => (0..15_000u16).prop_map(|ms| Op::Advance { ms }),
        1 => (0..4u8).prop_map(|job| Op::Cancel { job }),
    ]
}

fn right(u: UnitRef) -> ResultDigest {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&u.job.0.to_le_bytes());
    h[8..12].copy_from_slice(&u.index.to_le_bytes());
    ResultDigest {
        output_hash: Hash32(h),
        exit_code: 0,
        fuel_used: 500,
    }
}

fn digest(u: UnitRef, node: u64, kind: u8) -> ResultDigest {
    let mut d = right(u);
    match kind {
        0 => {}
        1 => d.output_hash.0[31] = 0xee, // colluders' shared wrong output
        _ => d.output_hash.0[30] = node as u8 + 1, // a node's own wrong output
    }
    d
}

/// Converts ops to timed events (needs the evolving state to resolve picks).
struct Model {
    now: u64,
    node_groups: HashMap<u64, (u8, u8)>,
    jobs: Vec<(JobId, u32)>,
    outstanding: Vec<(u64, UnitRef)>,
    assigned: HashSet<(UnitRef, u64)>,
    holders: HashMap<UnitRef, Vec<(u64, u8, u8)>>,
    returned: HashMap<(UnitRef, u64), ResultDigest>,
    completed: HashSet<UnitRef>,
}

impl Model {
    fn new() -> Self {
        Self {
            now: 0,
            node_groups: HashMap::new(),
            jobs: Vec::new(),
            outstanding: Vec::new(),
            assigned: HashSet::new(),
            holders: HashMap::new(),
            returned: HashMap::new(),
            completed: HashSet::new(),
        }
    }

    fn event(&mut self, op: &Op) -> Option<Event<u64>> {
        self.now += 7;
        Some(match *op {
            Op::Join {
                node,
                op,
                ip,
                slots,
                cv,
            } => Event::NodeJoined {
                node: u64::from(node),
                info: NodeInfo {
                    slots: u32::from(slots),
                    memory_bytes: 1 << 30,
                    speed_fuel_per_s: 1_000,
                    region: Region::default(),
                    latency_ms: 5,
                    price_floor: 0,
                    operator: OperatorId::from_u64(u64::from(op)),
                    ip_group: IpGroup::from_u64(u64::from(ip)),
                    trust: Some(TrustState {
                        consecutive_valid: u32::from(cv),
                        reputation: 500,
                    }),
                },
            },
            Op::Leave { node } => Event::NodeLeft {
                node: u64::from(node),
            },
            Op::AddJob {
                units,
                quorum,
                extra,
                adaptive,
                requester,
            } => {
                let id = JobId(self.jobs.len() as u64 + 1);
                Event::JobSubmitted {
                    job: id,
                    spec: JobSpec {
                        requester: u64::from(requester),
                        units: u32::from(units),
                        limits: Limits {
                            fuel: 1_000,
                            memory_bytes: 1,
                            timeout_ms: None,
                        },
                        quorum,
                        max_replicas: quorum + extra,
                        max_price_per_fuel: 1,
                        priority: units % 3,
                        adaptive_trust: adaptive,
                        region: None,
                    },
                    done: Vec::new(),
                }
            }
            Op::Request { node, n } => Event::WorkRequested {
                node: u64::from(node),
                max_units: u32::from(n),
            },
            Op::Result { pick, kind } => {
                if self.outstanding.is_empty() {
                    return None;
                }
                let (node, unit) = self
                    .outstanding
                    .swap_remove(usize::from(pick) % self.outstanding.len());
                Event::ResultReturned {
                    node,
                    unit,
                    digest: digest(unit, node, kind),
                }
            }
            Op::Forged { node, job, unit } => {
                let (id, _) = *self.jobs.get(usize::from(job))?;
                let u = UnitRef::new(id, u32::from(unit));
                Event::ResultReturned {
                    node: u64::from(node),
                    unit: u,
                    digest: right(u),
                }
            }
            Op::Fail { pick } => {
                if self.outstanding.is_empty() {
                    return None;
                }
                let (node, unit) = self
                    .outstanding
                    .swap_remove(usize::from(pick) % self.outstanding.len());
                Event::UnitFailed { node, unit }
            }
            Op::Advance { ms } => {
                self.now += u64::from(ms);
                Event::Tick
            }
            Op::Cancel { job } => Event::JobCancelled {
                job: self.jobs.get(usize::from(job))?.0,
            },
        })
    }

    /// Checks the decisions of one event against the model, then updates it.
    fn check(
        &mut self,
        ev: &Event<u64>,
        ds: &[Decision<u64>],
        s: &Scheduler<u64>,
    ) -> Result<(), TestCaseError> {
        // Forged results from nodes never assigned the unit are refused.
        if let Event::ResultReturned { node, unit, .. } = ev
            && s.node_status(node).is_some()
            && self
                .jobs
                .iter()
                .any(|&(j, n)| j == unit.job && unit.index < n)
            && !self.assigned.contains(&(*unit, *node))
            && s.job_progress(unit.job).is_some()
        {
            prop_assert_eq!(
                ds,
                &[Decision::Rejected {
                    error: Error::NotAssigned(*unit)
                }][..]
            );
        }
        if let (Event::ResultReturned { node, unit, digest }, false) = (
            ev,
            ds.iter().any(|d| matches!(d, Decision::Rejected { .. })),
        ) {
            self.returned.insert((*unit, *node), *digest);
        }
        if let Event::JobSubmitted { job, spec, .. } = ev {
            // Refused specs also take a number; `job_progress` tells them apart.
            self.jobs.push((*job, spec.units));
        }
        if let Event::NodeJoined { node, info } = ev {
            self.node_groups
                .insert(*node, (info.operator.0[0], info.ip_group.0 as u8));
        }
        for d in ds {
            match d {
                Decision::Assigned { node, assignment } => {
                    let u = assignment.unit;
                    prop_assert!(
                        self.assigned.insert((u, *node)),
                        "{} assigned twice to node {}",
                        u,
                        node
                    );
                    let (op, ip) = self.node_groups[node];
                    let hs = self.holders.entry(u).or_default();
                    for &(n, o, i) in hs.iter() {
                        prop_assert!(
                            n != *node && o != op && i != ip,
                            "{} given to two nodes of one group",
                            u
                        );
                    }
                    hs.push((*node, op, ip));
                    self.outstanding.push((*node, u));
                }
                Decision::Completed(c) => {
                    prop_assert!(self.completed.insert(c.unit), "{} completed twice", c.unit);
                    let mut seen = HashSet::new();
                    prop_assert!(!c.credited.is_empty());
                    for n in &c.credited {
                        prop_assert!(seen.insert(*n), "node credited twice");
                        prop_assert_eq!(self.returned.get(&(c.unit, *n)), Some(&c.result));
                    }
                    for n in &c.dissenters {
                        let got = self.returned.get(&(c.unit, *n));
                        prop_assert!(got.is_some() && got != Some(&c.result));
                    }
                    if let Basis::Quorum { agreeing } = c.basis {
                        prop_assert_eq!(usize::from(agreeing), c.credited.len());
                        prop_assert!(agreeing >= 2);
                    } else {
                        prop_assert_eq!(c.credited.len(), 1);
                    }
                }
                Decision::Cancel { node, unit } | Decision::LeaseLost { node, unit, .. } => {
                    self.outstanding.retain(|x| x != &(*node, *unit));
                    if let Decision::LeaseLost {
                        cause: LossCause::Expired,
                        ..
                    } = d
                    {
                        // The node may still answer late: keep it answerable.
                        self.outstanding.push((*node, *unit));
                    }
                }
                _ => {}
            }
        }
        if let Err(e) = s.validate() {
            return Err(TestCaseError::fail(e));
        }
        Ok(())
    }
}

/// Timed events and the decisions of each.
type Run = (Vec<(u64, Event<u64>)>, Vec<Vec<Decision<u64>>>);

fn run(ops: &[Op], seed: u64) -> Result<Run, TestCaseError> {
    let mut s = Scheduler::new(Config::default(), seed).unwrap();
    let mut m = Model::new();
    let mut events = Vec::new();
    let mut all = Vec::new();
    for op in ops {
        let Some(ev) = m.event(op) else { continue };
        let mut out = Vec::new();
        s.apply(m.now, ev.clone(), &mut out);
        m.check(&ev, &out, &s)?;
        events.push((m.now, ev));
        all.push(out);
    }
    Ok((events, all))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_any_event_sequence(ops in prop::collection::vec(op(), 1..250), seed in any::<u64>()) {
        run(&ops, seed)?;
    }

    #[test]
    fn same_seed_and_events_give_same_decisions(ops in prop::collection::vec(op(), 1..150), seed in any::<u64>()) {
        let (events, first) = run(&ops, seed)?;
        let (_, second) = run(&ops, seed)?;
        prop_assert_eq!(&first, &second);
        // Replaying the recorded events into a fresh scheduler reproduces them.
        let mut s = Scheduler::new(Config::default(), seed).unwrap();
        for ((t, ev), expected) in events.iter().zip(&first) {
            let mut out = Vec::new();
            s.apply(*t, ev.clone(), &mut out);
            prop_assert_eq!(&out, expected);
        }
    }

    #[test]
    fn snapshot_restore_continues_identically(ops in prop::collection::vec(op(), 2..150), seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let (events, decisions) = run(&ops, seed)?;
        if events.is_empty() {
            return Ok(());
        }
        let cut = cut.index(events.len());
        let mut s = Scheduler::new(Config::default(), seed).unwrap();
        for (t, ev) in &events[..cut] {
            s.apply(*t, ev.clone(), &mut Vec::new());
        }
        let bytes = postcard::to_allocvec(&s).unwrap();
        let mut restored: Scheduler<u64> = postcard::from_bytes(&bytes).unwrap();
        restored.validate().map_err(TestCaseError::fail)?;
        for ((t, ev), expected) in events[cut..].iter().zip(&decisions[cut..]) {
            let mut out = Vec::new();
            restored.apply(*t, ev.clone(), &mut out);
            prop_assert_eq!(&out, expected);
        }
    }
}

/// Guards against a vacuous property test: the generated sequences do exercise
/// completions, forged results, dissent, lost leases, trusted singles and groups.
#[test]
fn generator_exercises_the_rules() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        PtConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = prop::collection::vec(op(), 150..250);
    let mut seen: HashMap<&'static str, u32> = HashMap::new();
    for seed in 0..60 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let (_, decisions) = run(&ops, seed).unwrap();
        for d in decisions.iter().flatten() {
            let k = match d {
                Decision::Completed(c) if !c.dissenters.is_empty() => "dissent",
                Decision::Completed(Completion {
                    basis: Basis::Trusted,
                    ..
                }) => "trusted",
                Decision::Completed(Completion {
                    basis: Basis::Quorum { .. },
                    ..
                }) => "quorum",
                Decision::Rejected {
                    error: Error::NotAssigned(_),
                } => "forged",
                Decision::LeaseLost {
                    cause: LossCause::Expired,
                    ..
                } => "expired",
                Decision::LeaseLost {
                    cause: LossCause::NodeLeft,
                    ..
                } => "left",
                Decision::Failed { .. } => "failed",
                Decision::Cancel { .. } => "cancel",
                _ => continue,
            };
            *seen.entry(k).or_default() += 1;
        }
    }
    eprintln!("{seen:?}");
    for k in [
        "dissent", "trusted", "quorum", "forged", "expired", "left", "failed", "cancel",
    ] {
        assert!(
            seen.get(k).copied().unwrap_or(0) >= 3,
            "{k} too rare: {seen:?}"
        );
    }
}
