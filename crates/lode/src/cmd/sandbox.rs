//! `lode sandbox`: try a work unit locally, exactly as a node would run it,
//! and see what it costs before paying the network to run it.

use anyhow::{Context, Result};
use clap::Subcommand;
use lode_proto::Hash32;
use lode_sandbox::{Limits, RunError, RunInput, Sandbox, SandboxConfig};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit status of `lode sandbox run` when the unit did not complete (out of
/// fuel, trap, invalid module, ...). A unit that completes passes its own
/// exit code through instead.
pub const UNIT_FAILED_EXIT: u8 = 125;

/// How much of the unit's stderr is shown (it is diagnostics only).
const MAX_STDERR_SHOWN: usize = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Run MODULE.wasm on stdin and report exit code, fuel and time.
    ///
    /// The module's stdout is printed on stdout; the report goes to stderr
    /// (one JSON object with --json). Exit status: the unit's own exit code
    /// when it completes (codes outside 0..=255 become 1), 125 when it does
    /// not (the error is named in the report), 1 for usage or I/O errors.
    Run {
        /// WASI preview1 command module (binary .wasm).
        module: PathBuf,
        /// Fuel limit (the unit of work and price) [default: 5000000000].
        #[arg(long)]
        fuel: Option<u64>,
        /// Memory limit in MiB [default: 256].
        #[arg(long = "memory-mb")]
        memory_mb: Option<u64>,
        /// Wall-clock backstop in milliseconds [default: 30000].
        #[arg(long = "timeout-ms")]
        timeout_ms: Option<u64>,
        /// Stdout limit in bytes [default: 16777216].
        #[arg(long = "max-output")]
        max_output: Option<u64>,
        /// Read the unit's input from FILE instead of stdin. Without it,
        /// stdin is read to the end (an interactive terminal counts as empty).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Print the report on stderr as one JSON object.
        #[arg(long)]
        json: bool,
        /// Compiled-module cache [default: $LODE_HOME/sandbox-cache].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Do not use the on-disk compiled-module cache.
        #[arg(long, conflicts_with = "cache_dir")]
        no_cache: bool,
        /// Arguments passed to the unit (after `--`); argv[0] is always "unit".
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Print the sandbox's engine fingerprint (what a node reports).
    Info {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: SandboxCmd) -> Result<ExitCode> {
    match cmd {
        SandboxCmd::Run {
            module,
            fuel,
            memory_mb,
            timeout_ms,
            max_output,
            input,
            json,
            cache_dir,
            no_cache,
            args,
        } => {
            let defaults = Limits::default();
            let limits = Limits {
                fuel: fuel.unwrap_or(defaults.fuel),
                memory_bytes: match memory_mb {
                    Some(mb) => mb
                        .checked_mul(1024 * 1024)
                        .context("--memory-mb is too large")?,
                    None => defaults.memory_bytes,
                },
                timeout: timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(defaults.timeout),
                max_output_bytes: max_output.unwrap_or(defaults.max_output_bytes),
            };
            let cache_dir = if no_cache {
                None
            } else {
                Some(cache_dir.unwrap_or_else(|| super::keys::lode_home().join("sandbox-cache")))
            };
            run_unit(RunArgs {
                module,
                limits,
                input,
                json,
                cache_dir,
                args,
            })
        }
        SandboxCmd::Info { json } => {
            let sandbox = Sandbox::new(SandboxConfig {
                max_concurrent_units: 1,
                ..SandboxConfig::default()
            })?;
            let fp = sandbox.fingerprint();
            if json {
                println!("{}", serde_json::to_string(fp)?);
            } else {
                println!("semantics:    {}", fp.semantics);
                println!("semantics id: {}", fp.semantics_id);
                println!("engine id:    {}", fp.engine_id);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

struct RunArgs {
    module: PathBuf,
    limits: Limits,
    input: Option<PathBuf>,
    json: bool,
    cache_dir: Option<PathBuf>,
    args: Vec<String>,
}

fn read_input(path: Option<&PathBuf>) -> Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| format!("reading input {}", p.display())),
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Ok(Vec::new());
            }
            let mut buf = Vec::new();
            stdin.read_to_end(&mut buf).context("reading stdin")?;
            Ok(buf)
        }
    }
}

fn run_unit(a: RunArgs) -> Result<ExitCode> {
    let wasm = std::fs::read(&a.module)
        .with_context(|| format!("reading module {}", a.module.display()))?;
    let stdin = read_input(a.input.as_ref())?;
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: a.cache_dir.clone(),
        max_concurrent_units: 1,
        ..SandboxConfig::default()
    })
    .context("starting the sandbox")?;

    let compile_started = Instant::now();
    let compiled = sandbox.compile(&wasm);
    let compile_time = compile_started.elapsed();
    let module_sha256 = Hash32::sha256(&wasm).to_hex();
    let input = RunInput {
        stdin,
        args: a.args,
    };
    let run_started = Instant::now();
    let (origin, outcome, unit_stderr) = match compiled {
        Ok(module) => {
            let (outcome, stderr) =
                sandbox.run_with_stderr(&module, &input, &a.limits, MAX_STDERR_SHOWN);
            (Some(module.origin()), outcome, stderr)
        }
        Err(e) => (None, Err(e), Vec::new()),
    };
    let run_time = run_started.elapsed();

    let mut report = serde_json::json!({
        "module": a.module,
        "module_sha256": module_sha256,
        "module_origin": origin,
        "limits": a.limits,
        "compile_ms": ms(compile_time),
        "run_ms": ms(run_time),
        "semantics_id": sandbox.fingerprint().semantics_id,
        "engine_id": sandbox.fingerprint().engine_id,
    });
    if a.json {
        report["stderr"] = String::from_utf8_lossy(&unit_stderr).into();
    } else if !unit_stderr.is_empty() {
        let mut err = std::io::stderr().lock();
        err.write_all(&unit_stderr).context("writing stderr")?;
        if !unit_stderr.ends_with(b"\n") {
            writeln!(err).context("writing stderr")?;
        }
    }
    let code = match &outcome {
        Ok(done) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&done.stdout).context("writing stdout")?;
            out.flush().context("writing stdout")?;
            report["status"] = "completed".into();
            report["exit_code"] = done.exit_code.into();
            report["fuel_used"] = done.fuel_used.into();
            report["stdout_bytes"] = done.stdout.len().into();
            report["stdout_sha256"] = Hash32::sha256(&done.stdout).to_hex().into();
            if a.json {
                eprintln!("{report}");
            } else {
                eprintln!(
                    "lode sandbox: completed with exit code {}; fuel used {} of {}; {} bytes of output; run {:.3} ms (compile {:.3} ms, {})",
                    done.exit_code,
                    done.fuel_used,
                    a.limits.fuel,
                    done.stdout.len(),
                    ms(run_time),
                    ms(compile_time),
                    origin_text(origin),
                );
            }
            u8::try_from(done.exit_code).unwrap_or(1)
        }
        Err(e) => {
            report["status"] = "failed".into();
            report["error"] = serde_json::to_value(e)?;
            report["message"] = e.to_string().into();
            report["fuel_used"] = e.fuel_used().into();
            report["deterministic"] = e.is_deterministic().into();
            if a.json {
                eprintln!("{report}");
            } else {
                eprintln!("lode sandbox: unit failed: {e}");
                eprintln!("  {}", failure_detail(e, &a.limits));
                eprintln!(
                    "  run {:.3} ms (compile {:.3} ms)",
                    ms(run_time),
                    ms(compile_time)
                );
            }
            UNIT_FAILED_EXIT
        }
    };
    Ok(ExitCode::from(code))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn origin_text(origin: Option<lode_sandbox::ModuleOrigin>) -> &'static str {
    match origin {
        Some(lode_sandbox::ModuleOrigin::DiskCache) => "from cache",
        Some(lode_sandbox::ModuleOrigin::Compiled) | None => "compiled",
    }
}

/// One line of advice per failure kind.
fn failure_detail(e: &RunError, limits: &Limits) -> String {
    match e {
        RunError::OutOfFuel { fuel_limit } => format!(
            "the unit used all {fuel_limit} fuel; raise --fuel if it is expected to need more"
        ),
        RunError::MemoryLimit { limit_bytes, .. } => format!(
            "the unit needs more than {} MiB of memory; raise --memory-mb",
            limit_bytes / (1024 * 1024)
        ),
        RunError::OutputTooLarge { limit_bytes, .. } => {
            format!("stdout was cut at {limit_bytes} bytes; raise --max-output")
        }
        RunError::Timeout { .. } => format!(
            "wall-clock backstop of {} ms fired (not deterministic); raise --timeout-ms",
            limits.timeout.as_millis()
        ),
        RunError::UnsupportedImport { .. } => {
            "work units may import only WASI preview1 (wasi_snapshot_preview1)".into()
        }
        RunError::InvalidModule { .. } => {
            "work units must be WASI preview1 command modules in the binary format".into()
        }
        RunError::Trap { fuel_used, .. } => format!("fuel used before the trap: {fuel_used}"),
        RunError::InvalidInput { .. } | RunError::Internal { .. } => {
            "this is not the unit's fault".into()
        }
    }
}
