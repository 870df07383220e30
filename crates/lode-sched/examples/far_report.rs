//! Prints the false-acceptance and overhead tables of docs/design/lode-sched.md:
//! derived probabilities next to seeded-simulation measurements.
//!
//! `cargo run --release -p lode-sched --example far_report`

use lode_sched::analysis;
use lode_sched::sim;

fn main() {
    cheaters();
    collusion();
    overhead();
}

fn cheaters() {
    println!("## Intermittent cheater (wrong 10% while trusted), T = 10\n");
    println!("25 honest nodes + 25 cheaters, one slot each, equal speed; 8 seeds × 100,000 units.");
    println!(
        "FAR = wrong results accepted per result the cheaters return; v = share of their results that verify other nodes' units.\n"
    );
    println!(
        "| setting | FAR derived (v = 0) | FAR derived (v = measured) | FAR measured | share of wrong accepted: derived | measured | cheater results (trials) | wrong returned | wrong accepted | v |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &(name, q, adaptive) in &[
        ("adaptive, q = 2", 2u8, true),
        ("adaptive, q = 3", 3, true),
        ("full quorum (opt-out), q = 2", 2, false),
    ] {
        let (mut results, mut wrong, mut acc, mut primary) = (0u64, 0u64, 0u64, 0u64);
        for seed in 0..8 {
            let r = sim::run(sim::cheater_scenario(
                100 + seed,
                25,
                25,
                100,
                100_000,
                q,
                adaptive,
            ))
            .expect("simulation");
            assert!(r.failed.is_empty() && r.double_credits == 0);
            results += r.intermittent.results;
            wrong += r.intermittent.wrong;
            acc += r.intermittent.wrong_accepted;
            primary += r.intermittent.primary;
        }
        let v = 1.0 - primary as f64 / results as f64;
        let (d0, dv, dw) = if adaptive {
            let r = analysis::intermittent_cheater(10, 0.1, v, u32::MAX);
            (
                analysis::intermittent_cheater_closed_form(10, 0.1),
                r.far_per_result,
                r.accepted_per_wrong,
            )
        } else {
            (0.0, 0.0, 0.0)
        };
        println!(
            "| {name} | {d0:.4} | {dv:.4} | {:.4} | {dw:.3} | {:.3} | {results} | {wrong} | {acc} | {v:.3} |",
            acc as f64 / results as f64,
            acc as f64 / wrong.max(1) as f64
        );
    }
    println!();
}

fn collusion() {
    println!("## Colluding group (same wrong output), 200 nodes\n");
    println!(
        "One slot each, equal speed; 4 seeds × 25,000 units per row. FAR = wrong results accepted per unit."
    );
    println!(
        "groups: own = every colluder its own operator and IP group (disguised); 1 or 2 = colluders share that many groups.\n"
    );
    println!(
        "| q | max | f | groups | trust | derived (large N) | derived (N = 200) | measured | failed: derived | failed: measured | units | colluder share of first replicas | r (honest replicated) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &(q, max) in &[(2u8, 2u8), (2, 3), (3, 4), (3, 5)] {
        for &f in &[0.1, 0.2, 0.3] {
            for &groups in &[None, Some(2u32), Some(1)] {
                if groups.is_some() && f != 0.2 {
                    continue;
                }
                for &adaptive in &[false, true] {
                    let (mut units, mut wrong, mut hp, mut hpr) = (0u64, 0u64, 0u64, 0u64);
                    let (mut failed, mut cp) = (0u64, 0u64);
                    for seed in 0..4 {
                        let r = sim::run(sim::collusion_scenario(
                            200 + seed,
                            200,
                            f,
                            groups,
                            25_000,
                            q,
                            max,
                            adaptive,
                        ))
                        .expect("simulation");
                        units += r.completed + r.failed.len() as u64;
                        wrong += r.wrong_accepted;
                        hp += r.honest.primary_units;
                        cp += r.colluder.primary_units;
                        failed += r.failed.len() as u64;
                        hpr += r.honest.primary_units_replicated;
                    }
                    let rr = hpr as f64 / hp.max(1) as f64;
                    let fp = cp as f64 / (cp + hp).max(1) as f64;
                    let colluders = (f * 200.0_f64).round() as u64;
                    let p = analysis::colluder_draw_finite(200, colluders, groups);
                    let (derived, dfail) =
                        analysis::collusion_rates(q, max, fp, &p, adaptive.then_some(rr));
                    let (large_n, _) = analysis::collusion_rates(
                        q,
                        max,
                        fp,
                        &analysis::colluder_draw(f, groups),
                        adaptive.then_some(rr),
                    );
                    println!(
                        "| {q} | {max} | {f} | {} | {} | {large_n:.4} | {derived:.4} | {:.4} | {dfail:.4} | {:.4} | {units} | {fp:.3} | {} |",
                        groups.map_or("own".to_string(), |g| g.to_string()),
                        if adaptive { "adaptive" } else { "full" },
                        wrong as f64 / units as f64,
                        failed as f64 / units as f64,
                        if adaptive {
                            format!("{rr:.3}")
                        } else {
                            "1".into()
                        }
                    );
                }
            }
        }
    }
    println!();
}

fn overhead() {
    println!("## Replication overhead, honest stable network, adaptive q = 2\n");
    println!("Overhead = replicas assigned / units completed − 1 (seed 7; one run per row).\n");
    println!("| nodes | units per node | derived ≈ sqrt(T²+4n)/(2n) | measured | plain q = 2 |");
    println!("|---|---|---|---|---|");
    for &(nodes, per) in &[
        (20u64, 50u32),
        (20, 100),
        (20, 200),
        (20, 500),
        (20, 1000),
        (100, 1000),
    ] {
        let units = nodes as u32 * per;
        let a =
            sim::run(sim::cheater_scenario(7, nodes, 0, 0, units, 2, true)).expect("simulation");
        let p =
            sim::run(sim::cheater_scenario(7, nodes, 0, 0, units, 2, false)).expect("simulation");
        println!(
            "| {nodes} | {per} | {:.1}% | {:.1}% | {:.1}% |",
            analysis::adaptive_overhead(10, f64::from(per)) * 100.0,
            a.overhead() * 100.0,
            p.overhead() * 100.0
        );
    }
}
