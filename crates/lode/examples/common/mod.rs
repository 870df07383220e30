//! Shared by the examples that start real `lode` processes (netbench, advbench).
#![allow(dead_code)]

use lode_client::Client;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed on drop.
pub struct Kill(pub Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Kill {
    /// SIGTERM and wait (up to 15 s) for the process to exit.
    pub fn terminate(mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while matches!(self.0.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `--name VALUE` from the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Children's log level (`NETBENCH_RUST_LOG`, default `warn`) and where their
/// stderr goes (`NETBENCH_LOGS=DIR`: `DIR/gateway.log`, `DIR/node-N.log`).
pub fn child_log(cmd: &mut Command, name: &str) {
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

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `lode` binary next to this example (`LODE_BIN` overrides):
/// target/<profile>/examples/X → target/<profile>/lode.
pub fn lode_bin() -> PathBuf {
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
    bin
}

/// Starts a gateway on a free loopback port with `extra` arguments; returns
/// the process and its URL.
pub fn start_gateway(bin: &Path, data_dir: &Path, extra: &[String]) -> (Kill, String) {
    let mut gw = Command::new(bin);
    gw.args(["gateway", "--data-dir"]).arg(data_dir);
    // A free port unless `extra` names the address (a restart on the same one).
    if !extra.iter().any(|a| a == "--listen") {
        gw.args(["--listen", "127.0.0.1:0"]);
    }
    gw.args(extra).stdout(Stdio::piped());
    child_log(&mut gw, "gateway");
    let mut gw = gw.spawn().expect("gateway");
    let mut line = String::new();
    BufReader::new(gw.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("addr");
    let url = line.trim().trim_start_matches("listening on ").to_string();
    (Kill(gw), url)
}

/// Starts node `i` (key with payout address `…i+1`, in `dir`) with `extra` arguments.
pub fn start_node(
    bin: &Path,
    dir: &Path,
    url: &str,
    i: usize,
    extra: &[String],
) -> (Kill, lode_proto::Did) {
    let kp = dir.join(format!("n{i}.key"));
    let mut addr = [0u8; 20];
    addr[18] = (i >> 8) as u8;
    addr[19] = i as u8 + 1;
    let kf = lode_proto::KeyFile::generate(Some(lode_proto::EvmAddress(addr))).expect("key");
    kf.save_new(&kp).expect("save");
    let mut node = Command::new(bin);
    node.args(["node", "--gateway", url, "--key"])
        .arg(&kp)
        .arg("--data-dir")
        .arg(dir.join(format!("n{i}")))
        .args(extra)
        .stdout(Stdio::null());
    child_log(&mut node, &format!("node-{i}"));
    (Kill(node.spawn().expect("node")), kf.did())
}

/// Waits (up to 60 s) until `n` nodes have a session.
pub fn wait_nodes(client: &Client, n: usize) {
    let start = Instant::now();
    loop {
        let v: serde_json::Value = client.get_json("/v1/nodes").unwrap_or_default();
        if v["nodes"].as_array().map_or(0, |a| a.len()) >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nodes did not come online"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory of a process, in KiB (0 if unknown).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
