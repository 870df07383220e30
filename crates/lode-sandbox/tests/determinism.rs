//! Determinism: the same module and input give bit-identical stdout, exit
//! code and fuel on every run, on every thread, and in separate processes
//! (with differently configured sandboxes), floating-point code included.

mod common;

use common::{example, sandbox, stdin};
use lode_sandbox::{Completed, Limits, RunError, RunInput, Sandbox, SandboxConfig};
use std::process::Command;

const CHILD_ENV: &str = "LODE_SANDBOX_DETERMINISM_CHILD";

/// A mix of workloads: float-heavy (nbody, mandelbrot), integer, text, and
/// the environment probe (clocks, randomness, args), plus a failing unit.
fn workload() -> Vec<(&'static str, RunInput, Limits)> {
    let text: Vec<u8> = (0..50_000u32)
        .map(|i| b"lode fuel quorum 42 Replica\n"[(i as usize * 7) % 28])
        .collect();
    vec![
        ("nbody", stdin(b"20000"), Limits::default()),
        ("mandelbrot", stdin(b"160"), Limits::default()),
        ("sha256", stdin(&text), Limits::default()),
        ("wordcount", stdin(&text), Limits::default()),
        ("primes", stdin(b"300000"), Limits::default()),
        (
            "probe",
            RunInput {
                stdin: b"xyz".to_vec(),
                args: vec!["one".into(), "two words".into()],
            },
            Limits::default(),
        ),
        (
            "nbody",
            stdin(b"100000000"),
            Limits {
                fuel: 3_000_000,
                ..Limits::default()
            },
        ),
    ]
}

fn run_workload(sb: &Sandbox) -> Vec<Result<Completed, RunError>> {
    workload()
        .into_iter()
        .map(|(name, input, limits)| {
            let module = sb.compile(&common::example_wasm(name)).unwrap();
            sb.run(&module, &input, &limits)
        })
        .collect()
}

/// Entry point of the child processes spawned by
/// `identical_in_two_separate_processes`; does nothing in a normal test run.
#[test]
fn child_process_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // A differently sized sandbox than the parent's: results must not care.
    let sb = Sandbox::new(SandboxConfig {
        max_concurrent_units: 3,
        memory_cache_modules: 2,
        cache_dir: Some(common::shared_cache_dir()),
        ..SandboxConfig::default()
    })
    .unwrap();
    let json = serde_json::to_string(&run_workload(&sb)).unwrap();
    println!("@@RESULTS@@{json}@@END@@");
}

fn run_child() -> Vec<Result<Completed, RunError>> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("spawn child test process");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let start = text.find("@@RESULTS@@").expect("child printed results") + "@@RESULTS@@".len();
    let end = text[start..].find("@@END@@").unwrap() + start;
    serde_json::from_str(&text[start..end]).unwrap()
}

#[test]
fn identical_in_two_separate_processes() {
    let first = run_child();
    let second = run_child();
    assert_eq!(first, second);
    let here = run_workload(sandbox());
    assert_eq!(first, here);
    // Sanity: the workload really exercised completions and a failure.
    assert!(
        here[..6]
            .iter()
            .all(|r| matches!(r, Ok(c) if c.exit_code == 0 && c.fuel_used > 0))
    );
    assert_eq!(
        here[6],
        Err(RunError::OutOfFuel {
            fuel_limit: 3_000_000
        })
    );
}

#[test]
fn one_unit_a_hundred_times() {
    let sb = sandbox();
    for (name, input) in [("nbody", stdin(b"5000")), ("probe", stdin(b"in"))] {
        let module = example(name);
        let first = sb.run(&module, &input, &Limits::default()).unwrap();
        assert!(first.fuel_used > 0);
        for i in 1..100 {
            let again = sb.run(&module, &input, &Limits::default()).unwrap();
            assert_eq!(again, first, "{name}: run {i} differs");
        }
    }
}

#[test]
fn identical_across_threads() {
    let sb = sandbox();
    let module = example("nbody");
    let input = stdin(b"3000");
    let expected = sb.run(&module, &input, &Limits::default()).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..10)
                        .map(|_| sb.run(&module, &input, &Limits::default()).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for got in h.join().unwrap() {
                assert_eq!(got, expected);
            }
        }
    });
}

#[test]
fn fuel_grows_with_work_and_never_exceeds_the_limit() {
    let sb = sandbox();
    let module = example("nbody");
    let small = sb.run(&module, &stdin(b"100"), &Limits::default()).unwrap();
    let big = sb
        .run(&module, &stdin(b"1000"), &Limits::default())
        .unwrap();
    assert!(big.fuel_used > 5 * small.fuel_used);
    // Exactly the fuel it needs is enough, with the same result.
    let exact = Limits {
        fuel: big.fuel_used,
        ..Limits::default()
    };
    assert_eq!(sb.run(&module, &stdin(b"1000"), &exact).unwrap(), big);
    // Fuel is checked at function entries and loop headers, so a unit may
    // finish its last straight-line stretch a little past the limit: it then
    // completes and reports exactly the limit, never more.
    let a_bit_short = Limits {
        fuel: big.fuel_used - 1,
        ..Limits::default()
    };
    let done = sb.run(&module, &stdin(b"1000"), &a_bit_short).unwrap();
    assert_eq!(done.fuel_used, big.fuel_used - 1);
    assert_eq!(done.stdout, big.stdout);
    // Half of what it needs is out of fuel.
    let half = Limits {
        fuel: big.fuel_used / 2,
        ..Limits::default()
    };
    assert_eq!(
        sb.run(&module, &stdin(b"1000"), &half).unwrap_err(),
        RunError::OutOfFuel {
            fuel_limit: big.fuel_used / 2
        }
    );
}

#[test]
fn every_observed_nan_is_the_canonical_one() {
    let module = common::wat(
        r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        ;; NaNs made by the CPU (x86: negative "default NaN") ...
        (f64.store (i32.const 100) (f64.div (f64.const 0) (f64.const 0)))
        (f64.store (i32.const 108) (f64.sqrt (f64.const -1)))
        (f32.store (i32.const 116) (f32.div (f32.const 0) (f32.const 0)))
        ;; ... propagated payloads, read as integers ...
        (i64.store (i32.const 120) (i64.reinterpret_f64 (f64.add (f64.const -nan:0x1234) (f64.const 1))))
        (i32.store (i32.const 128) (i32.reinterpret_f32 (f32.mul (f32.const nan:0x55) (f32.const 2))))
        ;; ... a NaN's sign copied onto a number: always +1 ...
        (f64.store (i32.const 132) (f64.copysign (f64.const 1) (f64.neg (f64.div (f64.const 0) (f64.const 0)))))
        ;; ... and vector lanes.
        (v128.store (i32.const 140) (f32x4.sqrt (f32x4.splat (f32.const -1))))
        (v128.store (i32.const 156) (f64x2.splat (f64.const -nan:0x5)))
        ;; Ordinary values, -0.0 included, are untouched.
        (f64.store (i32.const 172) (f64.const -0.0))
        (f32.store (i32.const 180) (f32.const 1.5))
        (i32.store (i32.const 0) (i32.const 100))
        (i32.store (i32.const 4) (i32.const 84))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    );
    let done = sandbox()
        .run_wasm(&module, &RunInput::default(), &Limits::default())
        .unwrap();
    let f64_nan = 0x7ff8_0000_0000_0000u64.to_le_bytes();
    let f32_nan = 0x7fc0_0000u32.to_le_bytes();
    let mut expected = Vec::new();
    expected.extend_from_slice(&f64_nan);
    expected.extend_from_slice(&f64_nan);
    expected.extend_from_slice(&f32_nan);
    expected.extend_from_slice(&f64_nan);
    expected.extend_from_slice(&f32_nan);
    expected.extend_from_slice(&1.0f64.to_le_bytes());
    for _ in 0..4 {
        expected.extend_from_slice(&f32_nan);
    }
    expected.extend_from_slice(&f64_nan);
    expected.extend_from_slice(&f64_nan);
    expected.extend_from_slice(&(-0.0f64).to_le_bytes());
    expected.extend_from_slice(&1.5f32.to_le_bytes());
    assert_eq!(done.stdout, expected);

    // And C's printf of 0/0 says "nan" (natively on x86: "-nan").
    let probe = sandbox()
        .run(&example("probe"), &stdin(b""), &Limits::default())
        .unwrap();
    let text = String::from_utf8(probe.stdout).unwrap();
    assert!(text.contains("0/0=nan bits=7ff8000000000000\n"), "{text}");
}
