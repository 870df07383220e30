//! The gateway's edges under hostile but fair use (real processes on loopback):
//! validate-then-write, field bounds, quarantine at start-up, module quotas and
//! clean-up, per-address connection caps with a header deadline, private and
//! paged results, JSON errors everywhere, and a restart that reads open work only.

mod common;

use common::{Net, balance, new_key, repo_root, sha256_spec};
use lode_client::{Client, ClientError};
use lode_proto::wire::SubmitJob;
use lode_proto::{Envelope, Hash32, canonical};
use std::io::Write;
use std::time::{Duration, Instant};

fn api_code(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other}"),
    }
}

/// A valid submission of `units` sha256 units (module uploaded).
fn valid_submission(net: &Net, units: usize) -> SubmitJob {
    let client = net.client();
    let key = &net.requester.keypair;
    let wasm = std::fs::read(repo_root().join("examples/jobs/wasm/sha256.wasm")).expect("wasm");
    let module = client.upload_module(key, &wasm).expect("upload");
    let chain = client.chain_id().expect("chain");
    let inputs = (0..units)
        .map(|i| lode_proto::wire::UnitInput {
            stdin: format!("unit {i}").into_bytes(),
            args: vec![],
        })
        .collect();
    Client::build_submission(key, chain, &sha256_spec(2, false), module, inputs).expect("build")
}

#[test]
fn absurd_fields_get_typed_errors_and_nothing_is_stored() {
    let mut net = Net::start(0, 3_600_000);
    let before = balance(&net);
    let client = net.client();
    let key = &net.requester.keypair;
    let base = valid_submission(&net, 3);
    type Mutation = (&'static str, Box<dyn Fn(&mut SubmitJob)>);
    let cases: Vec<Mutation> = vec![
        ("5 MB name", Box::new(|s| s.name = "n".repeat(5 << 20))),
        (
            "long region",
            Box::new(|s| s.region = Some("r".repeat(4096))),
        ),
        ("price 0", Box::new(|s| s.max_price_per_fuel = 0)),
        ("memory 2^63", Box::new(|s| s.limits.memory_bytes = 1 << 63)),
        (
            "fuel no node can burn in time",
            Box::new(|s| {
                s.limits.fuel = 90_000_000_000_000;
                s.limits.timeout_ms = 1_000;
            }),
        ),
        (
            "max_replicas above the scheduler's cap (the old brick)",
            Box::new(|s| s.verification.max_replicas = 200),
        ),
        ("quorum 0", Box::new(|s| s.verification.quorum = 0)),
        ("no units", Box::new(|s| s.units.clear())),
    ];
    for (what, mutate) in cases {
        let mut s = base.clone();
        s.job = Hash32::sha256(what.as_bytes());
        mutate(&mut s);
        let e = client.submit_job(key, &s).expect_err(what);
        let (status, code) = api_code(e);
        assert_eq!((status, code.as_str()), (400, "invalid_field"), "{what}");
    }
    // Nothing was locked, nothing listed.
    assert_eq!(balance(&net), before);
    assert!(client.jobs().expect("jobs").is_empty());

    // A body over the route's limit is refused from its Content-Length, before a
    // byte of it is sent, as JSON.
    let mut s = std::net::TcpStream::connect(&net.listen).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        33 << 20
    )
    .expect("write");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
    let http = reqwest::blocking::Client::new();
    // A wrong method gets a JSON 405, an unknown route a JSON 404.
    let r = http
        .delete(format!("{}/v1/jobs", net.url))
        .send()
        .expect("delete");
    assert_eq!(r.status().as_u16(), 405);
    let v: serde_json::Value = r.json().expect("405 is JSON");
    assert_eq!(v["error"]["code"], "method_not_allowed");
    // The limits are published.
    let v: serde_json::Value = client.get_json("/v1/limits").expect("limits");
    assert_eq!(v["job"]["max_name_bytes"], 200);

    // The valid job is still accepted, and the gateway restarts cleanly.
    client.submit_job(key, &base).expect("valid job");
    net.stop_gateway();
    net.start_gateway();
    let h: serde_json::Value = net.client().get_json("/healthz").expect("healthz");
    assert_eq!(h["quarantined_jobs"], 0);
    assert_eq!(net.client().jobs().expect("jobs").len(), 1);
}

#[test]
fn a_bad_job_record_is_quarantined_and_refunded_not_a_brick() {
    let mut net = Net::start(0, 3_600_000);
    let before = balance(&net);
    let mut s = valid_submission(&net, 4);
    // What an older gateway stored before checking: a job the scheduler refuses.
    s.verification.max_replicas = 200;
    net.stop_gateway();
    {
        let db = lode_gateway::db::Db::open(&net.data_dir().join("gateway.redb")).expect("db");
        let env =
            Envelope::seal_fresh(&net.requester.keypair, &s, lode_client::now_ms()).expect("seal");
        let seq = db.next_job().expect("next");
        let rec = lode_gateway::db::JobRecord {
            submission: env,
            requester: net.requester.did(),
            status: lode_gateway::db::JobStatus::Running,
            created_ms: lode_client::now_ms(),
            finished_ms: None,
            settled: false,
        };
        db.commit(&lode_gateway::db::Batch {
            jobs: vec![(seq, rec)],
            next_job: Some(seq + 1),
            open: vec![(seq, s.job)],
            ..Default::default()
        })
        .expect("commit");
        // And a record that does not even decode.
        assert!(canonical::decode::<lode_gateway::db::JobRecord>(b"junk").is_err());
    }
    net.start_gateway();
    let client = net.client();
    let h: serde_json::Value = client.get_json("/healthz").expect("healthz");
    assert_eq!(h["quarantined_jobs"], 1, "{h}");
    let v = client.job(&s.job.to_hex()).expect("job view");
    assert_eq!(v.status, "quarantined");
    // The escrow it locked (restored from the record) came back in full.
    let deadline = Instant::now() + Duration::from_secs(10);
    while balance(&net) != before {
        assert!(Instant::now() < deadline, "escrow not refunded");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Quarantined once: the next start does not see it again.
    net.stop_gateway();
    net.start_gateway();
    let h: serde_json::Value = net.client().get_json("/healthz").expect("healthz");
    assert_eq!(h["quarantined_jobs"], 0);
    net.stop_gateway();
    common::ledger_verify_ok(&net.ledger_dir());
}

fn upload(net: &Net, key: &lode_proto::Keypair, bytes: &[u8]) -> Result<Hash32, (u16, String)> {
    net.client().upload_module(key, bytes).map_err(api_code)
}

#[test]
fn module_uploads_need_funds_stay_within_quota_and_are_collected() {
    let net = Net::start_with(
        0,
        3_600_000,
        &["--module-quota-mib", "1", "--module-grace-s", "2"],
    );
    let stranger = new_key(&net.dir.path().join("stranger.key"), None);
    let a = vec![1u8; 600 << 10];
    let b = vec![2u8; 600 << 10];
    assert_eq!(
        upload(&net, &stranger.keypair, &a).unwrap_err(),
        (402, "unfunded".into())
    );
    let key = &net.requester.keypair;
    let ha = upload(&net, key, &a).expect("first module");
    assert_eq!(
        upload(&net, key, &b).unwrap_err(),
        (403, "module_quota_exceeded".into())
    );
    // Re-uploading a stored module costs nothing.
    upload(&net, key, &a).expect("idempotent");
    // Unused past its grace period, the module is removed and the quota freed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = reqwest::blocking::get(format!("{}/v1/modules/{}", net.url, ha.to_hex()))
            .expect("get module");
        if r.status().as_u16() == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "module never collected");
        std::thread::sleep(Duration::from_millis(200));
    }
    upload(&net, key, &b).expect("quota freed");
}

#[test]
fn slow_connections_from_one_address_do_not_lock_out_others() {
    let net = Net::start_with(
        0,
        3_600_000,
        &["--max-conns-per-ip", "64", "--header-timeout-ms", "2000"],
    );
    let addr: std::net::SocketAddr = net.listen.parse().expect("addr");
    // 300 connections that send half a request line and then nothing.
    let mut slow = Vec::new();
    for _ in 0..300 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
            slow.push(s);
        }
    }
    // Another address is served at once.
    let other = reqwest::blocking::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("ip")))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = other
        .get(format!("{}/healthz", net.url))
        .send()
        .expect("other address served");
    assert!(r.status().is_success());
    // The same address is served once the slow ones hit the header deadline.
    let same = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let start = Instant::now();
    loop {
        if let Ok(r) = same.get(format!("{}/healthz", net.url)).send()
            && r.status().is_success()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "same address locked out beyond the header deadline"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = reqwest::blocking::get(format!("{}/metrics", net.url))
        .expect("metrics")
        .text()
        .expect("text");
    let refused: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("lode_connections_refused_total "))
        .and_then(|v| v.parse().ok())
        .expect("metric");
    assert!(refused >= 200, "refused {refused}");
    drop(slow);
}

fn metric(net: &Net, name: &str) -> u64 {
    let m = reqwest::blocking::get(format!("{}/metrics", net.url))
        .expect("metrics")
        .text()
        .expect("text");
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn results_are_private_paged_and_a_restart_reads_only_open_work() {
    let mut net = Net::start(2, 3_600_000);
    net.wait_nodes(2, Duration::from_secs(30));
    let inputs: Vec<Vec<u8>> = (0..120).map(|i| format!("r{i}").into_bytes()).collect();
    let job = common::run_sha256(&net, &inputs, 2, false);
    let client = net.client();
    let keypair = net.requester.keypair.clone();
    let key = &keypair;
    let all = client.results(key, &job).expect("requester reads");
    assert_eq!(all.len(), 120);
    assert!(all.iter().all(|r| r.status == "verified"));

    // Pages: bounded, with a cursor.
    let page: serde_json::Value = {
        let env = Envelope::seal_fresh(
            key,
            &lode_proto::wire::ReadJob {
                job: job.parse().expect("id"),
            },
            lode_client::now_ms(),
        )
        .expect("seal");
        reqwest::blocking::Client::new()
            .get(format!(
                "{}/v1/jobs/{job}/results?from=100&limit=7",
                net.url
            ))
            .header(
                lode_proto::wire::READ_HEADER,
                serde_json::to_string(&env).expect("json"),
            )
            .send()
            .expect("page")
            .json()
            .expect("json")
    };
    assert_eq!(page["units"].as_array().map(|a| a.len()), Some(7));
    assert_eq!(page["units"][0]["unit"], 100);
    assert_eq!(page["next"], 107);

    // A stranger (signed or not) gets exactly the unknown-job answer.
    let stranger = new_key(&net.dir.path().join("stranger.key"), None);
    let e1 = client.results(&stranger.keypair, &job).unwrap_err();
    let unknown = Hash32::sha256(b"no such job").to_hex();
    let e2 = client.results(&stranger.keypair, &unknown).unwrap_err();
    let plain = reqwest::blocking::get(format!("{}/v1/jobs/{job}/results", net.url)).expect("get");
    assert_eq!(plain.status().as_u16(), 404);
    let (e1, e2) = (e1.to_string(), e2.to_string());
    assert_eq!(e1.replace(&job, "ID"), e2.replace(&unknown, "ID"));

    // The finished job leaves nothing to replay at the next start.
    std::thread::sleep(Duration::from_millis(500));
    net.stop_gateway();
    net.start_gateway();
    assert_eq!(metric(&net, "lode_recovery_jobs_loaded"), 0);
    assert_eq!(metric(&net, "lode_recovery_outcomes_loaded"), 0);
    let client = net.client();
    let v = client.job(&job).expect("still listed");
    assert_eq!((v.status.as_str(), v.completed), ("finished", 120));
    assert_eq!(client.results(key, &job).expect("still readable"), all);
    assert_eq!(client.jobs().expect("jobs").len(), 1);
}

#[test]
fn a_job_can_keep_its_inputs_to_an_allow_listed_operator() {
    let net = Net::start(2, 3_600_000);
    net.wait_nodes(2, Duration::from_secs(30));
    let client = net.client();
    let key = &net.requester.keypair;
    let trusted = net.node_keys[0].did();
    let wasm = std::fs::read(repo_root().join("examples/jobs/wasm/sha256.wasm")).expect("wasm");
    let module = client.upload_module(key, &wasm).expect("upload");
    let chain = client.chain_id().expect("chain");
    let mut spec = sha256_spec(1, false);
    spec.eligibility.operators = vec![trusted];
    spec.validate().expect("valid spec");
    let inputs = (0..40)
        .map(|i| lode_proto::wire::UnitInput {
            stdin: format!("secret {i}").into_bytes(),
            args: vec![],
        })
        .collect();
    let s = Client::build_submission(key, chain, &spec, module, inputs).expect("build");
    let v = client.submit_job(key, &s).expect("submit");
    let v = client
        .wait(&v.job, Duration::from_millis(100), Duration::from_secs(120))
        .expect("wait");
    assert_eq!((v.status.as_str(), v.completed), ("finished", 40), "{v:?}");
    let results = client.results(key, &v.job).expect("results");
    for r in &results {
        assert_eq!(r.credited, vec![trusted.to_string()], "unit {}", r.unit);
    }
    // Bounds on the rules themselves.
    let mut bad = s.clone();
    bad.job = Hash32::sha256(b"bad eligibility");
    bad.eligibility.min_reputation = 5_000;
    let (status, code) = api_code(client.submit_job(key, &bad).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "invalid_field"));
}
