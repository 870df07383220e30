//! `lode sandbox run` end to end: the real binary, real modules, real
//! processes.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn jobs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jobs")
}

fn wasm(name: &str) -> PathBuf {
    jobs().join("wasm").join(format!("{name}.wasm"))
}

fn hostile(name: &str) -> PathBuf {
    jobs().join("hostile").join(format!("{name}.wasm"))
}

/// Compiled-module cache shared by these tests (each module is compiled once
/// per build instead of once per invocation).
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("lode-cli-sandbox-cache")
}

/// Run `lode sandbox run MODULE [flags...]` with `stdin`, an isolated
/// LODE_HOME and the shared cache.
fn lode_run(module: &Path, flags: &[&str], stdin: &[u8]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lode"));
    cmd.args(["sandbox", "run"]).arg(module);
    if !flags.contains(&"--no-cache") {
        cmd.arg("--cache-dir").arg(cache_dir());
    }
    cmd.args(flags)
        .env("LODE_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn lode");
    let mut sink = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = sink.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// The JSON report printed on stderr with `--json`.
fn report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON report in stderr: {text}"));
    serde_json::from_str(line).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn runs_a_unit_with_arguments_and_reports_on_stderr() {
    let out = lode_run(&wasm("hello"), &["--", "requester"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello, requester\n");
    let err = stderr(&out);
    assert!(err.contains("completed with exit code 0"), "{err}");
    assert!(err.contains("fuel used"), "{err}");
}

#[test]
fn json_report_has_fuel_hashes_and_limits() {
    let out = lode_run(&wasm("sha256"), &["--json", "--fuel", "9000000"], b"abc");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        out.stdout,
        b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n"
    );
    let r = report(&out);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["exit_code"], 0);
    assert!(r["fuel_used"].as_u64().unwrap() > 0);
    assert_eq!(r["limits"]["fuel"], 9_000_000);
    assert_eq!(r["stdout_bytes"], 65);
    assert_eq!(r["module_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(r["stdout_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(r["semantics_id"].as_str().unwrap().len(), 16);
}

#[test]
fn two_processes_give_identical_output_and_fuel() {
    // One process compiles from scratch, the other may load from the cache.
    let a = lode_run(&wasm("nbody"), &["--json", "--no-cache"], b"20000");
    let b = lode_run(&wasm("nbody"), &["--json"], b"20000");
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(a.status.code(), b.status.code());
    assert_eq!(a.stdout, b.stdout);
    let (ra, rb) = (report(&a), report(&b));
    assert_eq!(ra["fuel_used"], rb["fuel_used"]);
    assert_eq!(ra["stdout_sha256"], rb["stdout_sha256"]);
    assert_eq!(ra["module_origin"], "compiled");
    assert!(ra["fuel_used"].as_u64().unwrap() > 1_000_000);
}

#[test]
fn out_of_fuel_exits_125_and_names_the_error() {
    let out = lode_run(&hostile("spin"), &["--fuel", "1000000"], b"");
    assert_eq!(out.status.code(), Some(125));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("out of fuel"), "{}", stderr(&out));

    let out = lode_run(&hostile("spin"), &["--fuel", "1000000", "--json"], b"");
    assert_eq!(out.status.code(), Some(125));
    let r = report(&out);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["error"], "out_of_fuel");
    assert_eq!(r["fuel_used"], 1_000_000);
    assert_eq!(r["deterministic"], true);
}

#[test]
fn timeout_fires_when_fuel_is_unlimited() {
    let out = lode_run(
        &hostile("spin"),
        &[
            "--fuel",
            &u64::MAX.to_string(),
            "--timeout-ms",
            "200",
            "--json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(125));
    let r = report(&out);
    assert_eq!(r["error"]["error"], "timeout");
    assert_eq!(r["deterministic"], false);
}

#[test]
fn output_and_memory_limits_are_enforced() {
    let out = lode_run(&hostile("flood"), &["--max-output", "4096", "--json"], b"");
    assert_eq!(out.status.code(), Some(125));
    assert!(out.stdout.is_empty(), "no partial output is printed");
    assert_eq!(report(&out)["error"]["error"], "output_too_large");

    let out = lode_run(&wasm("primes"), &["--memory-mb", "1"], b"2000000");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("memory limit exceeded"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_module_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"this is not wasm").unwrap();
    let out = lode_run(&junk, &["--json"], b"");
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(report(&out)["error"]["error"], "invalid_module");

    let out = lode_run(&dir.path().join("missing.wasm"), &[], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("reading module"), "{}", stderr(&out));
}

#[test]
fn unit_exit_code_and_stderr_pass_through() {
    let out = lode_run(&wasm("primes"), &[], b"not a number");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("primes: expected a decimal N on stdin"),
        "{err}"
    );
    assert!(err.contains("completed with exit code 2"), "{err}");
}

#[test]
fn input_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, b"100000").unwrap();
    let out = lode_run(
        &wasm("primes"),
        &["--input", input.to_str().unwrap()],
        b"ignored",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        out.stdout,
        b"n=100000 primes=9592 sum=454396537 largest=99991\n"
    );
}

#[test]
fn info_prints_the_fingerprint() {
    let out = Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(["sandbox", "info", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["semantics"].as_str().unwrap().contains("wasmtime/48"));
    assert_eq!(v["semantics_id"].as_str().unwrap().len(), 16);
}
