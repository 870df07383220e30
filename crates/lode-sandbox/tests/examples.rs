//! The example jobs in `examples/jobs/`: their sandboxed output equals the
//! committed golden files (always) and their native build's output (when a C
//! compiler is present), on several inputs each.
//!
//! Regenerate the golden files after an intended change with
//! `LODE_UPDATE_GOLDEN=1 cargo test -p lode-sandbox --test examples`
//! (then review the diff: a fuel change means a semantics change).

mod common;

use common::{GoldenCase, golden_cases, jobs_dir, sandbox};
use lode_sandbox::{Completed, Limits};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn run_case(case: &GoldenCase) -> Completed {
    let module = common::example(&case.job);
    sandbox()
        .run(&module, &case.input, &Limits::default())
        .unwrap_or_else(|e| panic!("{}/{}: {e}", case.job, case.case))
}

fn result_text(done: &Completed) -> String {
    format!(
        "exit_code={}\nfuel_used={}\n",
        done.exit_code, done.fuel_used
    )
}

#[test]
fn golden_outputs_exit_codes_and_fuel() {
    let update = std::env::var_os("LODE_UPDATE_GOLDEN").is_some();
    let cases = golden_cases();
    let mut per_job: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        *per_job.entry(&case.job).or_default() += 1;
        let done = run_case(case);
        if update {
            std::fs::write(case.out_path(), &done.stdout).unwrap();
            std::fs::write(case.result_path(), result_text(&done)).unwrap();
            continue;
        }
        let expected_out = std::fs::read(case.out_path())
            .unwrap_or_else(|e| panic!("{}: {e}", case.out_path().display()));
        assert!(
            done.stdout == expected_out,
            "{}/{}: stdout differs from the golden file",
            case.job,
            case.case
        );
        let expected_result = std::fs::read_to_string(case.result_path()).unwrap();
        assert_eq!(
            result_text(&done),
            expected_result,
            "{}/{}: exit code or fuel differs from the golden file",
            case.job,
            case.case
        );
    }
    // Every job is covered, most of them on several inputs.
    for job in [
        "hello",
        "mandelbrot",
        "nbody",
        "primes",
        "probe",
        "sha256",
        "wordcount",
    ] {
        assert!(per_job.contains_key(job), "no golden case for {job}");
    }
    for job in ["mandelbrot", "nbody", "primes", "sha256", "wordcount"] {
        assert!(per_job[job] >= 3, "{job} needs several inputs");
    }
}

#[test]
fn sha256_job_agrees_with_the_sha2_crate() {
    for case in golden_cases().iter().filter(|c| c.job == "sha256") {
        let done = run_case(case);
        let expected = format!("{}\n", hex::encode(Sha256::digest(&case.input.stdin)));
        assert_eq!(String::from_utf8(done.stdout).unwrap(), expected);
    }
}

#[test]
fn probe_sees_only_the_virtual_environment() {
    let case = golden_cases()
        .into_iter()
        .find(|c| c.job == "probe")
        .unwrap();
    let out = String::from_utf8(run_case(&case).stdout).unwrap();
    for line in [
        "argc=3",
        "argv[0]=unit",
        "argv[1]=alpha",
        "argv[2]=beta gamma",
        "environ=0",
        "realtime=0.000000000",
        // ENOTCAPABLE: no preopened directories, so no file system at all.
        "fopen(/etc/passwd)=failed errno=76",
        "opendir(.)=failed errno=76",
        // A one-hour nanosleep returns at once; virtual time still moves.
        "nanosleep(1h)=0 monotonic_advanced=yes",
        "stdin_bytes=11",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
}

/// A C compiler for the native builds: `$CC`, else `cc`, `gcc` or `clang`.
fn c_compiler() -> Option<String> {
    let candidates: Vec<String> = std::env::var("CC")
        .ok()
        .into_iter()
        .chain(["cc", "gcc", "clang"].map(String::from))
        .collect();
    candidates.into_iter().find(|cc| {
        Command::new(cc)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn build_native(cc: &str, job: &str, out_dir: &Path) -> PathBuf {
    let src = jobs_dir().join("src").join(format!("{job}.c"));
    let bin = out_dir.join(job);
    let status = Command::new(cc)
        .args(["-O2", "-ffp-contract=off", "-o"])
        .arg(&bin)
        .arg(&src)
        .arg("-lm")
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "native build of {job} failed");
    bin
}

fn run_native(bin: &Path, case: &GoldenCase) -> (i32, Vec<u8>) {
    let mut child = Command::new(bin)
        .args(&case.input.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sink = child.stdin.take().unwrap();
    let input = case.input.stdin.clone();
    let writer = std::thread::spawn(move || {
        let _ = sink.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout)
}

#[test]
fn every_example_job_matches_its_native_build() {
    let Some(cc) = c_compiler() else {
        eprintln!(
            "SKIPPED every_example_job_matches_its_native_build: no C compiler found \
             (set CC or install gcc/clang); the golden-file test still checks the wasm side"
        );
        return;
    };
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lode-sandbox-native-jobs");
    std::fs::create_dir_all(&out_dir).unwrap();
    // `probe` reports the host environment, which natively is not virtual.
    let mut compared = BTreeMap::<String, usize>::new();
    for job in [
        "hello",
        "mandelbrot",
        "nbody",
        "primes",
        "sha256",
        "wordcount",
    ] {
        let bin = build_native(&cc, job, &out_dir);
        for case in golden_cases().iter().filter(|c| c.job == job) {
            let (native_exit, native_out) = run_native(&bin, case);
            let wasm = run_case(case);
            assert!(
                wasm.stdout == native_out,
                "{job}/{}: wasm and native stdout differ:\nwasm:   {:?}\nnative: {:?}",
                case.case,
                String::from_utf8_lossy(&wasm.stdout),
                String::from_utf8_lossy(&native_out)
            );
            assert_eq!(
                wasm.exit_code, native_exit,
                "{job}/{}: exit codes differ",
                case.case
            );
            *compared.entry(job.to_string()).or_default() += 1;
        }
    }
    assert!(compared.values().sum::<usize>() >= 15, "{compared:?}");
}
