//! The "Done when" scale simulation: 1,000 nodes of random speeds, 5% crashing
//! mid-unit, 10% always returning random wrong results.

use lode_sched::sim::{self, Behavior, SimJob, SimNode, SimSetup};
use lode_sched::{JobId, LossCause};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn network(seed: u64, nodes: u64, units: u32, adaptive: bool) -> SimSetup {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut setup = SimSetup::new(seed);
    setup.detect_ms = 3_000;
    setup.validate_every = 5_000;
    for i in 0..nodes {
        let roll = rng.random_range(0..100);
        let behavior = if roll < 5 {
            Behavior::Crash {
                after_units: rng.random_range(1..=4),
                detected: rng.random_bool(0.5),
            }
        } else if roll < 15 {
            Behavior::RandomWrong
        } else {
            Behavior::Honest
        };
        // Speeds from 0.1 to 2 Gfuel/s, 1 to 4 slots.
        let speed = rng.random_range(100_000_000..=2_000_000_000u64);
        let slots = rng.random_range(1..=4);
        setup.nodes.push(SimNode::new(i, slots, speed, behavior));
    }
    setup.jobs.push(SimJob {
        id: JobId(1),
        submit_at_ms: 0,
        spec: sim::job_spec(1, units, 1_000_000_000, 2, 8, adaptive),
    });
    setup
}

fn check(seed: u64, adaptive: bool) {
    check_units(seed, adaptive, 6_000);
}

fn check_units(seed: u64, adaptive: bool, units: u32) {
    let setup = network(seed, 1_000, units, adaptive);
    let crashers = setup
        .nodes
        .iter()
        .filter(|n| matches!(n.behavior, Behavior::Crash { .. }))
        .count();
    let r = sim::run(setup).expect("simulation");
    assert_eq!(r.units, u64::from(units));
    assert_eq!(
        r.completed,
        u64::from(units),
        "failed: {:?}",
        &r.failed[..r.failed.len().min(5)]
    );
    assert!(r.failed.is_empty());
    assert_eq!(r.wrong_accepted, 0, "a wrong result was accepted");
    assert_eq!(r.double_completions, 0);
    assert_eq!(r.double_credits, 0);
    // Wrong nodes are never credited.
    assert_eq!(r.random_wrong.credited, 0);
    // Every crashing node crashed mid-unit, and every lease it held was lost and re-issued.
    assert!(crashers > 20);
    assert!(
        r.crashed_leases.len() >= crashers,
        "{} crashed leases",
        r.crashed_leases.len()
    );
    for &(t, node, unit) in &r.crashed_leases {
        assert!(
            r.lost
                .iter()
                .any(|&(lt, n, u, c)| n == node && u == unit && lt >= t && c != LossCause::Error),
            "crashed lease {unit} of node {node} never lost"
        );
    }
    assert!(
        r.not_reissued.is_empty(),
        "not re-issued: {:?}",
        r.not_reissued
    );
    assert!(r.lost.iter().any(|l| l.3 == LossCause::Expired));
    assert!(r.lost.iter().any(|l| l.3 == LossCause::NodeLeft));
    if adaptive && units >= 20_000 {
        // Trust engaged: many units were accepted on a single trusted result,
        // and random-wrong nodes never became trusted.
        assert!(
            r.basis.1 > u64::from(units) / 10,
            "trusted singles: {:?}",
            r.basis
        );
        assert_eq!(r.random_wrong.became_trusted, 0);
    }
    eprintln!(
        "adaptive={adaptive}: assigned {} for {} units (overhead {:.1}%), basis {:?}, lost {}, end {} s",
        r.assigned,
        r.completed,
        r.overhead() * 100.0,
        r.basis,
        r.lost.len(),
        r.end_ms / 1000
    );
}

#[test]
fn thousand_nodes_with_crashes_and_wrong_results_adaptive() {
    check(7, true);
}

#[test]
fn thousand_nodes_long_run_adaptive_trust_engaged() {
    check_units(9, true, 20_000);
}

#[test]
fn thousand_nodes_with_crashes_and_wrong_results_full_quorum() {
    check(8, false);
}
