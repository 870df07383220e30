//! Fair share: a 10-unit job submitted while a 10,000-unit job runs finishes early.

use lode_sched::JobId;
use lode_sched::sim::{self, Behavior, SimJob, SimNode, SimReport, SimSetup};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BIG: JobId = JobId(1);
const SMALL: JobId = JobId(2);
const SUBMIT_SMALL_MS: u64 = 5_000;

/// 100 nodes × 2 slots, speeds 0.5–1.5 Gfuel/s, units of ≤ 1 Gfuel (≤ 2 s each).
fn run(small_requester: u64, small_priority: u8) -> SimReport {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut setup = SimSetup::new(11);
    for i in 0..100 {
        let speed = rng.random_range(500_000_000..=1_500_000_000u64);
        setup
            .nodes
            .push(SimNode::new(i, 2, speed, Behavior::Honest));
    }
    setup.poll_ms = 500;
    setup.jobs.push(SimJob {
        id: BIG,
        submit_at_ms: 0,
        spec: sim::job_spec(1, 10_000, 1_000_000_000, 2, 5, false),
    });
    let mut small = sim::job_spec(small_requester, 10, 1_000_000_000, 2, 5, false);
    small.priority = small_priority;
    setup.jobs.push(SimJob {
        id: SMALL,
        submit_at_ms: SUBMIT_SMALL_MS,
        spec: small,
    });
    sim::run(setup).expect("simulation")
}

#[test]
fn small_job_of_another_requester_finishes_early() {
    let r = run(2, 0);
    let small_done = r.finished_at[&SMALL];
    let big_done = r.finished_at[&BIG];
    let big_at = |m: &std::collections::BTreeMap<JobId, u32>| m.get(&BIG).copied().unwrap_or(0);
    let big_during = big_at(&r.progress_at_finish[&SMALL]) - big_at(&r.progress_at_submit[&SMALL]);
    eprintln!(
        "small finished {} ms after submission; big completed {big_during} units meanwhile; big finished at {} s",
        small_done - SUBMIT_SMALL_MS,
        big_done / 1000
    );
    // The slowest node needs 2 s per unit (plus 20 ms latency). Fair share hands the
    // small job every other assignment, so its 20 replicas start within the next
    // ~40 free slots (~0.2 s) and it finishes within about two unit run times.
    assert!(
        small_done - SUBMIT_SMALL_MS <= 5_000,
        "small job took {} ms",
        small_done - SUBMIT_SMALL_MS
    );
    // Concretely: meanwhile the big job completes under 3% of its units,
    assert!(
        big_during < 300,
        "big job completed {big_during} units meanwhile"
    );
    // and the big job runs 20× longer.
    assert!(big_done - SUBMIT_SMALL_MS > 20 * (small_done - SUBMIT_SMALL_MS));
}

#[test]
fn same_requester_runs_jobs_in_order_unless_prioritised() {
    // The same test with one requester: jobs of one requester run in priority,
    // then submission order, so the small job waits for the big one. This shows
    // the early finish above comes from fair share between requesters.
    let r = run(1, 0);
    let big_at_small_done = r.progress_at_finish[&SMALL].get(&BIG).copied().unwrap_or(0);
    assert!(
        big_at_small_done > 9_000,
        "big job had only {big_at_small_done} units done"
    );
    // A higher priority puts it first again.
    let r = run(1, 9);
    let small_done = r.finished_at[&SMALL];
    assert!(small_done - SUBMIT_SMALL_MS <= 5_000);
}
