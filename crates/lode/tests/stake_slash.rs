//! Proven-fault slashing end to end, on real processes: on a chain with
//! staking, nodes sign every result as a standalone claim; a staked node that
//! returns wrong results is outvoted by the honest quorum, the gateway re-runs
//! the unit (the referee), and only then slashes the stake behind the node with
//! the node's own signed claim as evidence. A staked honest node is never
//! slashed. The ledger replays (`lode ledger verify`).

mod common;

use common::{Net, get, inputs, ledger_verify_ok, lode_run, run_sha256};
use lode_ledger::{EventKind, LedgerView, ONE_TOKEN};
use serde_json::Value;
use std::time::{Duration, Instant};

fn staking_target(url: &str, did: &str) -> Option<Value> {
    let (s, v) = get(url, "/v1/staking");
    assert_eq!(s, 200, "{v}");
    v["targets"]
        .as_array()?
        .iter()
        .find(|t| t["target"] == did)
        .cloned()
}

#[test]
fn a_staked_node_proven_wrong_is_slashed_and_an_honest_one_never() {
    let mut net = Net::start_with(
        0,
        600_000,
        &["--staking-share-bps", "1000", "--unbonding-epochs", "2"],
    );
    for i in 0..3 {
        net.add_node_with(i, &["--max-prefetch", "0"]);
    }
    net.add_node_with(
        3,
        &["--max-prefetch", "0", "--behaviour", "wrong-output:1000"],
    );
    net.wait_nodes(4, Duration::from_secs(60));
    let url = net.url.clone();
    let cheater = net.node_keys[3].did().to_string();
    let honest = net.node_keys[0].did().to_string();
    let req = net.requester_path.to_str().expect("utf-8").to_string();

    // The requester backs both nodes with 1,000 LODE each.
    for to in [&cheater, &honest] {
        let (ok, out, err) = lode_run(&[
            "stake",
            "delegate",
            "--to",
            to,
            "1000 LODE",
            "--key",
            &req,
            "--gateway",
            &url,
            "--json",
        ]);
        assert!(ok, "delegate to {to}: {out}\n{err}");
    }
    let bonded = (1_000 * ONE_TOKEN).to_string();
    assert_eq!(
        staking_target(&url, &cheater).expect("target")["power"],
        bonded.as_str()
    );

    // Quorum 2 over 4 nodes: every result of the cheater is outvoted.
    let inputs = inputs(24, 7);
    let job = run_sha256(&net, &inputs, 2, false);
    let results = net
        .client()
        .results(&net.requester.keypair, &job)
        .expect("results");
    assert!(results.iter().all(|r| !r.credited.contains(&cheater)));

    // The referee re-runs a rejected unit, then the slash is on the ledger.
    let start = Instant::now();
    let slashed = loop {
        let t = staking_target(&url, &cheater).expect("target");
        if t["slashed_total"] != "0" {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no slash of the cheater: {t}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // 10 % per proven fault (the default cap), possibly several faults.
    let power: u128 = slashed["power"]
        .as_str()
        .expect("power")
        .parse()
        .expect("int");
    assert!(power <= 900 * ONE_TOKEN, "{slashed}");
    let h = staking_target(&url, &honest).expect("target");
    assert_eq!(
        h["slashed_total"], "0",
        "an honest node is never slashed: {h}"
    );
    assert_eq!(h["power"], bonded.as_str());
    // Metrics count them.
    let metrics = reqwest::blocking::get(format!("{url}/metrics"))
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("lode_slashes_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // Anyone can replay the chain from the gateway over HTTP, slashes included.
    let (ok, out, err) = lode_run(&["ledger", "verify", "--from", &url, "--json"]);
    assert!(ok, "{out}\n{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["chain_id"], get(&url, "/v1/ledger").1["chain_id"], "{v}");
    net.stop_gateway();
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    // The delegator's history shows the slash; its evidence is the cheater's
    // own signed claim, checked by the ledger.
    let history = view.history(&net.requester.did(), 10_000).expect("history");
    assert!(
        history
            .iter()
            .any(|e| matches!(e.kind, EventKind::Slashed { .. })),
        "{history:?}"
    );
    ledger_verify_ok(&net.ledger_dir());
}

/// On a chain with staking a result must carry the node's signed claim: a
/// report without one, or with one signed by another key or for another
/// result, is refused (typed reason, nothing recorded); the right one is
/// accepted. Driven by a hand-rolled node over the real node protocol.
#[test]
fn results_without_a_valid_signed_claim_are_refused_on_a_staking_chain() {
    use lode_ledger::entry::{RegisterNode, ResultClaim};
    use lode_node::client::GatewayClient;
    use lode_node::clock::GatewayClock;
    use lode_proto::wire::{
        NodeAuth, NodeCapacity, NodeHello, NodePoll, PollResponse, UnitOutcome, UnitReport,
    };
    use lode_proto::{Envelope, EvmAddress, Hash32, Keypair};

    let net = Net::start_with(0, 600_000, &["--staking-share-bps", "1000"]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let key = Keypair::generate().expect("key");
    let client = GatewayClient::new(
        net.url.clone(),
        Duration::from_secs(5),
        Duration::from_secs(10),
        None,
    )
    .expect("client");
    let clock = GatewayClock::default();
    let hello = NodeHello {
        capacity: NodeCapacity {
            cores: 1,
            slots: 1,
            queue: 0,
            memory_bytes: 1 << 30,
            speed_fuel_per_s: 1_000_000_000,
        },
        payout: EvmAddress([7; 20]),
        operator: None,
        region: None,
        min_price_per_fuel: 0,
        software: "test".into(),
    };
    let (session, chain) = rt.block_on(async {
        let h = client
            .hello(&key, &clock, &hello)
            .await
            .expect("hello")
            .value;
        let register = h.register_nonce.map(|nonce| {
            let entry = RegisterNode {
                chain: h.chain_id,
                operator: key.did(),
                payout: hello.payout,
            };
            Envelope::seal(&key, &entry, nonce, clock.now_ms()).expect("seal")
        });
        let auth = NodeAuth {
            challenge: h.challenge,
            register,
        };
        let a = client.auth(&key, &clock, &auth).await.expect("auth").value;
        (a.session, h.chain_id)
    });
    let poll = |want: u32, reports: Vec<UnitReport>| -> PollResponse {
        let msg = NodePoll {
            session,
            want,
            reports,
            handed_back: vec![],
        };
        rt.block_on(client.poll(&key, &clock, &msg, Duration::from_secs(10)))
            .expect("poll")
            .value
    };

    common::submit_sha256(&net, &inputs(1, 3), 2, false);
    let start = Instant::now();
    let a = loop {
        if let Some(a) = poll(1, vec![]).assignments.pop() {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no work");
    };
    let stdout = format!("{}\n", Hash32::sha256(&a.input.stdin).to_hex()).into_bytes();
    let outcome = UnitOutcome::Completed {
        exit_code: 0,
        fuel_used: 1_000,
        stdout: stdout.clone(),
    };
    let claim = ResultClaim {
        chain,
        job: a.unit.job,
        unit: u64::from(a.unit.unit),
        result: ResultClaim::result_hash(&Hash32::sha256(&stdout), 0, 1_000),
    };
    let report = |claim| UnitReport {
        unit: a.unit,
        outcome: outcome.clone(),
        elapsed_ms: 1,
        claim,
    };
    let refused = |r: PollResponse| {
        assert_eq!(r.accepted, 0, "{r:?}");
        assert_eq!(r.rejected.len(), 1, "{r:?}");
        assert!(r.rejected[0].1.contains("claim"), "{r:?}");
    };
    // No claim.
    refused(poll(0, vec![report(None)]));
    // Signed by another key.
    let other = Keypair::generate().expect("key");
    refused(poll(0, vec![report(Some(claim.sign(&other)))]));
    // Signed by the node, but for another result (other fuel).
    let mut wrong = claim.clone();
    wrong.result = ResultClaim::result_hash(&Hash32::sha256(&stdout), 0, 999);
    refused(poll(0, vec![report(Some(wrong.sign(&key)))]));
    // The node's own claim of this result.
    let r = poll(0, vec![report(Some(claim.sign(&key)))]);
    assert!(r.rejected.is_empty(), "{r:?}");
}
