//! Shared helpers for the integration tests: one sandbox per test binary
//! (compiling in a debug build is slow-ish), example modules and golden cases.
#![allow(dead_code)]

use lode_sandbox::{CompiledModule, Limits, RunInput, Sandbox, SandboxConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// On-disk module cache shared by the test binaries (and their child
/// processes): each example is compiled once per build, not once per binary.
/// Tests of the cache itself use their own temporary directories.
pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("lode-sandbox-test-cache")
}

/// The sandbox shared by every test in this binary.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig {
            cache_dir: Some(shared_cache_dir()),
            ..SandboxConfig::default()
        })
        .expect("sandbox")
    })
}

pub fn jobs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jobs")
}

/// The committed wasm of an example job (`examples/jobs/wasm/NAME.wasm`).
pub fn example_wasm(name: &str) -> Vec<u8> {
    let path = jobs_dir().join("wasm").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An example job compiled by the shared sandbox (cached after the first call).
pub fn example(name: &str) -> Arc<CompiledModule> {
    sandbox()
        .compile(&example_wasm(name))
        .expect("example compiles")
}

pub fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).expect("valid wat")
}

pub fn stdin(bytes: &[u8]) -> RunInput {
    RunInput {
        stdin: bytes.to_vec(),
        args: Vec::new(),
    }
}

/// Run `hello` and check its greeting: the sandbox still works.
pub fn assert_still_healthy(sb: &Sandbox) {
    let hello = sb.compile(&example_wasm("hello")).expect("hello compiles");
    let input = RunInput {
        stdin: Vec::new(),
        args: vec!["again".into()],
    };
    let done = sb
        .run(&hello, &input, &Limits::default())
        .expect("a good module still runs");
    assert_eq!(done.exit_code, 0);
    assert_eq!(done.stdout, b"hello, again\n");
    assert!(done.fuel_used > 0);
}

/// One golden case: `examples/jobs/golden/JOB/CASE.in` (stdin), optional
/// `CASE.args` (one argument per line), and the expected `CASE.out` (stdout)
/// and `CASE.result` (`exit_code=N` and `fuel_used=N` lines).
#[derive(Debug, Clone)]
pub struct GoldenCase {
    pub job: String,
    pub case: String,
    pub dir: PathBuf,
    pub input: RunInput,
}

impl GoldenCase {
    pub fn out_path(&self) -> PathBuf {
        self.dir.join(format!("{}.out", self.case))
    }
    pub fn result_path(&self) -> PathBuf {
        self.dir.join(format!("{}.result", self.case))
    }
}

pub fn golden_cases() -> Vec<GoldenCase> {
    let root = jobs_dir().join("golden");
    let mut cases = Vec::new();
    let mut jobs: Vec<_> = std::fs::read_dir(&root)
        .expect("golden dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    jobs.sort();
    for dir in jobs {
        let job = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "in"))
            .collect();
        inputs.sort();
        for input_path in inputs {
            let case = input_path
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let args_path = dir.join(format!("{case}.args"));
            let args = std::fs::read_to_string(&args_path)
                .map(|s| s.lines().map(str::to_string).collect())
                .unwrap_or_default();
            cases.push(GoldenCase {
                job: job.clone(),
                case,
                dir: dir.clone(),
                input: RunInput {
                    stdin: std::fs::read(&input_path).unwrap(),
                    args,
                },
            });
        }
    }
    cases
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
