//! A replicated chain of real processes on loopback (issue 14): `lode
//! validator` ×4 (Malachite BFT), gateways that submit signed batches to them,
//! nodes that do the work. Faults: validators killed with SIGKILL (one: the
//! chain goes on and the restarted one catches up to identical blocks; two:
//! nothing is finalized, gateways keep accepting work, and after one restart
//! everything lands once), a gateway killed mid-submission, an equivocating
//! validator (recorded on the ledger, no fork), and bad submissions refused
//! with typed errors.

mod common;

use common::*;
use lode_ledger::{Block, Entry, SlashReason};
use lode_proto::{Did, KeyFile};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Validators, gateways and nodes of one replicated chain.
struct Chain {
    dir: tempfile::TempDir,
    genesis: PathBuf,
    /// (consensus port, HTTP port) of each validator.
    ports: Vec<(u16, u16)>,
    validators: Vec<Option<Proc>>,
    equivocating: Option<usize>,
    gateways: Vec<Option<Proc>>,
    gateway_urls: Vec<String>,
    nodes: Vec<Proc>,
    requester: KeyFile,
}

impl Chain {
    /// `v` validators (power 1 each), `g` gateways, staking on (so that a
    /// double vote can be recorded).
    fn new(v: usize, g: usize, equivocating: Option<usize>) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let requester = new_key(&p.join("requester.key"), None);
        let mut args: Vec<String> = vec!["validator".into(), "genesis".into()];
        for i in 0..v {
            std::fs::create_dir_all(p.join(format!("v{i}"))).unwrap();
            let k = new_key(&p.join(format!("v{i}/validator.key")), None);
            args.extend(["--validator".into(), k.did().to_string()]);
        }
        for i in 0..g {
            std::fs::create_dir_all(p.join(format!("gw{i}"))).unwrap();
            let k = new_key(&p.join(format!("gw{i}/validator.key")), None);
            args.extend(["--gateway".into(), k.did().to_string()]);
        }
        let genesis = p.join("genesis.toml");
        args.extend([
            "--fund".into(),
            format!("{}=1000000", requester.did()),
            "--epoch-ms".into(),
            "600000".into(),
            "--out".into(),
            genesis.display().to_string(),
        ]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = lode_run(&a);
        assert!(ok, "{err}");
        // Staking on: a double vote is recorded as a slash.
        let mut text = std::fs::read_to_string(&genesis).unwrap();
        text.push_str("\n[staking]\nshare_bps = 0\n");
        std::fs::write(&genesis, text).unwrap();
        let ports = (0..v).map(|_| (free_port(), free_port())).collect();
        let mut c = Chain {
            dir,
            genesis,
            ports,
            validators: (0..v).map(|_| None).collect(),
            equivocating,
            gateways: (0..g).map(|_| None).collect(),
            gateway_urls: vec![String::new(); g],
            nodes: vec![],
            requester,
        };
        for i in 0..v {
            c.start_validator(i);
        }
        for i in 0..g {
            c.start_gateway(i);
        }
        c
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn vurl(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i].1)
    }

    fn start_validator(&mut self, i: usize) {
        let peers: Vec<String> = (0..self.ports.len())
            .filter(|j| *j != i)
            .map(|j| format!("127.0.0.1:{}", self.ports[j].0))
            .collect();
        let d = self.path().join(format!("v{i}"));
        let mut cmd = Command::new(lode_bin());
        cmd.args(["validator", "--data-dir"])
            .arg(&d)
            .arg("--key")
            .arg(d.join("validator.key"))
            .arg("--genesis")
            .arg(&self.genesis)
            .args(["--listen", &format!("127.0.0.1:{}", self.ports[i].0)])
            .args(["--http", &format!("127.0.0.1:{}", self.ports[i].1)])
            .args(["--peers", &peers.join(",")])
            .args(["--idle-block-ms", "100"]);
        if self.equivocating == Some(i) {
            cmd.arg("--test-equivocate");
        }
        let child = cmd
            .env("RUST_LOG", validator_log())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn validator");
        self.validators[i] = Some(Proc {
            child,
            name: format!("v{i}"),
        });
    }

    fn kill9_validator(&mut self, i: usize) {
        if let Some(mut p) = self.validators[i].take() {
            p.kill9();
        }
    }

    fn start_gateway(&mut self, i: usize) {
        let urls: Vec<String> = (0..self.ports.len()).map(|j| self.vurl(j)).collect();
        let d = self.path().join(format!("gw{i}"));
        let listen = match self.gateway_urls[i].as_str() {
            "" => "127.0.0.1:0".to_string(),
            u => u.trim_start_matches("http://").to_string(),
        };
        let mut child = Command::new(lode_bin())
            .args(["gateway", "--data-dir"])
            .arg(&d)
            .arg("--genesis")
            .arg(&self.genesis)
            .args(["--listen", &listen])
            .args(["--validators", &urls.join(",")])
            .args(["--block-interval-ms", "100", "--poll-timeout-ms", "1000"])
            .env("RUST_LOG", test_log())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gateway");
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("gateway printed {line:?}"))
            .to_string();
        self.gateway_urls[i] = url;
        self.gateways[i] = Some(Proc {
            child,
            name: format!("gw{i}"),
        });
    }

    fn kill9_gateway(&mut self, i: usize) {
        if let Some(mut p) = self.gateways[i].take() {
            p.kill9();
        }
    }

    /// Starts a node on gateway `g` with key `key` (created on first use).
    fn add_node(&mut self, g: usize, key: &str) -> Did {
        let key_path = self.path().join(format!("{key}.key"));
        let did = if key_path.exists() {
            KeyFile::load(&key_path).unwrap().did()
        } else {
            let n = self.nodes.len() as u8;
            let mut addr = [0u8; 20];
            addr[0] = 0xbb;
            addr[19] = n + 1;
            new_key(&key_path, Some(lode_proto::EvmAddress(addr))).did()
        };
        let child = Command::new(lode_bin())
            .args(["node", "--gateway", &self.gateway_urls[g], "--key"])
            .arg(&key_path)
            .args(["--slots", "2", "--no-nice", "--data-dir"])
            .arg(self.path().join(format!("{key}-data")))
            .env("RUST_LOG", test_log())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        self.nodes.push(Proc {
            child,
            name: key.into(),
        });
        did
    }

    fn client(&self, g: usize) -> lode_client::Client {
        lode_client::Client::new(&self.gateway_urls[g]).unwrap()
    }

    fn wait_nodes(&self, g: usize, n: usize) {
        wait_for(
            &format!("{n} nodes on gateway {g}"),
            Duration::from_secs(60),
            || {
                let v: serde_json::Value = self.client(g).get_json("/v1/nodes").unwrap_or_default();
                v["nodes"].as_array().map_or(0, |a| a.len()) >= n
            },
        );
    }

    fn submit(&self, g: usize, units: usize, seed: u64) -> String {
        self.submit_q(g, units, seed, 2)
    }

    /// A job of `units` sha256 units at `quorum` on gateway `g`.
    fn submit_q(&self, g: usize, units: usize, seed: u64, quorum: u8) -> String {
        let spec = sha256_spec(quorum, false);
        let wasm = std::fs::read(repo_root().join("examples/jobs/wasm/sha256.wasm")).unwrap();
        let inputs = inputs(units, seed)
            .into_iter()
            .map(|stdin| lode_proto::wire::UnitInput {
                stdin,
                args: vec![],
            })
            .collect();
        self.client(g)
            .submit_prepared(&self.requester.keypair, &spec, &wasm, inputs)
            .expect("submit")
            .job
    }

    fn wait_job(&self, g: usize, job: &str) {
        let v = self
            .client(g)
            .wait(job, Duration::from_millis(200), Duration::from_secs(120))
            .expect("wait");
        assert_eq!(v.status, "finished", "{v:?}");
        assert_eq!(v.failed, 0, "{v:?}");
    }

    fn status(&self, i: usize) -> Option<serde_json::Value> {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/v1/status", self.vurl(i)))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()?;
        r.json().ok()
    }

    fn height(&self, i: usize) -> u64 {
        self.status(i)
            .and_then(|s| s["height"].as_u64())
            .unwrap_or(0)
    }

    /// Block `h` as validator `i` serves it (block bytes, certificate bytes).
    fn raw_block(&self, i: usize, h: u64) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        for _ in 0..5 {
            let r =
                reqwest::blocking::get(format!("{}/v1/ledger/raw?from={h}&limit=1", self.vurl(i)));
            match r {
                Ok(r) if r.status().is_success() => {
                    let body = r.bytes().ok()?;
                    return lode_ledger::raw::split_frames(&body)
                        .ok()?
                        .into_iter()
                        .next();
                }
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return None,
                other => eprintln!("validator {i}, block {h}: {other:?}; retrying"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    /// Every block from genesis to `head` as validator `i` serves it.
    fn blocks(&self, i: usize) -> Vec<Block> {
        let head = self.height(i);
        (0..=head)
            .map(|h| Block::from_bytes(&self.raw_block(i, h).expect("block").0).unwrap())
            .collect()
    }

    fn verify_from(&self, i: usize) -> serde_json::Value {
        let out = Command::new(lode_bin())
            .args(["ledger", "verify", "--json", "--from", &self.vurl(i)])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(
            out.status.success() && v["ok"] == true,
            "verify --from {} failed: {}{}",
            self.vurl(i),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        v
    }
}

fn block_bytes(c: &Chain, i: usize, h: u64) -> Vec<u8> {
    c.raw_block(i, h)
        .unwrap_or_else(|| panic!("validator {i} has no block {h}"))
        .0
}

/// Log filter for validators: the engine's dial errors while peers start are noise.
fn validator_log() -> String {
    format!(
        "{},arc_malachitebft_network=off,libp2p_swarm=off",
        test_log()
    )
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Receipts per (job, unit, node) on the chain, from every block (inside
/// gateway batches too).
fn receipts(blocks: &[Block]) -> std::collections::BTreeMap<(String, u64, Did), u32> {
    let mut out = std::collections::BTreeMap::new();
    let mut count = |e: &Entry| {
        if let Entry::WorkReceipt(r) = e {
            *out.entry((r.job.to_hex(), r.unit, r.node)).or_insert(0) += 1;
        }
    };
    for b in blocks {
        for e in &b.entries {
            count(e);
            if let Entry::GatewayBatch(env) = e {
                let p =
                    lode_ledger::entry::decode_payload::<lode_ledger::GatewayBatch>(env).unwrap();
                p.message.entries.iter().for_each(&mut count);
            }
        }
    }
    out
}

#[test]
fn a_replicated_chain_survives_killed_validators_and_gateways() {
    let mut c = Chain::new(4, 2, None);
    // One contributor works for gateway 0, then for gateway 1: its fees from
    // both add up in one account on the one chain.
    let shared = c.add_node(0, "shared");
    c.add_node(0, "a1");
    c.add_node(1, "b1");
    c.add_node(1, "b2");
    c.wait_nodes(0, 2);
    c.wait_nodes(1, 2);
    let j1 = c.submit(0, 12, 1);
    let j2 = c.submit(1, 12, 2);
    c.wait_job(0, &j1);
    c.wait_job(1, &j2);

    // kill -9 one validator: the chain goes on.
    c.kill9_validator(3);
    let h = c.height(0);
    let j3 = c.submit(0, 8, 3);
    c.wait_job(0, &j3);
    wait_for(
        "blocks without validator 3",
        Duration::from_secs(30),
        || c.height(0) >= h + 3,
    );
    // Restarted, it replays its WAL, catches up and holds the same blocks.
    c.start_validator(3);
    let target = c.height(0);
    wait_for("validator 3 catching up", Duration::from_secs(60), || {
        c.height(3) >= target
    });
    // (Each validator keeps the certificate it collected: any > 2/3 of the
    // precommits; the blocks are identical.)
    for height in [1, target / 2, target] {
        assert_eq!(
            block_bytes(&c, 3, height),
            block_bytes(&c, 0, height),
            "block {height}"
        );
    }

    // kill -9 two of four: nothing is finalized …
    c.kill9_validator(2);
    c.kill9_validator(3);
    std::thread::sleep(Duration::from_millis(1500));
    let stuck = c.height(0);
    // … gateways keep accepting work and queue it durably …
    let j4 = c.submit(0, 6, 4);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.height(0), stuck, "no block without 2/3 of the power");
    assert_eq!(c.height(1), stuck);
    // … also across a gateway killed while its batches wait.
    c.kill9_gateway(0);
    c.start_gateway(0);
    // One validator back: the chain resumes and everything lands once.
    c.start_validator(2);
    c.wait_job(0, &j4);
    wait_for("the chain resuming", Duration::from_secs(60), || {
        c.height(0) > stuck + 2
    });

    // The shared contributor moves to gateway 1 and earns there too.
    c.nodes.retain(|p| p.name != "shared");
    let fees_before = {
        let v: serde_json::Value = c
            .client(1)
            .get_json(&format!("/v1/accounts/{shared}"))
            .unwrap();
        v["balance"].as_str().unwrap().parse::<u128>().unwrap()
    };
    assert!(fees_before > 0, "earned on gateway 0");
    c.add_node(1, "shared");
    c.wait_nodes(1, 3);
    // Quorum 3 with its 3 nodes: the shared contributor runs every unit.
    let j5 = c.submit_q(1, 24, 5, 3);
    c.wait_job(1, &j5);
    c.start_validator(3);
    wait_for(
        "all validators at one height",
        Duration::from_secs(60),
        || {
            let h = c.height(0);
            (1..4).all(|i| c.height(i) >= h)
        },
    );
    wait_for(
        "fees from gateway 1 in the shared account",
        Duration::from_secs(60),
        || {
            let v: serde_json::Value = c
                .client(0)
                .get_json(&format!("/v1/accounts/{shared}"))
                .unwrap_or_default();
            v["balance"]
                .as_str()
                .and_then(|b| b.parse::<u128>().ok())
                .is_some_and(|b| b > fees_before)
        },
    );

    // Every block verifies from every validator; no receipt twice, none lost.
    let head = c.height(0);
    for i in 0..4 {
        let v = c.verify_from(i);
        assert!(
            v["certified_blocks"].as_u64().unwrap() + 1 >= head.min(v["blocks"].as_u64().unwrap())
        );
    }
    let blocks = c.blocks(0);
    let r = receipts(&blocks);
    assert!(r.values().all(|n| *n == 1), "a receipt twice");
    for job in [&j1, &j2, &j3, &j4, &j5] {
        let units: std::collections::BTreeSet<u64> = r
            .keys()
            .filter(|(j, ..)| j == job)
            .map(|(_, u, _)| *u)
            .collect();
        let want = match job {
            j if j == &j1 || j == &j2 => 12,
            j if j == &j3 => 8,
            j if j == &j4 => 6,
            _ => 24,
        };
        assert_eq!(
            units.len(),
            want,
            "every unit of {job} credited on the chain"
        );
    }
}

#[test]
fn an_equivocating_validator_is_slashed_on_the_ledger_and_bad_submissions_are_refused() {
    let c = Chain::new(4, 1, Some(0));
    let offender = KeyFile::load(&c.path().join("v0/validator.key"))
        .unwrap()
        .did();
    let v1 = c.vurl(1);
    // The double vote lands on the ledger as a slash with the two votes.
    let mut found = None;
    wait_for(
        "the double-sign slash on the ledger",
        Duration::from_secs(60),
        || {
            let blocks = c.blocks(1);
            found = blocks.iter().find_map(|b| {
                b.entries.iter().find_map(|e| match e {
                    Entry::Slash(s) if s.reason == SlashReason::DoubleSign => {
                        Some((b.header.height, s.who))
                    }
                    _ => None,
                })
            });
            found.is_some()
        },
    );
    assert_eq!(found.unwrap().1, offender);
    // Honest validators never fork: the same block at every height.
    let h = (1..4).map(|i| c.height(i)).min().unwrap();
    for height in 1..=h {
        let b = block_bytes(&c, 1, height);
        assert_eq!(block_bytes(&c, 2, height), b, "height {height}");
        assert_eq!(block_bytes(&c, 3, height), b, "height {height}");
    }
    c.verify_from(2);

    // Bad submissions get typed errors, and nothing is queued.
    let post = |body: Vec<u8>| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{v1}/v1/mempool"))
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().unwrap_or_default())
    };
    let (s, v) = post(b"not an entry".to_vec());
    assert_eq!((s, v["error"].as_str()), (400, Some("malformed")));
    assert_eq!(post(vec![0u8; 17 << 20]).0, 413, "oversized");
    let chain: lode_proto::Hash32 = c.status(1).unwrap()["chain_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let batch = |key: &lode_proto::Keypair, entries: Vec<Entry>| {
        let (_, a) = get(&v1, &format!("/v1/accounts/{}", key.did()));
        let nonce = a["next_nonce"].as_u64().unwrap();
        let m = lode_ledger::GatewayBatch { chain, entries };
        lode_proto::canonical::encode(&Entry::sign(key, nonce, 0, &m).unwrap()).unwrap()
    };
    let receipt = Entry::WorkReceipt(lode_ledger::WorkReceipt {
        job: lode_proto::Hash32::sha256(b"a job nobody escrowed"),
        unit: 0,
        node: offender,
        kind: lode_ledger::ContributionKind::Fuel,
        amount: 1,
        result: lode_proto::Hash32::sha256(b"r"),
        quorum: vec![offender],
    });
    let stranger = lode_proto::Keypair::generate().unwrap();
    let (s, v) = post(batch(&stranger, vec![receipt.clone()]));
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("not_a_gateway")),
        "{v}"
    );
    let gw = KeyFile::load(&c.path().join("gw0/validator.key"))
        .unwrap()
        .keypair;
    let (s, v) = post(batch(&gw, vec![receipt.clone()]));
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("not_job_holder")),
        "{v}"
    );
    // A receipt outside any batch.
    let (s, v) = post(lode_proto::canonical::encode(&receipt).unwrap());
    assert_eq!((s, v["error"].as_str()), (400, Some("gateway_only")), "{v}");
    // A batch whose signature is not the signer's.
    let mut forged = Entry::sign(
        &gw,
        0,
        0,
        &lode_ledger::GatewayBatch {
            chain,
            entries: vec![receipt],
        },
    )
    .unwrap();
    if let Entry::GatewayBatch(env) = &mut forged {
        env.signature = stranger.sign_tagged("x", b"y");
    }
    let (s, v) = post(lode_proto::canonical::encode(&forged).unwrap());
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("bad_signature")),
        "{v}"
    );
}
