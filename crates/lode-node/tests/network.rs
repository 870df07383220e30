//! The node against a gateway peer speaking the real contract over real sockets
//! (see `peer/mod.rs`): signatures, sessions, module download and hashing, reports,
//! hand-backs, cancel, shutdown and reconnection.

mod peer;

use lode_node::{Behaviour, Node, NodeConfig, NodeError, RunSummary};
use lode_proto::wire::{Assignment, UnitInput, UnitLimits, UnitOutcome, UnitRef};
use lode_proto::{EvmAddress, Hash32, KeyFile};
use lode_sandbox::{RunInput, Sandbox, SandboxConfig};
use peer::{Peer, PeerState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The timing-sensitive tests run one at a time (the machine has 2 cores).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PAYOUT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

fn example(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/jobs/wasm")
        .join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn write_key(dir: &Path, payout: Option<&str>) -> PathBuf {
    let path = dir.join("node.key");
    let payout = payout.map(|p| p.parse::<EvmAddress>().unwrap());
    KeyFile::generate(payout).unwrap().save_new(&path).unwrap();
    path
}

fn config(url: &str, dir: &Path) -> NodeConfig {
    let mut c = NodeConfig::new(url, write_key(dir, Some(PAYOUT)), dir.join("data"));
    c.slots = Some(2);
    c.memory_bytes = Some(512 << 20);
    c.region = Some("test-1".into());
    c.benchmark_time = Duration::from_millis(20);
    c.backoff_base = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.connect_timeout = Duration::from_secs(1);
    c.request_timeout = Duration::from_secs(10);
    c.shutdown_grace = Duration::from_secs(2);
    c.final_flush = Duration::from_secs(2);
    c.lower_priority = false;
    // Most tests count wants against slots; prefetching has its own test.
    c.max_prefetch = 0;
    c
}

struct Running {
    handle: JoinHandle<Result<RunSummary, NodeError>>,
    stop: oneshot::Sender<()>,
}

impl Running {
    async fn shutdown(self) -> RunSummary {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("node did not stop")
            .unwrap()
            .unwrap()
    }
}

fn start(config: NodeConfig) -> Running {
    let (stop, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(lode_node::run(config, async move {
        let _ = rx.await;
    }));
    Running { handle, stop }
}

fn unit(job: &str, i: u32) -> UnitRef {
    UnitRef {
        job: Hash32::sha256(job.as_bytes()),
        unit: i,
    }
}

fn assignment(
    unit: UnitRef,
    module: Hash32,
    stdin: &[u8],
    args: &[&str],
    limits: UnitLimits,
) -> Assignment {
    Assignment {
        unit,
        module,
        input: UnitInput {
            stdin: stdin.to_vec(),
            args: args.iter().map(|s| s.to_string()).collect(),
        },
        limits,
        deadline_ms: peer::now_ms() + 60_000,
    }
}

/// What the sandbox itself computes for a unit.
fn expected(sandbox: &Sandbox, wasm: &[u8], a: &Assignment) -> UnitOutcome {
    let m = sandbox.compile(wasm).unwrap();
    let input = RunInput {
        stdin: a.input.stdin.clone(),
        args: a.input.args.clone(),
    };
    match lode_node::outcome::classify(sandbox.run(
        &m,
        &input,
        &lode_node::outcome::to_sandbox_limits(&a.limits),
    )) {
        lode_node::outcome::Disposition::Report(o) => o,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_units_and_reports_what_the_sandbox_computes() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(PeerState::new(), 0);
    let wasm = [
        ("sha256", example("sha256")),
        ("wordcount", example("wordcount")),
        ("primes", example("primes")),
        ("hello", example("hello")),
    ];
    let hashes: Vec<Hash32> = wasm
        .iter()
        .map(|(_, b)| peer.with(|s| s.add_module(b.clone())))
        .collect();
    let not_wasm = peer.with(|s| s.add_module(b"definitely not a wasm module".to_vec()));

    let lim = UnitLimits::default();
    let mut work: Vec<(Assignment, Option<usize>)> = Vec::new();
    let inputs: [&[u8]; 5] = [b"", b"abc", b"hello world\n", &[0u8; 5000], b"lode"];
    for (i, stdin) in inputs.iter().enumerate() {
        work.push((
            assignment(unit("j", i as u32), hashes[0], stdin, &[], lim),
            Some(0),
        ));
    }
    work.push((
        assignment(
            unit("j", 10),
            hashes[1],
            b"the quick brown fox\njumps over\n",
            &[],
            lim,
        ),
        Some(1),
    ));
    work.push((
        assignment(unit("j", 11), hashes[2], b"1000\n", &[], lim),
        Some(2),
    ));
    work.push((
        assignment(unit("j", 12), hashes[3], b"", &["lode"], lim),
        Some(3),
    ));
    // Deterministic failures are results too.
    let tiny_fuel = UnitLimits { fuel: 1000, ..lim };
    work.push((
        assignment(unit("j", 20), hashes[0], b"abc", &[], tiny_fuel),
        Some(0),
    ));
    work.push((assignment(unit("j", 21), not_wasm, b"", &[], lim), None));
    // Over this node's per-unit memory ceiling (512 MiB / 2 slots): handed back.
    let too_big = UnitLimits {
        memory_bytes: 1 << 30,
        ..lim
    };
    let big = assignment(unit("j", 30), hashes[0], b"x", &[], too_big);

    let running = start(config(&peer.url(), dir.path()));
    for (a, _) in &work {
        peer.push(a.clone());
    }
    peer.push(big.clone());
    let n = work.len();
    peer.wait_for("all reports", Duration::from_secs(60), |s| {
        s.reports.len() >= n && s.was_handed_back(&big.unit)
    })
    .await;

    // What the sandbox computes for each unit (off the async threads: a WASI unit
    // must not run on a tokio worker).
    let want: Vec<Option<UnitOutcome>> = {
        let work = work.clone();
        let wasm = wasm.clone();
        tokio::task::spawn_blocking(move || {
            let sandbox = Sandbox::new(SandboxConfig {
                max_concurrent_units: 1,
                ..SandboxConfig::default()
            })
            .unwrap();
            work.iter()
                .map(|(a, m)| m.map(|i| expected(&sandbox, &wasm[i].1, a)))
                .collect()
        })
        .await
        .unwrap()
    };
    peer.with(|state| check_reports(state, &work, &want, &hashes, not_wasm, &big));

    let summary = running.shutdown().await;
    assert_eq!(summary.sessions, 1);
    assert_eq!(summary.reported, n as u64);
    assert_eq!(summary.handed_back, 1);
    assert_eq!(summary.undelivered, 0);
    // Modules are on disk under their hash, and compiled code in the sandbox cache.
    for h in &hashes {
        let p = dir
            .path()
            .join("data/modules")
            .join(format!("{}.wasm", h.to_hex()));
        assert_eq!(Hash32::sha256(&std::fs::read(&p).unwrap()), *h);
    }
    assert!(
        std::fs::read_dir(dir.path().join("data/compiled"))
            .unwrap()
            .count()
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_units_are_prefetched_beyond_the_slots() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut state = PeerState::new();
    // No heartbeat wake-ups: shutdown speed below depends on the node alone.
    state.heartbeat_timeout_ms = 60_000;
    // A WAN-like round trip, longer than a quick unit: the reports of units
    // finished while a poll is in flight go out together in the next one.
    state.poll_latency = Some(Duration::from_millis(100));
    let peer = Peer::start(state, 0);
    let h = peer.with(|s| s.add_module(example("hello")));
    let mut cfg = config(&peer.url(), dir.path());
    cfg.slots = Some(1);
    cfg.max_prefetch = 16;
    // Long enough that waiting either out would be unmistakable below.
    cfg.shutdown_grace = Duration::from_secs(20);
    cfg.final_flush = Duration::from_secs(20);
    let running = start(cfg);
    let n = 120u32;
    for i in 0..n {
        peer.push(assignment(unit("p", i), h, b"", &[], UnitLimits::default()));
    }
    peer.wait_for("all reports", Duration::from_secs(60), |s| {
        s.reports.len() == n as usize
    })
    .await;
    peer.with(|s| {
        // The first poll asks for one unit (nothing known yet about unit times);
        // once units are seen to be quick, more are held than there are slots.
        assert_eq!(s.wants[0], 1);
        assert!(s.wants.iter().any(|w| *w > 1), "{:?}", s.wants);
        assert!(s.wants.iter().all(|w| *w <= 17), "{:?}", s.wants);
        assert!(s.refused.is_empty() && s.rejected.is_empty());
        // Reports are batched: far fewer polls than units.
        assert!(
            s.polls < u64::from(n) / 2,
            "{} polls for {n} units",
            s.polls
        );
    });
    // Nothing running, nothing to tell: shutdown does not wait out the grace or
    // flush periods (20 s each here).
    let t0 = Instant::now();
    let summary = running.shutdown().await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(summary.reported, u64::from(n));
    assert_eq!(summary.handed_back, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_beyond_one_batch_do_not_wait_for_a_held_long_poll() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut state = PeerState::new();
    // A gateway that holds a poll wanting work until there is some (here: never
    // again), even when the poll carried reports.
    state.poll_timeout_ms = 60_000;
    state.heartbeat_timeout_ms = 180_000;
    state.hold_reporting_polls = true;
    let peer = Peer::start(state, 0);
    let h = peer.with(|s| {
        let h = s.add_module(example("hello"));
        // Every unit waits for the module, so all of them finish at once.
        s.module_delay.insert(h, Duration::from_millis(500));
        h
    });
    let mut cfg = config(&peer.url(), dir.path());
    cfg.slots = Some(8);
    cfg.poll_batch = 3;
    let running = start(cfg);
    let n = 8u32;
    for i in 0..n {
        peer.push(assignment(unit("b", i), h, b"", &[], UnitLimits::default()));
    }
    // The long poll sent when they finish carries at most 3 reports and is then
    // held; the other reports must go out on short polls meanwhile, not after
    // the minute the long poll waits.
    peer.wait_for("all reports", Duration::from_secs(20), |s| {
        s.reports.len() == n as usize
    })
    .await;
    assert!(peer.with(|s| s.rejected.is_empty()));
    // (The held poll's reports are sent again on shutdown, which cannot know
    // whether they were recorded; the peer refuses the repeats.)
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_module_whose_bytes_do_not_match_its_hash() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(PeerState::new(), 0);
    let sha = example("sha256");
    let h = Hash32::sha256(&sha);
    // The gateway serves other bytes under this hash.
    peer.with(|s| s.modules.insert(h, example("hello")));
    let running = start(config(&peer.url(), dir.path()));
    let bad = assignment(unit("m", 0), h, b"abc", &[], UnitLimits::default());
    peer.push(bad.clone());
    peer.wait_for("hand-back", Duration::from_secs(30), |s| {
        s.was_handed_back(&bad.unit)
    })
    .await;
    assert!(peer.with(|s| s.report_of(&bad.unit).is_none()));
    let stored = dir
        .path()
        .join("data/modules")
        .join(format!("{}.wasm", h.to_hex()));
    assert!(!stored.exists(), "refused bytes must not be stored");

    // Once the right bytes are served, the same module works: the refusal was not cached.
    peer.with(|s| s.modules.insert(h, sha.clone()));
    let good = assignment(unit("m", 1), h, b"abc", &[], UnitLimits::default());
    peer.push(good.clone());
    peer.wait_for("report", Duration::from_secs(30), |s| {
        s.report_of(&good.unit).is_some()
    })
    .await;
    match &peer
        .with(|s| s.report_of(&good.unit).cloned())
        .unwrap()
        .outcome
    {
        UnitOutcome::Completed { stdout, .. } => {
            assert_eq!(
                String::from_utf8_lossy(stdout).trim(),
                Hash32::sha256(b"abc").to_hex()
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(stored.exists());
    // The result is signed as a standalone ledger claim (the evidence that
    // would slash the node if the result were proven wrong).
    let (signer, report, chain) = peer.with(|s| {
        let (d, r) = s
            .reports
            .iter()
            .find(|(_, r)| r.unit == good.unit)
            .cloned()
            .unwrap();
        (d, r, s.chain_id)
    });
    let (exit_code, fuel_used, output) = report.outcome.compared();
    let claim = lode_ledger::entry::ResultClaim {
        chain,
        job: good.unit.job,
        unit: u64::from(good.unit.unit),
        result: lode_ledger::entry::ResultClaim::result_hash(
            &Hash32::sha256(output),
            exit_code,
            fuel_used,
        ),
    };
    let sig = report.claim.expect("a signed claim");
    assert!(claim.envelope(signer, sig).is_some(), "the claim verifies");
    let mut other = claim.clone();
    other.result = Hash32::sha256(b"another result");
    assert!(
        other.envelope(signer, sig).is_none(),
        "and only for its result"
    );
    let summary = running.shutdown().await;
    assert_eq!(summary.reported, 1);
    assert_eq!(summary.handed_back, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_units_and_hands_back_the_rest() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(PeerState::new(), 0);
    let spin = lode_node::bench::bench_module();
    let spin_h = peer.with(|s| s.add_module(spin.clone()));
    let slow_h = peer.with(|s| s.add_module(example("hello")));
    peer.with(|s| s.module_delay.insert(slow_h, Duration::from_secs(30)));

    // Fuel for about 0.8 s of this machine's time on one core.
    let speed = {
        let sb = Sandbox::new(SandboxConfig {
            max_concurrent_units: 1,
            ..SandboxConfig::default()
        })
        .unwrap();
        lode_node::bench::self_benchmark(&sb, Duration::from_millis(100))
            .unwrap()
            .fuel_per_s
    };
    let endless = UnitLimits {
        fuel: u64::MAX / 2,
        timeout_ms: 8_000,
        ..UnitLimits::default()
    };
    let short = UnitLimits {
        fuel: speed * 8 / 10,
        timeout_ms: 60_000,
        ..UnitLimits::default()
    };
    let u_endless = assignment(unit("s", 1), spin_h, b"", &[], endless);
    let u_unstarted = assignment(unit("s", 2), slow_h, b"", &[], UnitLimits::default());
    let u_short = assignment(unit("s", 3), spin_h, b"", &[], short);

    let mut cfg = config(&peer.url(), dir.path());
    cfg.slots = Some(3);
    cfg.shutdown_grace = Duration::from_secs(4);
    let running = start(cfg);
    peer.push(u_endless.clone());
    peer.push(u_unstarted.clone());
    peer.push(u_short.clone());
    peer.wait_for("downloads", Duration::from_secs(30), |s| {
        s.queue.is_empty() && s.module_gets.contains(&spin_h) && s.module_gets.contains(&slow_h)
    })
    .await;
    // Let the spinning units compile and start.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let t0 = Instant::now();
    let summary = running.shutdown().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "waits for the grace period, then exits: {took:?}"
    );
    let s = peer.state.lock().unwrap();
    // The unit that was still downloading never ran: handed back.
    assert!(s.was_handed_back(&u_unstarted.unit));
    // The short unit finished within the grace period: reported.
    assert_eq!(
        s.report_of(&u_short.unit).map(|r| &r.outcome),
        Some(&UnitOutcome::Failed {
            error: format!(
                "out_of_fuel: out of fuel: the limit of {} was used up",
                short.fuel
            ),
            fuel_used: short.fuel
        })
    );
    // The endless one was handed back when the grace period ended.
    assert!(s.was_handed_back(&u_endless.unit));
    assert!(s.report_of(&u_endless.unit).is_none());
    assert_eq!(s.handed_back.len(), 2);
    assert_eq!(summary.reported, 1);
    assert_eq!(summary.handed_back, 2);
    assert_eq!(summary.undelivered, 0);
    // No work was asked for after the shutdown signal: the last polls want nothing.
    assert_eq!(s.wants.last(), Some(&0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_says_hello_again_after_the_gateway_restarts() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sha = example("sha256");
    let first = Peer::start(PeerState::new(), 0);
    let port = first.addr.port();
    let h = first.with(|s| s.add_module(sha.clone()));
    let running = start(config(&first.url(), dir.path()));
    let a = assignment(unit("r", 0), h, b"before", &[], UnitLimits::default());
    first.push(a.clone());
    first
        .wait_for("first report", Duration::from_secs(30), |s| {
            s.report_of(&a.unit).is_some()
        })
        .await;
    first.stop();

    // The gateway is gone for a while: the node keeps retrying.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut state = PeerState::new();
    state.add_module(sha.clone());
    let second = Peer::start(state, port);
    let b = assignment(unit("r", 1), h, b"after", &[], UnitLimits::default());
    second.push(b.clone());
    second
        .wait_for("report after restart", Duration::from_secs(30), |s| {
            s.report_of(&b.unit).is_some()
        })
        .await;
    second.with(|s| {
        assert!(
            s.unknown_sessions >= 1,
            "the old session was tried and refused"
        );
        assert_eq!(s.auths, 1, "one new session");
        assert_eq!(s.registrations, 1, "registered again with the new ledger");
        assert!(s.refused.is_empty(), "{:?}", s.refused);
        match &s.report_of(&b.unit).unwrap().outcome {
            UnitOutcome::Completed { stdout, .. } => assert_eq!(
                String::from_utf8_lossy(stdout).trim(),
                Hash32::sha256(b"after").to_hex()
            ),
            other => panic!("{other:?}"),
        }
    });
    let summary = running.shutdown().await;
    assert_eq!(summary.sessions, 2);
    assert_eq!(summary.reported, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_now_serves_another_chain_is_refused_not_joined() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let first = Peer::start(PeerState::new(), 0);
    let port = first.addr.port();
    let running = start(config(&first.url(), dir.path()));
    first
        .wait_for("first session", Duration::from_secs(30), |s| s.auths == 1)
        .await;
    first.stop();

    // Same URL, another chain (a reset network): the node says hello, sees the
    // other chain and never authenticates or registers there.
    let mut state = PeerState::new();
    state.chain_id = Hash32::sha256(b"another chain");
    let second = Peer::start(state, port);
    second
        .wait_for("hello to the new gateway", Duration::from_secs(30), |s| {
            !s.hellos.is_empty()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    second.with(|s| {
        assert_eq!(s.auths, 0, "joined another chain");
        assert_eq!(s.registrations, 0);
    });
    let recorded = std::fs::read_to_string(dir.path().join("data/chain_id")).unwrap();
    assert_eq!(recorded, Hash32::sha256(b"peer chain").to_hex());
    let summary = running.shutdown().await;
    assert_eq!(summary.sessions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_unit_is_neither_reported_nor_handed_back() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(PeerState::new(), 0);
    let h = peer.with(|s| s.add_module(example("sha256")));
    peer.with(|s| s.module_delay.insert(h, Duration::from_millis(1500)));
    let running = start(config(&peer.url(), dir.path()));
    let a = assignment(unit("c", 0), h, b"a", &[], UnitLimits::default());
    peer.push(a.clone());
    peer.wait_for("download started", Duration::from_secs(30), |s| {
        s.module_gets.contains(&h)
    })
    .await;
    peer.with(|s| s.cancel.push(a.unit));
    peer.wake();
    peer.wait_for("cancel sent", Duration::from_secs(10), |s| {
        s.cancel.is_empty()
    })
    .await;
    // Two more units: both slots must be free again.
    peer.with(|s| s.module_delay.clear());
    let b = assignment(unit("c", 1), h, b"b", &[], UnitLimits::default());
    let c = assignment(unit("c", 2), h, b"c", &[], UnitLimits::default());
    peer.push(b.clone());
    peer.push(c.clone());
    peer.wait_for("reports", Duration::from_secs(30), |s| {
        s.report_of(&b.unit).is_some() && s.report_of(&c.unit).is_some()
    })
    .await;
    // Past the delayed download of the cancelled unit.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let summary = running.shutdown().await;
    peer.with(|s| {
        assert!(s.report_of(&a.unit).is_none());
        assert!(!s.was_handed_back(&a.unit));
    });
    assert_eq!(summary.cancelled, 1);
    assert_eq!(summary.reported, 2);
    assert_eq!(summary.handed_back, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dishonest_node_reports_a_different_output() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::start(PeerState::new(), 0);
    let h = peer.with(|s| s.add_module(example("sha256")));
    let mut cfg = config(&peer.url(), dir.path());
    cfg.behaviour = Behaviour::WrongOutput { per_mille: 1000 };
    let running = start(cfg);
    let a = assignment(unit("x", 0), h, b"abc", &[], UnitLimits::default());
    peer.push(a.clone());
    peer.wait_for("report", Duration::from_secs(30), |s| {
        s.report_of(&a.unit).is_some()
    })
    .await;
    match &peer
        .with(|s| s.report_of(&a.unit).cloned())
        .unwrap()
        .outcome
    {
        UnitOutcome::Completed { stdout, .. } => {
            assert_ne!(
                String::from_utf8_lossy(stdout).trim(),
                Hash32::sha256(b"abc").to_hex()
            )
        }
        other => panic!("{other:?}"),
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_is_retried_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let running = start(config(&format!("http://127.0.0.1:{port}"), dir.path()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !running.handle.is_finished(),
        "gateway trouble never stops the node"
    );
    let t0 = Instant::now();
    let summary = running.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(summary.sessions, 0);
    assert_eq!(summary.undelivered, 0);
}

#[test]
fn refuses_to_start_without_a_payout_address() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), None);
    let cfg = NodeConfig::new("http://127.0.0.1:9", key.clone(), dir.path().join("data"));
    let err = Node::new(cfg).unwrap_err();
    assert!(
        matches!(err, NodeError::NoPayoutAddress(ref p) if *p == key),
        "{err}"
    );
    assert!(err.to_string().contains("lode keys set-payout"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing created before the checks pass"
    );

    let missing = NodeConfig::new(
        "http://127.0.0.1:9",
        dir.path().join("nope"),
        dir.path().join("d"),
    );
    assert!(matches!(Node::new(missing).unwrap_err(), NodeError::Key(_)));
    let bad_url = NodeConfig::new("localhost:7700", key, dir.path().join("d"));
    assert!(matches!(
        Node::new(bad_url).unwrap_err(),
        NodeError::Config { .. }
    ));
}

#[test]
fn start_up_measures_speed_and_sizes_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("http://127.0.0.1:9", dir.path());
    cfg.slots = Some(4);
    cfg.memory_bytes = Some(1 << 30);
    let node = Node::new(cfg).unwrap();
    let info = node.info();
    assert_eq!(info.capacity.slots, 4);
    assert_eq!(info.unit_memory_ceiling, 256 << 20, "memory / slots");
    assert!(info.bench.fuel_per_s > 1_000_000);
    assert!(info.bench.runs >= 1);
    assert_eq!(info.payout, PAYOUT.parse().unwrap());
    assert!(info.host.cores >= 1);
}

fn check_reports(
    state: &PeerState,
    work: &[(Assignment, Option<usize>)],
    want: &[Option<UnitOutcome>],
    hashes: &[Hash32],
    not_wasm: Hash32,
    big: &Assignment,
) {
    for ((a, module), want) in work.iter().zip(want) {
        let got = state
            .report_of(&a.unit)
            .unwrap_or_else(|| panic!("no report for {:?}", a.unit));
        match module {
            Some(_) => assert_eq!(Some(&got.outcome), want.as_ref(), "unit {}", a.unit.unit),
            None => match &got.outcome {
                UnitOutcome::Failed { error, fuel_used } => {
                    assert!(error.starts_with("invalid_module: "), "{error}");
                    assert_eq!(*fuel_used, 0);
                }
                other => panic!("{other:?}"),
            },
        }
    }
    // Spot-check against known answers, not only against the sandbox.
    match &state.report_of(&unit("j", 1)).unwrap().outcome {
        UnitOutcome::Completed {
            exit_code, stdout, ..
        } => {
            assert_eq!(*exit_code, 0);
            assert_eq!(
                String::from_utf8_lossy(stdout).trim(),
                Hash32::sha256(b"abc").to_hex()
            );
        }
        other => panic!("{other:?}"),
    }
    match &state.report_of(&unit("j", 12)).unwrap().outcome {
        UnitOutcome::Completed { stdout, .. } => assert_eq!(stdout, b"hello, lode\n"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        state.report_of(&unit("j", 20)).unwrap().outcome,
        UnitOutcome::Failed {
            error: "out_of_fuel: out of fuel: the limit of 1000 was used up".into(),
            fuel_used: 1000
        }
    );
    assert!(state.report_of(&big.unit).is_none());
    assert!(state.refused.is_empty(), "{:?}", state.refused);
    assert!(state.rejected.is_empty());
    // The node never asked for more than its free slots.
    assert!(state.wants.iter().all(|w| *w <= 2), "{:?}", state.wants);
    // One download per module, however many units use it at once.
    for h in hashes.iter().chain([&not_wasm]) {
        assert_eq!(
            state.module_gets.iter().filter(|g| *g == h).count(),
            1,
            "{h}"
        );
    }
    let (signer, hello) = &state.hellos[0];
    assert_eq!(hello.payout, PAYOUT.parse().unwrap());
    assert_eq!(hello.capacity.slots, 2);
    assert_eq!(hello.capacity.memory_bytes, 512 << 20);
    assert!(
        hello.capacity.speed_fuel_per_s > 1_000_000,
        "{}",
        hello.capacity.speed_fuel_per_s
    );
    assert_eq!(hello.region.as_deref(), Some("test-1"));
    assert!(
        hello.software.starts_with("lode-node/"),
        "{}",
        hello.software
    );
    assert!(state.reports.iter().all(|(d, _)| d == signer));
    assert_eq!(state.registrations, 1);
    assert_eq!(state.registered.get(signer), Some(&PAYOUT.parse().unwrap()));
}
