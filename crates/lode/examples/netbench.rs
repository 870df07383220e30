//! End-to-end network benchmark: 1 gateway + N nodes as separate release-built
//! `lode` processes on loopback; trivial units (examples/jobs/wasm/hello.wasm).
//!
//! Measures verified units per second at quorum 1 and quorum 2 (adaptive trust
//! off, so quorum 2 really runs every unit twice), and submit-to-result latency
//! of single-unit jobs (p50/p99).
//!
//! Run with `bench/network.sh` (builds the release binary first), or
//! `cargo run --release --example netbench -- [--nodes 4] [--units 20000] [--latency-jobs 50]`.

use lode_client::Client;
use lode_proto::jobspec::JobSpec;
use lode_proto::wire::UnitInput;
use lode_proto::{KeyFile, Keypair};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Children's log level (`NETBENCH_RUST_LOG`, default `warn`) and where their
/// stderr goes (`NETBENCH_LOGS=DIR`: `DIR/gateway.log`, `DIR/node-N.log`).
fn child_log(cmd: &mut Command, name: &str) {
    cmd.env(
        "RUST_LOG",
        std::env::var("NETBENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    if let Some(dir) = std::env::var_os("NETBENCH_LOGS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("log dir");
        let f = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file");
        cmd.stderr(f);
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec(quorum: u8) -> JobSpec {
    JobSpec::from_toml(&format!(
        "name = 'bench q{quorum}'\nmodule = 'hello.wasm'\n[inputs]\nstdin = ['x']\n[limits]\nfuel = 1000000\nmemory_mb = 4\ntimeout_ms = 5000\nmax_output_bytes = 256\n[verification]\nquorum = {quorum}\nmax_replicas = {}\nadaptive_trust = false\n[price]\nmax_per_fuel = 1\n",
        quorum + 2
    ))
    .expect("spec")
}

fn main() {
    let nodes = arg("--nodes", 4);
    let units = arg("--units", 20_000);
    let latency_jobs = arg("--latency-jobs", 50);
    // target/<profile>/examples/netbench → target/<profile>/lode
    let bin = std::env::var_os("LODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("lode"))
                .expect("target dir")
        });
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --release -p lode)",
        bin.display()
    );
    let dir = tempfile::tempdir().expect("tmp");
    let req_path = dir.path().join("req.key");
    let requester = KeyFile::generate(None).expect("key");
    requester.save_new(&req_path).expect("save");

    let mut gw = Command::new(&bin);
    gw.args(["gateway", "--data-dir"])
        .arg(dir.path().join("gw"))
        .args(["--listen", "127.0.0.1:0", "--poll-timeout-ms", "2000"])
        .args(["--fund", &format!("{}=1000000", requester.did())])
        .stdout(Stdio::piped());
    child_log(&mut gw, "gateway");
    let mut gw = gw.spawn().expect("gateway");
    let mut line = String::new();
    BufReader::new(gw.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("addr");
    let url = line.trim().trim_start_matches("listening on ").to_string();
    let _gw = Kill(gw);
    let mut _nodes = vec![];
    for i in 0..nodes {
        let kp = dir.path().join(format!("n{i}.key"));
        let mut addr = [0u8; 20];
        addr[19] = i as u8 + 1;
        KeyFile::generate(Some(lode_proto::EvmAddress(addr)))
            .expect("key")
            .save_new(&kp)
            .expect("save");
        let mut node = Command::new(&bin);
        node.args(["node", "--gateway", &url, "--key"])
            .arg(&kp)
            .arg("--data-dir")
            .arg(dir.path().join(format!("n{i}")))
            .stdout(Stdio::null());
        child_log(&mut node, &format!("node-{i}"));
        _nodes.push(Kill(node.spawn().expect("node")));
    }
    let client = Client::new(&url).expect("client");
    let start = Instant::now();
    loop {
        let v: serde_json::Value = client.get_json("/v1/nodes").unwrap_or_default();
        if v["nodes"].as_array().map_or(0, |a| a.len()) >= nodes {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nodes did not come online"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let key: &Keypair = &requester.keypair;
    let wasm = std::fs::read(root().join("examples/jobs/wasm/hello.wasm")).expect("hello.wasm");
    let module = client.upload_module(key, &wasm).expect("upload");
    let chain = client.chain_id().expect("chain");
    let run = |quorum: u8, n: usize| -> (Duration, u32) {
        let inputs = (0..n)
            .map(|i| UnitInput {
                stdin: vec![],
                args: vec![format!("u{i}")],
            })
            .collect();
        let s = Client::build_submission(key, chain, &spec(quorum), module, inputs).expect("build");
        let t = Instant::now();
        let v = client.submit_job(key, &s).expect("submit");
        let v = client
            .wait(&v.job, Duration::from_millis(5), Duration::from_secs(600))
            .expect("wait");
        (t.elapsed(), v.completed)
    };
    // Warm-up: every node compiles the module once.
    run(1, 200);
    println!(
        "machine: {} cores; {nodes} nodes; trivial unit = examples/jobs/wasm/hello.wasm",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for q in [1u8, 2] {
        let (t, done) = run(q, units);
        println!(
            "quorum {q}: {done} verified units in {:.2} s = {:.0} verified units/s ({} replicas run)",
            t.as_secs_f64(),
            f64::from(done) / t.as_secs_f64(),
            done as usize * q as usize
        );
    }
    let rss: Vec<u64> = _nodes.iter().map(|k| rss_kib(k.0.id())).collect();
    println!("node resident memory after the throughput runs (KiB): {rss:?}");
    let mut lat: Vec<Duration> = (0..latency_jobs).map(|_| run(1, 1).0).collect();
    lat.sort();
    std::thread::sleep(Duration::from_secs(3));
    let rss: Vec<u64> = _nodes.iter().map(|k| rss_kib(k.0.id())).collect();
    println!("node resident memory after 3 s idle (KiB): {rss:?}");
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "single-unit submit-to-result latency over {latency_jobs} jobs: p50 {:.1} ms, p99 {:.1} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
}

/// VmRSS of a process, in KiB (0 where /proc is unavailable).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
