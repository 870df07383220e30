//! The dashboard's JSON views after a job ran on a real network (gateway and
//! two nodes as `lode` processes): snapshot, leaderboard, a node's earnings,
//! the block explorer's checks, and the Gini figure of `lode ledger fairness`.

mod common;

use common::*;
use lode_ledger::LedgerView;
use serde_json::Value;
use std::time::{Duration, Instant};

fn amount(v: &Value) -> u128 {
    v.as_str()
        .unwrap_or_else(|| panic!("amount {v} is not a string"))
        .parse()
        .unwrap_or_else(|_| panic!("amount {v} is not a base-unit integer"))
}

/// Polls the snapshot until `ready` holds (bounded so a stall fails the test).
fn snapshot_when(net: &Net, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v: Value = net.client().get_json("/v1/dashboard").expect("snapshot");
        if ready(&v) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: never happened; last snapshot {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dashboard_views_after_a_job() {
    let mut net = Net::start(2, 3_000);
    net.wait_nodes(2, Duration::from_secs(60));
    let inputs = inputs(12, 5);
    let job = submit_sha256(&net, &inputs, 2, false);
    let client = net.client();
    let done = client
        .wait(&job, Duration::from_millis(100), Duration::from_secs(120))
        .expect("wait");
    assert_eq!((done.status.as_str(), done.completed), ("finished", 12));

    // Settled, and every epoch with work in it closed (nothing left to estimate).
    let snap = snapshot_when(&net, "settlement and epoch rewards", |v| {
        let lb = v["leaderboard"].as_array().cloned().unwrap_or_default();
        lb.len() == 2
            && lb.iter().all(|r| {
                amount(&r["fees"]) > 0
                    && amount(&r["rewards"]) > 0
                    && amount(&r["estimated_reward"]) == 0
                    && amount(&r["unsettled_fees"]) == 0
            })
    });

    // Nodes online, with what they announced.
    assert_eq!(snap["nodes_online"], 2);
    let node_dids: Vec<String> = net.node_keys.iter().map(|k| k.did().to_string()).collect();
    for n in snap["nodes"].as_array().expect("nodes") {
        assert!(node_dids.contains(&n["node"].as_str().unwrap_or("").to_string()));
        assert_eq!(n["cpu_slots"], 2);
        assert!(n["speed_fuel_per_s"].as_u64().unwrap_or(0) > 0);
        assert!(amount(&n["earned"]) > 0);
    }
    // The job at 100 %, its cost the fees the leaderboard shows.
    let j = &snap["jobs"][0];
    assert_eq!(j["job"], job.as_str());
    assert_eq!(
        (j["completed"].as_u64(), j["units"].as_u64()),
        (Some(12), Some(12))
    );
    assert_eq!(j["status"], "finished");
    assert_eq!(snap["totals"]["units_verified"], 12);
    let lb = snap["leaderboard"].as_array().expect("leaderboard");
    let fees: u128 = lb.iter().map(|r| amount(&r["fees"])).sum();
    assert_eq!(
        fees,
        amount(&j["cost_so_far"]),
        "fees paid = the job's cost"
    );
    for r in lb {
        assert_eq!(
            amount(&r["total"]),
            amount(&r["fees"]) + amount(&r["rewards"])
        );
        assert_eq!(
            r["receipts"], 12,
            "quorum 2 on 2 nodes: each ran every unit"
        );
    }
    let series = snap["throughput"]["series"].as_array().expect("series");
    let charted: u64 = series.iter().map(|p| p[1].as_u64().unwrap_or(0)).sum();
    assert!(charted > 0 && charted <= 12, "throughput chart: {charted}");
    let t = &snap["tokenomics"];
    assert_eq!(t["rewarded_nodes"], 2);
    let emitted = amount(&t["emission"]["emitted"]);
    let rewards: u128 = lb.iter().map(|r| amount(&r["rewards"])).sum();
    assert_eq!(emitted, rewards, "emission so far = rewards paid");

    // One node's earnings over time: its fee for the job and its rewards.
    let did = &node_dids[0];
    let e: Value = client
        .get_json(&format!("/v1/accounts/{did}/earnings"))
        .expect("earnings");
    let row = lb.iter().find(|r| r["node"] == did.as_str()).expect("row");
    assert_eq!(e["total"], row["total"]);
    let events = e["events"].as_array().expect("events");
    let fee = events
        .iter()
        .find(|x| x["kind"] == "fee")
        .expect("a fee event");
    assert_eq!(fee["job"], job.as_str());
    assert_eq!(fee["amount"], row["fees"]);
    assert!(fee["time_ms"].as_u64().unwrap_or(0) > 0);
    let last = events.last().expect("events");
    assert_eq!(
        last["cumulative"], e["total"],
        "cumulative ends at the total"
    );
    let sum: u128 = events.iter().map(|x| amount(&x["amount"])).sum();
    assert_eq!(sum, amount(&e["total"]));

    // The explorer: every block checks out; the receipts and the settlement are there.
    let page: Value = client
        .get_json("/v1/ledger/blocks?limit=50")
        .expect("blocks");
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for b in page["blocks"].as_array().expect("blocks") {
        assert_eq!(b["verification"]["ok"], true, "{b}");
        let h = b["height"].as_u64().expect("height");
        let v: Value = client
            .get_json(&format!("/v1/ledger/blocks/{h}?limit=500"))
            .expect("block");
        assert_eq!(v["block"]["verification"]["entries_root"], true);
        for entry in v["entries"].as_array().expect("entries") {
            assert_eq!(entry["verified"], true, "{entry}");
            *kinds
                .entry(entry["kind"].as_str().unwrap_or("").into())
                .or_default() += 1;
            if entry["kind"] == "settlement" {
                assert_eq!(amount(&entry["amount"]), amount(&j["escrowed"]));
            }
            if entry["kind"] == "work_receipt" {
                assert!(entry["fuel"].as_u64().unwrap_or(0) > 0);
                assert_eq!(entry["authority"], "validator");
            }
        }
    }
    assert_eq!(kinds.get("work_receipt"), Some(&24), "{kinds:?}");
    assert_eq!(kinds.get("settlement"), Some(&1), "{kinds:?}");
    assert_eq!(kinds.get("register_node"), Some(&2), "{kinds:?}");

    // Gini: the figure `lode ledger fairness` computes (rewards no longer change).
    let gini = snap["tokenomics"]["gini"]
        .as_str()
        .expect("gini")
        .to_string();
    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    assert_eq!(
        gini,
        format!("{:.4}", view.state().fairness().contributor_gini)
    );
}
