//! Colluders in a network as small as the real-process bench's (10–11 nodes,
//! one slot each): measured in the scheduler simulation against the exact
//! finite-network race of ARCHITECTURE.md, for several run-time jitters.
//!
//! `cargo run --release -p lode-sched --example small_net_collusion`

use lode_sched::{analysis, sim};

fn main() {
    println!(
        "| N | colluders | q / M | jitter | measured | derived (measured f_p) | σ | f_p | units |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &(n, c, q, max) in &[(10u64, 2u64, 2u8, 3u8), (11, 3, 3, 5)] {
        for &jitter in &[0u32, 100, 500] {
            let (mut units, mut wrong, mut hp, mut cp) = (0u64, 0u64, 0u64, 0u64);
            for seed in 0..16 {
                let f = c as f64 / n as f64;
                let mut s = sim::collusion_scenario(300 + seed, n, f, None, 5_000, q, max, false);
                s.jitter_permille = jitter;
                let r = sim::run(s).expect("simulation");
                units += r.completed + r.failed.len() as u64;
                wrong += r.wrong_accepted;
                hp += r.honest.primary_units;
                cp += r.colluder.primary_units;
            }
            let fp = cp as f64 / (cp + hp).max(1) as f64;
            let draw = analysis::colluder_draw_finite(n, c, None);
            let (derived, _) = analysis::collusion_rates(q, max, fp, &draw, None);
            let measured = wrong as f64 / units as f64;
            let sigma = (derived * (1.0 - derived) / units as f64).sqrt();
            println!(
                "| {n} | {c} | {q} / {max} | ±{jitter}‰ | {measured:.4} | {derived:.4} | {:+.1}σ | {fp:.3} | {units} |",
                (measured - derived) / sigma
            );
        }
    }
}
