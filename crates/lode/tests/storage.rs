//! Storage end to end, on real processes over loopback: a file is put on 8
//! nodes (any 3 of 5 shares rebuild it), read back byte-identical, survives
//! `kill -9` of n − k holders, and a holder that deletes its share and one that
//! silently corrupts a quarter of it fail their audits, are penalized on the ledger, and their
//! shares are rebuilt onto other nodes. Holders are paid for audited
//! byte-hours; the ledger replays. Bad requests get typed errors and store
//! nothing.

mod common;

use common::*;
use lode_proto::Hash32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NODES: usize = 8;

/// The two 8-node tests run one at a time (16 nodes on CI's 2 cores would
/// make audit deadlines a matter of luck).
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A gateway with `gateway_args` and 8 storage nodes offering 20 MB each.
fn start_with(epoch_ms: u64, gateway_args: &[&str]) -> Net {
    let mut net = Net::start_with(0, epoch_ms, gateway_args);
    for i in 0..NODES {
        let dir = net.dir.path().join(format!("store{i}"));
        let dir = dir.to_string_lossy().to_string();
        net.add_node_with(
            i,
            &[
                "--slots",
                "1",
                "--storage-dir",
                &dir,
                "--storage-gb",
                "0.02",
            ],
        );
    }
    net.wait_nodes(NODES, Duration::from_secs(120));
    // Storage nodes announce themselves on their first storage poll.
    std::thread::sleep(Duration::from_millis(1500));
    net
}

fn start() -> Net {
    start_with(
        4_000,
        &[
            "--storage-audit-ms",
            "800",
            "--storage-audit-chunks",
            "8",
            "--storage-answer-ms",
            "3000",
            "--storage-grace-ms",
            "3000",
            "--storage-settle-ms",
            "1000",
            "--storage-max-mib",
            "8",
        ],
    )
}

fn status(net: &Net, id: &str) -> serde_json::Value {
    net.client().storage_status(id).expect("status")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn holders(v: &serde_json::Value) -> Vec<Option<String>> {
    v["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| s["holder"].as_str().map(str::to_string))
        .collect()
}

fn node_index(net: &Net, did: &str) -> usize {
    net.node_keys
        .iter()
        .position(|k| k.did().to_string() == did)
        .expect("holder is one of ours")
}

fn share_path(net: &Net, node: usize, file: &str, share: usize) -> PathBuf {
    net.dir
        .path()
        .join(format!("store{node}/shares/{file}.{share}"))
}

fn history_text(net: &Net, did: &str) -> String {
    let v: serde_json::Value = net
        .client()
        .get_json(&format!("/v1/accounts/{did}/history?limit=1000"))
        .unwrap_or_default();
    v.to_string()
}

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn storage_cmd(net: &Net, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let key = net.requester_path.as_os_str().to_owned();
    let mut all: Vec<&std::ffi::OsStr> = vec!["storage".as_ref()];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--key".as_ref(),
        &key,
        "--gateway".as_ref(),
        net.url.as_ref(),
    ]);
    std::process::Command::new(lode_bin())
        .args(&all)
        .output()
        .expect("run lode storage")
}

/// `lode storage …` that must succeed.
fn storage_ok(net: &Net, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = storage_cmd(net, args);
    assert!(
        out.status.success(),
        "lode storage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn put_get_survive_kills_audit_penalize_repair_and_pay() {
    let _one = heavy();
    let mut net = start();
    let bytes = data(3 << 20);
    let file = net.dir.path().join("file.bin");
    std::fs::write(&file, &bytes).unwrap();
    let out = storage_ok(
        &net,
        &[
            "put".as_ref(),
            file.as_os_str(),
            "--shares".as_ref(),
            "5".as_ref(),
            "--needed".as_ref(),
            "3".as_ref(),
            "--days".as_ref(),
            "1".as_ref(),
            "--price".as_ref(),
            "1000".as_ref(),
            "--wait-s".as_ref(),
            "0".as_ref(),
            "--json".as_ref(),
        ],
    );
    let put: serde_json::Value = serde_json::from_slice(&out.stdout).expect("put json");
    let id = put["file"].as_str().expect("file id").to_string();
    assert_eq!((put["k"].as_u64(), put["n"].as_u64()), (Some(3), Some(5)));

    wait_for("all 5 shares held", Duration::from_secs(60), || {
        status(&net, &id)["live_shares"] == 5
    });
    let v = status(&net, &id);
    let first = holders(&v);
    // Each share on its own node (distinct IP groups and operators).
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{first:?}");

    // Read back byte-identical.
    let got = net.dir.path().join("got.bin");
    storage_ok(
        &net,
        &[
            "get".as_ref(),
            id.as_ref(),
            "--out".as_ref(),
            got.as_os_str(),
        ],
    );
    assert!(
        std::fs::read(&got).unwrap() == bytes,
        "get returns the exact bytes"
    );

    // Audits pass and pay: holders earn fees from the escrow.
    wait_for("audits passing", Duration::from_secs(30), || {
        status(&net, &id)["audits_passed"].as_u64().unwrap_or(0) >= 10
    });

    // Holder of share 0 deletes its share; holder of share 1 corrupts its share.
    let h0 = first[0].clone().unwrap();
    let h1 = first[1].clone().unwrap();
    let (n0, n1) = (node_index(&net, &h0), node_index(&net, &h1));
    std::fs::remove_file(share_path(&net, n0, &id, 0)).expect("delete share 0");
    let p1 = share_path(&net, n1, &id, 1);
    // Silent partial damage: one byte in every 4th 4 KiB chunk (a quarter
    // of the share). An 8-chunk audit misses it with p = 0.75^8 ≈ 0.10, so
    // it is caught within a few rounds (docs/design/storage.md).
    let mut b1 = std::fs::read(&p1).unwrap();
    for chunk in b1.chunks_mut(4096).step_by(4) {
        chunk[0] = chunk[0].wrapping_add(1);
    }
    std::fs::write(&p1, &b1).unwrap();
    wait_for(
        "shares 0 and 1 rebuilt on other nodes",
        Duration::from_secs(60),
        || {
            let v = status(&net, &id);
            let h = holders(&v);
            v["live_shares"] == 5
                && h[0].is_some()
                && h[0].as_deref() != Some(h0.as_str())
                && h[1].is_some()
                && h[1].as_deref() != Some(h1.as_str())
        },
    );
    let v = status(&net, &id);
    assert!(v["audits_failed"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["repairs"].as_u64().unwrap() >= 2, "{v}");
    // Both are penalized on the ledger, with the evidence.
    wait_for("penalties on the ledger", Duration::from_secs(10), || {
        history_text(&net, &h0).contains("failed_audit")
            && history_text(&net, &h1).contains("failed_audit")
    });

    // kill -9 two holders (n − k): the file still reads back.
    let now = holders(&status(&net, &id));
    let victims: Vec<usize> = now[2..4]
        .iter()
        .map(|h| node_index(&net, h.as_deref().unwrap()))
        .collect();
    for i in &victims {
        net.nodes[*i].kill9();
    }
    let got2 = net.dir.path().join("got2.bin");
    storage_ok(
        &net,
        &[
            "get".as_ref(),
            id.as_ref(),
            "--out".as_ref(),
            got2.as_os_str(),
        ],
    );
    assert!(std::fs::read(&got2).unwrap() == bytes, "n − k holders dead");

    // Past the grace period their shares are rebuilt on the surviving nodes.
    let dead: Vec<String> = victims
        .iter()
        .map(|i| net.node_keys[*i].did().to_string())
        .collect();
    wait_for("repair after the kills", Duration::from_secs(60), || {
        let v = status(&net, &id);
        v["live_shares"] == 5
            && holders(&v)
                .iter()
                .all(|h| h.as_ref().is_some_and(|h| !dead.contains(h)))
    });

    // Holders are paid: fees from the escrow (settled every second) plus
    // their share of the epoch emission.
    let h_ok = holders(&status(&net, &id))[4].clone().unwrap();
    wait_for("a holder's earnings", Duration::from_secs(30), || {
        let a: serde_json::Value = net
            .client()
            .get_json(&format!("/v1/accounts/{h_ok}"))
            .unwrap_or_default();
        a["balance"]
            .as_str()
            .and_then(|b| b.parse::<u128>().ok())
            .unwrap_or(0)
            > 0
    });
    let hist = history_text(&net, &h_ok);
    assert!(hist.contains("fee"), "{hist}");

    // The gateway is killed (-9) and restarted: the contract, its holders and
    // their shares are all still there.
    net.kill9_gateway();
    net.start_gateway();
    net.wait_nodes(NODES - victims.len(), Duration::from_secs(60));
    let v = status(&net, &id);
    assert_eq!(v["live_shares"], 5, "{v}");
    let got3 = net.dir.path().join("got3.bin");
    storage_ok(
        &net,
        &[
            "get".as_ref(),
            id.as_ref(),
            "--out".as_ref(),
            got3.as_os_str(),
        ],
    );
    assert!(
        std::fs::read(&got3).unwrap() == bytes,
        "after a gateway kill -9"
    );

    // Anyone can replay the chain (storage contracts, shares, receipts,
    // penalties, settlements).
    net.stop_gateway();
    lode_ok(&[
        "ledger".as_ref(),
        "verify".as_ref(),
        net.ledger_dir().as_os_str(),
    ]);
}

#[test]
fn bad_storage_requests_get_typed_errors_and_store_nothing() {
    let net = Net::start_with(0, 60_000, &["--storage-max-mib", "1"]);
    let client = net.client();
    let key = &net.requester.keypair;
    let http = reqwest::blocking::Client::new();
    let code = |r: reqwest::blocking::Response| {
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().unwrap_or_default();
        (
            status,
            v["error"]["code"].as_str().unwrap_or("").to_string(),
        )
    };
    // Unknown file, bad ids, unsigned reads and uploads.
    let unknown = Hash32([7; 32]).to_hex();
    let r = http
        .get(format!("{}/v1/storage/{unknown}", net.url))
        .send()
        .unwrap();
    assert_eq!(code(r), (404, "unknown_file".into()));
    let r = http
        .get(format!("{}/v1/storage/nothex", net.url))
        .send()
        .unwrap();
    assert_eq!(code(r), (400, "bad_file_id".into()));
    let r = http
        .get(format!("{}/v1/storage/{unknown}/shares/0", net.url))
        .send()
        .unwrap();
    assert_eq!(code(r), (404, "unknown_file".into()));
    let r = http
        .put(format!("{}/v1/storage/{unknown}", net.url))
        .body(vec![1u8; 10])
        .send()
        .unwrap();
    assert_eq!(code(r), (401, "unsigned_upload".into()));
    let r = http
        .put(format!("{}/v1/storage/{unknown}", net.url))
        .header(lode_proto::wire::UPLOAD_HEADER, "{not json")
        .body(vec![1u8; 10])
        .send()
        .unwrap();
    assert_eq!(code(r).0, 400);
    // The dry run of an upload: unsigned and garbage headers are typed errors;
    // the contract of an unknown file is a 404.
    let r = http
        .post(format!("{}/v1/storage/{unknown}/check", net.url))
        .send()
        .unwrap();
    assert_eq!(code(r), (401, "unsigned_upload".into()));
    let r = http
        .post(format!("{}/v1/storage/{unknown}/check", net.url))
        .header(lode_proto::wire::UPLOAD_HEADER, "{not json")
        .send()
        .unwrap();
    assert_eq!(code(r).0, 400);
    let r = http
        .get(format!("{}/v1/storage/{unknown}/contract", net.url))
        .send()
        .unwrap();
    assert_eq!(code(r), (404, "unknown_file".into()));
    // Node channel: garbage, and a signed poll from a key with no session.
    let r = http
        .post(format!("{}/v1/node/storage", net.url))
        .body(vec![0u8; 40])
        .send()
        .unwrap();
    assert_eq!(code(r).0, 400);
    let poll = lode_storage::wire::StoragePoll {
        capacity_bytes: 1,
        free_bytes: 1,
        answers: vec![],
    };
    let env = lode_proto::Envelope::seal_fresh(key, &poll, lode_client::now_ms()).unwrap();
    let r = http
        .post(format!("{}/v1/node/storage", net.url))
        .body(env.to_bytes())
        .send()
        .unwrap();
    assert_eq!(code(r), (404, "unknown_session".into()));

    // A file above the gateway's limit: 413 before the body is read.
    let big = data((1 << 20) + 10);
    let e = client
        .storage_put(key, &big, Default::default())
        .unwrap_err();
    assert!(
        e.to_string().contains("payload_too_large") || e.to_string().contains("413"),
        "{e}"
    );
    // No storage node online: refused before anything is written.
    let small = data(5000);
    let e = client
        .storage_put(key, &small, Default::default())
        .unwrap_err();
    assert!(e.to_string().contains("not_enough_storage_nodes"), "{e}");
    // A requester who cannot afford the term.
    let poor = lode_proto::Keypair::from_secret_bytes(&[42; 32]);
    let opts = lode_client::storage::PutOptions {
        price_per_byte_hour: 1_000_000_000_000,
        ..Default::default()
    };
    let e = client.storage_put(&poor, &small, opts).unwrap_err();
    assert!(e.to_string().contains("insufficient_funds"), "{e}");
    // Nothing was stored for anyone.
    let l = client.storage_list(&key.did()).unwrap();
    assert_eq!(l["files"].as_array().map(Vec::len), Some(0), "{l}");
}

#[test]
fn fifty_megabytes_on_eight_nodes_survive_n_minus_k_kills_and_full_disks_refuse() {
    let _one = heavy();
    // Reads of a killed holder's share give up after 8 s (default 30 s).
    // 20 MB per node: one 50 MB file (12.5 MB shares) fits, a second does not.
    let mut net = start_with(
        60_000,
        &["--storage-max-mib", "64", "--storage-answer-ms", "8000"],
    );

    let bytes = data(50_000_000);
    let file = net.dir.path().join("fifty.bin");
    std::fs::write(&file, &bytes).unwrap();
    // Defaults: 8 shares, any 4 rebuild; the command waits until all 8 are on nodes.
    let out = storage_ok(&net, &["put".as_ref(), file.as_os_str(), "--json".as_ref()]);
    let put: serde_json::Value = serde_json::from_slice(&out.stdout).expect("put json");
    let id = put["file"].as_str().expect("file id").to_string();
    assert_eq!(
        (put["k"].as_u64(), put["n"].as_u64()),
        (Some(4), Some(8)),
        "{put}"
    );
    assert_eq!(put["live_shares"], 8, "put waits for every share: {put}");
    let v = status(&net, &id);
    let first = holders(&v);
    let mut distinct: Vec<_> = first.iter().flatten().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "one share per node: {first:?}");

    // Full disks: every node has ~7.5 MB left, a second 50 MB file needs
    // 12.5 MB on each of 8: refused before anything is written or paid.
    let before = balance(&net);
    let file2 = net.dir.path().join("fifty2.bin");
    std::fs::write(&file2, data(50_000_001)).unwrap();
    let out = storage_cmd(&net, &["put".as_ref(), file2.as_os_str()]);
    assert!(!out.status.success(), "a put onto full disks must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not_enough_storage_nodes"), "{err}");
    assert!(err.contains("bytes free"), "the error says why: {err}");
    assert_eq!(balance(&net), before, "no escrow locked for a refused put");
    let l = net.client().storage_list(&net.requester.did()).unwrap();
    assert_eq!(l["files"].as_array().map(Vec::len), Some(1), "{l}");
    // The first file was not touched by the refusal.
    assert_eq!(status(&net, &id)["live_shares"], 8);

    // The reader takes the manifest from the requester's signed contract on
    // the ledger, and refuses one that another key signed.
    let file_id: Hash32 = id.parse().unwrap();
    let c = net
        .client()
        .storage_contract(&net.requester.did(), &file_id)
        .expect("the contract is on the ledger");
    assert_eq!(c.manifest.size, 50_000_000);
    let stranger = lode_proto::Keypair::from_secret_bytes(&[9; 32]).did();
    let e = net
        .client()
        .storage_contract(&stranger, &file_id)
        .unwrap_err();
    assert!(e.to_string().contains("signed by"), "{e}");

    // kill -9 n − k = 4 holders: any 4 remaining shares rebuild the exact bytes.
    for h in &first[..4] {
        let i = node_index(&net, h.as_deref().unwrap());
        net.nodes[i].kill9();
    }
    let got = net.dir.path().join("fifty.out");
    let out = storage_ok(
        &net,
        &[
            "get".as_ref(),
            id.as_ref(),
            "--out".as_ref(),
            got.as_os_str(),
            "--json".as_ref(),
        ],
    );
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).expect("get json");
    let used: Vec<u64> = g["shares"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_u64())
        .collect();
    assert_eq!(used, vec![4, 5, 6, 7], "read from the 4 survivors");
    assert!(
        std::fs::read(&got).unwrap() == bytes,
        "get returns the exact 50 MB"
    );
    // Unknown file ids: typed errors from get and status, nothing written.
    let unknown = Hash32([3; 32]).to_hex();
    let nothing = net.dir.path().join("nothing.out");
    let out = storage_cmd(
        &net,
        &[
            "get".as_ref(),
            unknown.as_ref(),
            "--out".as_ref(),
            nothing.as_os_str(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown_file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!nothing.exists(), "a failed get writes no file");
}
