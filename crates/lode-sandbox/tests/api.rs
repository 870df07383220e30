//! The public API around running: compile caching (memory and disk, with
//! its integrity check), concurrency, inputs, and the engine fingerprint.

mod common;

use common::{example_wasm, sandbox, stdin, wat};
use lode_sandbox::{
    Limits, ModuleOrigin, RunError, RunInput, Sandbox, SandboxConfig, SandboxError,
};
use std::sync::Arc;

fn with_cache(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.to_path_buf()),
        max_concurrent_units: 2,
        ..SandboxConfig::default()
    })
    .unwrap()
}

fn only_artifact(dir: &std::path::Path) -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir(dir.join("v1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

#[test]
fn disk_cache_reuses_own_artifacts_and_rejects_tampered_ones() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = example_wasm("sha256");
    let input = stdin(b"cache me");

    let a = with_cache(dir.path());
    let m = a.compile(&wasm).unwrap();
    assert_eq!(m.origin(), ModuleOrigin::Compiled);
    let expected = a.run(&m, &input, &Limits::default()).unwrap();
    drop(a);

    // A new sandbox (as after a restart) loads the artifact from disk.
    let b = with_cache(dir.path());
    let m = b.compile(&wasm).unwrap();
    assert_eq!(m.origin(), ModuleOrigin::DiskCache);
    assert_eq!(b.run(&m, &input, &Limits::default()).unwrap(), expected);
    drop(b);

    // Flip one byte of the artifact: it is recompiled, never loaded.
    let artifact = only_artifact(dir.path());
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&artifact, &bytes).unwrap();
    let c = with_cache(dir.path());
    let m = c.compile(&wasm).unwrap();
    assert_eq!(m.origin(), ModuleOrigin::Compiled);
    assert_eq!(c.run(&m, &input, &Limits::default()).unwrap(), expected);
    drop(c);
    // ... and the recompiled artifact replaced the tampered one.
    let d = with_cache(dir.path());
    assert_eq!(d.compile(&wasm).unwrap().origin(), ModuleOrigin::DiskCache);

    // An artifact planted from elsewhere (here: another cache directory, i.e.
    // another key) is not trusted either.
    let other = tempfile::tempdir().unwrap();
    let e = with_cache(other.path());
    e.compile(&wasm).unwrap();
    drop(e);
    let planted = only_artifact(other.path());
    std::fs::copy(&planted, &artifact).unwrap();
    std::fs::copy(
        planted.with_extension("mac"),
        artifact.with_extension("mac"),
    )
    .unwrap();
    let f = with_cache(dir.path());
    assert_eq!(f.compile(&wasm).unwrap().origin(), ModuleOrigin::Compiled);
}

#[test]
fn invalid_modules_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let sb = with_cache(dir.path());
    assert!(matches!(
        sb.compile(&wat(r#"(module (import "env" "x" (func)) (memory (export "memory") 1) (func (export "_start")))"#)),
        Err(RunError::UnsupportedImport { .. })
    ));
    assert!(sb.compile(b"junk").is_err());
    assert_eq!(std::fs::read_dir(dir.path().join("v1")).unwrap().count(), 0);
}

#[test]
fn unusable_cache_dir_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Sandbox::new(SandboxConfig {
        cache_dir: Some(file),
        ..SandboxConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, SandboxError::Cache { .. }), "{err:?}");
}

#[test]
fn memory_cache_returns_the_same_compiled_module() {
    let sb = sandbox();
    let wasm = example_wasm("hello");
    let a = sb.compile(&wasm).unwrap();
    let b = sb.compile(&wasm).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.sha256_hex(), common::sha256_hex(&wasm));
}

#[test]
fn memory_cache_is_bounded() {
    let sb = Sandbox::new(SandboxConfig {
        memory_cache_modules: 1,
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let one = wat(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    let two = wat(r#"(module (memory (export "memory") 2) (func (export "_start")))"#);
    let a = sb.compile(&one).unwrap();
    assert!(Arc::ptr_eq(&a, &sb.compile(&one).unwrap()));
    sb.compile(&two).unwrap();
    // `one` was evicted: compiling it again gives a new module that still works.
    let again = sb.compile(&one).unwrap();
    assert!(!Arc::ptr_eq(&a, &again));
    assert_eq!(
        sb.run(&again, &RunInput::default(), &Limits::default())
            .unwrap()
            .exit_code,
        0
    );
}

#[test]
fn more_threads_than_slots_wait_their_turn() {
    let sb = Sandbox::new(SandboxConfig {
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    let hello = sb.compile(&example_wasm("hello")).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (sb, hello) = (&sb, &hello);
                s.spawn(move || {
                    for i in 0..10 {
                        let input = RunInput {
                            stdin: vec![],
                            args: vec![format!("{t}-{i}")],
                        };
                        let done = sb.run(hello, &input, &Limits::default()).unwrap();
                        assert_eq!(done.stdout, format!("hello, {t}-{i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn large_stdin_is_read_completely() {
    let sb = sandbox();
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let done = sb
        .run_wasm(&example_wasm("sha256"), &stdin(&input), &Limits::default())
        .unwrap();
    assert_eq!(
        String::from_utf8(done.stdout).unwrap(),
        format!("{}\n", common::sha256_hex(&input))
    );
}

#[test]
fn fingerprint_names_the_semantics() {
    let fp = sandbox().fingerprint();
    assert!(fp.semantics.contains("wasmtime/48"), "{}", fp.semantics);
    assert!(fp.semantics.contains("fuel=wasmtime-default"));
    assert_eq!(fp.semantics_id.len(), 16);
    assert_eq!(fp.engine_id.len(), 16);
    assert!(fp.to_string().contains(&fp.semantics_id));
    // Pool size and caching do not change the semantics; metering does.
    let small = Sandbox::new(SandboxConfig {
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    assert_eq!(small.fingerprint(), fp);
    let unmetered = Sandbox::new(SandboxConfig {
        consume_fuel: false,
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    assert_ne!(unmetered.fingerprint().semantics_id, fp.semantics_id);
    assert_ne!(unmetered.fingerprint().engine_id, fp.engine_id);
}

#[test]
fn bad_config_is_rejected() {
    let err = Sandbox::new(SandboxConfig {
        max_concurrent_units: 0,
        ..SandboxConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, SandboxError::Config(_)));
}

#[test]
fn oversized_module_is_invalid() {
    let sb = Sandbox::new(SandboxConfig {
        max_module_bytes: 100,
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .unwrap();
    assert!(matches!(
        sb.compile(&example_wasm("hello")),
        Err(RunError::InvalidModule { .. })
    ));
}

#[test]
fn stderr_can_be_captured_for_diagnostics_without_changing_the_result() {
    let sb = sandbox();
    let primes = common::example("primes");
    let input = stdin(b"not a number");
    let plain = sb.run(&primes, &input, &Limits::default()).unwrap();
    let (outcome, stderr) = sb.run_with_stderr(&primes, &input, &Limits::default(), 1024);
    assert_eq!(outcome.unwrap(), plain);
    assert_eq!(plain.exit_code, 2);
    assert_eq!(stderr, b"primes: expected a decimal N on stdin\n");
    // Capped: only the head is kept, and the unit is not disturbed.
    let (outcome, stderr) = sb.run_with_stderr(&primes, &input, &Limits::default(), 6);
    assert_eq!(outcome.unwrap(), plain);
    assert_eq!(stderr, b"primes");
}
