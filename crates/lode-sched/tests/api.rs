//! The scheduler's rules, one at a time, through the public API.

use lode_proto::Hash32;
use lode_sched::*;
use std::net::IpAddr;

const FUEL: u64 = 1_000_000_000;

fn info(i: u64) -> NodeInfo {
    NodeInfo {
        slots: 4,
        memory_bytes: 1 << 30,
        speed_fuel_per_s: 1_000_000_000,
        region: Region::new("eu-west").unwrap(),
        latency_ms: 10,
        price_floor: 0,
        operator: OperatorId::from_u64(i),
        ip_group: IpGroup::from_u64(i),
        trust: None,
    }
}

fn trusted(i: u64, cv: u32) -> NodeInfo {
    NodeInfo {
        trust: Some(TrustState {
            consecutive_valid: cv,
            reputation: 800,
        }),
        ..info(i)
    }
}

fn spec(units: u32, quorum: u8, max: u8, adaptive: bool) -> JobSpec<u64> {
    JobSpec {
        requester: 100,
        units,
        limits: Limits {
            fuel: FUEL,
            memory_bytes: 64 << 20,
            timeout_ms: None,
        },
        quorum,
        max_replicas: max,
        max_price_per_fuel: 10,
        priority: 0,
        adaptive_trust: adaptive,
        region: None,
    }
}

fn digest(tag: u8) -> ResultDigest {
    ResultDigest {
        output_hash: Hash32([tag; 32]),
        exit_code: 0,
        fuel_used: FUEL / 2,
    }
}

/// A scheduler with nodes `0..n` (distinct operators and IP groups).
fn sched(n: u64) -> Scheduler<u64> {
    let mut s = Scheduler::new(Config::default(), 1).unwrap();
    for i in 0..n {
        s.node_joined(i, info(i), 0).unwrap();
    }
    s
}

fn req(s: &mut Scheduler<u64>, node: u64, n: u32, now: u64) -> Vec<Assignment> {
    let mut out = Vec::new();
    s.request_work(&node, n, now, &mut out).unwrap();
    out
}

fn submit(
    s: &mut Scheduler<u64>,
    node: u64,
    unit: UnitRef,
    d: ResultDigest,
    now: u64,
) -> (ResultOutcome, Vec<Decision<u64>>) {
    let mut out = Vec::new();
    let o = s.submit_result(&node, unit, d, now, &mut out).unwrap();
    (o, out)
}

fn completions(d: &[Decision<u64>]) -> Vec<&Completion<u64>> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Completed(c) => Some(c),
            _ => None,
        })
        .collect()
}

const U0: UnitRef = UnitRef::new(JobId(1), 0);
// Results at t = 1000 ms: plausible for 0.5 Gfuel at 1 Gfuel/s (no speed flags).
const T: u64 = 1_000;

#[test]
fn quorum_two_completes_and_credits_exactly_the_agreeing_nodes_once() {
    let mut s = sched(3);
    s.add_job(JobId(1), spec(1, 2, 4, false), 0).unwrap();
    assert_eq!(
        req(&mut s, 0, 4, 0).len(),
        1,
        "one unit, one replica per node"
    );
    assert_eq!(req(&mut s, 0, 4, 0).len(), 0, "never twice to one node");
    assert_eq!(req(&mut s, 1, 4, 0)[0].unit, U0);
    assert_eq!(
        req(&mut s, 2, 4, 0).len(),
        0,
        "quorum 2: only two replicas issued"
    );
    let (o, d) = submit(&mut s, 0, U0, digest(1), T);
    assert_eq!(o, ResultOutcome::Counted);
    assert!(completions(&d).is_empty());
    let (o, d) = submit(&mut s, 1, U0, digest(1), T);
    assert_eq!(o, ResultOutcome::Completed);
    let c = completions(&d);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].credited, vec![0, 1]);
    assert!(c[0].dissenters.is_empty());
    assert_eq!(c[0].basis, Basis::Quorum { agreeing: 2 });
    assert_eq!(c[0].result, digest(1));
    assert!(d.iter().any(|d| matches!(
        d,
        Decision::JobFinished {
            job: JobId(1),
            completed: 1,
            failed: 0,
            cancelled: false
        }
    )));
    assert_eq!(s.node_status(&0).unwrap().trust.consecutive_valid, 1);
    // A second submission is a typed error, never a second credit.
    let mut out = Vec::new();
    assert_eq!(
        s.submit_result(&0, U0, digest(1), T, &mut out),
        Err(Error::DuplicateResult(U0))
    );
    assert!(out.is_empty());
    s.validate().unwrap();
}

#[test]
fn all_three_digest_fields_must_agree() {
    for other in [
        ResultDigest {
            exit_code: 1,
            ..digest(1)
        },
        ResultDigest {
            fuel_used: FUEL / 2 + 1,
            ..digest(1)
        },
        digest(2),
    ] {
        let mut s = sched(3);
        s.add_job(JobId(1), spec(1, 2, 3, false), 0).unwrap();
        req(&mut s, 0, 1, 0);
        req(&mut s, 1, 1, 0);
        submit(&mut s, 0, U0, digest(1), T);
        let (o, _) = submit(&mut s, 1, U0, other, T);
        assert_eq!(o, ResultOutcome::Counted, "{other:?} must not agree");
        // The tie-break replica goes to the third node.
        assert_eq!(req(&mut s, 2, 1, T)[0].unit, U0);
        let (o, d) = submit(&mut s, 2, U0, digest(1), 2 * T);
        assert_eq!(o, ResultOutcome::Completed);
        let c = completions(&d)[0];
        assert_eq!(c.credited, vec![0, 2]);
        assert_eq!(c.dissenters, vec![1]);
        // The dissenter is marked: CV reset, reputation down.
        let st = s.node_status(&1).unwrap();
        assert_eq!(st.trust.consecutive_valid, 0);
        assert!(st.trust.reputation < Config::default().reputation.initial);
        assert!(d.iter().any(|d| matches!(
            d,
            Decision::Trust(TrustChange {
                node: 1,
                cause: TrustCause::Invalid { .. },
                ..
            })
        )));
    }
}

#[test]
fn unit_fails_when_quorum_is_out_of_reach() {
    let mut s = sched(3);
    s.add_job(JobId(1), spec(1, 2, 3, false), 0).unwrap();
    for n in 0..2 {
        req(&mut s, n, 1, 0);
    }
    submit(&mut s, 0, U0, digest(1), T);
    submit(&mut s, 1, U0, digest(2), T);
    req(&mut s, 2, 1, T);
    let (o, d) = submit(&mut s, 2, U0, digest(3), 2 * T);
    assert_eq!(o, ResultOutcome::Failed);
    assert!(d.iter().any(|d| matches!(
        d,
        Decision::Failed {
            unit: U0,
            reason: FailReason::NoConsensus {
                results: 3,
                largest_agreement: 1,
                distinct_outputs: 3,
                issued: 3
            }
        }
    )));
    // Nobody was verified: every participant's CV run ends, nobody loses reputation.
    assert_eq!(
        d.iter()
            .filter(|d| matches!(
                d,
                Decision::Trust(TrustChange {
                    cause: TrustCause::Inconclusive { .. },
                    ..
                })
            ))
            .count(),
        3
    );
    assert_eq!(s.job_progress(JobId(1)).unwrap().failed, 1);

    // Lost replicas exhaust the budget too.
    let mut s = sched(3);
    s.add_job(JobId(1), spec(1, 1, 2, false), 0).unwrap();
    let mut out = Vec::new();
    req(&mut s, 0, 1, 0);
    s.report_failure(&0, U0, T, &mut out).unwrap();
    assert!(out.iter().any(|d| matches!(
        d,
        Decision::LeaseLost {
            node: 0,
            cause: LossCause::Error,
            ..
        }
    )));
    req(&mut s, 1, 1, T);
    out.clear();
    s.report_failure(&1, U0, T, &mut out).unwrap();
    assert!(out.iter().any(|d| matches!(
        d,
        Decision::Failed {
            reason: FailReason::TooManyLost { errors: 2, .. },
            ..
        }
    )));
    s.validate().unwrap();
}

#[test]
fn lease_deadline_expiry_reissue_and_late_result() {
    let mut s = sched(3);
    s.add_job(JobId(1), spec(1, 2, 5, false), 0).unwrap();
    let a = req(&mut s, 0, 1, 0);
    // 1 Gfuel at 1 Gfuel/s = 1 s, ×3 slack = 3 s < floor 10 s; + 2 × 10 ms latency.
    assert_eq!(a[0].deadline_ms, 10_020);
    assert_eq!(s.next_deadline(), Some(10_020));
    req(&mut s, 1, 1, 0);
    let mut out = Vec::new();
    s.tick(10_019, &mut out);
    assert!(out.is_empty());
    s.tick(10_020, &mut out);
    let lost: Vec<_> = out
        .iter()
        .filter(|d| {
            matches!(
                d,
                Decision::LeaseLost {
                    cause: LossCause::Expired,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(lost.len(), 2);
    // Both re-issued; the old holders may not take it again.
    assert_eq!(req(&mut s, 0, 1, 10_020).len(), 0);
    assert_eq!(req(&mut s, 2, 1, 10_020)[0].unit, U0);
    // A late result still counts toward the quorum...
    let (o, _) = submit(&mut s, 0, U0, digest(1), 11_000);
    assert_eq!(o, ResultOutcome::Counted);
    let (o, d) = submit(&mut s, 2, U0, digest(1), 11_000);
    assert_eq!(o, ResultOutcome::Completed);
    let c = completions(&d)[0];
    assert_eq!(c.credited, vec![0, 2]);
    assert!(
        !d.iter().any(|d| matches!(d, Decision::Cancel { .. })),
        "nothing left running"
    );
    let states: Vec<_> = s
        .unit_replicas(U0)
        .unwrap()
        .iter()
        .map(|r| (r.node, r.state, r.result.is_some()))
        .collect();
    assert_eq!(
        states,
        vec![
            (0, ReplicaState::Expired, true),
            (1, ReplicaState::Expired, false),
            (2, ReplicaState::Returned, true)
        ]
    );
    // ...and a result after the decision is compared but never credited.
    let (o, d) = submit(&mut s, 1, U0, digest(1), 12_000);
    assert_eq!(o, ResultOutcome::AfterDecision { agrees: Some(true) });
    assert!(completions(&d).is_empty());
    s.validate().unwrap();
}

#[test]
fn lease_scales_with_fuel_speed_and_latency() {
    let mut s = Scheduler::new(Config::default(), 1).unwrap();
    let slow = NodeInfo {
        speed_fuel_per_s: 10_000_000,
        latency_ms: 150,
        ..info(0)
    };
    s.node_joined(0, slow, 0).unwrap();
    s.add_job(JobId(1), spec(1, 1, 1, false), 0).unwrap();
    let a = req(&mut s, 0, 1, 5_000);
    // 1e9 / 1e7 = 100 s, ×3 = 300 s, + 300 ms.
    assert_eq!(a[0].deadline_ms, 5_000 + 300_000 + 300);
}

#[test]
fn node_left_loses_leases_keeps_trust_and_late_results_count() {
    let mut s = sched(3);
    s.add_job(JobId(1), spec(1, 2, 5, false), 0).unwrap();
    req(&mut s, 0, 1, 0);
    req(&mut s, 1, 1, 0);
    let mut out = Vec::new();
    s.node_left(&0, 500, &mut out).unwrap();
    assert!(out.iter().any(|d| matches!(
        d,
        Decision::LeaseLost {
            node: 0,
            unit: U0,
            cause: LossCause::NodeLeft
        }
    )));
    assert_eq!(
        s.request_work(&0, 1, 500, &mut Vec::new()),
        Err(Error::NodeOffline)
    );
    assert_eq!(req(&mut s, 2, 1, 500)[0].unit, U0, "re-issued at once");
    // The node reconnects and reports what it computed: it counts.
    s.node_joined(0, info(0), 800).unwrap();
    let (o, _) = submit(&mut s, 0, U0, digest(1), 900);
    assert_eq!(o, ResultOutcome::Counted);
    let (o, _) = submit(&mut s, 1, U0, digest(1), T);
    assert_eq!(o, ResultOutcome::Completed);
    // Trust survives reconnection.
    assert_eq!(s.node_status(&0).unwrap().trust.consecutive_valid, 1);
    s.validate().unwrap();
}

#[test]
fn trusted_node_units_are_accepted_on_trust_with_secret_spot_checks() {
    let mut s = Scheduler::new(Config::default(), 7).unwrap();
    s.node_joined(
        0,
        NodeInfo {
            slots: 4000,
            ..trusted(0, 20)
        },
        0,
    )
    .unwrap();
    s.node_joined(1, info(1), 0).unwrap();
    s.add_job(JobId(1), spec(4000, 2, 4, true), 0).unwrap();
    let mine = req(&mut s, 0, 4000, 0);
    assert_eq!(mine.len(), 256, "batches are capped");
    let mut all = mine.clone();
    while all.len() < 4000 {
        let more = req(&mut s, 0, 4000, 0);
        assert!(!more.is_empty());
        all.extend(more);
    }
    // Every assignment carries the same information: unit, deadline, limits.
    assert!(
        all.iter()
            .all(|a| a.deadline_ms == all[0].deadline_ms && a.limits == all[0].limits)
    );
    // Spot-checks: a second replica exists for about 1/CV = 5% of the units.
    let c = s.counters();
    assert_eq!(c.spot_checks + c.trusted_singles, 4000);
    let p = c.spot_checks as f64 / 4000.0;
    let se = (0.05 * 0.95 / 4000.0f64).sqrt();
    assert!((p - 0.05).abs() < 4.0 * se, "spot-check rate {p}");
    // The untrusted node gets exactly the spot-check replicas.
    let mut checks = Vec::new();
    loop {
        let got = req(&mut s, 1, 4, 0);
        if got.is_empty() {
            break;
        }
        for a in &got {
            submit(&mut s, 1, a.unit, digest(1), T);
        }
        checks.extend(got);
    }
    assert_eq!(checks.len() as u64, c.spot_checks);
    // Results: single ones complete on trust without changing CV; checked ones
    // complete by quorum and raise CV.
    let mut trusted_basis = 0;
    let mut quorum_basis = 0;
    for a in &all {
        let (_, d) = submit(&mut s, 0, a.unit, digest(1), T);
        for c in completions(&d) {
            match c.basis {
                Basis::Trusted => {
                    trusted_basis += 1;
                    assert_eq!(c.credited, vec![0]);
                }
                Basis::Quorum { agreeing: 2 } => quorum_basis += 1,
                b => panic!("unexpected basis {b:?}"),
            }
        }
    }
    assert_eq!(trusted_basis, c.trusted_singles);
    assert_eq!(quorum_basis, c.spot_checks);
    assert_eq!(
        s.node_status(&0).unwrap().trust.consecutive_valid,
        20 + c.spot_checks as u32
    );
    assert_eq!(
        s.node_status(&0).unwrap().stats.accepted_on_trust as u64,
        c.trusted_singles
    );
    s.validate().unwrap();
}

#[test]
fn opt_out_jobs_always_get_the_full_quorum() {
    let mut s = Scheduler::new(Config::default(), 7).unwrap();
    s.node_joined(
        0,
        NodeInfo {
            slots: 100,
            ..trusted(0, 1000)
        },
        0,
    )
    .unwrap();
    s.add_job(JobId(1), spec(100, 2, 4, false), 0).unwrap();
    assert_eq!(req(&mut s, 0, 100, 0).len(), 100);
    assert_eq!(s.counters().trusted_singles, 0);
    // Each of the 100 units awaits its second replica.
    s.node_joined(
        1,
        NodeInfo {
            slots: 100,
            ..info(1)
        },
        0,
    )
    .unwrap();
    assert_eq!(req(&mut s, 1, 100, 0).len(), 100);
}

#[test]
fn lost_trusted_single_is_decided_again_for_the_next_holder() {
    let mut s = Scheduler::new(Config::default(), 3).unwrap();
    // CV 1,000,000: a spot-check is (almost) impossible with this seed.
    s.node_joined(0, trusted(0, 1_000_000), 0).unwrap();
    s.node_joined(1, info(1), 0).unwrap();
    s.node_joined(2, info(2), 0).unwrap();
    s.add_job(JobId(1), spec(1, 2, 5, true), 0).unwrap();
    req(&mut s, 0, 1, 0);
    assert_eq!(s.counters().trusted_singles, 1);
    assert!(
        req(&mut s, 1, 1, 0).is_empty(),
        "a trusted single has no second replica"
    );
    let mut out = Vec::new();
    s.node_left(&0, 100, &mut out).unwrap();
    // The untrusted node 1 takes it: now the full quorum is needed.
    assert_eq!(req(&mut s, 1, 1, 100).len(), 1);
    assert_eq!(req(&mut s, 2, 1, 100).len(), 1);
    submit(&mut s, 1, U0, digest(1), T);
    let (o, d) = submit(&mut s, 2, U0, digest(1), T);
    assert_eq!(o, ResultOutcome::Completed);
    assert_eq!(completions(&d)[0].basis, Basis::Quorum { agreeing: 2 });
}

#[test]
fn replicas_go_to_distinct_operators_and_ip_groups() {
    let mut s = Scheduler::new(Config::default(), 1).unwrap();
    s.node_joined(0, info(0), 0).unwrap();
    // Same operator as node 0, different IP.
    s.node_joined(
        1,
        NodeInfo {
            operator: OperatorId::from_u64(0),
            ..info(1)
        },
        0,
    )
    .unwrap();
    // Same IP group as node 0, different operator.
    s.node_joined(
        2,
        NodeInfo {
            ip_group: IpGroup::from_u64(0),
            ..info(2)
        },
        0,
    )
    .unwrap();
    s.node_joined(3, info(3), 0).unwrap();
    s.add_job(JobId(1), spec(1, 2, 4, false), 0).unwrap();
    assert_eq!(req(&mut s, 0, 1, 0).len(), 1);
    assert!(req(&mut s, 1, 1, 0).is_empty(), "same operator");
    assert!(req(&mut s, 2, 1, 0).is_empty(), "same IP group");
    assert_eq!(req(&mut s, 3, 1, 0).len(), 1);
}

#[test]
fn matching_respects_memory_price_timeout_and_region() {
    let mut s = sched(0);
    s.node_joined(
        0,
        NodeInfo {
            memory_bytes: 1 << 20,
            ..info(0)
        },
        0,
    )
    .unwrap();
    s.node_joined(
        1,
        NodeInfo {
            price_floor: 11,
            ..info(1)
        },
        0,
    )
    .unwrap();
    s.node_joined(
        2,
        NodeInfo {
            speed_fuel_per_s: 1_000,
            ..info(2)
        },
        0,
    )
    .unwrap();
    s.node_joined(
        3,
        NodeInfo {
            region: Region::new("us-east").unwrap(),
            ..info(3)
        },
        0,
    )
    .unwrap();
    s.node_joined(4, info(4), 0).unwrap();
    let mut sp = spec(10, 1, 1, false);
    sp.limits.timeout_ms = Some(60_000);
    sp.region = Some(RegionPreference {
        region: Region::new("eu-west").unwrap(),
        strict: false,
    });
    s.add_job(JobId(1), sp, 0).unwrap();
    assert!(req(&mut s, 0, 1, 0).is_empty(), "not enough memory");
    assert!(
        req(&mut s, 1, 1, 0).is_empty(),
        "price floor above the job's max price"
    );
    assert!(req(&mut s, 2, 1, 0).is_empty(), "too slow for the timeout");
    assert!(
        req(&mut s, 3, 1, 0).is_empty(),
        "other region, within the grace period"
    );
    assert_eq!(req(&mut s, 4, 1, 0).len(), 1, "in region");
    assert!(
        req(&mut s, 3, 1, 4_999).is_empty(),
        "an in-region node took a unit recently"
    );
    assert_eq!(
        req(&mut s, 3, 1, 5_000).len(),
        1,
        "soft preference: open after the grace period"
    );
    // A strict preference never opens.
    let mut sp = spec(10, 1, 1, false);
    sp.region = Some(RegionPreference {
        region: Region::new("eu-west").unwrap(),
        strict: true,
    });
    s.add_job(JobId(2), sp, 0).unwrap();
    s.cancel_job(JobId(1), 0, &mut Vec::new()).unwrap();
    assert!(req(&mut s, 3, 1, 1_000_000).is_empty());
}

#[test]
fn slots_batches_and_probation() {
    let mut s = sched(0);
    s.node_joined(
        0,
        NodeInfo {
            slots: 2,
            ..info(0)
        },
        0,
    )
    .unwrap();
    let low = NodeInfo {
        trust: Some(TrustState {
            consecutive_valid: 0,
            reputation: 100,
        }),
        ..info(1)
    };
    s.node_joined(1, low, 0).unwrap();
    s.add_job(JobId(1), spec(100, 1, 1, false), 0).unwrap();
    assert_eq!(req(&mut s, 0, 10, 0).len(), 2, "free slots");
    assert_eq!(req(&mut s, 0, 10, 0).len(), 0, "no free slot");
    assert_eq!(
        req(&mut s, 1, 10, 0).len(),
        1,
        "probation: one unit at a time"
    );
    assert_eq!(req(&mut s, 1, 10, 0).len(), 0);
}

#[test]
fn cancel_and_remove_job() {
    let mut s = sched(2);
    s.add_job(JobId(1), spec(10, 2, 3, false), 0).unwrap();
    req(&mut s, 0, 2, 0);
    let mut out = Vec::new();
    assert_eq!(s.remove_job(JobId(1)), Err(Error::JobNotFinished(JobId(1))));
    s.cancel_job(JobId(1), 10, &mut out).unwrap();
    assert_eq!(
        out.iter()
            .filter(|d| matches!(d, Decision::Cancel { node: 0, .. }))
            .count(),
        2
    );
    assert!(out.iter().any(|d| matches!(
        d,
        Decision::JobFinished {
            cancelled: true,
            completed: 0,
            ..
        }
    )));
    assert!(req(&mut s, 1, 4, 10).is_empty());
    let (o, d) = submit(&mut s, 0, U0, digest(1), T);
    assert_eq!(o, ResultOutcome::AfterDecision { agrees: None });
    assert!(completions(&d).is_empty());
    s.validate().unwrap();
    s.remove_job(JobId(1)).unwrap();
    assert_eq!(
        s.submit_result(&0, U0, digest(1), T, &mut out),
        Err(Error::UnknownJob(JobId(1)))
    );
    assert!(s.job_progress(JobId(1)).is_none());
    // The slot is reused cleanly; stale leases of the removed job never fire.
    s.add_job(JobId(2), spec(1, 1, 1, false), 0).unwrap();
    assert_eq!(req(&mut s, 1, 1, T)[0].unit, UnitRef::new(JobId(2), 0));
    out.clear();
    s.tick(1_000_000, &mut out);
    assert_eq!(
        out.iter()
            .filter(|d| matches!(d, Decision::LeaseLost { .. }))
            .count(),
        1
    );
    s.validate().unwrap();
}

#[test]
fn resumed_job_schedules_only_undecided_units() {
    let mut s = sched(1);
    s.add_job_resuming(JobId(1), spec(5, 1, 1, false), &[0, 2, 4], 0)
        .unwrap();
    let got: Vec<u32> = req(&mut s, 0, 10, 0).iter().map(|a| a.unit.index).collect();
    assert_eq!(got, vec![1, 3]);
    let p = s.job_progress(JobId(1)).unwrap();
    assert_eq!((p.units, p.remaining, p.in_flight), (5, 2, 2));
    // Everything already done: finished at once.
    s.add_job_resuming(JobId(2), spec(2, 1, 1, false), &[0, 1], 0)
        .unwrap();
    assert!(s.job_progress(JobId(2)).unwrap().finished);
    s.remove_job(JobId(2)).unwrap();
}

#[test]
fn trust_from_an_earlier_session_applies_on_first_join_only() {
    let mut s = sched(0);
    s.node_joined(0, trusted(0, 15), 0).unwrap();
    assert!(s.is_trusted(&0));
    // A later hello does not overwrite the scheduler's own record.
    s.node_joined(0, trusted(0, 0), 0).unwrap();
    assert_eq!(s.node_status(&0).unwrap().trust.consecutive_valid, 15);
}

#[test]
fn typed_errors_for_bad_input() {
    let mut s = sched(2);
    let mut out: Vec<Decision<u64>> = Vec::new();
    assert_eq!(
        s.request_work(&9, 1, 0, &mut Vec::new()),
        Err(Error::UnknownNode)
    );
    assert_eq!(
        s.node_joined(
            5,
            NodeInfo {
                speed_fuel_per_s: 0,
                ..info(5)
            },
            0
        ),
        Err(Error::InvalidNode(InvalidNode::ZeroSpeed))
    );
    assert_eq!(
        s.node_joined(
            5,
            NodeInfo {
                trust: Some(TrustState {
                    consecutive_valid: 0,
                    reputation: 5000
                }),
                ..info(5)
            },
            0
        ),
        Err(Error::InvalidNode(InvalidNode::ReputationTooHigh(5000)))
    );
    let bad = [
        (spec(0, 1, 1, false), InvalidJob::NoUnits),
        (
            spec(u32::MAX, 1, 1, false),
            InvalidJob::TooManyUnits {
                units: u32::MAX,
                max: 10_000_000,
            },
        ),
        (spec(1, 0, 1, false), InvalidJob::ZeroQuorum),
        (
            spec(1, 3, 2, false),
            InvalidJob::MaxReplicasBelowQuorum {
                quorum: 3,
                max_replicas: 2,
            },
        ),
        (spec(1, 2, 33, false), InvalidJob::TooManyReplicas(33)),
        (
            JobSpec {
                limits: Limits {
                    fuel: 0,
                    ..spec(1, 1, 1, false).limits
                },
                ..spec(1, 1, 1, false)
            },
            InvalidJob::ZeroFuel,
        ),
    ];
    for (sp, e) in bad {
        assert_eq!(s.add_job(JobId(9), sp, 0), Err(Error::InvalidJob(e)));
    }
    assert_eq!(
        s.add_job_resuming(JobId(9), spec(3, 1, 1, false), &[3], 0),
        Err(Error::InvalidJob(InvalidJob::DoneIndexOutOfRange {
            index: 3,
            units: 3
        }))
    );
    s.add_job(JobId(1), spec(2, 2, 3, false), 0).unwrap();
    assert_eq!(
        s.add_job(JobId(1), spec(2, 2, 3, false), 0),
        Err(Error::DuplicateJob(JobId(1)))
    );
    assert_eq!(
        s.submit_result(&9, U0, digest(1), 0, &mut out),
        Err(Error::UnknownNode)
    );
    assert_eq!(
        s.submit_result(&0, UnitRef::new(JobId(7), 0), digest(1), 0, &mut out),
        Err(Error::UnknownJob(JobId(7)))
    );
    let far = UnitRef::new(JobId(1), 2);
    assert_eq!(
        s.submit_result(&0, far, digest(1), 0, &mut out),
        Err(Error::UnknownUnit {
            unit: far,
            units: 2
        })
    );
    // A result from a node that was never assigned the unit is rejected.
    assert_eq!(
        s.submit_result(&0, U0, digest(1), 0, &mut out),
        Err(Error::NotAssigned(U0))
    );
    assert_eq!(
        s.report_failure(&1, U0, 0, &mut out),
        Err(Error::NotAssigned(U0))
    );
    req(&mut s, 0, 1, 0);
    assert_eq!(
        s.submit_result(&1, U0, digest(1), 0, &mut out),
        Err(Error::NotAssigned(U0))
    );
    let greedy = ResultDigest {
        fuel_used: FUEL + 1,
        ..digest(1)
    };
    assert_eq!(
        s.submit_result(&0, U0, greedy, 0, &mut out),
        Err(Error::FuelAboveLimit {
            unit: U0,
            fuel_used: FUEL + 1,
            limit: FUEL
        })
    );
    assert!(out.is_empty(), "refused input decides nothing");
    // The refused claim did not use up the node's one result for the unit.
    assert_eq!(
        s.submit_result(&0, U0, digest(1), T, &mut out),
        Ok(ResultOutcome::Counted)
    );
    out.clear();
    assert_eq!(
        s.cancel_job(JobId(7), 0, &mut out),
        Err(Error::UnknownJob(JobId(7)))
    );
    assert_eq!(Error::NotAssigned(U0).code(), "not_assigned");
    // Through apply(), refusals become decisions.
    s.apply(
        0,
        Event::WorkRequested {
            node: 42,
            max_units: 1,
        },
        &mut out,
    );
    assert_eq!(
        out,
        vec![Decision::Rejected {
            error: Error::UnknownNode
        }]
    );
    // Bad configuration.
    for cfg in [
        Config {
            trust_threshold: 0,
            ..Config::default()
        },
        Config {
            lease_slack_percent: 99,
            ..Config::default()
        },
        Config {
            max_batch: 0,
            ..Config::default()
        },
        Config {
            retry_scan_limit: 0,
            ..Config::default()
        },
    ] {
        assert!(Scheduler::<u64>::new(cfg, 0).is_err());
    }
    s.validate().unwrap();
}

#[test]
fn behaviour_flags_carry_evidence() {
    let mut s = sched(3);
    s.add_job(JobId(1), spec(40, 1, 3, false), 0).unwrap();
    // A result 1 ms after assignment for 0.5 Gfuel at a claimed 1 Gfuel/s.
    req(&mut s, 0, 1, 0);
    let (_, d) = submit(&mut s, 0, U0, digest(1), 1);
    assert!(d.iter().any(|d| matches!(
        d,
        Decision::Flagged {
            node: 0,
            flag: Flag::TooFast {
                elapsed_ms: 1,
                fuel_used: 500_000_000,
                claimed_speed: 1_000_000_000,
                ..
            }
        }
    )));
    assert_eq!(s.node_status(&0).unwrap().flags, vec![FlagKind::TooFast]);
    // A node that lets its leases expire again and again.
    let mut flagged = false;
    let mut now = 0;
    for _ in 0..8 {
        req(&mut s, 1, 4, now);
        now += 100_000;
        let mut out = Vec::new();
        s.tick(now, &mut out);
        flagged |= out.iter().any(|d| {
            matches!(
                d,
                Decision::Flagged {
                    node: 1,
                    flag: Flag::RepeatedExpiry { .. }
                }
            )
        });
    }
    assert!(flagged);
    // A node whose results come back 40× slower than it claims (0.5 Gfuel in 20 s:
    // beyond the 2 s grace plus 16× the 0.5 s its claim implies).
    let mut flagged = false;
    for _ in 0..12 {
        let a = req(&mut s, 2, 1, now);
        if a.is_empty() {
            break;
        }
        let (_, d) = submit(&mut s, 2, a[0].unit, digest(1), now + 20_000);
        flagged |= d.iter().any(|d| {
            matches!(
                d,
                Decision::Flagged {
                    node: 2,
                    flag: Flag::SlowerThanClaimed { .. }
                }
            )
        });
        now += 20_000;
    }
    assert!(flagged);
    // Short units whose results come back within the grace (queueing, batching,
    // round trips) are never "slow", however small their fuel.
    let mut s = sched(4);
    s.add_job(JobId(9), spec(40, 1, 1, false), 0).unwrap();
    let mut now = 0;
    for _ in 0..30 {
        let a = req(&mut s, 3, 1, now);
        if a.is_empty() {
            break;
        }
        let grace = s.config().flags.slow_grace_ms;
        let (_, d) = submit(&mut s, 3, a[0].unit, digest(1), now + grace);
        assert!(
            !d.iter().any(|d| matches!(d, Decision::Flagged { .. })),
            "flagged within the grace: {d:?}"
        );
        now += grace;
    }
}

#[test]
fn impossible_speed_claims_are_flagged_and_capped() {
    let ceiling = Config::default().flags.max_claimed_speed;
    let mut s = sched(1);
    let liar = NodeInfo {
        speed_fuel_per_s: 1_000_000_000_000,
        ..info(7)
    };
    let d = s.node_joined(7, liar, 0).unwrap();
    assert!(
        d.contains(&Decision::Flagged {
            node: 7,
            flag: Flag::ImpossibleClaim {
                claimed_speed: 1_000_000_000_000,
                ceiling
            }
        }),
        "{d:?}"
    );
    assert!(
        s.node_status(&7)
            .unwrap()
            .flags
            .contains(&FlagKind::ImpossibleClaim)
    );
    // Raised once: reconnecting with the same claim adds nothing.
    assert!(s.node_joined(7, liar, 10).unwrap().is_empty());
    // A claim at the ceiling is believed.
    let fast = NodeInfo {
        speed_fuel_per_s: ceiling,
        ..info(8)
    };
    assert!(s.node_joined(8, fast, 0).unwrap().is_empty());
    assert!(s.node_status(&8).unwrap().flags.is_empty());
    // The liar is scheduled at the ceiling: a job whose timeout only the claimed
    // speed could meet (1e9 fuel in 10 ms needs 1e11 fuel/s) is not offered to it.
    let mut tight = spec(1, 1, 1, false);
    tight.limits.timeout_ms = Some(10);
    s.add_job(JobId(1), tight, 20).unwrap();
    assert!(req(&mut s, 7, 1, 20).is_empty());
    assert!(req(&mut s, 8, 1, 20).is_empty());
    // A ceiling of zero is refused.
    let mut cfg = Config::default();
    cfg.flags.max_claimed_speed = 0;
    assert_eq!(
        Scheduler::<u64>::new(cfg, 1).err(),
        Some(ConfigError::ZeroSpeedCeiling)
    );
}

#[test]
fn high_dissent_is_flagged() {
    let mut s = sched(3);
    s.add_job(JobId(1), spec(30, 2, 3, false), 0).unwrap();
    let mut flagged = false;
    for i in 0..30 {
        let u = UnitRef::new(JobId(1), i);
        let t = u64::from(i) * 10_000;
        // Node 2 lies every time; node 0 disagrees with it, node 1 breaks the tie.
        assert_eq!(req(&mut s, 2, 1, t)[0].unit, u);
        assert_eq!(req(&mut s, 0, 1, t)[0].unit, u);
        submit(&mut s, 2, u, digest(9), t + 1_000);
        submit(&mut s, 0, u, digest(1), t + 1_000);
        assert_eq!(req(&mut s, 1, 1, t + 1_000)[0].unit, u);
        let (_, d) = submit(&mut s, 1, u, digest(1), t + 2_000);
        assert_eq!(completions(&d)[0].dissenters, vec![2]);
        flagged |= d.iter().any(|d| {
            matches!(
                d,
                Decision::Flagged {
                    node: 2,
                    flag: Flag::HighDissent { .. }
                }
            )
        });
    }
    assert!(flagged);
    assert!(
        s.node_status(&2)
            .unwrap()
            .flags
            .contains(&FlagKind::HighDissent)
    );
}

#[test]
fn ip_groups_and_regions() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        IpGroup::from_ip(ip("203.0.113.7")),
        IpGroup::from_ip(ip("203.0.113.7"))
    );
    assert_ne!(
        IpGroup::from_ip(ip("203.0.113.7")),
        IpGroup::from_ip(ip("203.0.113.8"))
    );
    assert_eq!(
        IpGroup::from_ip(ip("2001:db8:1:2::1")),
        IpGroup::from_ip(ip("2001:db8:1:2:ffff::9"))
    );
    assert_ne!(
        IpGroup::from_ip(ip("2001:db8:1:2::1")),
        IpGroup::from_ip(ip("2001:db8:1:3::1"))
    );
    assert_eq!(
        IpGroup::from_ip(ip("::ffff:203.0.113.7")),
        IpGroup::from_ip(ip("203.0.113.7"))
    );
    assert_ne!(
        IpGroup::from_ip(ip("::ffff:203.0.113.7")),
        IpGroup::from_ip(ip("::"))
    );
    assert_eq!(
        IpGroup::with_prefixes(ip("203.0.113.7"), 24, 64),
        IpGroup::with_prefixes(ip("203.0.113.200"), 24, 64)
    );
    assert_eq!(Region::new("eu-west").unwrap().as_str(), "eu-west");
    assert!(Region::new("").is_err());
    assert!(Region::new("EU").is_err());
    assert!(Region::new("a-very-long-region-code").is_err());
    assert_eq!(
        serde_json::to_string(&Region::new("ap-1").unwrap()).unwrap(),
        "\"ap-1\""
    );
    assert_ne!(OperatorId::of(b"a"), OperatorId::of(b"b"));
}

#[test]
fn settled_lease_entries_do_not_pile_up() {
    // Long leases, fast results: without compaction the deadline heap would keep
    // one entry per assignment for a day.
    let cfg = Config {
        lease_floor_ms: 24 * 3600 * 1000,
        ..Config::default()
    };
    let mut s = Scheduler::new(cfg, 1).unwrap();
    s.node_joined(
        0,
        NodeInfo {
            slots: 64,
            ..info(0)
        },
        0,
    )
    .unwrap();
    s.add_job(JobId(1), spec(50_000, 1, 1, false), 0).unwrap();
    let mut now = 0;
    let mut out = Vec::new();
    loop {
        let got = req(&mut s, 0, 64, now);
        if got.is_empty() {
            break;
        }
        now += 1_000;
        for a in got {
            out.clear();
            s.submit_result(&0, a.unit, digest(1), now, &mut out)
                .unwrap();
        }
    }
    assert_eq!(s.job_progress(JobId(1)).unwrap().completed, 50_000);
    s.validate().unwrap();
    let st = s.stats();
    assert_eq!(st.live_leases, 0);
    assert_eq!(st.counters.assigned, 50_000);
    assert!(
        st.lease_heap_entries <= 4096 + 64,
        "{} stale entries kept",
        st.lease_heap_entries
    );
    let mut expired = Vec::new();
    s.tick(u64::MAX, &mut expired);
    assert!(expired.is_empty());
}

#[test]
fn over_served_regions_hold_less_work() {
    let node = |i: u64, region: &str| NodeInfo {
        slots: 10,
        region: Region::new(region).unwrap(),
        ..info(i)
    };
    let run = |cfg: Config| {
        let mut s = Scheduler::new(cfg, 1).unwrap();
        for i in 0..9 {
            s.node_joined(i, node(i, "eu"), 0).unwrap();
        }
        s.node_joined(9, node(9, "us"), 0).unwrap();
        s.add_job(JobId(1), spec(1_000, 1, 1, false), 0).unwrap();
        s
    };
    // 9 of 10 nodes in eu, 2 regions: eu's fair share is 5 nodes, it keeps full
    // weight up to 7.5, so each eu node holds ceil(10 × 7.5 / 9) = 9 units.
    let mut s = run(Config::default());
    assert_eq!(region_factor_bps(9, 10, 2, 1_500), 8_333);
    assert_eq!(req(&mut s, 0, 10, 0).len(), 9);
    assert!(req(&mut s, 0, 10, 0).is_empty());
    assert_eq!(req(&mut s, 9, 10, 0).len(), 10);
    s.validate().unwrap();
    // When 5 eu nodes leave (4 eu, 1 us), eu is within 1.5 fair shares again.
    let mut out = vec![];
    for i in 4..9 {
        s.node_left(&i, 1, &mut out).unwrap();
    }
    assert_eq!(req(&mut s, 0, 10, 1).len(), 1);
    s.validate().unwrap();
    // A node moving region is counted in its new one.
    s.node_joined(1, node(1, "us"), 2).unwrap();
    s.validate().unwrap();
    // Turned off: every node holds its slots.
    let mut s = run(Config {
        region_spread_permille: 0,
        ..Config::default()
    });
    assert_eq!(req(&mut s, 0, 10, 0).len(), 10);
    // One region only: never scaled.
    let mut s = Scheduler::new(Config::default(), 1).unwrap();
    for i in 0..3 {
        s.node_joined(i, node(i, "eu"), 0).unwrap();
    }
    s.add_job(JobId(1), spec(100, 1, 1, false), 0).unwrap();
    assert_eq!(req(&mut s, 0, 10, 0).len(), 10);
}
