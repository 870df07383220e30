//! `lode ledger …` and `lode wallet …` against a real demo ledger.

use lode_ledger::merkle::{self, Dump, StandardMerkleTree};
use lode_proto::EvmAddress;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn lode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(args)
        .env_remove("LODE_LEDGER_DIR")
        .env("LODE_HOME", "/nonexistent-lode-home")
        .output()
        .expect("run lode")
}

fn ok(args: &[&str]) -> String {
    let o = lode(args);
    assert!(
        o.status.success(),
        "lode {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lode {args:?}: not JSON ({e}): {out}"))
}

fn demo(dir: &Path) -> Value {
    json(&[
        "ledger",
        "demo",
        "--out",
        dir.to_str().unwrap(),
        "--nodes",
        "4",
        "--epochs",
        "3",
        "--json",
    ])
}

#[test]
fn verify_show_tree_proof_and_fairness_on_a_demo_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let d = dir.to_str().unwrap();
    let summary = demo(&dir);
    assert_eq!(summary["epochs_closed"], 3);

    let text = ok(&["ledger", "verify", d]);
    assert!(text.starts_with("ok: "), "{text}");
    let v = json(&["ledger", "verify", "--data-dir", d, "--json"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["chain_id"], summary["chain_id"]);
    assert!(v["receipts"].as_u64().unwrap() > 0);

    let show = json(&["ledger", "show", "--data-dir", d, "--json"]);
    assert_eq!(show["height"], summary["height"]);
    assert_eq!(show["epoch"], 3);
    let supply = &show["supply"];
    let part = |k: &str| supply[k].as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(
        part("balances")
            + part("escrow")
            + part("pool_remaining")
            + part("reward_dust")
            + part("locked")
            + part("reserved")
            + part("withdrawn"),
        part("total_supply")
    );
    let text = ok(&["ledger", "show", "--data-dir", d]);
    assert!(text.contains("claims root 0x"), "{text}");
    let block = json(&["ledger", "show", "--data-dir", d, "--height", "1", "--json"]);
    assert_eq!(block["entries"][0]["kind"], "transfer");
    let genesis = ok(&["ledger", "show", "--data-dir", d, "--genesis"]);
    assert!(genesis.contains("chain_id = \"lode-demo\""));

    // The standard-v1 dump loads (and validates) as an OpenZeppelin tree.
    let dump_text = ok(&["ledger", "tree", "2", "--data-dir", d]);
    let dump: Dump = serde_json::from_str(dump_text.trim()).unwrap();
    assert_eq!(dump.format, "standard-v1");
    let tree = StandardMerkleTree::load(&dump).unwrap();
    assert_eq!(tree.dump_json(), dump_text.trim(), "byte-identical dump");
    assert_eq!(tree.len(), 4);

    // Every node's payout address has a proof that verifies against that root.
    for n in summary["nodes"].as_array().unwrap() {
        let addr = n["payout"].as_str().unwrap();
        let p = json(&["wallet", "proof", addr, "--data-dir", d, "--json"]);
        assert_eq!(p["epoch"], 2);
        let text = ok(&["wallet", "proof", addr, "--data-dir", d]);
        assert!(
            text.contains(p["root"].as_str().unwrap()) && text.contains("claims root"),
            "{text}"
        );
        assert_eq!(p["root"], merkle::hex0x(&tree.root()));
        let a: EvmAddress = addr.parse().unwrap();
        let amount: u128 = p["amount"].as_str().unwrap().parse().unwrap();
        let proof: Vec<[u8; 32]> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().parse::<lode_proto::Hash32>().unwrap().0)
            .collect();
        assert!(merkle::verify(&tree.root(), &a, amount, &proof));
        let bal = json(&["wallet", "balance", addr, "--data-dir", d, "--json"]);
        assert_eq!(
            bal["published_cumulative"].as_str().unwrap(),
            amount.to_string()
        );
    }
    // An older epoch's tree is still served (and differs: more was withdrawn since).
    let old = ok(&["ledger", "tree", "0", "--data-dir", d]);
    assert_ne!(old.trim(), dump_text.trim());

    let f = json(&["ledger", "fairness", "--data-dir", d, "--json"]);
    assert_eq!(f["shares"][0]["allocation"], "contributors");
    assert_eq!(f["rewarded_nodes"], 4);
    let g = f["contributor_gini"].as_f64().unwrap();
    assert!(
        g > 0.0 && g < 1.0,
        "unequal work gives a Gini in (0, 1): {g}"
    );
    let text = ok(&["ledger", "fairness", "--data-dir", d]);
    assert!(text.contains("Gini"), "{text}");

    // A node's balance shows its pending-epoch standing and its history explains it.
    let node = summary["nodes"][3]["did"].as_str().unwrap();
    let b = json(&["wallet", "balance", node, "--data-dir", d, "--json"]);
    assert!(b["balance"].as_str().unwrap().parse::<u128>().unwrap() > 0);
    assert!(b["node"]["rewards_total"].as_str().unwrap() != "0");
    let h = json(&["wallet", "history", node, "--data-dir", d, "--json"]);
    let kinds: Vec<String> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["kind"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert!(kinds.contains(&"reward".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"withdrawn".to_string()), "{kinds:?}");
    let text = ok(&["wallet", "history", node, "--data-dir", d]);
    assert!(text.contains("reward of node"), "{text}");
    // A penalty is visible with its reason.
    let penalized = summary["nodes"][1]["did"].as_str().unwrap();
    let text = ok(&[
        "wallet",
        "history",
        penalized,
        "--data-dir",
        d,
        "--limit",
        "50",
    ]);
    assert!(text.contains("penalty impossible_speed"), "{text}");
}

#[test]
fn withdraw_is_signed_by_the_key_file_and_applied_by_the_validator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let d = dir.to_str().unwrap();
    let summary = demo(&dir);
    let keys = Path::new(summary["keys_dir"].as_str().unwrap());
    let node = &summary["nodes"][0];
    let did = node["did"].as_str().unwrap();
    let key = keys.join("node-0.key");
    let before: u128 = json(&["wallet", "balance", did, "--data-dir", d, "--json"])["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let entry = tmp.path().join("withdraw.json");
    ok(&[
        "wallet",
        "withdraw",
        "--data-dir",
        d,
        "--key",
        key.to_str().unwrap(),
        "--amount",
        "0.5 LODE",
        "--out",
        entry.to_str().unwrap(),
    ]);
    // More than the balance is refused before signing.
    let o = lode(&[
        "wallet",
        "withdraw",
        "--data-dir",
        d,
        "--key",
        key.to_str().unwrap(),
        "--amount",
        "999999999 LODE",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("less than"));

    let now = (1767225600000u64 + 10 * 60_000).to_string();
    let sealed = json(&[
        "ledger",
        "submit",
        "--data-dir",
        d,
        "--validator-key",
        keys.join("validator.key").to_str().unwrap(),
        "--now",
        &now,
        "--json",
        entry.to_str().unwrap(),
    ]);
    assert!(!sealed["epochs_closed"].as_array().unwrap().is_empty());
    let after: u128 = json(&["wallet", "balance", did, "--data-dir", d, "--json"])["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(before - after, 500_000_000_000_000_000);
    // Replaying the same signed withdrawal is refused (nonce).
    let o = lode(&[
        "ledger",
        "submit",
        "--data-dir",
        d,
        "--validator-key",
        keys.join("validator.key").to_str().unwrap(),
        "--now",
        &now,
        entry.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nonce"));
    // Only the validator may seal.
    let o = lode(&[
        "ledger",
        "submit",
        "--data-dir",
        d,
        "--validator-key",
        key.to_str().unwrap(),
        entry.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a validator"));
    let text = ok(&["ledger", "verify", d]);
    assert!(text.starts_with("ok: "));
}

#[test]
fn verify_names_the_first_bad_block() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    demo(&dir);
    {
        let store = lode_ledger::BlockStore::open(&dir).unwrap();
        let mut b = store.block_bytes(3).unwrap().unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x10;
        store.overwrite_block_bytes(3, &b).unwrap();
    }
    let o = lode(&["ledger", "verify", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("verification FAILED: block 3"), "{out}");
    assert!(out.contains("first bad block: 3"), "{out}");
    let o = lode(&["ledger", "verify", dir.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["height"], 3);
}

#[test]
fn clear_errors_for_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let o = lode(&["ledger", "verify", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no ledger in"));
    let o = lode(&["ledger", "show", "--data-dir", missing.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no ledger in"));

    let dir = tmp.path().join("ledger");
    demo(&dir);
    let d = dir.to_str().unwrap();
    let o = lode(&["wallet", "balance", "not-an-account", "--data-dir", d]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("neither a did:key nor a 0x address"));
    let o = lode(&["ledger", "tree", "99", "--data-dir", d]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("epoch 99 is not closed"));
    let o = lode(&[
        "wallet",
        "proof",
        "0x000000000000000000000000000000000000dEaD",
        "--data-dir",
        d,
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no claim"));
    // A gateway data directory (ledger in DIR/ledger) is accepted too.
    let v = json(&["ledger", "verify", tmp.path().to_str().unwrap(), "--json"]);
    assert_eq!(v["ok"], true);
    // --help documents the data directory.
    let help = ok(&["ledger", "show", "--help"]);
    assert!(help.contains("--data-dir"));
    assert!(ok(&["ledger", "default-genesis"]).contains("[[allocation]]"));
}

/// Serves `blocks` (canonical bytes by height) as `GET /v1/ledger/raw`
/// does, `page` blocks per answer (so the client must follow pages), on a
/// loopback port; `head_header: false` answers like a server that is not
/// Lode. Returns the base URL.
fn serve_blocks(blocks: Vec<Vec<u8>>, page: usize, head_header: bool) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Read the headers to the blank line: closing a socket with
            // unread input would reset the connection under the answer.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let from: usize = line
                .split("from=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            let mut body = Vec::new();
            for b in blocks.iter().skip(from).take(page) {
                lode_ledger::raw::push_frame(&mut body, b, None);
            }
            let head = if head_header {
                format!("x-lode-head: {}\r\n", blocks.len() - 1)
            } else {
                String::new()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n{head}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    url
}

fn raw_blocks(dir: &Path) -> Vec<Vec<u8>> {
    let store = lode_ledger::BlockStore::open(dir).unwrap();
    (0..).map_while(|h| store.block_bytes(h).unwrap()).collect()
}

#[test]
fn verify_from_a_url_replays_the_served_chain_and_names_the_first_bad_block() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    demo(&dir);
    let local = json(&["ledger", "verify", dir.to_str().unwrap(), "--json"]);
    let blocks = raw_blocks(&dir);
    assert!(blocks.len() > 4);

    // The same chain over HTTP, two blocks per page: the same report.
    let url = serve_blocks(blocks.clone(), 2, true);
    let remote = json(&["ledger", "verify", "--from", &url, "--json"]);
    assert_eq!(remote["ok"], true, "{remote}");
    for k in [
        "chain_id",
        "head_height",
        "head_hash",
        "state_root",
        "entries",
    ] {
        assert_eq!(remote[k], local[k], "{k}");
    }

    // `show --from` replays the served chain: the summary and one block.
    let d = dir.to_str().unwrap();
    let show = |at: [&str; 2], extra: &[&str]| {
        let args: Vec<&str> = ["ledger", "show", at[0], at[1], "--json"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        json(&args)
    };
    let (local_show, shown) = (show(["--data-dir", d], &[]), show(["--from", &url], &[]));
    for k in [
        "chain_id",
        "height",
        "head_hash",
        "state_root",
        "supply",
        "epoch",
    ] {
        assert_eq!(shown[k], local_show[k], "{k}");
    }
    assert_eq!(shown["dir"], url.as_str());
    assert_eq!(
        show(["--from", &url], &["--height", "2"]),
        show(["--data-dir", d], &["--height", "2"])
    );
    let o = lode(&["ledger", "show", "--from", &url, "--height", "9999"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no block at height 9999"),
        "{o:?}"
    );

    // One flipped bit in block 3: named.
    let mut bad = blocks.clone();
    let mid = bad[3].len() / 2;
    bad[3][mid] ^= 0x10;
    // `verify --from` of a bad chain: exit status 1 and the first bad height.
    let first_bad = |url: &str| {
        let o = lode(&["ledger", "verify", "--from", url, "--json"]);
        assert_eq!(o.status.code(), Some(1));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], false, "{v}");
        v["height"].clone()
    };
    let url = serve_blocks(bad, 2, true);
    assert_eq!(first_bad(&url), 3);
    let o = lode(&["ledger", "show", "--from", &url]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not verify: block 3"),
        "{o:?}"
    );

    // A block left out: the gap is named.
    let mut gap = blocks.clone();
    gap.remove(2);
    assert_eq!(first_bad(&serve_blocks(gap, 100, true)), 2);

    // Not a Lode server, and nothing listening: clear errors, no panic.
    let url = serve_blocks(blocks, 2, false);
    for (url, why) in [
        (url.as_str(), "X-Lode-Head"),
        ("http://127.0.0.1:1", "cannot reach"),
    ] {
        let o = lode(&["ledger", "verify", "--from", url]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains(why), "{o:?}");
    }
}
