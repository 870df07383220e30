//! The contributor's money path on real processes: a node earns on a live
//! gateway; its operator, with nothing but its key file and the gateway URL,
//! sees its balance, withdraws (following the entry to its epoch's root),
//! fetches the claim proof, and that proof pays out in the real claim
//! contract (LodeDistributor in revm). Bad wallet input gets typed errors and
//! stores nothing.

mod common;

use common::{Net, get, inputs, post, run_sha256};
use lode_evm::{ClaimArgs, ClaimContract, Evm, EvmError, Revert};
use lode_ledger::{AdjustNode, ClaimProof, Entry, Withdraw};
use lode_proto::{EvmAddress, Hash32, KeyFile};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `lode …` with a clean environment: no ledger directory, an empty LODE_HOME.
fn lode(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(args)
        .env_remove("LODE_LEDGER_DIR")
        .env_remove("LODE_GATEWAY")
        .env("LODE_HOME", home)
        .current_dir(home)
        .output()
        .expect("run lode")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let o = lode(home, args);
    assert!(
        o.status.success(),
        "lode {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(home: &Path, args: &[&str]) -> Value {
    let out = ok(home, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lode {args:?}: not JSON ({e}): {out}"))
}

fn fails(home: &Path, args: &[&str], needle: &str) {
    let o = lode(home, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "lode {args:?} succeeded");
    assert!(
        err.contains(needle),
        "lode {args:?}: {err:?} lacks {needle:?}"
    );
}

fn amount(v: &Value) -> u128 {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

fn code(r: &(u16, Value)) -> (u16, &str) {
    (r.0, r.1["error"]["code"].as_str().unwrap_or("-"))
}

fn withdraw_entry(kf: &KeyFile, chain: Hash32, to: EvmAddress, amount: u128, nonce: u64) -> Entry {
    let m = Withdraw { chain, to, amount };
    Entry::sign(&kf.keypair, nonce, lode_client::now_ms(), &m).unwrap()
}

fn body(e: &Entry) -> Vec<u8> {
    serde_json::to_vec(e).unwrap()
}

#[test]
fn a_contributor_withdraws_over_the_network_and_claims_in_the_evm() {
    // One node, 1.5 s epochs, a block every 100 ms.
    let net = Net::start(1, 1_500);
    net.wait_nodes(1, Duration::from_secs(30));
    run_sha256(&net, &inputs(6, 13), 1, false);

    // The contributor's machine: the node's key file and the URL, nothing else.
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let key_path = home.join("node.key");
    std::fs::copy(net.dir.path().join("node0.key"), &key_path).unwrap();
    let kf = KeyFile::load(&key_path).unwrap();
    let key = key_path.to_str().unwrap();
    let did = kf.did().to_string();
    let payout = kf.payout_address.unwrap();
    let url = net.url.as_str();

    // Fees arrive when the job settles, rewards when the epoch of the work
    // closes: wait until both are in (no weight or unsettled fees left).
    let start = Instant::now();
    let balance = loop {
        let b = json(
            home,
            &["wallet", "balance", &did, "--gateway", url, "--json"],
        );
        let p = &b["pending"];
        if amount(&b["balance"]) > 0 && p["weight"] == 0 && p["unsettled_fees"] == "0" {
            break amount(&b["balance"]);
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no balance: {b}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = ok(home, &["wallet", "balance", &did, "--gateway", url]);
    assert!(
        text.contains("balance") && text.contains("next nonce"),
        "{text}"
    );
    let chain: Hash32 = get(url, "/v1/ledger").1["chain_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // ---- Bad input: typed errors, nothing stored.
    let next = |()| -> (u128, u64) {
        let a = get(url, &format!("/v1/accounts/{did}")).1;
        (amount(&a["balance"]), a["next_nonce"].as_u64().unwrap())
    };
    let (b0, n0) = next(());
    // Above the balance: refused by the CLI before signing, and by the gateway.
    fails(
        home,
        &[
            "wallet",
            "withdraw",
            "--amount",
            "1000000000 LODE",
            "--key",
            key,
            "--gateway",
            url,
        ],
        "less than",
    );
    let e = withdraw_entry(&kf, chain, payout, b0 + 1, n0);
    assert_eq!(
        code(&post(url, "/v1/entries", body(&e))),
        (402, "insufficient_funds")
    );
    // A nonce ahead of the account's sequence.
    let e = withdraw_entry(&kf, chain, payout, 1, n0 + 3);
    assert_eq!(
        code(&post(url, "/v1/entries", body(&e))),
        (409, "wrong_nonce")
    );
    // Signed for another chain.
    let e = withdraw_entry(&kf, Hash32::sha256(b"other"), payout, 1, n0);
    assert_eq!(
        code(&post(url, "/v1/entries", body(&e))),
        (400, "wrong_chain")
    );
    // A forged signature.
    let mut e = withdraw_entry(&kf, chain, payout, 1, n0);
    if let Entry::Withdraw(env) = &mut e {
        env.signature.0[0] ^= 1;
    }
    assert_eq!(
        code(&post(url, "/v1/entries", body(&e))),
        (401, "bad_signature")
    );
    // The zero address, an entry kind not taken here, garbage, an oversized body.
    let e = withdraw_entry(&kf, chain, EvmAddress([0; 20]), 1, n0);
    assert_eq!(
        code(&post(url, "/v1/entries", body(&e))),
        (400, "bad_address")
    );
    // (A validator-authored kind; register_node is taken, for browser nodes.)
    let e = Entry::AdjustNode(AdjustNode {
        node: kf.did(),
        reward_bps: 10_000,
        reason: "mine".into(),
    });
    assert_eq!(
        code(&post(url, "/v1/entries", body(&e))),
        (400, "not_account_entry")
    );
    assert_eq!(
        code(&post(url, "/v1/entries", b"{\"withdraw\": 7}".to_vec())),
        (400, "malformed_json")
    );
    assert_eq!(
        code(&post(url, "/v1/entries", vec![b' '; 64 * 1024])),
        (413, "payload_too_large")
    );
    // A malformed address, a proof of an epoch not closed yet.
    assert_eq!(code(&get(url, "/v1/claims/0x1234")), (400, "bad_address"));
    assert_eq!(code(&get(url, "/v1/addresses/0xZZ")), (400, "bad_address"));
    assert_eq!(
        code(&get(url, &format!("/v1/claims/{payout}?epoch=1000000"))),
        (409, "epoch_not_closed")
    );
    fails(
        home,
        &[
            "wallet",
            "proof",
            &payout.to_string(),
            "--epoch",
            "1000000",
            "--gateway",
            url,
        ],
        "is not closed yet",
    );
    fails(
        home,
        &[
            "wallet",
            "withdraw",
            "--amount",
            "1",
            "--to",
            "0x12",
            "--key",
            key,
            "--gateway",
            url,
        ],
        "invalid value",
    );
    assert_eq!(
        code(&get(url, &format!("/v1/accounts/{did}/entries/{n0}"))),
        (404, "unknown_entry")
    );
    assert_eq!(next(()), (b0, n0), "no refused entry changed the account");

    // ---- Withdraw a third of the balance, following it to its epoch's root.
    let first = balance / 3;
    let out = ok(
        home,
        &[
            "wallet",
            "withdraw",
            "--amount",
            &first.to_string(),
            "--key",
            key,
            "--gateway",
            url,
            "--json",
        ],
    );
    let st: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(st["status"], "claimable", "{st}");
    assert_eq!(st["nonce"].as_u64(), Some(n0));
    assert_eq!(amount(&st["amount"]), first);
    let h1 = st["height"].as_u64().unwrap();
    let e1 = st["claimable_from_epoch"].as_u64().unwrap();
    let p: ClaimProof = serde_json::from_value(st["proof"].clone()).unwrap();
    assert_eq!(p.address, payout);
    assert_eq!(amount(&Value::from(p.amount.clone())), first);
    assert!(p.epoch >= e1);

    // ---- A second withdrawal by a raw signed entry; its replay is refused.
    let second = 12_345;
    let e = withdraw_entry(&kf, chain, payout, second, n0 + 1);
    let r = post(url, "/v1/entries", body(&e));
    assert_eq!(r.0, 201, "{}", r.1);
    assert_eq!(r.1["status"], "included");
    let h2 = r.1["height"].as_u64().unwrap();
    assert!(h2 > h1);
    let after_second = next(());
    assert_eq!(after_second, (b0 - first - second, n0 + 2));
    assert_eq!(
        code(&post(url, "/v1/entries", body(&e))),
        (409, "replayed_entry")
    );
    assert_eq!(next(()), after_second, "the replay stored nothing");
    // Followed by its status until its epoch closes.
    let start = Instant::now();
    let st2 = loop {
        let s = get(url, &format!("/v1/accounts/{did}/entries/{}", n0 + 1)).1;
        assert_eq!(s["height"].as_u64(), Some(h2), "{s}");
        if s["status"] == "claimable" {
            break s;
        }
        assert_eq!(s["status"], "included", "{s}");
        assert!(start.elapsed() < Duration::from_secs(30), "{s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let e2 = st2["claimable_from_epoch"].as_u64().unwrap();
    assert!(e2 >= e1);
    // The first entry's status is still found (by its nonce).
    let s1 = get(url, &format!("/v1/accounts/{did}/entries/{n0}")).1;
    assert_eq!(
        (s1["height"].as_u64(), s1["claimable_from_epoch"].as_u64()),
        (Some(h1), Some(e1))
    );

    // ---- History and the payout address over the network.
    let hist = json(
        home,
        &["wallet", "history", &did, "--gateway", url, "--json"],
    );
    let withdrawn: Vec<u128> = hist
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"]["withdrawn"]["amount"].as_str())
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(withdrawn, vec![second, first], "newest first");
    let text = ok(home, &["wallet", "history", &did, "--gateway", url]);
    assert!(text.contains(&format!("withdrawn to {payout}")), "{text}");
    let addr = json(
        home,
        &[
            "wallet",
            "balance",
            &payout.to_string(),
            "--gateway",
            url,
            "--json",
        ],
    );
    assert_eq!(amount(&addr["withdrawn_cumulative"]), first + second);
    assert_eq!(amount(&addr["claimable_cumulative"]), first + second);
    assert_eq!(addr["nodes"][0], did);

    // ---- The proof, as `lode wallet proof --json` prints it (URL from the
    // environment this time), claims exactly the withdrawn total in the EVM.
    let o = Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(["wallet", "proof", &payout.to_string(), "--json"])
        .env_remove("LODE_LEDGER_DIR")
        .env("LODE_GATEWAY", url)
        .env("LODE_HOME", home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let proof: ClaimProof = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(proof.chain_id, chain.to_hex());
    assert_eq!(amount(&Value::from(proof.amount.clone())), first + second);
    let args = ClaimArgs::try_from(&proof).unwrap();

    let mut evm = Evm::new();
    let owner = alloy_primitives::Address::repeat_byte(0x0A);
    let supply = alloy_primitives::U256::from(balance * 10);
    let k = ClaimContract::deploy(&mut evm, owner, lode_evm::chain_id(&chain), supply).unwrap();
    k.publish(&mut evm, &args).unwrap();
    let account = lode_evm::address(&payout);
    assert_eq!(k.balance_of(&mut evm, account).unwrap(), 0);
    let claimed = k.claim_with(&mut evm, &args).unwrap();
    assert_eq!(claimed.paid, alloy_primitives::U256::from(first + second));
    assert_eq!(
        k.balance_of(&mut evm, account).unwrap(),
        alloy_primitives::U256::from(first + second)
    );
    // Claiming twice pays nothing more.
    match k.claim_with(&mut evm, &args) {
        Err(EvmError::Revert {
            reason: Revert::NothingToClaim { .. },
            ..
        }) => {}
        other => panic!("second claim: {other:?}"),
    }
    // ---- A third withdrawal, in text mode: the next root pays only it.
    let third = 777u128;
    let text = ok(
        home,
        &[
            "wallet",
            "withdraw",
            "--amount",
            "777",
            "--key",
            key,
            "--gateway",
            url,
        ],
    );
    assert!(
        text.contains("included in block") && text.contains("claimable from epoch"),
        "{text}"
    );
    let p3: ClaimProof = serde_json::from_str(&ok(
        home,
        &[
            "wallet",
            "proof",
            &payout.to_string(),
            "--gateway",
            url,
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(p3.amount, (first + second + third).to_string());
    assert!(p3.epoch > proof.epoch);
    let args3 = ClaimArgs::try_from(&p3).unwrap();
    k.publish(&mut evm, &args3).unwrap();
    assert_eq!(
        k.claim_with(&mut evm, &args3).unwrap().paid,
        alloy_primitives::U256::from(third)
    );
    assert_eq!(
        k.balance_of(&mut evm, account).unwrap(),
        alloy_primitives::U256::from(first + second + third)
    );

    // The gateway's ledger verifies from genesis with all of it.
    let mut net = net;
    net.stop_gateway();
    let v = json(
        home,
        &[
            "ledger",
            "verify",
            net.data_dir().to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(v["ok"], true);
}
