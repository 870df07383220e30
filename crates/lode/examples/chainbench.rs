//! Replicated-chain benchmark (issue 14): 4 `lode validator` processes
//! (release build, loopback, one machine).
//!
//! 1. **Ordering**: this program acts as a gateway and submits signed batches
//!    of work receipts (one signature per batch) to every validator's mempool
//!    as fast as they take them; it measures finalized receipts per second
//!    (from the committed blocks) and the latency from a batch's submission
//!    to its commit (p50/p99).
//! 2. **End to end**: verified units/s of a trivial job (hello.wasm, quorum 1)
//!    on a single-validator chain (the gateway seals blocks) and on the
//!    replicated chain (the gateway submits batches to the 4 validators),
//!    same nodes and units, in one run.
//!
//! Run with `bench/validators.sh` (builds the release binary first), or
//! `cargo run --release -p lode --example chainbench -- [--batches 40]
//! [--receipts 5000] [--units 4000] [--nodes 4]`.

mod common;

use common::{Kill, arg, child_log, lode_bin, root, start_gateway, start_node, wait_nodes};
use lode_client::Client;
use lode_ledger::{ContributionKind, Entry, GatewayBatch, JobEscrow, RegisterNode, WorkReceipt};
use lode_proto::jobspec::JobSpec;
use lode_proto::wire::UnitInput;
use lode_proto::{EvmAddress, Hash32, KeyFile, Keypair, canonical};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VALIDATORS: usize = 4;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

fn key(path: &Path) -> KeyFile {
    let kf = KeyFile::generate(None).expect("key");
    kf.save_new(path).expect("save");
    kf
}

struct Validators {
    procs: Vec<Kill>,
    urls: Vec<String>,
}

impl Validators {
    /// CPU seconds the validator processes have used so far.
    fn cpu_s(&self) -> f64 {
        self.procs.iter().map(|p| cpu_s(p.0.id())).sum()
    }
}

/// CPU seconds (user + system) of a process, from /proc (0 if unknown).
fn cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// Writes a replicated genesis and starts the validators.
fn start_validators(
    bin: &Path,
    dir: &Path,
    gateways: &[String],
    fund: &str,
) -> (Validators, std::path::PathBuf) {
    let mut args: Vec<String> = vec!["validator".into(), "genesis".into()];
    for i in 0..VALIDATORS {
        std::fs::create_dir_all(dir.join(format!("v{i}"))).expect("dir");
        let k = key(&dir.join(format!("v{i}/validator.key")));
        args.extend(["--validator".into(), k.did().to_string()]);
    }
    for g in gateways {
        args.extend(["--gateway".into(), g.clone()]);
    }
    let genesis = dir.join("genesis.toml");
    args.extend([
        "--fund".into(),
        fund.into(),
        "--epoch-ms".into(),
        "3600000".into(),
        "--out".into(),
        genesis.display().to_string(),
    ]);
    let ok = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .status()
        .expect("genesis");
    assert!(ok.success(), "lode validator genesis failed");
    let ports: Vec<(u16, u16)> = (0..VALIDATORS)
        .map(|_| (free_port(), free_port()))
        .collect();
    let mut procs = Vec::new();
    for i in 0..VALIDATORS {
        let peers: Vec<String> = (0..VALIDATORS)
            .filter(|j| *j != i)
            .map(|j| format!("127.0.0.1:{}", ports[j].0))
            .collect();
        let d = dir.join(format!("v{i}"));
        let mut c = Command::new(bin);
        c.args(["validator", "--data-dir"])
            .arg(&d)
            .arg("--key")
            .arg(d.join("validator.key"))
            .arg("--genesis")
            .arg(&genesis)
            .args(["--listen", &format!("127.0.0.1:{}", ports[i].0)])
            .args(["--http", &format!("127.0.0.1:{}", ports[i].1)])
            .args(["--peers", &peers.join(",")])
            .args(["--idle-block-ms", "50"])
            .stdout(Stdio::null());
        child_log(&mut c, &format!("v{i}"));
        procs.push(Kill(c.spawn().expect("validator")));
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|(_, h)| format!("http://127.0.0.1:{h}"))
        .collect();
    let http = reqwest::blocking::Client::new();
    let start = Instant::now();
    for u in &urls {
        while http
            .get(format!("{u}/v1/status"))
            .send()
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "validator {u} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (Validators { procs, urls }, genesis)
}

fn status(http: &reqwest::blocking::Client, url: &str) -> serde_json::Value {
    http.get(format!("{url}/v1/status"))
        .send()
        .and_then(|r| r.json())
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() - 1) * p / 100]
}

/// Part 1: receipts ordered per second and submit-to-commit latency.
fn ordering(bin: &Path, dir: &Path, batches: usize, per_batch: usize) {
    let gw = Keypair::generate().expect("key");
    let requester = Keypair::generate().expect("key");
    let fund = format!("{}=1000000", requester.did());
    let (v, _) = start_validators(bin, dir, &[gw.did().to_string()], &fund);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http");
    let chain: Hash32 = status(&http, &v.urls[0])["chain_id"]
        .as_str()
        .expect("chain")
        .parse()
        .expect("chain id");
    // Batch 0: the nodes and the job's escrow.
    let nodes: Vec<Keypair> = (0..4).map(|_| Keypair::generate().expect("key")).collect();
    let job = Hash32::sha256(b"chainbench job");
    let mut setup: Vec<Entry> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut a = [0u8; 20];
            a[19] = i as u8 + 1;
            Entry::sign(
                n,
                0,
                0,
                &RegisterNode {
                    chain,
                    operator: n.did(),
                    payout: EvmAddress(a),
                },
            )
            .expect("sign")
        })
        .collect();
    setup.push(
        Entry::sign(
            &requester,
            0,
            0,
            &JobEscrow {
                chain,
                job,
                amount: lode_ledger::ONE_TOKEN,
                price_per_unit: 0,
            },
        )
        .expect("sign"),
    );
    let batch = |nonce: u64, entries: Vec<Entry>| -> Vec<u8> {
        canonical::encode(
            &Entry::sign(&gw, nonce, 0, &GatewayBatch { chain, entries }).expect("sign"),
        )
        .expect("encode")
    };
    let post = |bytes: &[u8]| {
        for u in &v.urls {
            let r = http
                .post(format!("{u}/v1/mempool"))
                .body(bytes.to_vec())
                .send()
                .expect("post");
            assert!(
                r.status().is_success() || r.status() == 409,
                "{u}: {}",
                r.text().unwrap_or_default()
            );
        }
    };
    post(&batch(0, setup));
    let committed = |want_nonce_done: u64| loop {
        let a: serde_json::Value = http
            .get(format!("{}/v1/accounts/{}", v.urls[0], gw.did()))
            .send()
            .and_then(|r| r.json())
            .unwrap_or_default();
        if a["next_nonce"].as_u64().unwrap_or(0) >= want_nonce_done {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    committed(1);
    // Prepare every batch first (signing is the gateway's cost, not ordering's).
    let receipt = |unit: u64| {
        let node = nodes[unit as usize % nodes.len()].did();
        Entry::WorkReceipt(WorkReceipt {
            job,
            unit,
            node,
            kind: ContributionKind::Fuel,
            amount: 1_000,
            result: Hash32::sha256(&unit.to_be_bytes()),
            quorum: vec![node],
        })
    };
    let prepared: Vec<Vec<u8>> = (0..batches)
        .map(|b| {
            let entries = (0..per_batch)
                .map(|i| receipt((b * per_batch + i) as u64))
                .collect();
            batch(b as u64 + 1, entries)
        })
        .collect();
    let bytes: usize = prepared.iter().map(Vec::len).sum();
    let h0 = status(&http, &v.urls[0])["height"].as_u64().unwrap_or(0);
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<(u64, Instant)>();
    // A watcher follows the committed blocks (long-poll) and notes when each
    // of the batches lands.
    let watcher = {
        let (url, gw_did, http) = (v.urls[0].clone(), gw.did(), http.clone());
        std::thread::spawn(move || {
            let mut next = h0 + 1;
            let mut seen = 0usize;
            while seen < batches {
                let r = http
                    .get(format!(
                        "{url}/v1/ledger/raw?from={next}&limit=16&wait_ms=2000"
                    ))
                    .send();
                let Ok(r) = r else { continue };
                if !r.status().is_success() {
                    continue;
                }
                let at = Instant::now();
                let Ok(body) = r.bytes() else { continue };
                let frames = lode_ledger::raw::split_frames(&body).expect("frames");
                for (block, _) in frames {
                    next += 1;
                    let block = lode_ledger::Block::from_bytes(&block).expect("block");
                    for e in &block.entries {
                        if let Entry::GatewayBatch(env) = e
                            && env.signer == gw_did
                        {
                            let p = lode_ledger::entry::decode_payload::<GatewayBatch>(env)
                                .expect("batch");
                            let _ = tx.send((p.nonce, at));
                            seen += 1;
                        }
                    }
                }
            }
        })
    };
    let mut sent_at = Vec::new();
    for b in &prepared {
        sent_at.push(Instant::now());
        post(b);
    }
    let _ = watcher.join();
    let elapsed = t0.elapsed();
    let mut lat: Vec<f64> = rx
        .try_iter()
        .filter_map(|(nonce, at)| {
            sent_at
                .get(nonce as usize - 1)
                .map(|s| at.saturating_duration_since(*s).as_secs_f64() * 1e3)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let h1 = status(&http, &v.urls[0])["height"].as_u64().unwrap_or(0);
    let receipts = batches * per_batch;
    // Latency without a queue: one small batch at a time, each waited for.
    let mut quiet = Vec::new();
    let base = (batches * per_batch) as u64;
    for k in 0..30u64 {
        let nonce = batches as u64 + 1 + k;
        let entries = (0..100u64).map(|i| receipt(base + k * 100 + i)).collect();
        let b = batch(nonce, entries);
        let t = Instant::now();
        post(&b);
        committed(nonce + 1);
        quiet.push(t.elapsed().as_secs_f64() * 1e3);
    }
    quiet.sort_by(|a, b| a.total_cmp(b));
    println!(
        "ordering: {VALIDATORS} validators, {batches} batches × {per_batch} receipts ({:.1} MB): {:.0} receipts/s finalized ({:.2} s, {} blocks); submit→commit per batch p50 {:.0} ms, p99 {:.0} ms",
        bytes as f64 / 1e6,
        receipts as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        h1.saturating_sub(h0),
        percentile(&lat, 50),
        percentile(&lat, 99),
    );
    println!(
        "finality: one 100-receipt batch at a time, submit→commit p50 {:.0} ms, p99 {:.0} ms (30 batches)",
        percentile(&quiet, 50),
        percentile(&quiet, 99),
    );
}

fn hello_spec() -> JobSpec {
    JobSpec::from_toml(
        "name = 'chainbench'\nmodule = 'hello.wasm'\n[inputs]\nstdin = ['x']\n[limits]\nfuel = 1000000\nmemory_mb = 4\ntimeout_ms = 5000\nmax_output_bytes = 256\n[verification]\nquorum = 1\nmax_replicas = 3\nadaptive_trust = false\n[price]\nmax_per_fuel = 1\n",
    )
    .expect("spec")
}

/// Runs `units` hello units through the gateway at `url`; returns units/s
/// and the wall time.
fn run_units(url: &str, requester: &KeyFile, units: usize) -> (f64, f64) {
    let client = Client::new(url).expect("client");
    let key = &requester.keypair;
    let wasm = std::fs::read(root().join("examples/jobs/wasm/hello.wasm")).expect("hello.wasm");
    let module = client.upload_module(key, &wasm).expect("upload");
    let chain = client.chain_id().expect("chain");
    let inputs = (0..units)
        .map(|i| UnitInput {
            stdin: vec![],
            args: vec![format!("u{i}")],
        })
        .collect();
    let s = Client::build_submission(key, chain, &hello_spec(), module, inputs).expect("build");
    let t = Instant::now();
    let v = client.submit_job(key, &s).expect("submit");
    let v = client
        .wait(&v.job, Duration::from_millis(5), Duration::from_secs(600))
        .expect("wait");
    assert_eq!(v.completed as usize, units, "{v:?}");
    let wall = t.elapsed().as_secs_f64();
    (units as f64 / wall, wall)
}

/// Part 2: end-to-end units/s, single validator vs 4 validators.
fn end_to_end(bin: &Path, dir: &Path, nodes: usize, units: usize) {
    // Single-validator chain: the gateway seals its own blocks.
    let single = {
        let d = dir.join("single");
        std::fs::create_dir_all(&d).expect("dir");
        let requester = key(&d.join("req.key"));
        let fund = format!("{}=1000000", requester.did());
        let gw_args = ["--poll-timeout-ms", "2000", "--fund", &fund].map(String::from);
        let (_gw, url) = start_gateway(bin, &d.join("gw"), &gw_args);
        let _nodes: Vec<Kill> = (0..nodes)
            .map(|i| start_node(bin, &d, &url, i, &[]).0)
            .collect();
        wait_nodes(&Client::new(&url).expect("client"), nodes);
        run_units(&url, &requester, units).0
    };
    // Replicated chain: the same, with the gateway a client of 4 validators.
    let replicated = {
        let d = dir.join("replicated");
        std::fs::create_dir_all(d.join("gw")).expect("dir");
        let requester = key(&d.join("req.key"));
        let gw_key = key(&d.join("gw/validator.key"));
        let fund = format!("{}=1000000", requester.did());
        let (v, genesis) = start_validators(bin, &d, &[gw_key.did().to_string()], &fund);
        let gw_args = [
            "--poll-timeout-ms",
            "2000",
            "--genesis",
            &genesis.display().to_string(),
            "--validators",
            &v.urls.join(","),
            "--block-interval-ms",
            "100",
        ]
        .map(String::from);
        let (_gw, url) = start_gateway(bin, &d.join("gw"), &gw_args);
        let _nodes: Vec<Kill> = (0..nodes)
            .map(|i| start_node(bin, &d, &url, i, &[]).0)
            .collect();
        wait_nodes(&Client::new(&url).expect("client"), nodes);
        let cpu0 = v.cpu_s();
        let (rate, wall) = run_units(&url, &requester, units);
        (rate, (v.cpu_s() - cpu0) / wall)
    };
    let (replicated, validator_cores) = replicated;
    println!(
        "end to end: {units} hello units, quorum 1, {nodes} nodes: single validator {single:.0} units/s, {VALIDATORS} validators {replicated:.0} units/s ({:.0}% of single); the validators used {validator_cores:.2} of this machine's {} cores meanwhile",
        replicated / single * 100.0,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}

fn main() {
    let batches = arg("--batches", 40);
    let per_batch = arg("--receipts", 5_000);
    let units = arg("--units", 4_000);
    let nodes = arg("--nodes", 4);
    let bin = lode_bin();
    let dir = tempfile::tempdir().expect("tmp");
    ordering(&bin, &dir.path().join("ordering"), batches, per_batch);
    end_to_end(&bin, dir.path(), nodes, units);
}
