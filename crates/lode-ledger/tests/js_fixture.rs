//! The browser node's signer (`extension/lode-sign.js`) must make the exact bytes
//! Rust makes: `extension/test/sign-fixture.json` holds envelopes sealed here with
//! fixed keys, nonces and times, and `node --test extension/` checks that the JS
//! side reproduces each one byte for byte. This test keeps the fixture current;
//! after changing a message type, rewrite it with
//! `LODE_SIGN_BLESS=1 cargo test -p lode-ledger --test js_fixture` and commit it.

use lode_ledger::RegisterNode;
use lode_proto::data::{
    DataHeartbeat, DataReport, ReadReports, ReportCategory, ReportSource, ReportVerdict,
};
use lode_proto::{Envelope, EvmAddress, Hash32, Keypair, Message};
use serde_json::{Value, json};
use std::path::PathBuf;

fn sealed<T: Message>(key: &Keypair, m: &T, nonce: u64, ts: u64) -> Value {
    serde_json::to_value(Envelope::seal(key, m, nonce, ts).expect("seal")).expect("json")
}

fn fixture() -> Value {
    let seed = [7u8; 32];
    let key = Keypair::from_secret_bytes(&seed);
    let chain = Hash32([9; 32]);
    let report = DataReport {
        chain,
        domain: "secure-login-example.top".into(),
        url: Some("https://secure-login-example.top/verify?id=1".into()),
        category: ReportCategory::Phishing,
        source: ReportSource::Manual,
        verdict: ReportVerdict::Harmful,
    };
    let no_url = DataReport {
        url: None,
        category: ReportCategory::Scam,
        source: ReportSource::Classifier,
        verdict: ReportVerdict::Mistake,
        ..report.clone()
    };
    let register = RegisterNode {
        chain,
        operator: key.did(),
        payout: EvmAddress([0xab; 20]),
    };
    json!({
        "seed": seed.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "did": key.did().to_string(),
        "chain": chain.to_hex(),
        "payout": EvmAddress([0xab; 20]).to_checksummed(),
        "report": sealed(&key, &report, 1, 1_700_000_000_000),
        "report_no_url": sealed(&key, &no_url, u64::MAX, 1_700_000_000_001),
        "heartbeat": sealed(&key, &DataHeartbeat { chain, categories: 5 }, 300, 1_700_000_000_002),
        "read": sealed(&key, &ReadReports { chain }, 0, 5),
        "register_node": sealed(&key, &register, 0, 1_700_000_000_003),
    })
}

#[test]
fn js_sign_fixture_is_current() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../extension/test/sign-fixture.json");
    let want = serde_json::to_string_pretty(&fixture()).expect("json") + "\n";
    if std::env::var_os("LODE_SIGN_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write fixture");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "extension/test/sign-fixture.json is stale; rerun with LODE_SIGN_BLESS=1 and commit it"
    );
}
