//! The running network, end to end: a gateway and nodes as separate `lode`
//! processes on loopback, driven through the requester API.

mod common;

use common::*;
use lode_ledger::LedgerView;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// Verifies the ledger with the CLI, as a third party would.
fn ledger_verifies(net: &Net) {
    let dir = net.ledger_dir();
    lode_ok(&["ledger".as_ref(), "verify".as_ref(), dir.as_os_str()]);
}

#[test]
fn thousand_units_at_quorum_two_on_four_nodes() {
    let mut net = Net::start(4, 4_000);
    net.wait_nodes(4, Duration::from_secs(60));
    let inputs = inputs(1_000, 7);
    let job = run_sha256(&net, &inputs, 2, false);

    // Every output equals the native build's output.
    let tmp = tempfile::tempdir().expect("tmp");
    let native = native_build("sha256", tmp.path());
    let results = net
        .client()
        .results(&net.requester.keypair, &job)
        .expect("results");
    assert_eq!(results.len(), 1_000);
    for (r, input) in results.iter().zip(&inputs) {
        assert_eq!(r.status, "verified", "unit {}", r.unit);
        assert_eq!(
            r.credited.len(),
            2,
            "unit {} is paid to exactly the quorum",
            r.unit
        );
        assert_eq!(
            r.stdout_bytes().expect("stdout"),
            expected_sha256(native.as_deref(), input),
            "unit {}",
            r.unit
        );
    }

    // Let an epoch close so emission is paid, then stop the gateway cleanly.
    std::thread::sleep(Duration::from_millis(net.epoch_ms + 1_500));
    net.stop_gateway();
    ledger_verifies(&net);

    // The contributors' balance changes add up exactly to fees paid plus emission.
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let st = view.state();
    let job_id: lode_proto::Hash32 = job.parse().expect("job id");
    let lj = st.job(&job_id).expect("job on ledger");
    assert!(lj.closed);
    let nodes: Vec<_> = net.node_keys.iter().map(|k| k.did()).collect();
    let node_total: u128 = nodes.iter().map(|d| st.balance(d)).sum();
    let distributed: u128 = st.epoch_records().map(|e| e.distributed).sum();
    assert!(
        distributed > 0,
        "an epoch with verified work must emit rewards"
    );
    assert_eq!(
        node_total,
        lj.paid + distributed,
        "node balances = fees paid + emission"
    );
    // Fees: every credited replica paid fuel × price.
    let fuel: u128 = results
        .iter()
        .map(|r| u128::from(r.fuel_used.expect("fuel")) * 2)
        .sum();
    assert_eq!(lj.paid, fuel * 1_000);
    assert_eq!(
        lj.escrowed,
        lj.paid + lj.refunded,
        "escrow is fully accounted for"
    );
    let mut per_node: BTreeMap<String, u32> = BTreeMap::new();
    for r in &results {
        for c in &r.credited {
            *per_node.entry(c.clone()).or_default() += 1;
        }
    }
    assert!(per_node.len() >= 2, "work spread over nodes: {per_node:?}");
}

#[test]
fn job_completes_when_a_node_is_killed_mid_job() {
    let mut net = Net::start(3, 60_000);
    net.wait_nodes(3, Duration::from_secs(60));
    let inputs = inputs(300, 11);
    let job = submit_sha256(&net, &inputs, 2, false);
    let client = net.client();
    // Kill a node once some work is verified.
    loop {
        let v = client.job(&job).expect("status");
        if v.completed >= 30 || v.is_done() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    net.nodes[0].kill9();
    let v = client
        .wait(&job, Duration::from_millis(200), Duration::from_secs(300))
        .expect("wait");
    assert_eq!(
        (v.status.as_str(), v.completed, v.failed),
        ("finished", 300, 0),
        "{v:?}"
    );
    let results = client
        .results(&net.requester.keypair, &job)
        .expect("results");
    for (r, input) in results.iter().zip(&inputs) {
        assert_eq!(
            r.stdout_bytes().expect("stdout"),
            expected_sha256(None, input)
        );
    }
    net.stop_gateway();
    ledger_verifies(&net);
}

#[test]
fn gateway_kill9_and_restart_loses_nothing_and_credits_nothing_twice() {
    let mut net = Net::start(3, 60_000);
    net.wait_nodes(3, Duration::from_secs(60));
    let inputs = inputs(400, 23);
    let job = submit_sha256(&net, &inputs, 2, false);
    let client = net.client();
    loop {
        let v = client.job(&job).expect("status");
        if v.completed >= 60 || v.is_done() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // What the gateway acknowledged as verified before the crash.
    let before: BTreeMap<u32, String> = client
        .results(&net.requester.keypair, &job)
        .expect("results")
        .into_iter()
        .filter(|r| r.status == "verified")
        .map(|r| (r.unit, r.output_hash.expect("hash")))
        .collect();
    net.kill9_gateway();
    std::thread::sleep(Duration::from_millis(300));
    net.start_gateway();
    let client = net.client();
    let v = client
        .wait(&job, Duration::from_millis(200), Duration::from_secs(300))
        .expect("wait");
    assert_eq!(
        (v.status.as_str(), v.completed, v.failed),
        ("finished", 400, 0),
        "{v:?}"
    );
    let results = client
        .results(&net.requester.keypair, &job)
        .expect("results");
    for (unit, hash) in &before {
        assert_eq!(
            results[*unit as usize].output_hash.as_ref(),
            Some(hash),
            "verified unit {unit} lost or changed"
        );
    }
    for (r, input) in results.iter().zip(&inputs) {
        assert_eq!(
            r.stdout_bytes().expect("stdout"),
            expected_sha256(None, input)
        );
        assert_eq!(r.credited.len(), 2);
    }
    net.stop_gateway();
    ledger_verifies(&net);
    // Nothing credited twice: exactly quorum receipts per unit, and the escrow adds up.
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    let lj = view
        .state()
        .job(&job.parse().expect("id"))
        .expect("job")
        .clone();
    assert_eq!(lj.receipts, 400 * 2);
    let fuel: u128 = results
        .iter()
        .map(|r| u128::from(r.fuel_used.expect("fuel")) * 2)
        .sum();
    assert_eq!(lj.paid, fuel * 1_000);
    assert_eq!(lj.escrowed, lj.paid + lj.refunded);
}

#[test]
fn job_cli_submits_an_example_spec_and_fetches_results() {
    let net = Net::start(2, 60_000);
    net.wait_nodes(2, Duration::from_secs(60));
    let spec = repo_root().join("examples/jobs/sha256.toml");
    let out = Command::new(lode_bin())
        .args(["job", "submit"])
        .arg(&spec)
        .arg("--key")
        .arg(&net.requester_path)
        .args(["--gateway", &net.url, "--json"])
        .output()
        .expect("lode job submit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output parses");
    assert_eq!(v["status"], "finished");
    assert_eq!(v["completed"], 8);
    let job = v["job"].as_str().expect("job id");

    let out = Command::new(lode_bin())
        .args(["job", "results", job, "--key"])
        .arg(&net.requester_path)
        .args(["--gateway", &net.url, "--json"])
        .output()
        .expect("results");
    assert!(out.status.success());
    let results: Vec<lode_client::UnitResult> =
        serde_json::from_slice(&out.stdout).expect("results parse");
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("examples/jobs/inputs"))
        .expect("inputs")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    for (r, f) in results.iter().zip(&files) {
        let input = std::fs::read(f).expect("input");
        assert_eq!(
            r.stdout_bytes().expect("stdout"),
            expected_sha256(None, &input),
            "{}",
            f.display()
        );
    }

    // Errors say what to do.
    let out = Command::new(lode_bin())
        .args(["job", "status", &"0".repeat(64), "--gateway", &net.url])
        .output()
        .expect("status");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no job"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(lode_bin())
        .args(["job", "status", "--gateway", "http://127.0.0.1:9"])
        .output()
        .expect("status");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the gateway"));
}
