//! Sandbox benchmarks (criterion). Run with
//!
//! ```text
//! cargo bench -p lode-sandbox --bench sandbox
//! bench/sandbox-report.sh        # the same, then a table of medians and ratios
//! ```
//!
//! * `unit/*`: per-unit overhead of a trivial module (instantiate + run +
//!   collect), for the smallest possible module and for a C `hello`.
//! * `job/<name>/{native,wasm_fuel,wasm_nofuel}`: each example job natively
//!   (a process built from the same C source; process start-up is measured
//!   separately as `job/spawn/native`), in the sandbox with fuel metering, and
//!   without.
//! * `throughput/hello_x256/{1,2}_threads`: trivial units per second on one
//!   and two threads sharing one sandbox.
//!
//! Native builds go to `examples/jobs/native/` (gitignored), compiled with
//! `clang` if present (the compiler of the wasm builds), else `cc`, with the
//! same `-O2 -ffp-contract=off`. Set `LODE_BENCH_QUICK=1` for a fast smoke run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lode_sandbox::{Limits, RunInput, Sandbox, SandboxConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn jobs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jobs")
}

fn quick() -> bool {
    std::env::var_os("LODE_BENCH_QUICK").is_some()
}

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(jobs_dir().join("wasm").join(format!("{name}.wasm"))).unwrap()
}

fn sandbox(consume_fuel: bool) -> Sandbox {
    Sandbox::new(SandboxConfig {
        consume_fuel,
        max_concurrent_units: 8,
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn unlimited() -> Limits {
    Limits {
        fuel: u64::MAX,
        memory_bytes: 1 << 30,
        timeout: Duration::from_secs(600),
        max_output_bytes: 64 << 20,
    }
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

fn run_native(bin: &Path, stdin: &Arc<Vec<u8>>) -> Vec<u8> {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sink = child.stdin.take().unwrap();
    let input = Arc::clone(stdin);
    let writer = std::thread::spawn(move || {
        let _ = sink.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Deterministic pseudo-random bytes / text for the inputs.
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

fn bench_unit_overhead(c: &mut Criterion) {
    let sb = sandbox(true);
    let mut g = c.benchmark_group("unit");
    g.measurement_time(Duration::from_secs(if quick() { 1 } else { 5 }));

    let empty = sb
        .compile(
            &wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start")))"#)
                .unwrap(),
        )
        .unwrap();
    g.bench_function("empty_module", |b| {
        b.iter(|| {
            sb.run(&empty, &RunInput::default(), &Limits::default())
                .unwrap()
        })
    });

    let hello = sb.compile(&wasm("hello")).unwrap();
    let input = RunInput {
        stdin: Vec::new(),
        args: vec!["bench".into()],
    };
    g.bench_function("hello_c", |b| {
        b.iter(|| {
            let done = sb.run(&hello, &input, &Limits::default()).unwrap();
            assert_eq!(done.stdout.len(), 13);
            done
        })
    });
    // Including the content hash + memory-cache lookup of the wasm bytes, as
    // a node does when it gets (module bytes, input) for each unit.
    let hello_wasm = wasm("hello");
    g.bench_function("hello_c_with_compile_cache_lookup", |b| {
        b.iter(|| {
            sb.run_wasm(&hello_wasm, &input, &Limits::default())
                .unwrap()
        })
    });
    g.finish();
}

fn bench_jobs(c: &mut Criterion) {
    let metered = sandbox(true);
    let unmetered = sandbox(false);
    let cc = native_compiler();
    if cc.is_none() {
        eprintln!("no C compiler found: skipping the native side of job/*");
    }
    let q = quick();
    let jobs: Vec<(&str, Vec<u8>)> = vec![
        ("sha256", lcg_bytes(if q { 1 << 20 } else { 32 << 20 })),
        (
            "primes",
            if q {
                b"1000000".to_vec()
            } else {
                b"50000000".to_vec()
            },
        ),
        (
            "nbody",
            if q {
                b"20000".to_vec()
            } else {
                b"2000000".to_vec()
            },
        ),
        (
            "mandelbrot",
            if q { b"200".to_vec() } else { b"2000".to_vec() },
        ),
        ("wordcount", text(if q { 1 << 20 } else { 24 << 20 })),
    ];
    let limits = unlimited();
    let mut g = c.benchmark_group("job");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(if q { 200 } else { 1000 }));
    g.measurement_time(Duration::from_secs(if q { 1 } else { 4 }));

    if let Some(cc) = &cc {
        // Process start-up cost included in every native measurement.
        let hello = build_native(cc, "hello");
        let none = Arc::new(Vec::new());
        g.bench_function("spawn/native", |b| b.iter(|| run_native(&hello, &none)));
    }

    for (job, stdin) in jobs {
        let stdin = Arc::new(stdin);
        let module_on = metered.compile(&wasm(job)).unwrap();
        let module_off = unmetered.compile(&wasm(job)).unwrap();
        let input = RunInput {
            stdin: stdin.to_vec(),
            args: Vec::new(),
        };
        let reference = metered.run(&module_on, &input, &limits).unwrap();
        assert_eq!(reference.exit_code, 0);
        eprintln!(
            "job/{job}: fuel_used={} stdout_bytes={}",
            reference.fuel_used,
            reference.stdout.len()
        );
        if let Some(cc) = &cc {
            let bin = build_native(cc, job);
            assert!(
                run_native(&bin, &stdin) == reference.stdout,
                "{job}: native and wasm outputs differ"
            );
            g.bench_function(BenchmarkId::new(job, "native"), |b| {
                b.iter(|| run_native(&bin, &stdin))
            });
        }
        g.bench_function(BenchmarkId::new(job, "wasm_fuel"), |b| {
            b.iter(|| metered.run(&module_on, &input, &limits).unwrap())
        });
        g.bench_function(BenchmarkId::new(job, "wasm_nofuel"), |b| {
            b.iter(|| unmetered.run(&module_off, &input, &limits).unwrap())
        });
    }
    g.finish();
}

fn bench_throughput(c: &mut Criterion) {
    let sb = sandbox(true);
    let hello = sb.compile(&wasm("hello")).unwrap();
    const UNITS: usize = 256;
    let mut g = c.benchmark_group("throughput");
    g.throughput(Throughput::Elements(UNITS as u64));
    g.measurement_time(Duration::from_secs(if quick() { 1 } else { 5 }));
    for threads in [1usize, 2] {
        g.bench_function(
            BenchmarkId::new("hello_x256", format!("{threads}_threads")),
            |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        for t in 0..threads {
                            let (sb, hello) = (&sb, &hello);
                            s.spawn(move || {
                                let input = RunInput {
                                    stdin: Vec::new(),
                                    args: vec![format!("t{t}")],
                                };
                                for _ in 0..UNITS / threads {
                                    sb.run(hello, &input, &Limits::default()).unwrap();
                                }
                            });
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_unit_overhead, bench_jobs, bench_throughput);
criterion_main!(benches);
