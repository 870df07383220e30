//! A local network of real `lode` processes for integration tests.
#![allow(dead_code)]

use lode_proto::{EvmAddress, KeyFile};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// POSTs raw bytes (JSON) to the gateway; returns (status, JSON body or null).
pub fn post(url: &str, path: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

/// GETs from the gateway; returns (status, JSON body or null).
pub fn get(url: &str, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::blocking::get(format!("{url}{path}")).expect("get");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(serde_json::Value::Null))
}

/// `lode ledger verify DIR` must succeed (the chain replays from genesis).
pub fn ledger_verify_ok(ledger_dir: &Path) {
    let out = Command::new(lode_bin())
        .args(["ledger", "verify"])
        .arg(ledger_dir)
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Log filter of the processes a test starts: `warn`, or `LODE_TEST_LOG`
/// (e.g. `LODE_TEST_LOG=lode_gateway=debug` to see why a test fails).
pub fn test_log() -> String {
    std::env::var("LODE_TEST_LOG").unwrap_or_else(|_| "warn".into())
}

pub fn lode_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lode")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `lode ARGS` to completion; returns (success, stdout, stderr).
pub fn lode_run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(lode_bin())
        .args(args)
        .output()
        .expect("run lode");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a `lode` command to completion and asserts it succeeded (printing its
/// output otherwise); returns the output.
pub fn lode_ok(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new(lode_bin())
        .args(args)
        .output()
        .expect("run lode");
    assert!(
        out.status.success(),
        "lode {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process, killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One gateway and its nodes, all separate `lode` processes on loopback.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub gateway: Option<Proc>,
    pub url: String,
    pub listen: String,
    pub nodes: Vec<Proc>,
    pub requester: KeyFile,
    pub requester_path: PathBuf,
    pub node_keys: Vec<KeyFile>,
    pub epoch_ms: u64,
    /// Extra `lode gateway` arguments.
    pub gateway_args: Vec<String>,
}

pub fn new_key(path: &Path, payout: Option<EvmAddress>) -> KeyFile {
    let kf = KeyFile::generate(payout).expect("key");
    kf.save_new(path).expect("save key");
    kf
}

impl Net {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("gateway")
    }

    pub fn ledger_dir(&self) -> PathBuf {
        self.data_dir().join("ledger")
    }

    /// Starts a gateway (funding a fresh requester with 1,000,000 tokens) and `nodes` nodes.
    pub fn start(nodes: usize, epoch_ms: u64) -> Net {
        Net::start_with(nodes, epoch_ms, &[])
    }

    /// Like [`Net::start`], with extra `lode gateway` arguments.
    pub fn start_with(nodes: usize, epoch_ms: u64, gateway_args: &[&str]) -> Net {
        let dir = tempfile::tempdir().expect("tempdir");
        let requester_path = dir.path().join("requester.key");
        let requester = new_key(&requester_path, None);
        let mut net = Net {
            dir,
            gateway: None,
            url: String::new(),
            listen: "127.0.0.1:0".into(),
            nodes: vec![],
            requester,
            requester_path,
            node_keys: vec![],
            epoch_ms,
            gateway_args: gateway_args.iter().map(|a| a.to_string()).collect(),
        };
        net.start_gateway();
        for i in 0..nodes {
            net.add_node(i);
        }
        net
    }

    /// Starts (or restarts, on the same address) the gateway.
    pub fn start_gateway(&mut self) {
        let mut child = Command::new(lode_bin())
            .args(["gateway", "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen", &self.listen])
            .args(["--fund", &format!("{}=1000000", self.requester.did())])
            .args(["--epoch-ms", &self.epoch_ms.to_string()])
            .args(["--poll-timeout-ms", "1000"])
            // A block every 100 ms unless the test says otherwise.
            .args(
                if self.gateway_args.iter().any(|a| a == "--block-interval-ms") {
                    &[][..]
                } else {
                    &["--block-interval-ms", "100"][..]
                },
            )
            .args(&self.gateway_args)
            .env("RUST_LOG", test_log())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gateway");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read gateway address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("gateway printed {line:?}"))
            .to_string();
        self.listen = url.trim_start_matches("http://").to_string();
        self.url = url;
        self.gateway = Some(Proc {
            child,
            name: "gateway".into(),
        });
    }

    /// Starts node `i` (creating its key with a payout address the first time).
    pub fn add_node(&mut self, i: usize) {
        self.add_node_with(i, &[]);
    }

    /// Starts node `i` with extra `lode node` arguments (e.g. `--behaviour`, `--slots`).
    pub fn add_node_with(&mut self, i: usize, extra: &[&str]) {
        let key_path = self.dir.path().join(format!("node{i}.key"));
        if self.node_keys.len() <= i {
            let mut addr = [0u8; 20];
            addr[0] = 0xaa;
            addr[19] = i as u8 + 1;
            self.node_keys
                .push(new_key(&key_path, Some(EvmAddress(addr))));
        }
        let child = Command::new(lode_bin())
            .args(["node", "--gateway", &self.url, "--key"])
            .arg(&key_path)
            // Two slots unless `extra` says otherwise.
            .args(if extra.contains(&"--slots") {
                &[][..]
            } else {
                &["--slots", "2"][..]
            })
            .args(["--no-nice", "--data-dir"])
            .arg(self.dir.path().join(format!("node{i}")))
            .args(extra)
            .env("RUST_LOG", test_log())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let p = Proc {
            child,
            name: format!("node{i}"),
        };
        if self.nodes.len() > i {
            self.nodes[i] = p;
        } else {
            self.nodes.push(p);
        }
    }

    pub fn client(&self) -> lode_client::Client {
        lode_client::Client::new(&self.url).expect("client")
    }

    /// Waits until `n` nodes have a live session.
    pub fn wait_nodes(&self, n: usize, timeout: Duration) {
        let start = Instant::now();
        loop {
            let v: serde_json::Value = self.client().get_json("/v1/nodes").unwrap_or_default();
            let online = v["nodes"].as_array().map_or(0, |a| a.len());
            if online >= n {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "only {online} of {n} nodes came online"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM the gateway and wait for it to exit (it seals its last block).
    pub fn stop_gateway(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            let pid = g.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let start = Instant::now();
            while g.is_running() && start.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn kill9_gateway(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            g.kill9();
        }
    }
}

/// Builds the native version of an example job with the system C compiler
/// (`None`, with a message, when there is none).
pub fn native_build(name: &str, out_dir: &Path) -> Option<PathBuf> {
    let src = repo_root().join(format!("examples/jobs/src/{name}.c"));
    let out = out_dir.join(name);
    let status = Command::new("cc")
        .args(["-O2", "-ffp-contract=off", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lm")
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        _ => {
            eprintln!(
                "no C compiler found: outputs are checked against sha2 instead of the native build"
            );
            None
        }
    }
}

pub fn run_native(bin: &Path, stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run native");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("native output").stdout
}

/// Deterministic pseudo-random inputs (xorshift), `n` of 16..272 bytes.
pub fn inputs(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| (0..16 + next() % 256).map(|_| next() as u8).collect())
        .collect()
}

/// A job spec TOML for `units` stdin inputs of the sha256 example (inputs are added
/// programmatically; the spec carries limits, verification and price).
pub fn sha256_spec(quorum: u8, adaptive: bool) -> lode_proto::jobspec::JobSpec {
    let text = format!(
        "name = 'sha256 test'\nmodule = 'sha256.wasm'\n[inputs]\nstdin = ['x']\n[limits]\nfuel = 50000000\nmemory_mb = 16\ntimeout_ms = 10000\n\
         [verification]\nquorum = {quorum}\nmax_replicas = {}\nadaptive_trust = {adaptive}\n[price]\nmax_per_fuel = 1000\n",
        quorum + 3
    );
    lode_proto::jobspec::JobSpec::from_toml(&text).expect("spec")
}

/// Submits a job running `examples/jobs/wasm/{module}` with `spec` over the
/// given stdins (one unit each); returns the job id.
pub fn submit_job(
    net: &Net,
    module: &str,
    spec: &lode_proto::jobspec::JobSpec,
    stdins: impl IntoIterator<Item = Vec<u8>>,
) -> String {
    let client = net.client();
    let wasm = std::fs::read(repo_root().join("examples/jobs/wasm").join(module))
        .unwrap_or_else(|e| panic!("{module}: {e}"));
    let key = &net.requester.keypair;
    let module = client.upload_module(key, &wasm).expect("upload");
    let chain = client.chain_id().expect("chain id");
    let units = stdins
        .into_iter()
        .map(|stdin| lode_proto::wire::UnitInput {
            stdin,
            args: vec![],
        })
        .collect();
    let submit =
        lode_client::Client::build_submission(key, chain, spec, module, units).expect("build");
    client.submit_job(key, &submit).expect("submit").job
}

/// Submits the sha256 example over `inputs`; returns the job id.
pub fn submit_sha256(net: &Net, inputs: &[Vec<u8>], quorum: u8, adaptive: bool) -> String {
    submit_job(
        net,
        "sha256.wasm",
        &sha256_spec(quorum, adaptive),
        inputs.iter().cloned(),
    )
}

/// Submits the sha256 example over `inputs`, waits for it and asserts that every
/// unit completed; returns the job id.
pub fn run_sha256(net: &Net, inputs: &[Vec<u8>], quorum: u8, adaptive: bool) -> String {
    let job = submit_sha256(net, inputs, quorum, adaptive);
    let v = net
        .client()
        .wait(&job, Duration::from_millis(200), Duration::from_secs(300))
        .expect("wait");
    assert_eq!(v.status, "finished", "{v:?}");
    assert_eq!((v.completed as usize, v.failed), (inputs.len(), 0), "{v:?}");
    job
}

/// Expected output of the sha256 example for `input`: the native build's when a
/// C compiler exists, else the digest computed here.
pub fn expected_sha256(native: Option<&Path>, input: &[u8]) -> Vec<u8> {
    match native {
        Some(bin) => run_native(bin, input),
        None => format!("{}\n", lode_proto::Hash32::sha256(input).to_hex()).into_bytes(),
    }
}

/// A node's entry in `/v1/nodes`.
pub fn node_entry(net: &Net, did: &lode_proto::Did) -> serde_json::Value {
    let nodes: serde_json::Value = net.client().get_json("/v1/nodes").expect("nodes");
    nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == did.to_string())
        .expect("node online")
        .clone()
}

/// The requester's balance in base units, as the gateway reports it.
pub fn balance(net: &Net) -> String {
    let v: serde_json::Value = net
        .client()
        .get_json(&format!("/v1/accounts/{}", net.requester.did()))
        .expect("account");
    v["balance"].as_str().expect("balance").to_string()
}
