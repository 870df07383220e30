//! Prints the stake-backed trust tables of docs/design/staking.md and
//! BENCHMARKS.md: an intermittent cheater's profit under plain adaptive trust,
//! under slashing alone and under slashing with the cover, by stake and safety
//! multiple; and what the cover costs honest nodes (extra replicas per unit).
//!
//! `cargo run --release -p lode-sched --example stake_trust [SEEDS]` (default 4)
//!
//! Value unit: one unit's fuel limit (10⁹ fuel) at price 1. A proven fault
//! slashes 10 % of the stake; the cover is `stake × 10 % / multiple`.

use lode_sched::sim::{self, SimReport};

const UNIT: i128 = 1_000_000_000;

fn runs(seeds: u64, f: impl Fn(u64) -> sim::SimSetup) -> Vec<SimReport> {
    (0..seeds)
        .map(|s| sim::run(f(s)).expect("simulation"))
        .collect()
}

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4);
    println!("## Intermittent cheater's profit (wrong 10 % of units while trusted)\n");
    println!(
        "25 honest nodes + 25 cheaters, one slot each, quorum 2, adaptive trust (T = 10), \
         {seeds} seeds × 20,000 units. Profit = what the cheaters were paid for accepted \
         wrong results − stake slashed, in units of value, per 1,000 units of work.\n"
    );
    println!(
        "| stake per node (units) | multiple | cover (units) | profit: plain | profit: slashing only | profit: slashing + cover | wrong accepted / 1,000: plain → cover | slashes | forced checks / 1,000 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(stake, multiple) in &[
        (5u128, 2u32),
        (20, 1),
        (20, 2),
        (20, 4),
        (100, 2),
        (1_000, 2),
    ] {
        let total = |rs: &[SimReport]| -> (i128, u64, u64, u64, u64) {
            rs.iter().fold((0, 0, 0, 0, 0), |a, r| {
                (
                    a.0 + r.intermittent.cheating_profit(),
                    a.1 + r.wrong_accepted,
                    a.2 + r.intermittent.slashes,
                    a.3 + r.stake_checks,
                    a.4 + r.units,
                )
            })
        };
        let case = |stake, cover| {
            runs(seeds, |s| {
                sim::stake_scenario(9000 + s, 25, 25, 100, 20_000, 2, stake, cover, multiple)
            })
        };
        let plain = total(&case(0, false));
        let slash = total(&case(stake, false));
        let covered = total(&case(stake, true));
        let per_k = |v: i128, units: u64| v as f64 / UNIT as f64 * 1_000.0 / units as f64;
        let rate = |n: u64, units: u64| n as f64 * 1_000.0 / units as f64;
        println!(
            "| {stake} | {multiple} | {:.1} | {:+.1} | {:+.1} | {:+.1} | {:.1} → {:.1} | {} | {:.0} |",
            stake as f64 * 0.1 / f64::from(multiple),
            per_k(plain.0, plain.4),
            per_k(slash.0, slash.4),
            per_k(covered.0, covered.4),
            rate(plain.1, plain.4),
            rate(covered.1, covered.4),
            covered.2,
            rate(covered.3, covered.4),
        );
    }
    println!("\n## What the cover costs honest nodes\n");
    println!(
        "20 honest nodes, quorum 2, adaptive trust, {seeds} seeds × 6,000 units. Overhead = \
         extra replicas per completed unit (0 = every unit ran once, 1 = every unit twice). \
         Honest nodes are never slashed (slashes: 0 in every run).\n"
    );
    println!(
        "| stake per node (units) | cover (units, multiple 2) | overhead | forced checks / 1,000 |"
    );
    println!("|---|---|---|---|");
    let plain = runs(seeds, |s| {
        sim::stake_scenario(500 + s, 20, 0, 0, 6_000, 2, 0, false, 2)
    });
    let mean = |rs: &[SimReport]| rs.iter().map(SimReport::overhead).sum::<f64>() / rs.len() as f64;
    println!(
        "| (plain adaptive trust, no stake) | — | {:.3} | — |",
        mean(&plain)
    );
    for &stake in &[0u128, 20, 200, 2_000, 20_000] {
        let rs = runs(seeds, |s| {
            sim::stake_scenario(500 + s, 20, 0, 0, 6_000, 2, stake, true, 2)
        });
        assert!(rs.iter().all(|r| r.honest.slashes == 0));
        let checks: u64 = rs.iter().map(|r| r.stake_checks).sum();
        let units: u64 = rs.iter().map(|r| r.units).sum();
        println!(
            "| {stake} | {:.1} | {:.3} | {:.0} |",
            stake as f64 * 0.1 / 2.0,
            mean(&rs),
            checks as f64 * 1_000.0 / units as f64
        );
    }
}
