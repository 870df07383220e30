//! Scheduler throughput: assignment decisions per second with 100,000 queued
//! units and 10,000 nodes, and a full assign → result → verify cycle.
//!
//! `cargo bench -p lode-sched --bench sched`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lode_sched::sim::{correct_digest, job_spec};
use lode_sched::{
    Assignment, Config, Decision, IpGroup, JobId, NodeInfo, OperatorId, Region, Scheduler,
    TrustState,
};
use std::hint::black_box;

const NODES: u64 = 10_000;
const UNITS: u32 = 100_000;
const FUEL: u64 = 1_000_000_000;

/// 10,000 nodes; 100,000 units split evenly over `requesters` requesters' jobs.
fn setup(quorum: u8, adaptive: bool, trusted: bool, slots: u32, requesters: u32) -> Scheduler<u64> {
    let mut s = Scheduler::new(Config::default(), 42).expect("config");
    for i in 0..NODES {
        let info = NodeInfo {
            slots,
            memory_bytes: 4 << 30,
            speed_fuel_per_s: 500_000_000 + (i % 7) * 100_000_000,
            region: Region::default(),
            latency_ms: 20,
            price_floor: 0,
            operator: OperatorId::from_u64(i),
            ip_group: IpGroup::from_u64(i),
            trust: trusted.then_some(TrustState {
                consecutive_valid: 100,
                reputation: 900,
            }),
        };
        s.node_joined(i, info, 0).expect("join");
    }
    for r in 0..requesters {
        let spec = job_spec(
            u64::from(r),
            UNITS / requesters,
            FUEL,
            quorum,
            2 * quorum + 1,
            adaptive,
        );
        s.add_job(JobId(u64::from(r)), spec, 0).expect("job");
    }
    s
}

/// Nodes ask in turn for `batch` units until nothing is left; returns decisions made.
fn drain(s: &mut Scheduler<u64>, batch: u32, out: &mut Vec<Assignment>) -> u64 {
    let mut total = 0u64;
    loop {
        let mut round = 0u64;
        for i in 0..NODES {
            out.clear();
            round += s.request_work(&i, batch, 1, out).expect("request") as u64;
        }
        if round == 0 {
            return total;
        }
        total += round;
    }
}

fn assignment(c: &mut Criterion) {
    let mut g = c.benchmark_group("assign_100k_units_10k_nodes");
    g.sample_size(10);
    for &(name, q, adaptive, trusted, batch, requesters) in &[
        ("q1_batch8", 1u8, false, false, 8u32, 1u32),
        ("q2_batch8", 2, false, false, 8, 1),
        ("q2_adaptive_trusted_batch8", 2, true, true, 8, 1),
        ("q2_batch1", 2, false, false, 1, 1),
        ("q2_batch8_100_requesters", 2, false, false, 8, 100),
    ] {
        // Decisions per drain are deterministic: measure once for the throughput label.
        let mut probe = setup(q, adaptive, trusted, 32, requesters);
        let decisions = drain(&mut probe, batch, &mut Vec::new());
        g.throughput(Throughput::Elements(decisions));
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(batch as usize);
            b.iter_batched(
                // Built fresh (not cloned): a clone drops the replica vector's
                // reserved capacity, which `add_job` sets up in real use.
                || setup(q, adaptive, trusted, 32, requesters),
                |mut s| black_box(drain(&mut s, batch, &mut out)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Full cycle: every node asks for one unit, returns the correct result; units
/// complete when their quorum agrees. Counts verified units.
fn cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("cycle_100k_units_10k_nodes");
    g.sample_size(10);
    for &(name, q, adaptive, trusted) in &[
        ("q1", 1u8, false, false),
        ("q2", 2, false, false),
        ("q2_adaptive_trusted", 2, true, true),
    ] {
        g.throughput(Throughput::Elements(u64::from(UNITS)));
        g.bench_function(name, |b| {
            b.iter_batched(
                || setup(q, adaptive, trusted, 4, 1),
                |mut s| {
                    let mut out = Vec::new();
                    let mut decisions: Vec<Decision<u64>> = Vec::new();
                    let mut completed = 0u32;
                    let mut t = 1;
                    while completed < UNITS {
                        for i in 0..NODES {
                            out.clear();
                            s.request_work(&i, 4, t, &mut out).expect("request");
                            for a in &out {
                                decisions.clear();
                                let d = correct_digest(a.unit, FUEL);
                                s.submit_result(&i, a.unit, d, t, &mut decisions)
                                    .expect("result");
                                completed += decisions
                                    .iter()
                                    .filter(|d| matches!(d, Decision::Completed(_)))
                                    .count() as u32;
                            }
                        }
                        t += 1;
                    }
                    black_box(completed)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, assignment, cycle);
criterion_main!(benches);
