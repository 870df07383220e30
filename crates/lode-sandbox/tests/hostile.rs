//! Hostile work units: each one must end in exactly the expected typed error,
//! within its limit, and leave the sandbox able to run a good module.

mod common;

use common::{assert_still_healthy, example_wasm, sandbox, stdin, wat};
use lode_sandbox::{Limits, RunError, RunInput, Sandbox, SandboxConfig, TrapKind};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

const SPIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))"#;

fn run_wat(sb: &Sandbox, src: &str, limits: &Limits) -> Result<lode_sandbox::Completed, RunError> {
    sb.run_wasm(&wat(src), &RunInput::default(), limits)
}

#[test]
fn infinite_loop_runs_out_of_fuel_exactly_at_the_limit() {
    let sb = sandbox();
    let limits = Limits {
        fuel: 10_000_000,
        ..Limits::default()
    };
    let err = run_wat(sb, SPIN, &limits).unwrap_err();
    assert_eq!(
        err,
        RunError::OutOfFuel {
            fuel_limit: 10_000_000
        }
    );
    assert_eq!(err.fuel_used(), Some(10_000_000));
    assert_still_healthy(sb);

    // The same from C (a `for (;;)` loop compiled by clang).
    let err = sb
        .run_wasm(
            &std::fs::read(common::jobs_dir().join("hostile/spin.wasm")).unwrap(),
            &RunInput::default(),
            &limits,
        )
        .unwrap_err();
    assert_eq!(
        err,
        RunError::OutOfFuel {
            fuel_limit: 10_000_000
        }
    );
    assert_still_healthy(sb);
}

#[test]
fn infinite_loop_with_unlimited_fuel_times_out() {
    let sb = sandbox();
    let limits = Limits {
        fuel: u64::MAX,
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let started = Instant::now();
    let err = run_wat(sb, SPIN, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Timeout {
                timeout_ms: 200,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_deterministic());
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "never fires early"
    );
    assert_still_healthy(sb);
}

#[test]
fn infinite_loop_without_metering_times_out() {
    let sb = Sandbox::new(SandboxConfig {
        consume_fuel: false,
        max_concurrent_units: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let limits = Limits {
        timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let err = run_wat(&sb, SPIN, &limits).unwrap_err();
    assert_eq!(
        err,
        RunError::Timeout {
            timeout_ms: 100,
            fuel_used: 0
        }
    );
    // Without metering a good unit still completes, reporting no fuel.
    let hello = sb.compile(&example_wasm("hello")).unwrap();
    let done = sb
        .run(&hello, &RunInput::default(), &Limits::default())
        .unwrap();
    assert_eq!((done.exit_code, done.fuel_used), (0, 0));
    assert_eq!(done.stdout, b"hello, world\n");
}

#[test]
fn memory_grow_bomb_hits_the_memory_limit() {
    let sb = sandbox();
    // Grows one page at a time; would hit `unreachable` if growth just failed.
    let bomb = r#"(module
      (memory (export "memory") 1)
      (func (export "_start")
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (unreachable)))"#;
    let limits = Limits {
        memory_bytes: 8 * MIB,
        ..Limits::default()
    };
    let err = run_wat(sb, bomb, &limits).unwrap_err();
    let RunError::MemoryLimit {
        limit_bytes,
        fuel_used,
    } = err
    else {
        panic!("expected MemoryLimit, got {err:?}");
    };
    assert_eq!(limit_bytes, 8 * MIB);
    // Deterministic, including the fuel accounted before the limit (which
    // only counts up to the last call: see the design notes on fuel at traps).
    let _ = fuel_used;
    assert_eq!(run_wat(sb, bomb, &limits).unwrap_err(), err);
    assert_still_healthy(sb);

    // A module whose *initial* memory is above the limit never starts.
    let big = r#"(module (memory (export "memory") 1000) (func (export "_start")))"#;
    assert_eq!(
        run_wat(sb, big, &limits).unwrap_err(),
        RunError::MemoryLimit {
            limit_bytes: 8 * MIB,
            fuel_used: 0
        }
    );
    assert_still_healthy(sb);
}

#[test]
fn c_program_over_its_memory_limit_hits_the_memory_limit() {
    let sb = sandbox();
    let primes = common::example("primes");
    // The sieve needs ~N bytes: 20 MB does not fit in 16 MiB ...
    let tight = Limits {
        memory_bytes: 16 * MIB,
        ..Limits::default()
    };
    let err = sb.run(&primes, &stdin(b"20000000"), &tight).unwrap_err();
    assert!(
        matches!(err, RunError::MemoryLimit { limit_bytes, .. } if limit_bytes == 16 * MIB),
        "{err:?}"
    );
    // ... but a smaller N does.
    let done = sb.run(&primes, &stdin(b"1000000"), &tight).unwrap();
    assert_eq!(
        done.stdout,
        b"n=1000000 primes=78498 sum=37550402023 largest=999983\n"
    );
}

/// Writes 16384 x 64 KiB = 1 GiB to stdout with `fd_write`.
fn flood(iterations: u32) -> String {
    format!(
        r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "_start") (local $i i32)
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (loop $l
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const {iterations}))))))"#
    )
}

#[test]
fn writing_a_gigabyte_stops_at_the_output_cap() {
    let sb = sandbox();
    let limits = Limits {
        max_output_bytes: MIB,
        ..Limits::default()
    };
    let started_fuel_bound = 17 * 50; // 17 loop iterations of a handful of instructions
    let err = run_wat(sb, &flood(16384), &limits).unwrap_err();
    let RunError::OutputTooLarge {
        limit_bytes,
        fuel_used,
    } = err
    else {
        panic!("expected OutputTooLarge, got {err:?}");
    };
    assert_eq!(limit_bytes, MIB);
    // Stopped on the 17th 64 KiB write (the first that crosses 1 MiB), not
    // after writing 1 GiB: the host never buffered more than the cap.
    assert!(fuel_used < started_fuel_bound, "fuel_used {fuel_used}");
    assert_still_healthy(sb);

    // Exactly the cap is fine.
    let done = run_wat(sb, &flood(16), &limits).unwrap();
    assert_eq!(done.stdout.len() as u64, MIB);
    assert!(done.stdout.iter().all(|&b| b == 0));

    // The same from C through stdio buffering.
    let flood_c = std::fs::read(common::jobs_dir().join("hostile/flood.wasm")).unwrap();
    let err = sb
        .run_wasm(&flood_c, &RunInput::default(), &limits)
        .unwrap_err();
    assert!(
        matches!(err, RunError::OutputTooLarge { limit_bytes, .. } if limit_bytes == MIB),
        "{err:?}"
    );
    assert_still_healthy(sb);
}

#[test]
fn invalid_bytes_are_an_invalid_module() {
    let sb = sandbox();
    let hello = example_wasm("hello");
    let not_wasm: [&[u8]; 5] = [
        b"",
        b"definitely not wasm",
        &hello[..hello.len() / 2],                         // truncated
        b"(module (func (export \"_start\")))",            // text format is not accepted
        &[0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00], // wrong version
    ];
    for bytes in not_wasm {
        let err = sb.compile(bytes).unwrap_err();
        assert!(matches!(err, RunError::InvalidModule { .. }), "{err:?}");
    }
    // Valid wasm, but not a WASI command.
    for src in [
        r#"(module (memory (export "memory") 1))"#, // no _start
        r#"(module (func (export "_start")))"#,     // no memory
        r#"(module (memory (export "memory") 1) (func (export "_start") (param i32)))"#,
    ] {
        let err = sb.compile(&wat(src)).unwrap_err();
        assert!(
            matches!(err, RunError::InvalidModule { .. }),
            "{src}: {err:?}"
        );
    }
    assert_still_healthy(sb);
}

#[test]
fn imports_the_sandbox_does_not_provide_are_named() {
    let sb = sandbox();
    let cases = [
        (
            r#"(module (import "env" "steal_keys" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
            ("env", "steal_keys"),
        ),
        // A real WASI name with the wrong signature is not provided either.
        (
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
               (memory (export "memory") 1) (func (export "_start")))"#,
            ("wasi_snapshot_preview1", "fd_write"),
        ),
        (
            r#"(module (import "wasi_snapshot_preview1" "sock_open" (func (param i32 i32 i32) (result i32)))
               (memory (export "memory") 1) (func (export "_start")))"#,
            ("wasi_snapshot_preview1", "sock_open"),
        ),
        (
            r#"(module (import "env" "memory" (memory 1)) (export "memory" (memory 0)) (func (export "_start")))"#,
            ("env", "memory"),
        ),
        // The first unsupported import is the one named.
        (
            r#"(module
                 (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
                 (import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                 (import "env" "later" (func))
                 (memory (export "memory") 1) (func (export "_start")))"#,
            ("wasi_unstable", "fd_write"),
        ),
    ];
    for (src, (module, name)) in cases {
        let err = sb.compile(&wat(src)).unwrap_err();
        assert_eq!(
            err,
            RunError::UnsupportedImport {
                module: module.into(),
                name: name.into()
            }
        );
        assert!(err.to_string().contains(&format!("{module}::{name}")));
    }
    assert_still_healthy(sb);
}

#[test]
fn unbounded_recursion_traps_with_stack_overflow() {
    let sb = sandbox();
    let recurse = r#"(module
      (memory (export "memory") 1)
      (func $f (param i64) (result i64)
        (i64.add (call $f (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
      (func (export "_start") (drop (call $f (i64.const 0)))))"#;
    let err = run_wat(sb, recurse, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Trap {
                kind: TrapKind::StackOverflow,
                fuel_used
            } if fuel_used > 0
        ),
        "{err:?}"
    );
    assert_eq!(
        run_wat(sb, recurse, &Limits::default()).unwrap_err(),
        err,
        "same depth every time"
    );
    assert_still_healthy(sb);
}

#[test]
fn other_traps_are_typed() {
    let sb = sandbox();
    let cases = [
        ("(unreachable)", TrapKind::Unreachable),
        (
            "(drop (i32.div_s (i32.const 1) (i32.const 0)))",
            TrapKind::IntegerDivisionByZero,
        ),
        (
            "(drop (i32.load (i32.const 65536)))",
            TrapKind::MemoryOutOfBounds,
        ),
        (
            "(drop (i32.trunc_f64_s (f64.const 1e100)))",
            TrapKind::IntegerOverflow,
        ),
        (
            "(drop (i32.trunc_f64_s (f64.const nan)))",
            TrapKind::BadConversionToInteger,
        ),
    ];
    for (body, kind) in cases {
        let src =
            format!(r#"(module (memory (export "memory") 1) (func (export "_start") {body}))"#);
        let err = run_wat(sb, &src, &Limits::default()).unwrap_err();
        assert!(
            matches!(&err, RunError::Trap { kind: k, .. } if *k == kind),
            "{body}: {err:?}"
        );
    }
    assert_still_healthy(sb);
}

const EXIT_AFTER_WRITE: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "bye\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const CODE))
    (unreachable)))"#;

#[test]
fn proc_exit_is_a_normal_completion_with_any_code() {
    let sb = sandbox();
    for code in [0, 3, 125, 126, 255, 70000] {
        let done = run_wat(
            sb,
            &EXIT_AFTER_WRITE.replace("CODE", &code.to_string()),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(done.exit_code, code);
        assert_eq!(done.stdout, b"bye\n");
    }
}

#[test]
fn bad_pointers_in_wasi_calls_do_not_hurt_the_host() {
    let sb = sandbox();
    // fd_write with an iovec array past the end of memory: wasmtime-wasi
    // traps (deterministically) instead of touching anything outside.
    let bad_iovec = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (call $exit (call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 8)))))"#;
    let err = run_wat(sb, bad_iovec, &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, RunError::Trap { kind: TrapKind::Host(m), .. } if m.contains("out of bounds")),
        "{err:?}"
    );
    assert_eq!(run_wat(sb, bad_iovec, &Limits::default()).unwrap_err(), err);

    // Our poll_oneoff with subscriptions past the end of memory: EFAULT (21),
    // which the unit turns into its exit code.
    let bad_poll = r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start")
        (call $exit (call $poll (i32.const 65500) (i32.const 0) (i32.const 4) (i32.const 200)))))"#;
    assert_eq!(
        run_wat(sb, bad_poll, &Limits::default()).unwrap().exit_code,
        21
    );

    // Asking for more random bytes than allowed is a host trap.
    let greedy_random = r#"(module
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (memory (export "memory") 64)
      (func (export "_start") (drop (call $random (i32.const 0) (i32.const 2000000)))))"#;
    let err = run_wat(sb, greedy_random, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::Trap {
                kind: TrapKind::Host(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_still_healthy(sb);
}

#[test]
fn bad_limits_and_arguments_are_invalid_input() {
    let sb = sandbox();
    let hello = common::example("hello");
    let err = sb
        .run(
            &hello,
            &RunInput::default(),
            &Limits {
                memory_bytes: 8 * 1024 * MIB,
                ..Limits::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, RunError::InvalidInput { .. }), "{err:?}");
    let err = sb
        .run(
            &hello,
            &RunInput {
                stdin: vec![],
                args: vec!["a\0b".into()],
            },
            &Limits::default(),
        )
        .unwrap_err();
    assert!(matches!(err, RunError::InvalidInput { .. }), "{err:?}");
    // A module compiled by another sandbox is refused, not run.
    let other = Sandbox::new(SandboxConfig {
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let foreign = other.compile(&wat(SPIN)).unwrap();
    assert!(matches!(
        sb.run(&foreign, &RunInput::default(), &Limits::default()),
        Err(RunError::Internal { .. })
    ));
}

#[test]
fn a_one_slot_sandbox_survives_a_string_of_hostile_units() {
    // With a single pool slot, any slot or memory leaked by a failed unit
    // would make the next run hang or fail.
    let sb = Sandbox::new(SandboxConfig {
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let small = Limits {
        fuel: 1_000_000,
        memory_bytes: 4 * MIB,
        max_output_bytes: 64 * 1024,
        timeout: Duration::from_secs(10),
    };
    let bomb = r#"(module (memory (export "memory") 1)
      (func (export "_start") (loop $l (drop (memory.grow (i32.const 1))) (br $l))))"#;
    for _ in 0..5 {
        assert!(matches!(
            run_wat(&sb, SPIN, &small),
            Err(RunError::OutOfFuel { .. })
        ));
        assert!(matches!(
            run_wat(&sb, bomb, &small),
            Err(RunError::MemoryLimit { .. })
        ));
        assert!(matches!(
            run_wat(&sb, &flood(100), &small),
            Err(RunError::OutputTooLarge { .. })
        ));
        assert_still_healthy(&sb);
    }
}

#[test]
fn hostile_and_good_units_run_side_by_side() {
    let sb = sandbox();
    let spin = sb.compile(&wat(SPIN)).unwrap();
    let hello = common::example("hello");
    std::thread::scope(|s| {
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    sb.run(
                        &spin,
                        &RunInput::default(),
                        &Limits {
                            fuel: u64::MAX,
                            timeout: Duration::from_millis(300),
                            ..Limits::default()
                        },
                    )
                })
            })
            .collect();
        let good = s.spawn(|| {
            (0..20)
                .map(|i| {
                    let input = RunInput {
                        stdin: vec![],
                        args: vec![format!("n{i}")],
                    };
                    sb.run(&hello, &input, &Limits::default()).unwrap().stdout
                })
                .collect::<Vec<_>>()
        });
        for t in spinners {
            assert!(matches!(t.join().unwrap(), Err(RunError::Timeout { .. })));
        }
        let outs = good.join().unwrap();
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(out, format!("hello, n{i}\n").as_bytes());
        }
    });
}
