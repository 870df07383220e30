//! The gateway's view of the validators (issue 14): `GET /v1/validators` and
//! the dashboard's Validators panel, on a replicated devnet of real `lode`
//! processes (3 validators, 1 gateway, 1 node), and on a chain the gateway
//! seals itself.

mod common;

use common::{Net, get, lode_bin, test_log};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Deadline of each wait (debug builds on a busy machine; normally seconds).
const WAIT: Duration = Duration::from_secs(90);

/// A running `lode devnet --json`; stopped with SIGTERM on drop.
struct Devnet {
    child: Child,
    ready: Value,
    log: PathBuf,
    /// A validator this test paused (SIGSTOP): resumed before the devnet stops.
    paused: Option<u32>,
    _dir: tempfile::TempDir,
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

impl Devnet {
    fn start(validators: u32) -> Devnet {
        Devnet::start_with(validators, &["--nodes", "1"])
    }

    fn start_with(validators: u32, extra: &[&str]) -> Devnet {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("devnet.err");
        let mut child = Command::new(lode_bin())
            .args(["devnet", "--json", "--port", "0", "--gateways", "1"])
            .args(["--validators", &validators.to_string()])
            .args(extra)
            .arg("--data-dir")
            .arg(dir.path().join("net"))
            .env("LODE_HOME", "/nonexistent-lode-home")
            .env("RUST_LOG", test_log())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn lode devnet");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            // Read every line (a full pipe would block the devnet).
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut net = Devnet {
            child,
            ready: Value::Null,
            log,
            paused: None,
            _dir: dir,
        };
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("devnet not ready: {}", net.log_tail()));
        net.ready = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("devnet --json printed {line:?}: {e}"));
        net
    }

    fn url(&self) -> String {
        self.ready["url"].as_str().expect("url").to_string()
    }

    fn validator_pid(&self, i: usize) -> u32 {
        self.ready["validators"][i]["pid"]
            .as_u64()
            .expect("validator pid") as u32
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `GET /v1/validators` until `ok` holds; the last answer.
    fn validators_when(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let url = self.url();
        loop {
            let (status, v) = get(&url, "/v1/validators");
            if status == 200 && ok(&v) {
                return v;
            }
            assert!(
                start.elapsed() < WAIT,
                "{what}: never happened; last answer {status} {v}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Some(pid) = self.paused.take() {
            signal("-CONT", pid);
        }
        // SIGTERM: the devnet stops its validators, gateway and node.
        signal("-TERM", self.child.id());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signed(v: &Value) -> Vec<Option<u64>> {
    v["validators"]
        .as_array()
        .map(|a| a.iter().map(|x| x["last_signed_height"].as_u64()).collect())
        .unwrap_or_default()
}

#[test]
fn gateway_shows_the_validators_of_a_replicated_chain() {
    let mut net = Devnet::start(3);
    let url = net.url();

    // All three listed with power, online, each with its URL and height.
    let v = net.validators_when("3 validators online", |v| {
        v["replicated"] == true
            && v["validators"].as_array().is_some_and(|a| a.len() == 3)
            && v["online"] == 3
            && v["answered"] == 3
    });
    let vals = v["validators"].as_array().expect("validators");
    for x in vals {
        assert!(
            x["did"].as_str().is_some_and(|d| d.starts_with("did:key:")),
            "{x}"
        );
        assert!(x["power"].as_u64().is_some_and(|p| p > 0), "{x}");
        assert!(
            x["url"].as_str().is_some_and(|u| u.starts_with("http://")),
            "{x}"
        );
        assert!(x["height"].as_u64().is_some(), "{x}");
    }
    assert_eq!(
        v["total_power"].as_u64(),
        Some(vals.iter().map(|x| x["power"].as_u64().unwrap_or(0)).sum())
    );
    assert!(v["height"].as_u64().is_some(), "{v}");
    assert!(v["gateway_height"].as_u64().is_some(), "{v}");
    for k in ["samples", "p50", "p99"] {
        assert!(v["finality_ms"].get(k).is_some(), "finality_ms.{k}: {v}");
    }

    // Blocks keep being decided: every validator's last signed height moves on.
    let before: Vec<u64> = signed(&v).into_iter().map(|s| s.unwrap_or(0)).collect();
    let v = net.validators_when("every validator signs newer blocks", |v| {
        let now = signed(v);
        now.len() == 3
            && now
                .iter()
                .zip(&before)
                .all(|(n, b)| n.is_some_and(|n| n >= b + 2))
    });
    let blocks = v["recent_blocks"].as_array().expect("recent blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 10, "{v}");
    let b = &blocks[0];
    assert!(
        b["proposer"]
            .as_str()
            .is_some_and(|d| d.starts_with("did:key:")),
        "{b}"
    );
    assert!(b["round"].as_u64().is_some(), "{b}");
    let signers = b["signers"].as_array().expect("signers");
    assert!(!signers.is_empty(), "{b}");
    // A certificate holds more than 2/3 of the power.
    let (signed_power, total) = (
        b["signed_power"].as_u64().expect("signed power"),
        b["total_power"].as_u64().expect("total power"),
    );
    assert!(signed_power * 3 > total * 2, "{b}");

    // A validator that stops answering is shown offline within the timeout,
    // and the route still answers promptly.
    let pid = net.validator_pid(2);
    let stopped_url = net.ready["validators"][2]["url"]
        .as_str()
        .expect("url")
        .to_string();
    signal("-STOP", pid);
    net.paused = Some(pid);
    let t = Instant::now();
    let v = net.validators_when("a paused validator shows offline", |v| {
        v["answered"] == 2
            && v["validators"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["url"] == stopped_url.as_str() && x["online"] == false)
            })
    });
    assert!(t.elapsed() < Duration::from_secs(20), "{v}");
    let t = Instant::now();
    let (status, _) = get(&url, "/v1/validators");
    assert_eq!(status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the route waits on a silent validator"
    );
    signal("-CONT", pid);
    net.paused = None;
    net.validators_when("the validator is back online", |v| v["online"] == 3);

    // The dashboard carries the panel and asks the route.
    let page = reqwest::blocking::get(format!("{url}/"))
        .expect("page")
        .text()
        .expect("page text");
    for hook in [
        "id=\"validators-panel\"",
        "id=\"validators-table\"",
        "id=\"vblocks-table\"",
    ] {
        assert!(page.contains(hook), "the page has no {hook}");
    }
    let js = reqwest::blocking::get(format!("{url}/assets/dashboard.js"))
        .expect("script")
        .text()
        .expect("script text");
    for hook in ["/v1/validators", "validators-panel", "renderValidators"] {
        assert!(js.contains(hook), "dashboard.js has no {hook}");
    }
    let (_, doc) = get(&url, "/openapi.json");
    assert!(doc["paths"]["/v1/validators"].is_object());
}

#[test]
fn a_gateway_sealing_its_own_chain_is_its_only_validator() {
    let net = Net::start(0, 60_000);
    let (status, v) = get(&net.url, "/v1/validators");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["replicated"], false, "{v}");
    let vals = v["validators"].as_array().expect("validators");
    assert_eq!(vals.len(), 1, "{v}");
    let (_, snap) = get(&net.url, "/v1/dashboard");
    assert_eq!(vals[0]["did"], snap["ledger"]["validator"], "{v}");
    assert_eq!(vals[0]["online"], true);
}

/// `lode devnet --validators 4 --demo`: the demo job runs to the end, and the
/// chain verifies from every validator (certificates included).
#[test]
fn devnet_with_four_validators_runs_the_demo_and_verifies_from_each() {
    let net = Devnet::start_with(4, &["--nodes", "2", "--demo", "--demo-units", "20"]);
    let url = net.url();
    let start = Instant::now();
    loop {
        let (_, v) = get(&url, "/v1/jobs");
        let done = v["jobs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["status"] == "finished" && j["completed"] == 20)
        });
        if done {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the demo job did not finish: {v}\n{}",
            net.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let validators = net.ready["validators"]
        .as_array()
        .expect("validators")
        .clone();
    assert_eq!(validators.len(), 4);
    // The gateway reports the job finished once its receipts are durable in
    // its outbox; they reach the chain with its next batches.
    for v in validators {
        let vurl = v["url"].as_str().expect("validator url");
        let start = Instant::now();
        let r = loop {
            let out = Command::new(lode_bin())
                .args(["ledger", "verify", "--json", "--from", vurl])
                .output()
                .expect("verify");
            let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            assert!(
                out.status.success() && r["ok"] == true,
                "verify --from {vurl}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if r["receipts"].as_u64().unwrap_or(0) >= 20 {
                break r;
            }
            assert!(
                start.elapsed() < WAIT,
                "the demo's receipts never reached {vurl}: {r}"
            );
            std::thread::sleep(Duration::from_millis(300));
        };
        assert_eq!(
            r["certified_blocks"].as_u64(),
            r["head_height"].as_u64(),
            "{r}"
        );
    }
}
