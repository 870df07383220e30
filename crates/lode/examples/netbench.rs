//! End-to-end network benchmark: 1 gateway + N nodes as separate release-built
//! `lode` processes on loopback; trivial units (examples/jobs/wasm/hello.wasm).
//!
//! Measures verified units per second at quorum 1 and quorum 2 (adaptive trust
//! off, so quorum 2 really runs every unit twice), and submit-to-result latency
//! of single-unit jobs (p50/p99).
//!
//! Run with `bench/network.sh` (builds the release binary first), or
//! `cargo run --release --example netbench -- [--nodes 4] [--units 20000] [--latency-jobs 50]`.

mod common;

use common::{Kill, arg, lode_bin, root, rss_kib, start_gateway, start_node, wait_nodes};
use lode_client::Client;
use lode_proto::jobspec::JobSpec;
use lode_proto::wire::UnitInput;
use lode_proto::{KeyFile, Keypair};
use std::time::{Duration, Instant};

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
    let bin = lode_bin();
    let dir = tempfile::tempdir().expect("tmp");
    let req_path = dir.path().join("req.key");
    let requester = KeyFile::generate(None).expect("key");
    requester.save_new(&req_path).expect("save");
    let fund = format!("{}=1000000", requester.did());
    let gw_args = ["--poll-timeout-ms", "2000", "--fund", &fund].map(String::from);
    let (_gw, url) = start_gateway(&bin, &dir.path().join("gw"), &gw_args);
    let _nodes: Vec<Kill> = (0..nodes)
        .map(|i| start_node(&bin, dir.path(), &url, i, &[]).0)
        .collect();
    let client = Client::new(&url).expect("client");
    wait_nodes(&client, nodes);
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
