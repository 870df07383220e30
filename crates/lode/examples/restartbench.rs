//! Gateway restart cost against history size, and `/healthz` latency while large
//! result downloads run: 1 gateway + N nodes, release-built `lode` processes on
//! loopback, trivial units (examples/jobs/wasm/hello.wasm, quorum 1).
//!
//! For each history step it finishes more jobs, stops the gateway (SIGTERM),
//! starts it again and prints the time from spawn to listening, its resident
//! memory right after, and what recovery read (`lode_recovery_*` metrics). Then
//! `--downloads` threads fetch every page of the largest job's results over and
//! over while the main thread samples `/healthz`.
//!
//! Run with `bench/restart.sh` or
//! `cargo run --release -p lode --example restartbench -- [--nodes 4] [--big 50000] [--small-jobs 20] [--downloads 4]`.

mod common;

use common::{Kill, arg, lode_bin, root, rss_kib, start_gateway, start_node, wait_nodes};
use lode_client::Client;
use lode_proto::jobspec::JobSpec;
use lode_proto::wire::UnitInput;
use lode_proto::{Hash32, KeyFile};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn spec() -> JobSpec {
    JobSpec::from_toml(
        "name = 'restart bench'\nmodule = 'hello.wasm'\n[inputs]\nstdin = ['x']\n[limits]\nfuel = 1000000\nmemory_mb = 4\ntimeout_ms = 5000\nmax_output_bytes = 256\n[verification]\nquorum = 1\nmax_replicas = 2\nadaptive_trust = false\n[price]\nmax_per_fuel = 1\n",
    )
    .expect("spec")
}

fn metric(url: &str, name: &str) -> u64 {
    reqwest::blocking::get(format!("{url}/metrics"))
        .and_then(|r| r.text())
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let nodes = arg("--nodes", 4);
    let big = arg("--big", 50_000);
    let small_jobs = arg("--small-jobs", 20);
    let downloads = arg("--downloads", 4);
    let bin = lode_bin();
    let dir = tempfile::tempdir().expect("tmp");
    let requester = KeyFile::generate(None).expect("key");
    let fund = format!("{}=1000000", requester.did());
    let gw_args: Vec<String> = ["--poll-timeout-ms", "2000", "--fund", &fund]
        .map(String::from)
        .to_vec();
    let gw_dir = dir.path().join("gw");
    let (mut gw, url) = start_gateway(&bin, &gw_dir, &gw_args);
    let listen = url.trim_start_matches("http://").to_string();
    let mut fixed_args = gw_args.clone();
    fixed_args.extend(["--listen".to_string(), listen]);
    let _nodes: Vec<Kill> = (0..nodes)
        .map(|i| start_node(&bin, dir.path(), &url, i, &[]).0)
        .collect();
    let client = Client::new(&url).expect("client");
    wait_nodes(&client, nodes);
    let key = &requester.keypair;
    let wasm = std::fs::read(root().join("examples/jobs/wasm/hello.wasm")).expect("hello.wasm");
    let run = |client: &Client, n: usize| -> String {
        let module = client.upload_module(key, &wasm).expect("upload");
        let chain = client.chain_id().expect("chain");
        let inputs = (0..n)
            .map(|i| UnitInput {
                stdin: vec![],
                args: vec![format!("u{i}")],
            })
            .collect();
        let s = Client::build_submission(key, chain, &spec(), module, inputs).expect("build");
        let v = client.submit_job(key, &s).expect("submit");
        let v = client
            .wait(&v.job, Duration::from_millis(20), Duration::from_secs(900))
            .expect("wait");
        assert_eq!(v.completed as usize, n, "{v:?}");
        v.job
    };
    let restart = |gw: Kill, data: &Path| -> (Kill, f64, u64) {
        gw.terminate();
        let t = Instant::now();
        let (g, _) = start_gateway(&bin, data, &fixed_args);
        let secs = t.elapsed().as_secs_f64();
        let rss = rss_kib(g.0.id());
        (g, secs, rss)
    };
    println!(
        "machine: {} cores; {nodes} nodes; hello.wasm units at quorum 1",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| finished jobs | finished units | restart to listening | RSS after start | jobs read | outcomes read |"
    );
    println!("|---|---|---|---|---|---|");
    let mut jobs = 0usize;
    let mut units = 0usize;
    let mut big_job = None;
    for step in 0..3 {
        match step {
            1 => {
                big_job = Some(run(&client, big));
                jobs += 1;
                units += big;
            }
            2 => {
                for _ in 0..small_jobs {
                    run(&client, 1_000);
                }
                jobs += small_jobs;
                units += small_jobs * 1_000;
            }
            _ => {}
        }
        // Let the block holding the last settlement seal, then restart.
        std::thread::sleep(Duration::from_millis(1_500));
        let (g, secs, rss) = restart(gw, &gw_dir);
        gw = g;
        println!(
            "| {jobs} | {units} | {:.0} ms | {} MiB | {} | {} |",
            secs * 1000.0,
            rss / 1024,
            metric(&url, "lode_recovery_jobs_loaded"),
            metric(&url, "lode_recovery_outcomes_loaded"),
        );
    }
    // /healthz while `downloads` clients read the big job's results page by page.
    let job = big_job.expect("big job");
    let stop = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..downloads)
        .map(|_| {
            let (stop, pages, bytes) = (stop.clone(), pages.clone(), bytes.clone());
            let (url, job, key) = (url.clone(), job.clone(), requester.keypair.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let id: Hash32 = job.parse().expect("id");
                while !stop.load(Ordering::Relaxed) {
                    let mut from = 0u64;
                    loop {
                        let env = lode_proto::Envelope::seal_fresh(
                            &key,
                            &lode_proto::wire::ReadJob { job: id },
                            lode_client::now_ms(),
                        )
                        .expect("seal");
                        let r = http
                            .get(format!(
                                "{url}/v1/jobs/{job}/results?from={from}&limit=10000"
                            ))
                            .header(
                                lode_proto::wire::READ_HEADER,
                                serde_json::to_string(&env).expect("json"),
                            )
                            .send()
                            .and_then(|r| r.bytes());
                        let Ok(b) = r else { break };
                        bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                        pages.fetch_add(1, Ordering::Relaxed);
                        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
                        match v["next"].as_u64() {
                            Some(n) if !stop.load(Ordering::Relaxed) => from = n,
                            _ => break,
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let http = reqwest::blocking::Client::new();
    let mut lat = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(8) {
        let s = Instant::now();
        let ok = http
            .get(format!("{url}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success());
        assert!(ok, "healthz failed");
        lat.push(s.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.join();
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "/healthz during {downloads} concurrent result downloads of the {big}-unit job ({} pages, {:.0} MB served in 8 s): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        pages.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed) as f64 / 1e6,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
        lat.len()
    );
    gw.terminate();
}
