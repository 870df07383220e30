//! `lode devnet` and the requester/contributor CLI against it: real processes on
//! loopback, driven the way a person (or a script using `--json`) would.

mod common;

use common::{lode_bin, repo_root};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: debug builds on a busy machine.
const WAIT: Duration = Duration::from_secs(300);

fn lode(args: &[&str]) -> Output {
    Command::new(lode_bin())
        .args(args)
        .env("LODE_HOME", "/nonexistent-lode-home")
        .env_remove("LODE_GATEWAY")
        .env_remove("LODE_LEDGER_DIR")
        .output()
        .expect("run lode")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs lode, asserts success, parses stdout as JSON.
fn json(args: &[&str]) -> Value {
    let o = lode(args);
    assert!(
        o.status.success(),
        "lode {args:?} failed:\nstdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("lode {args:?}: not JSON ({e}): {}", text(&o.stdout)))
}

/// Runs lode, asserts failure without a panic, returns stderr.
fn fails(args: &[&str]) -> String {
    let o = lode(args);
    let err = text(&o.stderr);
    assert!(
        !o.status.success(),
        "lode {args:?} should fail:\n{}",
        text(&o.stdout)
    );
    assert!(!err.contains("panicked"), "lode {args:?} panicked: {err}");
    err
}

/// A running `lode devnet --json`, killed on drop.
struct Devnet {
    child: Child,
    ready: Value,
    stderr: mpsc::Receiver<String>,
}

impl Devnet {
    fn start(dir: &Path, nodes: u32, extra: &[&str]) -> Devnet {
        let mut child = Command::new(lode_bin())
            .args([
                "devnet",
                "--json",
                "--port",
                "0",
                "--nodes",
                &nodes.to_string(),
            ])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("LODE_HOME", "/nonexistent-lode-home")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lode devnet");
        let stdout = lines_of(child.stdout.take().expect("stdout"), "");
        let erx = lines_of(child.stderr.take().expect("stderr"), "[devnet] ");
        let line = stdout
            .recv_timeout(WAIT)
            .expect("devnet ready within the timeout");
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("devnet --json printed {line:?}: {e}"));
        Devnet {
            child,
            ready,
            stderr: erx,
        }
    }

    fn url(&self) -> &str {
        self.ready["url"].as_str().expect("url")
    }
    fn s(&self, k: &str) -> String {
        self.ready[k].as_str().expect(k).to_string()
    }
    fn pids(&self) -> Vec<u32> {
        let mut p = vec![self.ready["gateway_pid"].as_u64().expect("gateway pid") as u32];
        for n in self.ready["nodes"].as_array().expect("nodes") {
            p.push(n["pid"].as_u64().expect("node pid") as u32);
        }
        p
    }

    fn signal(&self, sig: &str, pid: u32) {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(start.elapsed() < WAIT, "devnet did not exit");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stderr lines seen so far.
    fn stderr_lines(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Forwards each line of `r` to the returned channel (echoed to stderr with
/// `echo` as prefix, when not empty).
fn lines_of(r: impl Read + Send + 'static, echo: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if !echo.is_empty() {
                eprintln!("{echo}{l}");
            }
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A copy of the sha256 example spec with absolute paths and `memory_mb`.
fn spec_with_memory(dir: &Path, memory_mb: u64) -> PathBuf {
    let ex = repo_root().join("examples/jobs");
    let text = std::fs::read_to_string(ex.join("sha256.toml"))
        .expect("spec")
        .replace("memory_mb = 16", &format!("memory_mb = {memory_mb}"))
        .replace("\"wasm/", &format!("\"{}/wasm/", ex.display()))
        .replace("\"inputs/", &format!("\"{}/inputs/", ex.display()));
    let p = dir.join(format!("sha256-{memory_mb}mb.toml"));
    std::fs::write(&p, text).expect("write spec");
    p
}

#[test]
fn devnet_runs_jobs_stops_on_ctrl_c_and_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("devnet");
    let mut net = Devnet::start(&dir, 2, &["--demo", "--demo-units", "10"]);
    let url = net.url().to_string();
    let key = net.s("requester_key");
    let gw = net.s("gateway_dir");
    assert_eq!(net.ready["dashboard"], format!("{url}/"));
    assert!(Path::new(&key).exists());
    let node0 = net.ready["nodes"][0]["did"]
        .as_str()
        .expect("did")
        .to_string();

    // --demo submitted a job; it completes.
    wait_until("the demo job to finish", || {
        let jobs = json(&["job", "status", "--gateway", &url, "--json"]);
        jobs.as_array().expect("list").iter().any(|j| {
            j["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("devnet demo"))
                && j["status"] == "finished"
                && j["completed"] == 10
        })
    });

    // A requester submits the example spec with the CLI; --json is one object.
    let spec = repo_root().join("examples/jobs/sha256.toml");
    let v = json(&[
        "job",
        "submit",
        spec.to_str().expect("path"),
        "--key",
        &key,
        "--gateway",
        &url,
        "--json",
    ]);
    assert_eq!(v["status"], "finished", "{v}");
    assert_eq!(
        (v["completed"].as_u64(), v["failed"].as_u64()),
        (Some(8), Some(0))
    );
    let cost: u128 = v["cost_so_far"]
        .as_str()
        .expect("cost")
        .parse()
        .expect("int");
    assert!(cost > 0);
    let job = v["job"].as_str().expect("job").to_string();

    let st = json(&["job", "status", &job, "--gateway", &url, "--json"]);
    assert_eq!(st["job"], job.as_str());
    assert_eq!(st["units"], 8);
    let results = json(&[
        "job",
        "results",
        &job,
        "--key",
        &key,
        "--gateway",
        &url,
        "--json",
    ]);
    let results = results.as_array().expect("array");
    assert_eq!(results.len(), 8);
    assert!(results.iter().all(|r| r["status"] == "verified"));
    // Readable output by default.
    let o = lode(&["job", "status", &job, "--gateway", &url]);
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains("8 verified, 0 failed"),
        "{}",
        text(&o.stdout)
    );

    // Storage works on a fresh devnet: its nodes offer 256 MiB each by default.
    let stored = tmp.path().join("stored.bin");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&stored, &bytes).expect("write");
    let mut put = Value::Null;
    wait_until("a storage put (storage nodes announce themselves)", || {
        let o = lode(&[
            "storage",
            "put",
            stored.to_str().expect("path"),
            "--key",
            &key,
            "--gateway",
            &url,
            "--json",
        ]);
        if o.status.success() {
            put = serde_json::from_slice(&o.stdout).expect("put json");
        }
        o.status.success()
    });
    let id = put["file"].as_str().expect("file id").to_string();
    wait_until("every share held", || {
        let st = json(&["storage", "status", &id, "--gateway", &url, "--json"]);
        st["live_shares"] == put["n"]
    });
    let back = tmp.path().join("back.bin");
    let o = lode(&[
        "storage",
        "get",
        &id,
        "--out",
        back.to_str().expect("path"),
        "--key",
        &key,
        "--gateway",
        &url,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(std::fs::read(&back).expect("read") == bytes);

    // Contributors and auditors read the ledger the gateway is writing.
    wait_until("receipts on the ledger", || {
        let b = json(&["wallet", "balance", &node0, "--data-dir", &gw, "--json"]);
        b["balance"].as_str().is_some_and(|s| s != "0")
    });
    let hist = json(&["wallet", "history", &node0, "--data-dir", &gw, "--json"]);
    assert!(!hist.as_array().expect("events").is_empty());
    let verify = json(&["ledger", "verify", &gw, "--json"]);
    assert_eq!(verify["ok"], true, "{verify}");
    let show = json(&["ledger", "show", "--data-dir", &gw, "--json"]);
    let height = show["height"].as_u64().expect("height");
    assert!(height > 0);
    let fair = json(&["ledger", "fairness", "--data-dir", &gw, "--json"]);
    assert!(fair.is_object());

    // Error paths say what to do.
    let err = fails(&["job", "status", &"0".repeat(64), "--gateway", &url]);
    assert!(
        err.contains("no job") && err.contains("lode job status --gateway"),
        "{err}"
    );
    let err = fails(&[
        "job",
        "results",
        "not-a-job",
        "--key",
        &key,
        "--gateway",
        &url,
    ]);
    assert!(err.contains("lode job status --gateway"), "{err}");

    // A spec that needs more memory than any node offers (nodes: 1024 MiB, one slot
    // per node or fewer MiB per slot) is explained, with what to change.
    let big = spec_with_memory(tmp.path(), 4096);
    let mut submit = Command::new(lode_bin())
        .args(["job", "submit"])
        .arg(&big)
        .args(["--key", &key, "--gateway", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("submit");
    let err = lines_of(submit.stderr.take().expect("stderr"), "");
    let msg = loop {
        let l = err.recv_timeout(WAIT).expect("an explanation");
        if l.contains("no online node") || l.contains("no unit of this job") {
            break l;
        }
    };
    let _ = submit.kill();
    let _ = submit.wait();
    assert!(
        msg.contains("4096 MB") && msg.contains("lode node --memory-mib"),
        "{msg}"
    );
    // If it was submitted, cancel it: the escrow is refunded.
    let jobs = json(&["job", "status", "--gateway", &url, "--json"]);
    for j in jobs.as_array().expect("jobs") {
        if j["status"] == "running" {
            let id = j["job"].as_str().expect("id");
            let c = json(&[
                "job",
                "cancel",
                id,
                "--key",
                &key,
                "--gateway",
                &url,
                "--json",
            ]);
            assert_eq!(c["status"], "cancelled", "{c}");
        }
    }

    // Ctrl-C stops every child and exits 0.
    let pids = net.pids();
    assert!(pids.iter().all(|&p| alive(p)));
    net.signal("-INT", net.child.id());
    let status = net.wait_exit();
    assert!(status.success(), "devnet exited with {status}");
    for p in &pids {
        assert!(
            !alive(*p),
            "child {p} still running after the devnet stopped"
        );
    }
    let lines = net.stderr_lines();
    assert!(
        lines.iter().any(|l| l.contains("devnet stopped")),
        "{lines:?}"
    );
    drop(net);
    assert_eq!(json(&["ledger", "verify", &gw, "--json"])["ok"], true);

    // A second start resumes the same chain with the same keys.
    let mut net = Devnet::start(&dir, 2, &[]);
    let url = net.url().to_string();
    assert_eq!(net.s("requester_key"), key);
    assert_eq!(net.ready["nodes"][0]["did"], node0.as_str());
    let jobs = json(&["job", "status", "--gateway", &url, "--json"]);
    assert!(
        jobs.as_array()
            .expect("jobs")
            .iter()
            .any(|j| j["job"] == job.as_str() && j["status"] == "finished"),
        "{jobs}"
    );
    let show = json(&["ledger", "show", "--data-dir", &gw, "--json"]);
    assert!(show["height"].as_u64().expect("height") >= height);

    // A child that dies is reported by name; the devnet stops the rest and fails.
    let pids = net.pids();
    net.signal("-KILL", pids[2]);
    let status = net.wait_exit();
    assert!(!status.success());
    for p in &pids {
        assert!(!alive(*p), "child {p} still running");
    }
    let lines = net.stderr_lines().join("\n");
    assert!(lines.contains("node1 exited unexpectedly"), "{lines}");
}

#[test]
fn devnet_refuses_a_port_in_use() {
    let tmp = tempfile::tempdir().expect("tmp");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = tmp.path().join("d");
    let err = fails(&[
        "devnet",
        "--port",
        &port,
        "--data-dir",
        dir.to_str().expect("path"),
    ]);
    assert!(
        err.contains(&format!("port {port}"))
            && err.contains("already in use")
            && err.contains("--port"),
        "{err}"
    );
    // Nothing was started: no gateway data.
    assert!(!dir.join("gateway/genesis.toml").exists());
}

#[test]
fn job_cli_without_a_gateway_says_what_to_do() {
    let spec = repo_root().join("examples/jobs/sha256.toml");
    let tmp = tempfile::tempdir().expect("tmp");
    let key = tmp.path().join("r.key");
    common::new_key(&key, None);
    for args in [
        vec!["job", "status", "--gateway", "http://127.0.0.1:9"],
        vec!["job", "status", "--json", "--gateway", "http://127.0.0.1:9"],
        vec![
            "job",
            "submit",
            spec.to_str().expect("path"),
            "--key",
            key.to_str().expect("key"),
            "--gateway",
            "http://127.0.0.1:9",
        ],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("cannot reach the gateway at http://127.0.0.1:9")
                && err.contains("lode devnet"),
            "{err}"
        );
    }
    // A missing key file names the fix.
    let err = fails(&[
        "job",
        "submit",
        spec.to_str().expect("path"),
        "--key",
        tmp.path().join("none.key").to_str().expect("path"),
    ]);
    assert!(err.contains("lode keys new"), "{err}");
}

#[test]
fn job_submit_with_no_node_online_warns_and_json_parses() {
    let net = common::Net::start(0, 60_000);
    let spec = repo_root().join("examples/jobs/sha256.toml");
    let o = lode(&[
        "job",
        "submit",
        spec.to_str().expect("path"),
        "--key",
        net.requester_path.to_str().expect("path"),
        "--gateway",
        &net.url,
        "--no-wait",
        "--json",
    ]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(err.contains("no node is online"), "{err}");
    let v: Value = serde_json::from_str(&out).expect("--json parses");
    assert_eq!(v["status"], "running");
    assert_eq!(v["units"], 8);
}
