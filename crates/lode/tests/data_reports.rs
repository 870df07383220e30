//! Browser nodes' scam/phishing reports on a real gateway (issue 16): every check
//! runs before anything is stored (forged, replayed, stale, oversized, malformed,
//! unregistered, wrong-chain and rate-exceeding reports are refused and leave no
//! trace), reports from one IP group count once, nothing below k is ever served,
//! and k distinct groups put a domain in the feed, confirm it, survive a
//! `kill -9`, and are credited on the ledger and paid at the epoch close.

mod common;

use common::Net;
use lode_ledger::{Entry, LedgerView, RegisterNode};
use lode_proto::data::{
    DataHeartbeat, DataReport, ReadReports, ReportCategory, ReportSource, ReportVerdict,
    domain_hash,
};
use lode_proto::{Envelope, EvmAddress, Hash32, Keypair, Message};
use serde_json::Value;
use std::time::{Duration, Instant};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Api {
    url: String,
    http: reqwest::blocking::Client,
    chain: Hash32,
}

impl Api {
    fn new(net: &Net) -> Api {
        let http = reqwest::blocking::Client::new();
        let v: Value = http
            .get(format!("{}/v1/ledger", net.url))
            .send()
            .and_then(|r| r.json())
            .expect("ledger");
        let chain = v["chain_id"]
            .as_str()
            .expect("chain")
            .parse()
            .expect("hash");
        Api {
            url: net.url.clone(),
            http,
            chain,
        }
    }

    fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        common::post(&self.url, path, body)
    }

    fn post(&self, path: &str, v: &impl serde::Serialize) -> (u16, Value) {
        self.post_raw(path, serde_json::to_vec(v).expect("json"))
    }

    fn get(&self, path: &str) -> Value {
        common::get(&self.url, path).1
    }

    fn register(&self, key: &Keypair) {
        let e = Entry::sign(
            key,
            0,
            now_ms(),
            &RegisterNode {
                chain: self.chain,
                operator: key.did(),
                payout: EvmAddress([7; 20]),
            },
        )
        .expect("sign");
        let (s, v) = self.post("/v1/entries", &e);
        assert_eq!(s, 201, "register: {v}");
    }

    fn report_msg(&self, domain: &str, verdict: ReportVerdict) -> DataReport {
        DataReport {
            chain: self.chain,
            domain: domain.into(),
            url: None,
            category: ReportCategory::Phishing,
            source: ReportSource::Manual,
            verdict,
        }
    }

    fn seal<T: Message>(&self, key: &Keypair, m: &T) -> Envelope {
        Envelope::seal_fresh(key, m, now_ms()).expect("seal")
    }

    fn report(&self, key: &Keypair, domain: &str) -> (u16, Value) {
        let env = self.seal(key, &self.report_msg(domain, ReportVerdict::Harmful));
        self.post("/v1/data/reports", &env)
    }

    fn reports_total(&self) -> u64 {
        let m = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .and_then(|r| r.text())
            .expect("metrics");
        m.lines()
            .find_map(|l| l.strip_prefix("lode_data_reports_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("metric")
    }

    fn mine(&self, key: &Keypair) -> Vec<Value> {
        let env = self.seal(key, &ReadReports { chain: self.chain });
        let (s, v) = self.post("/v1/data/mine", &env);
        assert_eq!(s, 200, "{v}");
        v["reports"].as_array().cloned().unwrap_or_default()
    }

    fn listed(&self, domain: &str) -> bool {
        let h = domain_hash(domain).to_hex();
        let prefix = &h[..8];
        let feed = self.get("/v1/data/feed");
        let in_prefixes = feed["prefixes"]
            .as_array()
            .expect("prefixes")
            .iter()
            .any(|p| p == prefix);
        let full = self.get(&format!("/v1/data/feed/{prefix}"));
        let in_full = full["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .any(|x| x["hash"] == h.as_str());
        assert_eq!(in_prefixes, in_full, "{feed} {full}");
        in_prefixes
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn bad_reports_are_refused_before_anything_is_stored_and_one_ip_group_counts_once() {
    // Every loopback client is one IP group here, as on a real network.
    let net = Net::start_with(
        0,
        600_000,
        &[
            "--group-loopback",
            "--data-k",
            "3",
            "--data-reports-per-hour",
            "5",
        ],
    );
    let api = Api::new(&net);
    let a = Keypair::generate().expect("key");
    let domain = "secure-login-check.top";

    // Unregistered: refused (it could never be paid).
    let (s, v) = api.report(&a, domain);
    assert_eq!((s, code(&v)), (403, "not_registered"), "{v}");
    api.register(&a);

    // Forged: a signature byte flipped.
    let mut env = api.seal(&a, &api.report_msg(domain, ReportVerdict::Harmful));
    env.signature.0[0] ^= 1;
    let (s, v) = api.post("/v1/data/reports", &env);
    assert_eq!((s, code(&v)), (401, "bad_signature"), "{v}");
    // Another message kind.
    let hb = api.seal(
        &a,
        &DataHeartbeat {
            chain: api.chain,
            categories: 1,
        },
    );
    let (s, v) = api.post("/v1/data/reports", &hb);
    assert_eq!((s, code(&v)), (400, "wrong_message_kind"), "{v}");
    // Stale.
    let old = Envelope::seal(
        &a,
        &api.report_msg(domain, ReportVerdict::Harmful),
        9,
        now_ms() - 3_600_000,
    )
    .expect("seal");
    let (s, v) = api.post("/v1/data/reports", &old);
    assert_eq!((s, code(&v)), (401, "stale_message"), "{v}");
    // Another chain.
    let mut m = api.report_msg(domain, ReportVerdict::Harmful);
    m.chain = Hash32([1; 32]);
    let (s, v) = api.post("/v1/data/reports", &api.seal(&a, &m));
    assert_eq!((s, code(&v)), (400, "wrong_chain"), "{v}");
    // Malformed bodies and fields.
    let (s, v) = api.post_raw("/v1/data/reports", b"{not json".to_vec());
    assert_eq!((s, code(&v)), (400, "malformed_json"), "{v}");
    let (s, _) = api.post_raw("/v1/data/reports", vec![b' '; 9 * 1024]);
    assert_eq!(s, 413);
    for (bad, want) in [
        ("Example.com", "bad_domain"),
        ("localhost", "bad_domain"),
        ("10.0.0.1", "bad_domain"),
        ("www.example.com", "not_registrable_domain"),
        ("co.uk", "not_registrable_domain"),
    ] {
        let m = api.report_msg(bad, ReportVerdict::Harmful);
        let (s, v) = api.post("/v1/data/reports", &api.seal(&a, &m));
        assert_eq!((s, code(&v)), (400, want), "{bad}: {v}");
    }
    let mut m = api.report_msg(domain, ReportVerdict::Harmful);
    m.url = Some("https://elsewhere.example/login".into());
    let (s, v) = api.post("/v1/data/reports", &api.seal(&a, &m));
    assert_eq!((s, code(&v)), (400, "bad_url"), "{v}");
    m.url = Some(format!("https://{domain}/{}", "x".repeat(3000)));
    let (s, v) = api.post("/v1/data/reports", &api.seal(&a, &m));
    assert_eq!((s, code(&v)), (400, "bad_url"), "{v}");
    // Nothing of the above was stored or counted.
    assert_eq!(api.reports_total(), 0);
    assert!(api.mine(&a).is_empty());

    // A good one, then its replay.
    let env = api.seal(&a, &api.report_msg(domain, ReportVerdict::Harmful));
    let (s, v) = api.post("/v1/data/reports", &env);
    assert_eq!((s, v["status"].as_str()), (201, Some("pending")), "{v}");
    let (s, v) = api.post("/v1/data/reports", &env);
    assert_eq!((s, code(&v)), (401, "replayed_message"), "{v}");
    // The same report again (a fresh envelope) changes nothing.
    let (s, v) = api.report(&a, domain);
    assert_eq!((s, v["duplicate"].as_bool()), (200, Some(true)), "{v}");
    assert_eq!(api.reports_total(), 1);

    // Five more reporters, all behind the same IP group: still one group, below k.
    let others: Vec<Keypair> = (0..5).map(|_| Keypair::generate().expect("key")).collect();
    for k in &others {
        api.register(k);
        let (s, v) = api.report(k, domain);
        assert_eq!((s, v["status"].as_str()), (201, Some("pending")), "{v}");
    }
    assert!(!api.listed(domain), "a domain below k was served");
    let stats = api.get("/v1/data/stats");
    assert_eq!(stats["feed_size"], 0, "{stats}");
    assert_eq!(stats["domains"]["pending"], 1, "{stats}");
    // The reporter sees its own report's fate, nobody else's.
    let mine = api.mine(&a);
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["status"], "pending");
    assert_eq!(mine[0]["domain"], domain);

    // Rate: 5 reports an hour per node.
    // (The good report and its duplicate used two of them.)
    for i in 0..3 {
        let (s, v) = api.report(&a, &format!("site-{i}.top"));
        assert_eq!(s, 201, "{v}");
    }
    let before = api.reports_total();
    let (s, v) = api.report(&a, "one-too-many.top");
    assert_eq!((s, code(&v)), (429, "rate_limited"), "{v}");
    assert_eq!(api.reports_total(), before);
    assert!(
        api.mine(&a)
            .iter()
            .all(|r| r["domain"] != "one-too-many.top")
    );

    // CORS: extension origins may call the gateway, web pages may not.
    let preflight = |origin: &str| {
        api.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/data/reports", api.url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .expect("preflight")
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or("").to_string())
    };
    let ext = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
    assert_eq!(preflight(ext).as_deref(), Some(ext));
    assert_eq!(preflight("https://evil.example"), None);
}

#[test]
fn k_distinct_groups_list_confirm_and_get_paid_across_a_kill_9() {
    // Loopback clients are distinct hosts (a devnet): each key its own group.
    let mut net = Net::start_with(0, 4_000, &["--data-k", "2"]);
    let api = Api::new(&net);
    let domain = "paypal-account-verify-login.top";
    let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate().expect("key")).collect();
    for k in &keys {
        api.register(k);
    }
    let (_, v) = api.report(&keys[0], domain);
    assert_eq!(v["status"], "pending", "{v}");
    assert!(!api.listed(domain));
    let (_, v) = api.report(&keys[1], domain);
    assert_eq!(v["listed"], true, "{v}");
    assert!(api.listed(domain));
    // Confirmed by the classifier, or by 2k groups.
    let mut last = v;
    for k in &keys[2..] {
        if last["status"] == "confirmed" {
            break;
        }
        last = api.report(k, domain).1;
    }
    assert_eq!(last["status"], "confirmed", "{last}");
    let credited: Vec<_> = api
        .mine(&keys[0])
        .into_iter()
        .filter(|r| r["credited"] == true)
        .collect();
    assert_eq!(credited.len(), 1, "the first reporter is credited");

    // A benign site two groups report: listed, never confirmed (the classifier
    // disagrees, and 2k groups did not report it); two other groups say it is a
    // mistake: rejected, out of the feed, and each harmful reporter penalized.
    let benign = "example-bakery.com";
    let more: Vec<Keypair> = (0..4).map(|_| Keypair::generate().expect("key")).collect();
    for k in &more {
        api.register(k);
    }
    api.report(&more[0], benign);
    let (_, v) = api.report(&more[1], benign);
    assert_eq!(v["status"], "corroborated", "{v}");
    assert!(api.listed(benign));
    for k in &more[2..] {
        let env = api.seal(k, &api.report_msg(benign, ReportVerdict::Mistake));
        let (s, v) = api.post("/v1/data/reports", &env);
        assert_eq!(s, 201, "{v}");
    }
    assert!(!api.listed(benign), "a domain judged benign left the feed");
    let fate = &api.mine(&more[0])[0];
    assert_eq!(
        (fate["status"].as_str(), fate["penalized"].as_bool()),
        (Some("rejected"), Some(true)),
        "{fate}"
    );

    // The decided domains are labelled URLs for retraining the classifier
    // (`lode guard dataset --reports URL` reads this), in the dataset format.
    let tsv = reqwest::blocking::get(format!("{}/v1/data/labels.tsv", net.url))
        .and_then(|r| r.text())
        .expect("labels");
    let ex = lode_guard::dataset::parse_tsv(&tsv).expect("labels parse as a dataset");
    assert_eq!(ex.len(), 2, "{tsv}");
    assert!(
        ex.iter()
            .any(|e| e.phishing && e.url == format!("https://{domain}/")),
        "{tsv}"
    );
    assert!(
        ex.iter()
            .any(|e| !e.phishing && e.url == format!("https://{benign}/")),
        "{tsv}"
    );

    // kill -9: the book and the feed come back as they were.
    net.kill9_gateway();
    net.start_gateway();
    let api = Api::new(&net);
    assert!(api.listed(domain));
    assert_eq!(api.mine(&keys[0])[0]["status"], "confirmed");

    // The epoch closes: the credit was on the ledger and paid.
    let start = Instant::now();
    loop {
        let v = api.get(&format!("/v1/accounts/{}", keys[0].did()));
        let bal: u128 = v["balance"].as_str().unwrap_or("0").parse().unwrap_or(0);
        if bal > 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no reward: {v}");
        std::thread::sleep(Duration::from_millis(250));
    }
    net.stop_gateway();
    // Anyone can replay the chain, report credits and the published model included.
    common::ledger_verify_ok(&net.ledger_dir());
    let view = LedgerView::open(&net.ledger_dir()).expect("ledger");
    assert!(
        view.state()
            .published_model(lode_gateway::data_api::GUARD_MODEL_NAME)
            .is_some()
    );
    for k in &more[..2] {
        let events = view.history(&k.did(), 100).expect("history");
        assert!(
            events.iter().any(|e| matches!(
                &e.kind,
                lode_ledger::EventKind::Penalized {
                    reason: lode_ledger::PenaltyReason::BenignReport,
                    detail,
                    ..
                } if detail.contains(benign)
            )),
            "{events:?}"
        );
    }
    let h = domain_hash(domain);
    assert!(view.state().is_report_credited(&h, &keys[0].did()));
    let events = view.history(&keys[0].did(), 100).expect("history");
    assert!(
        events.iter().any(|e| matches!(&e.kind, lode_ledger::EventKind::ReportCredited { domain: d, .. } if *d == h)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, lode_ledger::EventKind::Reward { .. })),
        "{events:?}"
    );
}
