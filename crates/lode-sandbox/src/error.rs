//! Typed outcomes of compiling and running a work unit.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Setting up a [`crate::Sandbox`] failed (bad configuration, engine, cache directory).
///
/// These are errors of the *host*, never of a work unit.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A [`crate::SandboxConfig`] field is out of its documented range.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// wasmtime refused the engine configuration (e.g. the pooling allocator
    /// could not reserve its address space).
    #[error("cannot create the wasmtime engine: {0}")]
    Engine(String),
    /// The on-disk module cache could not be created or opened.
    #[error("module cache at {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a work unit did not complete.
///
/// Every variant except [`RunError::Timeout`] and [`RunError::Internal`] is a
/// deterministic function of (module, input, limits): replicas on other
/// machines reach the same variant with the same fields, so these outcomes can
/// be compared by a quorum just like a [`crate::Completed`] result
/// ([`RunError::is_deterministic`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum RunError {
    /// The bytes are not a valid WebAssembly module, or not a WASI preview1
    /// command (no `_start` function or no exported `memory`), or the module
    /// needs more than the sandbox allows (e.g. more than one memory).
    #[error("invalid module: {reason}")]
    InvalidModule { reason: String },
    /// The module imports something the sandbox does not provide (or provides
    /// with a different type).
    #[error("unsupported import `{module}::{name}`")]
    UnsupportedImport { module: String, name: String },
    /// The limits or arguments passed to `run` are unusable (e.g. a memory
    /// limit above the sandbox's ceiling, an argument containing NUL).
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    /// The unit trapped (a WebAssembly trap, or a WASI call it made failed
    /// fatally).
    #[error("trap: {kind}")]
    Trap { kind: TrapKind, fuel_used: u64 },
    /// The unit used up all the fuel it was given (`fuel_used == fuel_limit`).
    #[error("out of fuel: the limit of {fuel_limit} was used up")]
    OutOfFuel { fuel_limit: u64 },
    /// The unit tried to grow its linear memory (or declared an initial memory)
    /// above the memory limit.
    #[error("memory limit exceeded: the unit asked for more than {limit_bytes} bytes")]
    MemoryLimit { limit_bytes: u64, fuel_used: u64 },
    /// The wall-clock backstop fired. Not deterministic: fuel is the real
    /// limit, the timeout only catches what fuel cannot.
    #[error("timed out after {timeout_ms} ms (wall clock)")]
    Timeout { timeout_ms: u64, fuel_used: u64 },
    /// The unit wrote more than the output limit to stdout. The output was cut
    /// off at the moment the limit would have been crossed, never buffered.
    #[error("output too large: the unit wrote more than {limit_bytes} bytes to stdout")]
    OutputTooLarge { limit_bytes: u64, fuel_used: u64 },
    /// The host failed (not the unit's fault): e.g. out of memory or address
    /// space, or a module compiled by another sandbox. Not deterministic.
    #[error("sandbox internal error: {reason}")]
    Internal { reason: String },
}

impl RunError {
    /// Stable snake_case name of the variant, for reports and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::InvalidModule { .. } => "invalid_module",
            RunError::UnsupportedImport { .. } => "unsupported_import",
            RunError::InvalidInput { .. } => "invalid_input",
            RunError::Trap { .. } => "trap",
            RunError::OutOfFuel { .. } => "out_of_fuel",
            RunError::MemoryLimit { .. } => "memory_limit",
            RunError::Timeout { .. } => "timeout",
            RunError::OutputTooLarge { .. } => "output_too_large",
            RunError::Internal { .. } => "internal",
        }
    }

    /// Whether every honest replica reaches exactly this error for the same
    /// (module, input, limits). False for [`RunError::Timeout`] (wall clock)
    /// and [`RunError::Internal`] (host trouble).
    pub fn is_deterministic(&self) -> bool {
        !matches!(self, RunError::Timeout { .. } | RunError::Internal { .. })
    }

    /// Fuel the unit burned before it failed, where it ran at all: the limit
    /// for [`RunError::OutOfFuel`]; `None` for errors raised before execution.
    pub fn fuel_used(&self) -> Option<u64> {
        match self {
            RunError::Trap { fuel_used, .. }
            | RunError::MemoryLimit { fuel_used, .. }
            | RunError::Timeout { fuel_used, .. }
            | RunError::OutputTooLarge { fuel_used, .. } => Some(*fuel_used),
            RunError::OutOfFuel { fuel_limit } => Some(*fuel_limit),
            RunError::InvalidModule { .. }
            | RunError::UnsupportedImport { .. }
            | RunError::InvalidInput { .. }
            | RunError::Internal { .. } => None,
        }
    }
}

/// What kind of trap stopped a unit.
///
/// The named variants are WebAssembly traps; [`TrapKind::Host`] is a WASI
/// function that failed fatally (e.g. `fd_write` given a pointer outside
/// memory, or asking for more random bytes than allowed) with wasmtime's
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    /// Call stack exhausted: unbounded recursion, or recursion deeper than
    /// the fixed wasm stack ([`crate::MAX_WASM_STACK`]).
    StackOverflow,
    MemoryOutOfBounds,
    HeapMisaligned,
    TableOutOfBounds,
    IndirectCallToNull,
    BadSignature,
    IntegerOverflow,
    IntegerDivisionByZero,
    BadConversionToInteger,
    /// An `unreachable` instruction (C's `abort()`, Rust's `panic!`).
    Unreachable,
    NullReference,
    /// Another wasmtime trap code, by its message.
    Other(String),
    /// A host (WASI) function failed fatally.
    Host(String),
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrapKind::StackOverflow => f.write_str("call stack exhausted"),
            TrapKind::MemoryOutOfBounds => f.write_str("out of bounds memory access"),
            TrapKind::HeapMisaligned => f.write_str("misaligned memory access"),
            TrapKind::TableOutOfBounds => f.write_str("out of bounds table access"),
            TrapKind::IndirectCallToNull => f.write_str("indirect call to null"),
            TrapKind::BadSignature => f.write_str("indirect call type mismatch"),
            TrapKind::IntegerOverflow => f.write_str("integer overflow"),
            TrapKind::IntegerDivisionByZero => f.write_str("integer divide by zero"),
            TrapKind::BadConversionToInteger => f.write_str("invalid conversion to integer"),
            TrapKind::Unreachable => f.write_str("unreachable instruction executed"),
            TrapKind::NullReference => f.write_str("null reference"),
            TrapKind::Other(m) => write!(f, "{m}"),
            TrapKind::Host(m) => write!(f, "host call failed: {m}"),
        }
    }
}

impl TrapKind {
    /// Map a wasmtime trap code. `OutOfFuel` and `Interrupt` never get here:
    /// they become [`RunError::OutOfFuel`] and [`RunError::Timeout`].
    pub(crate) fn from_wasmtime(trap: wasmtime::Trap) -> Self {
        use wasmtime::Trap as T;
        match trap {
            T::StackOverflow => TrapKind::StackOverflow,
            T::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
            T::HeapMisaligned => TrapKind::HeapMisaligned,
            T::TableOutOfBounds => TrapKind::TableOutOfBounds,
            T::IndirectCallToNull => TrapKind::IndirectCallToNull,
            T::BadSignature => TrapKind::BadSignature,
            T::IntegerOverflow => TrapKind::IntegerOverflow,
            T::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
            T::BadConversionToInteger => TrapKind::BadConversionToInteger,
            T::UnreachableCodeReached => TrapKind::Unreachable,
            T::NullReference => TrapKind::NullReference,
            other => {
                let msg = other.to_string();
                TrapKind::Other(msg.strip_prefix("wasm trap: ").unwrap_or(&msg).to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_error_serde_round_trip_and_kinds() {
        let all = vec![
            RunError::InvalidModule { reason: "x".into() },
            RunError::UnsupportedImport {
                module: "env".into(),
                name: "f".into(),
            },
            RunError::InvalidInput { reason: "y".into() },
            RunError::Trap {
                kind: TrapKind::StackOverflow,
                fuel_used: 7,
            },
            RunError::Trap {
                kind: TrapKind::Host("boom".into()),
                fuel_used: 1,
            },
            RunError::OutOfFuel { fuel_limit: 10 },
            RunError::MemoryLimit {
                limit_bytes: 65536,
                fuel_used: 3,
            },
            RunError::Timeout {
                timeout_ms: 5,
                fuel_used: 9,
            },
            RunError::OutputTooLarge {
                limit_bytes: 4,
                fuel_used: 2,
            },
            RunError::Internal { reason: "z".into() },
        ];
        let mut kinds = std::collections::BTreeSet::new();
        for e in &all {
            let json = serde_json::to_string(e).unwrap();
            assert!(
                json.contains(&format!("\"error\":\"{}\"", e.kind())),
                "{json}"
            );
            assert_eq!(&serde_json::from_str::<RunError>(&json).unwrap(), e);
            kinds.insert(e.kind());
        }
        assert_eq!(
            kinds.len(),
            all.len() - 1,
            "kind names are distinct per variant"
        );
        assert!(
            !RunError::Timeout {
                timeout_ms: 1,
                fuel_used: 0
            }
            .is_deterministic()
        );
        assert!(
            !RunError::Internal {
                reason: String::new()
            }
            .is_deterministic()
        );
        assert!(RunError::OutOfFuel { fuel_limit: 1 }.is_deterministic());
        assert_eq!(RunError::OutOfFuel { fuel_limit: 42 }.fuel_used(), Some(42));
        assert_eq!(
            RunError::InvalidModule {
                reason: String::new()
            }
            .fuel_used(),
            None
        );
    }

    #[test]
    fn trap_kinds_map_from_wasmtime() {
        assert_eq!(
            TrapKind::from_wasmtime(wasmtime::Trap::StackOverflow),
            TrapKind::StackOverflow
        );
        assert_eq!(
            TrapKind::from_wasmtime(wasmtime::Trap::UnreachableCodeReached),
            TrapKind::Unreachable
        );
        assert_eq!(
            TrapKind::from_wasmtime(wasmtime::Trap::CastFailure),
            TrapKind::Other("cast failure".into())
        );
    }
}
