//! Lode's sandbox: runs untrusted WebAssembly work units deterministically,
//! metered by fuel, under hard memory, output and wall-clock limits.
//!
//! A work unit is a WASI preview1 *command* module run once: input bytes on
//! stdin plus optional arguments; the result is its stdout and exit code, and
//! the fuel it burned. There is no environment, no file system, no network;
//! clocks and randomness are virtual and fixed. The same module, input and
//! [`Limits`] give bit-identical [`Completed`] results (or the same
//! deterministic [`RunError`]) on every run, process and machine with the same
//! [`EngineFingerprint::semantics`].
//!
//! ```no_run
//! use lode_sandbox::{Limits, RunInput, Sandbox, SandboxConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let wasm = std::fs::read("examples/jobs/wasm/sha256.wasm")?;
//! let module = sandbox.compile(&wasm)?;
//! let input = RunInput { stdin: b"abc".to_vec(), args: vec![] };
//! let done = sandbox.run(&module, &input, &Limits::default())?;
//! println!("exit {} fuel {}", done.exit_code, done.fuel_used);
//! # Ok(()) }
//! ```
//!
//! See `docs/design/lode-sandbox.md` for the design and its invariants.

mod cache;
mod error;
mod host;
mod limits;
mod nan;
mod sandbox;

pub use error::{RunError, SandboxError, TrapKind};
pub use host::{ARGV0, MAX_RANDOM_REQUEST, VIRTUAL_MONOTONIC_STEP_NS, VIRTUAL_WALL_CLOCK_SECS};
pub use limits::{Limits, MAX_TIMEOUT, MAX_WASM32_MEMORY, SandboxConfig, WASM_PAGE};
pub use sandbox::{
    CompiledModule, Completed, EngineFingerprint, MAX_WASM_STACK, ModuleOrigin, RunInput, Sandbox,
};
