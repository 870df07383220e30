//! Speed liars on a real network (issue 8): nodes announcing a speed they do not
//! have. One claims more than any core can do (flagged `ImpossibleClaim` when it
//! joins, scheduled at the ceiling); one claims a believable speed its results
//! belie (flagged `SlowerThanClaimed` from the time its units take). Both are
//! down-weighted on the ledger with the evidence; the honest node is not flagged.
//!
//! A test binary of its own: the flags depend on wall-clock run times, so the
//! units must not share the CPU with other tests' networks.

mod common;

use common::*;
use lode_ledger::{EventKind, LedgerView, PenaltyReason};
use std::time::Duration;

/// Ceiling of the test gateway (fuel/s per slot) and the two liars' claims.
const CEILING: u64 = 500_000_000_000;
/// Below the ceiling, and beyond the slow tolerance (16×) of any core: a core
/// burns ~10¹⁰ fuel/s on this sieve, and several times less when the nodes share
/// CI's two cores.
const BELIEVABLE_LIE: u64 = 400_000_000_000;
const IMPOSSIBLE_LIE: u64 = 1_000_000_000_000;

/// A prime sieve over `n` (about 60 fuel per number: ~1.2·10⁹ fuel, ~0.2 s here).
fn primes_job(net: &Net, ns: &[u64]) -> String {
    let spec = lode_proto::jobspec::JobSpec::from_toml(
        "name = 'primes'\nmodule = 'primes.wasm'\n[inputs]\nstdin = ['1']\n[limits]\nfuel = 5000000000\nmemory_mb = 64\n\
         [verification]\nquorum = 2\nmax_replicas = 4\nadaptive_trust = false\n[price]\nmax_per_fuel = 1\n",
    )
    .expect("spec");
    submit_job(
        net,
        "primes.wasm",
        &spec,
        ns.iter().map(|n| n.to_string().into_bytes()),
    )
}

fn flags(n: &serde_json::Value) -> Vec<String> {
    n["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f.as_str().map(String::from))
        .collect()
}

fn evidence(n: &serde_json::Value, kind: &str) -> String {
    n["flag_evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .find(|e| e["kind"] == kind)
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_else(|| panic!("no {kind} evidence: {n}"))
        .to_string()
}

#[test]
fn speed_liars_are_flagged_with_evidence_and_down_weighted() {
    let ceiling = CEILING.to_string();
    let mut net = Net::start_with(
        0,
        600_000,
        &["--max-claimed-speed", &ceiling, "--slow-grace-ms", "100"],
    );
    let one_slot = ["--slots", "1", "--max-prefetch", "0"];
    net.add_node_with(0, &one_slot);
    let believable = BELIEVABLE_LIE.to_string();
    let impossible = IMPOSSIBLE_LIE.to_string();
    net.add_node_with(
        1,
        &[&one_slot[..], &["--claim-speed", &believable]].concat(),
    );
    net.add_node_with(
        2,
        &[&one_slot[..], &["--claim-speed", &impossible]].concat(),
    );
    net.wait_nodes(3, Duration::from_secs(60));
    let [honest, liar, absurd] = [0, 1, 2].map(|i| net.node_keys[i].did());

    // The impossible claim is flagged at once and cut to the ceiling.
    let a = node_entry(&net, &absurd);
    assert!(flags(&a).contains(&"ImpossibleClaim".into()), "{a}");
    assert!(evidence(&a, "ImpossibleClaim").contains(&impossible), "{a}");
    assert_eq!(a["speed_fuel_per_s"], CEILING, "{a}");

    // 45 units × 2 replicas of ~0.2 s each: every node returns well over the 10
    // results a ratio flag needs.
    let ns: Vec<u64> = (0..45).map(|i| 20_000_000 - i * 10_000).collect();
    let job = primes_job(&net, &ns);
    let v = net
        .client()
        .wait(&job, Duration::from_millis(200), Duration::from_secs(300))
        .expect("wait");
    assert_eq!(
        (v.status.as_str(), v.completed, v.failed),
        ("finished", 45, 0),
        "{v:?}"
    );

    let h = node_entry(&net, &honest);
    let l = node_entry(&net, &liar);
    eprintln!("honest: {h}\nliar: {l}");
    assert!(flags(&h).is_empty(), "honest node flagged: {h}");
    assert!(h["results_valid"].as_u64().unwrap_or(0) >= 10, "{h}");
    assert!(flags(&l).contains(&"SlowerThanClaimed".into()), "{l}");
    assert!(
        evidence(&l, "SlowerThanClaimed").contains(&believable),
        "{l}"
    );

    // The ledger: an ImpossibleSpeed penalty with the evidence for each liar, and
    // their reward multiplier halved; the honest node keeps its full weight.
    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let st = view.state();
    assert_eq!(st.node(&honest).expect("honest").reward_bps, 10_000);
    for (did, kind) in [(&liar, "SlowerThanClaimed"), (&absurd, "ImpossibleClaim")] {
        let n = st.node(did).expect("liar registered");
        assert_eq!(n.reward_bps, 5_000, "{kind}: {n:?}");
        let events = view.history(did, 1_000).expect("history");
        assert!(
            events.iter().any(|e| matches!(
                &e.kind,
                EventKind::Penalized { reason: PenaltyReason::ImpossibleSpeed, detail, .. }
                    if detail.contains(kind)
            )),
            "{kind}: {events:?}"
        );
    }
}
