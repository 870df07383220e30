//! Interleaved sandbox-vs-native comparison, robust to a shared, noisy
//! machine. Run with
//!
//! ```text
//! cargo bench -p lode-sandbox --bench native_ratio
//! ```
//!
//! Criterion (`benches/sandbox.rs`) measures each variant in its own time
//! block, so load from other processes that comes and goes between blocks
//! skews the ratios. Here every round runs native, sandbox with fuel and
//! sandbox without fuel back to back (in rotating order), and records both
//! wall time and *CPU time* of exactly the work:
//!
//! * native: the child process's CPU time, read from
//!   `/proc/<pid>/schedstat` once it has exited (before it is reaped), minus
//!   the CPU time of starting a trivial native process (`hello`);
//! * sandbox: the calling thread's CPU time from `/proc/thread-self/schedstat`
//!   around `Sandbox::run` (the unit runs on the calling thread).
//!
//! Reported: per-variant medians, the median of the per-round ratios, and the
//! ratios of the per-variant minima (on a shared machine noise only ever adds
//! time, so the minimum is the least disturbed estimate).
//! Then trivial-unit throughput on 1 and 2 threads, as wall-clock units/s and
//! as CPU time per unit. Linux only (uses /proc). `LODE_BENCH_QUICK=1` for a
//! fast smoke run.

use lode_sandbox::{Limits, RunInput, Sandbox, SandboxConfig};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn jobs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jobs")
}

fn quick() -> bool {
    std::env::var_os("LODE_BENCH_QUICK").is_some()
}

/// First field of a schedstat file: nanoseconds spent running on a CPU.
fn schedstat_ns(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn thread_cpu_ns() -> u64 {
    schedstat_ns("/proc/thread-self/schedstat").expect("/proc/thread-self/schedstat")
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    wall_ns: f64,
    cpu_ns: f64,
}

fn native_compiler() -> Option<String> {
    ["clang", "cc", "gcc"]
        .into_iter()
        .map(String::from)
        .find(|cc| {
            Command::new(cc)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

fn build_native(cc: &str, job: &str) -> PathBuf {
    let dir = jobs_dir().join("native");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join(job);
    let status = Command::new(cc)
        .args(["-O2", "-ffp-contract=off", "-o"])
        .arg(&bin)
        .arg(jobs_dir().join("src").join(format!("{job}.c")))
        .arg("-lm")
        .status()
        .unwrap();
    assert!(status.success(), "native build of {job} failed");
    bin
}

/// Run a native binary on `stdin`; its output and its wall and CPU time.
fn run_native(bin: &Path, stdin: &[u8]) -> (Vec<u8>, Sample) {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut sink = child.stdin.take().unwrap();
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _ = sink.write_all(stdin);
        });
        stdout.read_to_end(&mut out).unwrap();
    });
    // stdout closed: the process is exiting. Wait until it is a zombie (not
    // yet reaped), so its schedstat is final, then read it and reap it.
    let stat_path = format!("/proc/{pid}/stat");
    loop {
        let stat = std::fs::read_to_string(&stat_path).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if state == Some("Z") || stat.is_empty() {
            break;
        }
        std::thread::yield_now();
    }
    let cpu = schedstat_ns(&format!("/proc/{pid}/schedstat")).expect("child schedstat");
    let status = child.wait().unwrap();
    let wall = started.elapsed();
    assert!(status.success());
    (
        out,
        Sample {
            wall_ns: wall.as_nanos() as f64,
            cpu_ns: cpu as f64,
        },
    )
}

fn run_wasm(
    sb: &Sandbox,
    module: &lode_sandbox::CompiledModule,
    input: &RunInput,
) -> (Vec<u8>, Sample) {
    let limits = Limits {
        fuel: u64::MAX,
        memory_bytes: 1 << 30,
        timeout: Duration::from_secs(600),
        max_output_bytes: 64 << 20,
    };
    let cpu0 = thread_cpu_ns();
    let started = Instant::now();
    let done = sb.run(module, input, &limits).unwrap();
    let wall = started.elapsed();
    let cpu = thread_cpu_ns() - cpu0;
    (
        done.stdout,
        Sample {
            wall_ns: wall.as_nanos() as f64,
            cpu_ns: cpu as f64,
        },
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn lcg_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x1234_5678_9abc_def0;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

fn text(n: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "lode", "node", "fuel", "quorum", "replica", "the", "of", "wasm", "Epoch", "ledger",
        "unit", "job",
    ];
    let mut out = Vec::with_capacity(n + 16);
    let mut x: u64 = 42;
    while out.len() < n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(WORDS[(x >> 60) as usize % WORDS.len()].as_bytes());
        out.push(if (x >> 20).is_multiple_of(11) {
            b'\n'
        } else {
            b' '
        });
    }
    out
}

fn ms(ns: f64) -> String {
    format!("{:.1} ms", ns / 1e6)
}

fn compare_jobs(rounds: usize) {
    let Some(cc) = native_compiler() else {
        println!("no C compiler found: skipping the native comparison");
        return;
    };
    let q = quick();
    let metered = Sandbox::new(SandboxConfig {
        max_concurrent_units: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let unmetered = Sandbox::new(SandboxConfig {
        consume_fuel: false,
        max_concurrent_units: 2,
        ..SandboxConfig::default()
    })
    .unwrap();

    // CPU (and wall) cost of starting and reaping a trivial native process.
    let hello = build_native(&cc, "hello");
    let spawn: Vec<Sample> = (0..rounds.max(20))
        .map(|_| run_native(&hello, b"").1)
        .collect();
    let spawn_cpu = median(spawn.iter().map(|s| s.cpu_ns).collect());
    let spawn_wall = median(spawn.iter().map(|s| s.wall_ns).collect());
    println!(
        "native compiler: {cc}; native process start-up: {} wall, {} CPU (subtracted below)",
        ms(spawn_wall),
        ms(spawn_cpu)
    );
    println!(
        "\n{:11} {:>10} {:>10} {:>10} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9}",
        "job",
        "native",
        "wasm+fuel",
        "wasm",
        "fuel/nat",
        "wasm/nat",
        "fuel/wasm",
        "fuel/nat",
        "wasm/nat",
        "fuel/wasm",
        "fuel/nat",
        "wasm/nat"
    );
    println!(
        "{:11} {:>10} {:>10} {:>10} | {:>29} | {:>29} | {:>19}",
        "",
        "min CPU",
        "min CPU",
        "min CPU",
        "CPU: ratio of minima",
        "CPU: median per-round ratio",
        "wall: median ratio"
    );

    let jobs: Vec<(&str, Vec<u8>)> = vec![
        ("sha256", lcg_bytes(if q { 1 << 20 } else { 16 << 20 })),
        (
            "primes",
            if q {
                b"1000000".to_vec()
            } else {
                b"20000000".to_vec()
            },
        ),
        (
            "nbody",
            if q {
                b"20000".to_vec()
            } else {
                b"600000".to_vec()
            },
        ),
        (
            "mandelbrot",
            if q { b"200".to_vec() } else { b"1200".to_vec() },
        ),
        ("wordcount", text(if q { 1 << 20 } else { 12 << 20 })),
    ];
    for (job, stdin) in jobs {
        let bin = build_native(&cc, job);
        let wasm = std::fs::read(jobs_dir().join("wasm").join(format!("{job}.wasm"))).unwrap();
        let on = metered.compile(&wasm).unwrap();
        let off = unmetered.compile(&wasm).unwrap();
        let input = RunInput {
            stdin: stdin.clone(),
            args: Vec::new(),
        };
        let (native_out, _) = run_native(&bin, &stdin);
        let (wasm_out, _) = run_wasm(&metered, &on, &input);
        assert!(
            native_out == wasm_out,
            "{job}: native and wasm outputs differ"
        );
        let _ = run_wasm(&unmetered, &off, &input); // warm-up

        let mut samples: [Vec<Sample>; 3] = Default::default();
        for round in 0..rounds {
            // Rotate the order so no variant always runs first or last.
            for k in 0..3 {
                let which = (round + k) % 3;
                let s = match which {
                    0 => run_native(&bin, &stdin).1,
                    1 => run_wasm(&metered, &on, &input).1,
                    _ => run_wasm(&unmetered, &off, &input).1,
                };
                samples[which].push(s);
            }
        }
        let cpu = |i: usize, r: usize| {
            let s = samples[i][r].cpu_ns;
            if i == 0 { (s - spawn_cpu).max(1.0) } else { s }
        };
        let wall = |i: usize, r: usize| {
            let s = samples[i][r].wall_ns;
            if i == 0 { (s - spawn_wall).max(1.0) } else { s }
        };
        let ratio = |f: &dyn Fn(usize, usize) -> f64, a: usize, b: usize| {
            median((0..rounds).map(|r| f(a, r) / f(b, r)).collect())
        };
        let min = |i: usize| (0..rounds).map(|r| cpu(i, r)).fold(f64::INFINITY, f64::min);
        println!(
            "{:11} {:>10} {:>10} {:>10} | {:>8.2}x {:>8.2}x {:>8.2}x | {:>8.2}x {:>8.2}x {:>8.2}x | {:>8.2}x {:>8.2}x",
            job,
            ms(min(0)),
            ms(min(1)),
            ms(min(2)),
            min(1) / min(0),
            min(2) / min(0),
            min(1) / min(2),
            ratio(&cpu, 1, 0),
            ratio(&cpu, 2, 0),
            ratio(&cpu, 1, 2),
            ratio(&wall, 1, 0),
            ratio(&wall, 2, 0),
        );
    }
}

fn throughput(units: usize) {
    let sb = Sandbox::new(SandboxConfig {
        max_concurrent_units: 4,
        ..SandboxConfig::default()
    })
    .unwrap();
    let hello = sb
        .compile(&std::fs::read(jobs_dir().join("wasm/hello.wasm")).unwrap())
        .unwrap();
    println!("\ntrivial units (hello), {units} per measurement, best of 5:");
    for threads in [1usize, 2] {
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..5 {
            let started = Instant::now();
            let cpu_total: u64 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (sb, hello) = (&sb, &hello);
                        s.spawn(move || {
                            let input = RunInput {
                                stdin: Vec::new(),
                                args: vec![format!("t{t}")],
                            };
                            let cpu0 = thread_cpu_ns();
                            for _ in 0..units / threads {
                                sb.run(hello, &input, &Limits::default()).unwrap();
                            }
                            thread_cpu_ns() - cpu0
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            let wall = started.elapsed().as_secs_f64();
            let rate = units as f64 / wall;
            let cpu_per_unit = cpu_total as f64 / units as f64;
            if best.is_none_or(|(r, _)| rate > r) {
                best = Some((rate, cpu_per_unit));
            }
        }
        let (rate, cpu_per_unit) = best.unwrap();
        println!(
            "  {threads} thread(s): {rate:>8.0} units/s wall; {:.1} us CPU per unit",
            cpu_per_unit / 1e3
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let rounds = if quick() { 3 } else { 21 };
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at start: {}", load.trim());
    }
    compare_jobs(rounds);
    throughput(if quick() { 2000 } else { 20000 });
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at end: {}", load.trim());
    }
}
