//! `lode devnet`: a whole network on this machine — one gateway and N nodes, each a
//! separate `lode` process on loopback — supervised until Ctrl-C. With
//! `--validators V` the chain is replicated: V validator processes decide its
//! blocks (BFT), and `--gateways G` gateways submit their entries to them.
//!
//! Layout of the data directory (kept between runs; a second start resumes it):
//!
//! ```text
//! DIR/requester.key          demo requester (funded at genesis), mode 0600
//! DIR/gateway/               the gateway's data: genesis.toml, gateway.redb, ledger/, modules/
//! DIR/gatewayI/              gateway I's data (I >= 1, replicated chains)
//! DIR/validators/vI/         validator I: validator.key, genesis.toml, ledger/, engine/
//! DIR/validators/ports.json  the validators' consensus and HTTP ports (kept for a resume)
//! DIR/nodes/nodeI/node.key   node I's key, with a payout address
//! DIR/nodes/nodeI/           node I's module and compile caches
//! DIR/logs/{gateway,gatewayI,vI,nodeI}.log
//! ```

use anyhow::Result;
use clap::Args;
use lode_client::Client;
use lode_proto::{Did, EvmAddress, Hash32, KeyFile};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Tokens (whole LODE) the demo requester gets at genesis.
pub const REQUESTER_TOKENS: u64 = 1_000_000;

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Number of contributor nodes to start.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub nodes: u32,
    /// Data directory, kept between runs: a second start resumes the same chain
    /// [default: $LODE_HOME/devnet, i.e. ~/.lode/devnet]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Submit an example job once the nodes are online, so that something visibly happens.
    #[arg(long)]
    pub demo: bool,
    /// Gateway port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 7700)]
    pub port: u16,
    /// Epoch length of a new chain, in milliseconds (short, so rewards appear quickly).
    #[arg(long, default_value_t = 60_000)]
    pub epoch_ms: u64,
    /// Distinct reporters (Sybil groups) a domain needs before the threat feed lists it.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub data_k: u32,
    /// Memory each node offers to work units in total, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub node_memory_mib: u64,
    /// Disk each node offers to stored files (`lode storage put`), in MiB
    /// (under each node's directory, in `storage/`; 0: none).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub node_storage_mib: u64,
    /// Print one JSON object (URLs, paths, process ids) on stdout once the network is up.
    #[arg(long)]
    pub json: bool,
    /// Work units of the --demo job.
    #[arg(long, hide = true, default_value_t = 200)]
    pub demo_units: u32,
    /// Validators of a replicated chain (0: the gateway alone signs blocks).
    /// A new chain only: a devnet keeps the kind of chain it was created with.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=16))]
    pub validators: u32,
    /// Gateways (with --validators); nodes are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub gateways: u32,
}

/// Why the devnet could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error(
        "port {0} on 127.0.0.1 is already in use (another devnet or gateway?): stop it, or pick \
         another port with --port (0 picks a free one)"
    )]
    PortInUse(u16),
    #[error("cannot use port {port} on 127.0.0.1: {source}")]
    Port { port: u16, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {}: {source}", path.display())]
    Key {
        path: PathBuf,
        source: lode_proto::KeyFileError,
    },
    #[error("cannot start the {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("the {name} exited unexpectedly ({status}); last lines of {}:\n{tail}", log.display())]
    ChildDied {
        name: String,
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("{what} did not happen within {secs} s; see the logs in {}", logs.display())]
    Timeout {
        what: String,
        secs: u64,
        logs: PathBuf,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DevnetError + '_ {
    move |source| DevnetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where everything of a devnet lives.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn requester_key(&self) -> PathBuf {
        self.root.join("requester.key")
    }
    pub fn gateway_dir(&self) -> PathBuf {
        self.root.join("gateway")
    }
    /// Gateway `i`'s directory (gateway 0 is [`Layout::gateway_dir`]).
    pub fn gateway_dir_n(&self, i: u32) -> PathBuf {
        if i == 0 {
            self.gateway_dir()
        } else {
            self.root.join(format!("gateway{i}"))
        }
    }
    pub fn validators_dir(&self) -> PathBuf {
        self.root.join("validators")
    }
    pub fn validator_dir(&self, i: u32) -> PathBuf {
        self.validators_dir().join(format!("v{i}"))
    }
    pub fn node_dir(&self, i: u32) -> PathBuf {
        self.root.join("nodes").join(format!("node{i}"))
    }
    pub fn node_key(&self, i: u32) -> PathBuf {
        self.node_dir(i).join("node.key")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs().join(format!("{name}.log"))
    }
}

/// Loads a key file, creating it (mode 0600) the first time.
fn key(
    path: &Path,
    payout: impl FnOnce(&Did) -> Option<EvmAddress>,
) -> Result<KeyFile, DevnetError> {
    let err = |source| DevnetError::Key {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        return KeyFile::load(path).map_err(err);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut kf = KeyFile::generate(None).map_err(err)?;
    kf.payout_address = payout(&kf.did());
    kf.save_new(path).map_err(err)?;
    Ok(kf)
}

/// A devnet node's payout address: derived from its did (a local network pays nothing real).
fn payout_of(did: &Did) -> EvmAddress {
    let h = Hash32::sha256(format!("lode-devnet-payout/{did}").as_bytes());
    let mut a = [0u8; 20];
    a.copy_from_slice(&h.0[..20]);
    EvmAddress(a)
}

/// Checks that the port can be listened on (0 always can).
pub fn check_port(port: u16) -> Result<(), DevnetError> {
    if port == 0 {
        return Ok(());
    }
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(DevnetError::PortInUse(port)),
        Err(source) => Err(DevnetError::Port { port, source }),
    }
}

/// The last `n` lines of a log file, indented.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn open_log(path: &Path) -> Result<File, DevnetError> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    writeln!(
        f,
        "=== lode devnet: start at {} ms ===",
        lode_client::now_ms()
    )
    .map_err(io_err(path))?;
    Ok(f)
}

/// A line on stderr; never fails (stderr may be a pipe that a Ctrl-C closed).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// One supervised child process.
#[derive(Debug)]
struct Proc {
    name: String,
    log: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (reaping it).
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    fn signal(&mut self, sig: i32) {
        if self.poll().is_none() {
            send_signal(self.pid(), sig);
        }
    }

    fn died(&mut self) -> Option<DevnetError> {
        self.poll().map(|status| DevnetError::ChildDied {
            name: self.name.clone(),
            status,
            log: self.log.clone(),
            tail: tail(&self.log, 12),
        })
    }
}

fn send_signal(pid: u32, sig: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) only sends a signal to a process we started and have not reaped;
    // it touches no memory of ours.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Spawns `lode ARGS` in its own process group (so a terminal's Ctrl-C reaches
/// only the devnet, which then stops its children in order) and asks the kernel
/// to SIGTERM it if the devnet dies.
fn spawn(name: &str, args: &[String], stdout: Stdio, log: &Path) -> Result<Proc, DevnetError> {
    use std::os::unix::process::CommandExt;
    let spawn_err = |source| DevnetError::Spawn {
        name: name.to_string(),
        source,
    };
    let exe = std::env::current_exe().map_err(spawn_err)?;
    let stderr = open_log(log)?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    // Logs go to files: no colour codes.
    cmd.env("NO_COLOR", "1");
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the closure runs in the forked child before exec and only calls
        // prctl(2), which is async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    Ok(Proc {
        name: name.to_string(),
        log: log.to_path_buf(),
        child,
        exited: None,
    })
}

/// What woke the supervisor.
enum Wake {
    Tick,
    Signal,
}

/// The running network.
struct Devnet {
    layout: Layout,
    gateway: Option<Proc>,
    /// Gateways 1.. of a replicated chain.
    more_gateways: Vec<Proc>,
    validators: Vec<Proc>,
    nodes: Vec<Proc>,
    signals: Receiver<()>,
}

impl Devnet {
    /// Waits up to `d` for a signal.
    fn wait(&self, d: Duration) -> Wake {
        match self.signals.recv_timeout(d) {
            Ok(()) => Wake::Signal,
            Err(RecvTimeoutError::Timeout) => Wake::Tick,
            // No signal handler: never woken by a signal.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(d);
                Wake::Tick
            }
        }
    }

    /// The first child that exited, as an error.
    fn check_children(&mut self) -> Result<(), DevnetError> {
        for p in self
            .nodes
            .iter_mut()
            .chain(self.gateway.as_mut())
            .chain(self.more_gateways.iter_mut())
            .chain(self.validators.iter_mut())
        {
            if let Some(e) = p.died() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stops nodes first (they hand their units back), then the gateway (it seals
    /// its last block). A signal meanwhile kills whatever is left.
    fn stop(&mut self, quiet: bool) {
        let say = |m: &str| {
            if !quiet {
                say(m);
            }
        };
        say("stopping the nodes…");
        for p in &mut self.nodes {
            p.signal(libc::SIGTERM);
        }
        let mut hurry = self.reap(|d| d.nodes.iter_mut().collect(), Duration::from_secs(20));
        if let Some(g) = self.gateway.as_mut() {
            say("stopping the gateway…");
            g.signal(libc::SIGTERM);
        }
        for g in &mut self.more_gateways {
            g.signal(libc::SIGTERM);
        }
        if !hurry {
            hurry = self.reap(
                |d| {
                    d.gateway
                        .iter_mut()
                        .chain(d.more_gateways.iter_mut())
                        .collect()
                },
                Duration::from_secs(20),
            );
        }
        if !self.validators.is_empty() {
            say("stopping the validators…");
            for v in &mut self.validators {
                v.signal(libc::SIGTERM);
            }
            if !hurry {
                hurry = self.reap(
                    |d| d.validators.iter_mut().collect(),
                    Duration::from_secs(20),
                );
            }
        }
        if hurry {
            say("killing what is left");
        }
        for p in self
            .nodes
            .iter_mut()
            .chain(self.gateway.as_mut())
            .chain(self.more_gateways.iter_mut())
            .chain(self.validators.iter_mut())
        {
            if p.poll().is_none() {
                p.signal(libc::SIGKILL);
                let _ = p.child.wait();
            }
        }
    }

    /// Waits until the chosen processes exited, at most `limit`; true when it gave
    /// up (time out or a second signal).
    fn reap(&mut self, pick: impl Fn(&mut Self) -> Vec<&mut Proc>, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if pick(self).into_iter().all(|p| p.poll().is_some()) {
                return false;
            }
            if start.elapsed() > limit {
                return true;
            }
            if let Wake::Signal = self.wait(Duration::from_millis(100)) {
                return true;
            }
        }
    }
}

/// Delivers SIGINT/SIGTERM to the returned channel (one message per signal).
fn signal_channel() -> Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            #[cfg(unix)]
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            loop {
                #[cfg(unix)]
                tokio::select! {
                    r = tokio::signal::ctrl_c() => if r.is_err() { return },
                    _ = term.recv() => {}
                }
                #[cfg(not(unix))]
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
    });
    rx
}

/// How `lode` is spelled in the printed commands: `lode` when that is this
/// executable on PATH, else its path (relative to the current directory if inside).
fn lode_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "lode".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| d.join("lode").canonicalize().is_ok_and(|p| p == exe))
    });
    if on_path {
        return "lode".into();
    }
    let cwd = std::env::current_dir()
        .and_then(|p| p.canonicalize())
        .unwrap_or_default();
    exe.strip_prefix(&cwd)
        .map_or_else(|_| exe.display().to_string(), |p| p.display().to_string())
}

pub fn run(args: DevnetArgs) -> Result<ExitCode> {
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| super::keys::lode_home().join("devnet"));
    let layout = Layout { root };
    check_port(args.port)?;
    for d in [layout.root.clone(), layout.logs(), layout.gateway_dir()] {
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
    }
    let resumed = layout.gateway_dir().join("genesis.toml").exists();
    let requester = key(&layout.requester_key(), |_| None)?;
    let node_keys = (0..args.nodes)
        .map(|i| key(&layout.node_key(i), |d| Some(payout_of(d))))
        .collect::<Result<Vec<_>, _>>()?;

    let mut net = Devnet {
        layout: layout.clone(),
        gateway: None,
        more_gateways: vec![],
        validators: vec![],
        nodes: vec![],
        signals: signal_channel(),
    };
    let result = start_and_supervise(&mut net, &args, &requester, &node_keys, resumed);
    let quiet = args.json;
    match result {
        Ok(()) => {
            net.stop(quiet);
            say(&format!(
                "devnet stopped; its data stays in {} (run the same command to resume)",
                layout.root.display()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            say(&format!("error: {e}"));
            net.stop(quiet);
            say(&format!(
                "devnet stopped; logs are in {}",
                layout.logs().display()
            ));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Starts everything, prints the banner, runs the demo, and returns on a signal.
fn start_and_supervise(
    net: &mut Devnet,
    args: &DevnetArgs,
    requester: &KeyFile,
    node_keys: &[KeyFile],
    resumed: bool,
) -> Result<(), DevnetError> {
    let layout = net.layout.clone();
    let listen = format!("127.0.0.1:{}", args.port);
    let replicated = replicated_setup(&layout, args, requester, resumed)?;
    if let Some(r) = &replicated {
        for (i, (p2p, http)) in r.ports.iter().enumerate() {
            let i = i as u32;
            let peers: Vec<String> = r
                .ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j as u32 != i)
                .map(|(_, (p, _))| format!("127.0.0.1:{p}"))
                .collect();
            let dir = layout.validator_dir(i);
            let v_args: Vec<String> = vec![
                "validator".into(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--key".into(),
                dir.join("validator.key").display().to_string(),
                "--genesis".into(),
                r.genesis.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{p2p}"),
                "--http".into(),
                format!("127.0.0.1:{http}"),
                "--peers".into(),
                peers.join(","),
            ];
            let name = format!("v{i}");
            let (p, rx) = spawn_listening(&name, &v_args, &layout.log(&name))?;
            net.validators.push(p);
            let url = match wait_url(net, &rx, &format!("validator {i} listening"))? {
                Some(u) => u,
                None => return Ok(()),
            };
            if !args.json {
                eprintln!("validator {i} listening on {url}");
            }
        }
    }
    let gateways = if replicated.is_some() {
        args.gateways.max(1)
    } else {
        1
    };
    let mut urls = Vec::new();
    for g in 0..gateways {
        let dir = layout.gateway_dir_n(g);
        let mut gw_args: Vec<String> = vec![
            "gateway".into(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--listen".into(),
            if g == 0 {
                listen.clone()
            } else {
                "127.0.0.1:0".into()
            },
            "--poll-timeout-ms".into(),
            "5000".into(),
            "--data-k".into(),
            args.data_k.to_string(),
        ];
        match &replicated {
            Some(r) => {
                // Each gateway starts with a different validator.
                let n = r.ports.len();
                let vs: Vec<String> = (0..n)
                    .map(|k| format!("http://127.0.0.1:{}", r.ports[(k + g as usize) % n].1))
                    .collect();
                gw_args.extend([
                    "--genesis".into(),
                    r.genesis.display().to_string(),
                    "--validators".into(),
                    vs.join(","),
                    "--block-interval-ms".into(),
                    "100".into(),
                ]);
            }
            None => gw_args.extend(
                [
                    "--fund",
                    &format!("{}={REQUESTER_TOKENS}", requester.did()),
                    "--epoch-ms",
                    &args.epoch_ms.to_string(),
                    // Staking and governance on, with demo-sized periods (a new chain
                    // only; docs/design/staking.md). While nobody stakes the stakers'
                    // share is not taken: rewards are those of a chain without staking.
                    "--staking-share-bps",
                    "1000",
                    "--unbonding-epochs",
                    "2",
                    "--voting-period-epochs",
                    "2",
                    "--min-deposit",
                    "10 LODE",
                ]
                .iter()
                .map(|s| s.to_string()),
            ),
        }
        let name = if g == 0 {
            "gateway".to_string()
        } else {
            format!("gateway{g}")
        };
        let (p, rx) = spawn_listening(&name, &gw_args, &layout.log(&name))?;
        if g == 0 {
            net.gateway = Some(p);
        } else {
            net.more_gateways.push(p);
        }
        let url = match wait_url(net, &rx, &format!("{name} listening"))? {
            Some(u) => u,
            None => return Ok(()),
        };
        if !args.json {
            eprintln!(
                "{name} listening on {url} ({} chain in {})",
                if resumed { "resumed" } else { "new" },
                dir.display()
            );
        }
        urls.push(url);
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let slots = (cores / args.nodes).max(1);
    for (i, kf) in node_keys.iter().enumerate() {
        let i = i as u32;
        let name = format!("node{i}");
        let mut node_args: Vec<String> = vec![
            "node".into(),
            "--gateway".into(),
            urls[i as usize % urls.len()].clone(),
            "--key".into(),
            layout.node_key(i).display().to_string(),
            "--data-dir".into(),
            layout.node_dir(i).display().to_string(),
            "--slots".into(),
            slots.to_string(),
            "--memory-mib".into(),
            args.node_memory_mib.to_string(),
        ];
        if args.node_storage_mib > 0 {
            node_args.extend([
                "--storage-dir".into(),
                layout.node_dir(i).join("storage").display().to_string(),
                "--storage-gb".into(),
                format!("{}", args.node_storage_mib as f64 / 1024.0),
            ]);
        }
        let log = layout.log(&name);
        let out = open_log(&log)?;
        net.nodes
            .push(spawn(&name, &node_args, Stdio::from(out), &log)?);
        if !args.json {
            eprintln!("started {name} {}", kf.did());
        }
    }

    let clients = urls
        .iter()
        .map(|u| {
            Client::new(u).map_err(|e| DevnetError::Spawn {
                name: "client".into(),
                source: std::io::Error::other(e.to_string()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let client = clients[0].clone();
    let want = node_keys.len();
    let start = Instant::now();
    let limit = Duration::from_secs(180);
    loop {
        let online: usize = clients
            .iter()
            .map(|c| c.nodes().map_or(0, |n| n.len()))
            .sum();
        if online >= want {
            break;
        }
        net.check_children()?;
        if start.elapsed() > limit {
            return Err(DevnetError::Timeout {
                what: format!("{want} nodes online (only {online})"),
                secs: limit.as_secs(),
                logs: layout.logs(),
            });
        }
        if let Wake::Signal = net.wait(Duration::from_millis(200)) {
            return Ok(());
        }
    }

    print_banner(net, args, &urls, replicated.as_ref(), requester, node_keys);

    let stop = Arc::new(AtomicBool::new(false));
    if args.demo {
        let stop = Arc::clone(&stop);
        let kf = requester.clone();
        // The demo's quorum needs nodes of the first gateway.
        let first = want.div_ceil(urls.len());
        let (units, quorum, quiet) = (args.demo_units, first.min(2) as u8, args.json);
        let client = client.clone();
        std::thread::spawn(move || {
            if let Err(e) = demo(&client, &kf, units, quorum, quiet, &stop) {
                eprintln!("demo job: {e:#}");
            }
        });
    }
    let outcome = loop {
        if let Err(e) = net.check_children() {
            break Err(e);
        }
        if let Wake::Signal = net.wait(Duration::from_millis(200)) {
            break Ok(());
        }
    };
    stop.store(true, Ordering::Relaxed);
    outcome
}

/// A replicated devnet's chain: its genesis file and the validators' ports.
#[derive(Debug)]
struct Replicated {
    genesis: PathBuf,
    /// (consensus, HTTP) port of each validator.
    ports: Vec<(u16, u16)>,
}

fn free_port() -> Result<u16, DevnetError> {
    let l = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|source| DevnetError::Port { port: 0, source })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| DevnetError::Port { port: 0, source })
}

/// Creates (or, on a resume, reads back) a replicated chain: validator and
/// gateway keys, the genesis listing them, the validators' ports. `None`:
/// a single-validator chain (the gateway signs blocks).
fn replicated_setup(
    layout: &Layout,
    args: &DevnetArgs,
    requester: &KeyFile,
    resumed: bool,
) -> Result<Option<Replicated>, DevnetError> {
    let ports_file = layout.validators_dir().join("ports.json");
    let genesis = layout.validators_dir().join("genesis.toml");
    if ports_file.exists() {
        let text = std::fs::read_to_string(&ports_file).map_err(io_err(&ports_file))?;
        let ports: Vec<(u16, u16)> = serde_json::from_str(&text)
            .map_err(|e| io_err(&ports_file)(std::io::Error::other(e.to_string())))?;
        return Ok(Some(Replicated { genesis, ports }));
    }
    if args.validators == 0 {
        return Ok(None);
    }
    if resumed {
        say(
            "this devnet's chain was created without validators: --validators is ignored (use a new --data-dir)",
        );
        return Ok(None);
    }
    let dir = layout.validators_dir();
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut validators = Vec::new();
    let mut ports = Vec::new();
    for i in 0..args.validators {
        let kf = key(&layout.validator_dir(i).join("validator.key"), |_| None)?;
        validators.push(lode_ledger::consensus::Validator {
            did: kf.did(),
            power: 1,
        });
        ports.push((free_port()?, free_port()?));
    }
    let mut gateways = Vec::new();
    for g in 0..args.gateways {
        let d = layout.gateway_dir_n(g);
        gateways.push(key(&d.join("validator.key"), |_| None)?.did());
    }
    let funded = vec![(
        "demo-requester".to_string(),
        requester.did(),
        u128::from(REQUESTER_TOKENS) * lode_ledger::ONE_TOKEN,
    )];
    let mut g = super::validator::replicated_genesis(
        validators,
        gateways,
        &funded,
        args.epoch_ms,
        lode_client::now_ms(),
    )
    .map_err(|e| io_err(&genesis)(std::io::Error::other(format!("{e:#}"))))?;
    g.staking = Some(lode_ledger::StakingParams {
        share_bps: 1000,
        unbonding_epochs: 2,
        ..Default::default()
    });
    g.governance = Some(lode_ledger::GovernanceParams {
        voting_period_epochs: 2,
        min_deposit: 10 * lode_ledger::ONE_TOKEN,
    });
    std::fs::write(&genesis, g.to_toml()).map_err(io_err(&genesis))?;
    let json = serde_json::to_string(&ports).unwrap_or_default();
    std::fs::write(&ports_file, json).map_err(io_err(&ports_file))?;
    Ok(Some(Replicated { genesis, ports }))
}

/// Spawns a service that prints "listening on URL" on stdout (the rest goes
/// to its log); the URL comes on the returned channel.
fn spawn_listening(
    name: &str,
    args: &[String],
    log: &Path,
) -> Result<(Proc, Receiver<String>), DevnetError> {
    let mut p = spawn(name, args, Stdio::piped(), log)?;
    let (url_tx, url_rx) = mpsc::channel();
    if let Some(out) = p.child.stdout.take() {
        let log = log.to_path_buf();
        std::thread::spawn(move || {
            let mut sink = OpenOptions::new().append(true).open(&log).ok();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = url_tx.send(url.trim().to_string());
                }
                if let Some(f) = sink.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
    }
    Ok((p, url_rx))
}

/// Waits for a URL from [`spawn_listening`]; `None` on a signal.
fn wait_url(
    net: &mut Devnet,
    rx: &Receiver<String>,
    what: &str,
) -> Result<Option<String>, DevnetError> {
    let start = Instant::now();
    loop {
        if let Ok(u) = rx.try_recv() {
            return Ok(Some(u));
        }
        net.check_children()?;
        if start.elapsed() > Duration::from_secs(60) {
            return Err(DevnetError::Timeout {
                what: what.into(),
                secs: 60,
                logs: net.layout.logs(),
            });
        }
        if let Wake::Signal = net.wait(Duration::from_millis(50)) {
            return Ok(None);
        }
    }
}

fn print_banner(
    net: &Devnet,
    args: &DevnetArgs,
    urls: &[String],
    replicated: Option<&Replicated>,
    requester: &KeyFile,
    nodes: &[KeyFile],
) {
    let l = &net.layout;
    let url = urls[0].as_str();
    let validator_urls: Vec<String> = replicated.map_or_else(Vec::new, |r| {
        r.ports
            .iter()
            .map(|(_, h)| format!("http://127.0.0.1:{h}"))
            .collect()
    });
    if args.json {
        let v = serde_json::json!({
            "url": url,
            "gateways": urls,
            "validators": validator_urls.iter().zip(&net.validators).enumerate().map(|(i, (u, p))| serde_json::json!({
                "url": u,
                "pid": p.pid(),
                "dir": l.validator_dir(i as u32),
                "log": p.log,
            })).collect::<Vec<_>>(),
            "gateway_pids": net.more_gateways.iter().map(Proc::pid).collect::<Vec<_>>(),
            "dashboard": format!("{url}/"),
            "data_dir": l.root,
            "gateway_dir": l.gateway_dir(),
            "ledger_dir": l.gateway_dir().join("ledger"),
            "logs": l.logs(),
            "requester": requester.did(),
            "requester_key": l.requester_key(),
            "gateway_pid": net.gateway.as_ref().map(Proc::pid),
            "nodes": nodes.iter().zip(&net.nodes).enumerate().map(|(i, (k, p))| serde_json::json!({
                "did": k.did(),
                "payout": k.payout_address,
                "key": l.node_key(i as u32),
                "pid": p.pid(),
                "log": p.log,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
        return;
    }
    let lode = lode_command();
    let key = l.requester_key();
    let gw = l.gateway_dir();
    println!();
    if validator_urls.is_empty() {
        println!(
            "Lode devnet is up: 1 gateway + {} nodes on 127.0.0.1",
            nodes.len()
        );
    } else {
        println!(
            "Lode devnet is up: {} validators + {} gateways + {} nodes on 127.0.0.1",
            validator_urls.len(),
            urls.len(),
            nodes.len()
        );
        for (i, v) in validator_urls.iter().enumerate() {
            println!("  validator {i} {v}/v1/status");
        }
        for (i, g) in urls.iter().enumerate().skip(1) {
            println!("  gateway {i}   {g}/");
        }
    }
    println!("  dashboard   {url}/");
    println!(
        "  requester   {} (funded with {REQUESTER_TOKENS} LODE) key {}",
        requester.did(),
        key.display()
    );
    println!("  data, logs  {}  {}", l.root.display(), l.logs().display());
    println!();
    println!("Try (from the repository root):");
    println!(
        "  {lode} job submit examples/jobs/sha256.toml --key {} --gateway {url}",
        key.display()
    );
    println!("  {lode} job status --gateway {url}");
    if let Some(n) = nodes.first() {
        println!("  {lode} wallet balance {} --gateway {url}", n.did());
    }
    match validator_urls.first() {
        Some(v) => println!("  {lode} ledger verify --from {v}"),
        None => println!("  {lode} ledger verify {}", gw.display()),
    }
    println!();
    println!("Ctrl-C stops everything; the data stays, and the same command resumes it.");
    let _ = std::io::stdout().flush();
}

/// Deterministic demo inputs: `n` blobs of 1–64 KiB (xorshift).
pub fn demo_inputs(n: u32) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = 1024 + (next() % (63 * 1024)) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect()
}

/// The example module the demo job runs (SHA-256 of stdin).
pub const DEMO_WASM: &[u8] = include_bytes!("../../../../examples/jobs/wasm/sha256.wasm");

fn demo_spec(quorum: u8) -> Result<lode_proto::jobspec::JobSpec> {
    let text = format!(
        "name = \"devnet demo: sha256 of generated blobs\"\nmodule = \"sha256.wasm\"\n\
         [inputs]\nstdin = [\"x\"]\n\
         [limits]\nfuel = 100_000_000\nmemory_mb = 16\ntimeout_ms = 10_000\nmax_output_bytes = 1024\n\
         [verification]\nquorum = {quorum}\nmax_replicas = {}\nadaptive_trust = true\n\
         [price]\nmax_per_fuel = 1000\n",
        quorum + 3
    );
    Ok(lode_proto::jobspec::JobSpec::from_toml(&text)?)
}

/// Submits the demo job and shows its progress.
fn demo(
    client: &Client,
    kf: &KeyFile,
    units: u32,
    quorum: u8,
    quiet: bool,
    stop: &AtomicBool,
) -> Result<()> {
    let spec = demo_spec(quorum)?;
    let inputs = demo_inputs(units)
        .into_iter()
        .map(|stdin| lode_proto::wire::UnitInput {
            stdin,
            args: vec![],
        })
        .collect();
    let v = client.submit_prepared(&kf.keypair, &spec, DEMO_WASM, inputs)?;
    if !quiet {
        eprintln!(
            "demo: submitted job {} ({} units of sha256)",
            v.job, v.units
        );
    }
    let needs = super::job::Needs {
        limits: spec.unit_limits(),
        verification: spec.verification(),
        price: spec.price.max_per_fuel,
    };
    let v = super::job::follow(client, &v.job, quiet, Some(&needs), Some(stop))?;
    if !quiet && v.is_done() {
        eprintln!(
            "demo: job {} {}: {} verified, {} failed, cost {}; the devnet keeps running (Ctrl-C stops it)",
            v.job,
            v.status,
            v.completed,
            v.failed,
            lode_ledger::format_tokens(v.cost_so_far.parse().unwrap_or(0))
        );
    }
    Ok(())
}
