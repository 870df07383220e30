//! Anti-cheat consequences on a real network (issue 8): adversarial `lode node`
//! processes among honest ones, a real gateway, the ledger read back through the
//! CLI and `LedgerView`.

mod common;

use common::*;
use lode_ledger::{EventKind, LedgerView, PenaltyReason};
use std::time::Duration;

const UNITS: usize = 100;

fn wallet_history(net: &Net, did: &str) -> serde_json::Value {
    let dir = net.data_dir();
    let args = ["wallet", "history", did, "--json", "--data-dir"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.push(dir.as_os_str());
    serde_json::from_slice(&lode_ok(&args).stdout).expect("history json")
}

/// The details of a node's `Penalty{InvalidResult}` entries on the ledger.
fn invalid_result_penalties(view: &LedgerView, did: &lode_proto::Did) -> Vec<String> {
    view.history(did, 10_000)
        .expect("history")
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Penalized {
                reason: PenaltyReason::InvalidResult,
                detail,
                ..
            } => Some(detail),
            _ => None,
        })
        .collect()
}

/// Every verified output is the right SHA-256 of its input.
fn assert_outputs_correct(results: &[lode_client::UnitResult], inputs: &[Vec<u8>]) {
    let tmp = tempfile::tempdir().expect("tmp");
    let native = native_build("sha256", tmp.path());
    for (r, input) in results.iter().zip(inputs) {
        assert_eq!(
            r.stdout_bytes().expect("stdout"),
            expected_sha256(native.as_deref(), input),
            "unit {}",
            r.unit
        );
    }
}

#[test]
fn always_wrong_node_is_rejected_penalized_on_the_ledger_and_never_paid() {
    // Honest nodes hold only what they run (no prefetch queue), so they cannot
    // take every unit before the cheater's first poll on a loaded machine.
    let mut net = Net::start(0, 600_000);
    for i in 0..4 {
        net.add_node_with(i, &["--max-prefetch", "0"]);
    }
    net.add_node_with(4, &["--behaviour", "wrong-output:1000"]);
    net.wait_nodes(5, Duration::from_secs(60));
    let cheater = net.node_keys[4].did();
    let inputs = inputs(UNITS, 11);
    let job = run_sha256(&net, &inputs, 2, false);

    // Zero wrong outputs accepted; the cheater is credited nowhere.
    let results = net
        .client()
        .results(&net.requester.keypair, &job)
        .expect("results");
    assert_outputs_correct(&results, &inputs);
    for r in &results {
        assert!(
            !r.credited.contains(&cheater.to_string()),
            "unit {}",
            r.unit
        );
    }

    // /v1/nodes: its rejected results and flags with evidence.
    let nodes: serde_json::Value = net.client().get_json("/v1/nodes").expect("nodes");
    let me = node_entry(&net, &cheater);
    eprintln!("cheater: {me}");
    let rejected = me["results_invalid"].as_u64().expect("results_invalid");
    assert!(rejected >= 1, "{me}");
    assert_eq!(me["results_valid"], 0, "{me}");
    let flags: Vec<&str> = me["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    if rejected >= 10 {
        assert!(flags.contains(&"HighDissent"), "{me}");
    }
    for f in &flags {
        let ev = me["flag_evidence"].as_array().expect("evidence");
        assert!(
            ev.iter()
                .any(|e| e["kind"] == *f && !e["detail"].as_str().unwrap_or("").is_empty()),
            "flag {f} without evidence: {me}"
        );
    }
    // Honest nodes: no rejected results.
    for n in nodes["nodes"].as_array().expect("nodes") {
        if n["node"] != cheater.to_string() {
            assert_eq!(n["results_invalid"], 0, "{n}");
        }
    }

    // The ledger: one InvalidResult penalty per rejected result, naming the
    // unit and both results; no receipt and no fee for the cheater.
    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let st = view.state();
    let n = st.node(&cheater).expect("cheater registered");
    assert_eq!((n.receipts, n.fees_total), (0, 0));
    assert!(n.penalties >= rejected, "{n:?}");
    let events = view.history(&cheater, 1_000).expect("history");
    let invalid: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Penalized {
                reason: PenaltyReason::InvalidResult,
                unit,
                detail,
                ..
            } => Some((unit, detail)),
            _ => None,
        })
        .collect();
    // (A late replica of an already decided unit may add one after `rejected`
    // was read.)
    assert!(invalid.len() as u64 >= rejected);
    assert!(
        invalid
            .iter()
            .all(|(u, d)| u.is_some() && d.contains("not credited"))
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::FeeEarned { .. }))
    );
    // Fees: exactly two credited honest replicas per unit, each fuel × price.
    let job_id: lode_proto::Hash32 = job.parse().expect("job id");
    let lj = st.job(&job_id).expect("job");
    let fuel: u128 = results
        .iter()
        .map(|r| {
            assert_eq!(r.credited.len(), 2);
            u128::from(r.fuel_used.expect("fuel")) * 2
        })
        .sum();
    assert_eq!(lj.paid, fuel * 1_000);

    // `lode wallet history` of the operator (the node operates itself) says why.
    let h = wallet_history(&net, &cheater.to_string());
    let text = h.to_string();
    assert!(text.contains("invalid_result"), "{text}");
}

/// Sybil policy: 10 nodes behind one IP (the gateway groups loopback clients by
/// source address) share one node's reward weight. With one honest node and
/// quorum 2 every unit runs once on the honest node and once in the swarm, so
/// the swarm as a whole does exactly the honest node's work: it is paid the
/// same fees for it, and earns a tenth of its epoch rewards.
#[test]
fn sybil_swarm_behind_one_ip_earns_no_more_than_one_honest_node() {
    let mut net = Net::start_with(0, 4_000, &["--group-loopback"]);
    net.add_node_with(0, &["--source-ip", "127.0.0.10"]);
    for i in 1..11 {
        net.add_node_with(i, &["--source-ip", "127.0.0.20"]);
    }
    net.wait_nodes(11, Duration::from_secs(60));
    run_sha256(&net, &inputs(40, 5), 2, false);
    // Let the epoch with the work close.
    std::thread::sleep(Duration::from_millis(net.epoch_ms + 1_500));
    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let st = view.state();
    let node = |i: usize| st.node(&net.node_keys[i].did()).expect("node").clone();
    let honest = node(0);
    let swarm: Vec<_> = (1..11).map(node).collect();
    let swarm_rewards: u128 = swarm.iter().map(|n| n.rewards_total).sum();
    let swarm_fees: u128 = swarm.iter().map(|n| n.fees_total).sum();
    assert_eq!(swarm_fees, honest.fees_total, "same work, same fees");
    assert!(honest.rewards_total > 0);
    assert!(
        swarm_rewards <= honest.rewards_total,
        "swarm {swarm_rewards} vs honest {}",
        honest.rewards_total
    );
    // Exactly a tenth (each epoch: swarm weight × 1,000 bps = honest weight ×
    // 10,000 / 10), up to one base unit of rounding per node and epoch.
    let epochs = st.epoch_records().count() as u128;
    let tenth = honest.rewards_total / 10;
    assert!(
        swarm_rewards.abs_diff(tenth) <= 11 * epochs,
        "{swarm_rewards} vs {tenth}"
    );
    assert!(swarm.iter().all(|n| n.reward_bps == 1_000));
    assert_eq!(honest.reward_bps, 10_000);
    let h = view.history(&net.node_keys[5].did(), 100).expect("history");
    assert!(h.iter().any(|e| matches!(&e.kind,
        EventKind::RewardWeightSet { reward_bps: 1_000, reason, .. } if reason.contains("9 other"))));
}

/// A colluding swarm behind one IP never wins a quorum (one IP group < q = 2)
/// and is never paid a fee or a reward.
#[test]
fn colluding_swarm_never_wins_and_earns_nothing() {
    let mut net = Net::start_with(0, 600_000, &["--group-loopback"]);
    for i in 0..3 {
        net.add_node_with(i, &["--source-ip", &format!("127.0.0.{}", 10 + i)]);
    }
    for i in 3..7 {
        let b = ["--behaviour", "colluding:1000", "--source-ip", "127.0.0.20"];
        net.add_node_with(i, &b);
    }
    net.wait_nodes(7, Duration::from_secs(60));
    let job = run_sha256(&net, &inputs(40, 9), 2, false);
    let results = net
        .client()
        .results(&net.requester.keypair, &job)
        .expect("results");
    let swarm: Vec<String> = (3..7).map(|i| net.node_keys[i].did().to_string()).collect();
    for r in &results {
        let out = r.stdout_bytes().expect("stdout");
        assert!(!out.ends_with(b"(colluded)"), "unit {}", r.unit);
        assert!(
            r.credited.iter().all(|c| !swarm.contains(c)),
            "unit {}",
            r.unit
        );
    }
    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let st = view.state();
    for i in 3..7 {
        let n = st.node(&net.node_keys[i].did()).expect("node");
        assert_eq!((n.fees_total, n.rewards_total), (0, 0), "node {i}");
    }
    // The adversaries' rejected results are on the ledger with their reason.
    let rejected: usize = (3..7)
        .map(|i| invalid_result_penalties(&view, &net.node_keys[i].did()).len())
        .sum();
    assert!(rejected > 0);
}

/// An intermittent cheater (wrong on 30 % of its units, each wrong output its
/// own) among honest nodes at full quorum 2: none of its wrong outputs is
/// accepted, each is a ledger penalty, and it is paid exactly for the correct
/// results it was credited with.
#[test]
fn intermittent_cheater_is_never_accepted_and_paid_only_for_correct_work() {
    // No prefetch anywhere, so the units spread over the nodes instead of going
    // to whichever node asked first for a queue of them.
    let mut net = Net::start(0, 600_000);
    for i in 0..4 {
        net.add_node_with(i, &["--max-prefetch", "0"]);
    }
    net.add_node_with(
        4,
        &["--max-prefetch", "0", "--behaviour", "wrong-output:300"],
    );
    net.wait_nodes(5, Duration::from_secs(60));
    let cheater = net.node_keys[4].did();
    let inputs = inputs(UNITS, 23);
    let job = run_sha256(&net, &inputs, 2, false);

    let results = net
        .client()
        .results(&net.requester.keypair, &job)
        .expect("results");
    assert_outputs_correct(&results, &inputs);
    let credited_fuel: u128 = results
        .iter()
        .filter(|r| r.credited.contains(&cheater.to_string()))
        .map(|r| u128::from(r.fuel_used.expect("fuel")))
        .sum();
    let me = node_entry(&net, &cheater);
    let (valid, invalid) = (
        me["results_valid"].as_u64().expect("valid"),
        me["results_invalid"].as_u64().expect("invalid"),
    );
    // It cheated (and was caught) at least once; whatever it was credited with
    // is a correct result, checked above.
    assert!(invalid >= 1, "{me}");
    eprintln!("cheater: {valid} valid, {invalid} invalid results");

    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let n = view
        .state()
        .node(&cheater)
        .expect("cheater registered")
        .clone();
    assert_eq!(n.fees_total, credited_fuel * 1_000, "{n:?}");
    let penalties = invalid_result_penalties(&view, &cheater).len() as u64;
    // Every rejected result seen over the API is a penalty on the ledger (a late
    // replica of a decided unit may add one after that reading).
    assert!(
        penalties >= invalid,
        "{penalties} penalties, {invalid} invalid"
    );
}

/// A lazy node runs its first units, then replays the last output it computed
/// (with its real fuel) instead of running anything: every replay is rejected by
/// the honest quorum and is a ledger penalty, and it is paid only for the units
/// it really ran.
#[test]
fn lazy_node_replaying_old_outputs_is_rejected_and_paid_only_for_real_work() {
    let mut net = Net::start(0, 600_000);
    for i in 0..4 {
        net.add_node_with(i, &["--max-prefetch", "0"]);
    }
    net.add_node_with(4, &["--max-prefetch", "0", "--behaviour", "lazy:1000"]);
    net.wait_nodes(5, Duration::from_secs(60));
    let lazy = net.node_keys[4].did();
    let inputs = inputs(60, 31);
    let job = run_sha256(&net, &inputs, 2, false);

    let results = net
        .client()
        .results(&net.requester.keypair, &job)
        .expect("results");
    assert_outputs_correct(&results, &inputs);
    let credited: Vec<_> = results
        .iter()
        .filter(|r| r.credited.contains(&lazy.to_string()))
        .collect();
    let me = node_entry(&net, &lazy);
    eprintln!("lazy: {me}");
    let invalid = me["results_invalid"].as_u64().expect("invalid");
    // It ran at most one unit per slot (2) before it had something to replay;
    // everything else it returned was a replay, and each one was rejected.
    assert!(credited.len() <= 2, "{} credited: {me}", credited.len());
    assert!(invalid >= 3, "{me}");

    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let n = view.state().node(&lazy).expect("registered").clone();
    let credited_fuel: u128 = credited
        .iter()
        .map(|r| u128::from(r.fuel_used.expect("fuel")))
        .sum();
    assert_eq!(n.fees_total, credited_fuel * 1_000, "{n:?}");
    let penalties = invalid_result_penalties(&view, &lazy);
    assert!(penalties.len() as u64 >= invalid, "{penalties:?}");
    // The replays claim real work (the fuel of the unit they came from).
    assert!(
        penalties
            .iter()
            .all(|d| d.starts_with("returned output") && !d.contains(" fuel 0;")),
        "{penalties:?}"
    );
}

/// Penalties are kept in the gateway store until a sealed block holds them: a
/// gateway killed with `kill -9` before it sealed the rejected results' block
/// submits them again when it restarts (as it does receipts and settlements).
#[test]
fn penalties_and_settlements_survive_a_gateway_kill9_before_the_seal() {
    // No block is sealed on the timer: everything after the job's escrow block
    // waits in the ledger's pending pool when the gateway is killed.
    let mut net = Net::start_with(3, 600_000, &["--block-interval-ms", "600000"]);
    net.add_node_with(3, &["--behaviour", "wrong-output:1000"]);
    net.wait_nodes(4, Duration::from_secs(60));
    let cheater = net.node_keys[3].did();
    run_sha256(&net, &inputs(20, 41), 2, false);
    let invalid = node_entry(&net, &cheater)["results_invalid"]
        .as_u64()
        .expect("results_invalid");
    assert!(invalid >= 1);
    net.kill9_gateway();
    let penalties = |net: &Net| {
        let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
        let p = invalid_result_penalties(&view, &cheater).len() as u64;
        let open_jobs = view.state().jobs().filter(|(_, j)| !j.closed).count();
        (p, open_jobs)
    };
    // Killed before the seal: nothing of it is on the ledger yet.
    assert_eq!(penalties(&net), (0, 1));

    net.gateway_args.clear();
    net.start_gateway();
    net.stop_gateway();
    let (p, open_jobs) = penalties(&net);
    assert!(
        p >= invalid,
        "{p} penalties on the ledger, {invalid} rejected results"
    );
    assert_eq!(open_jobs, 0, "the job's settlement was restored");
}
