//! From a sandbox run to what the node tells the gateway.
//!
//! Every unit a node accepted ends in exactly one [`Disposition`]:
//!
//! * [`Disposition::Report`]: a *result*, compared by the gateway's quorum like any
//!   output. Either the unit ran to completion (any exit code), or it failed in a way
//!   every honest replica reproduces bit for bit: same module, same input, same limits
//!   give the same error with the same fuel.
//! * [`Disposition::HandBack`]: the node could not produce a result that other replicas
//!   would reproduce (the wall-clock backstop fired, the host failed, the module could
//!   not be downloaded, the unit asks for more than this node's sandbox allows). The
//!   gateway re-issues the unit at once; nothing is claimed about it.
//!
//! Which [`RunError`]s are deterministic (see `docs/design/lode-node.md`):
//!
//! | error                | disposition | why |
//! |----------------------|-------------|-----|
//! | `OutOfFuel`          | report      | fuel is the deterministic meter |
//! | `MemoryLimit`        | report      | the limit comes from the job |
//! | `OutputTooLarge`     | report      | the limit comes from the job |
//! | `Trap`               | report      | wasm semantics are fixed by the sandbox |
//! | `InvalidModule`      | report      | a property of the module bytes (size is pre-checked) |
//! | `UnsupportedImport`  | report      | a property of the module bytes |
//! | `InvalidInput`       | report      | only after the node checked the limits against its own ceilings (then it is about the input, e.g. a NUL in an argument) |
//! | `Timeout`            | hand back   | wall clock: depends on the machine and its load |
//! | `Internal`           | hand back   | host trouble, not the unit's fault |

use lode_proto::wire::{UnitLimits, UnitOutcome};
use lode_sandbox::{Completed, Limits, RunError, SandboxConfig};
use std::time::Duration;

/// What the node does with a finished (or abandoned) unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Report this outcome as the unit's result.
    Report(UnitOutcome),
    /// Give the unit back unrun (or without a result); the reason is only logged.
    HandBack(String),
}

/// The sandbox limits of a unit: a field-by-field copy of the job's limits (the
/// timeout is in milliseconds on the wire).
pub fn to_sandbox_limits(l: &UnitLimits) -> Limits {
    Limits {
        fuel: l.fuel,
        memory_bytes: l.memory_bytes,
        timeout: Duration::from_millis(l.timeout_ms),
        max_output_bytes: l.max_output_bytes,
    }
}

/// Checks a unit's limits against what this node's sandbox accepts. A unit over
/// this node's ceilings is not invalid (another node may run it): it is handed
/// back, never reported as a failure. `Err` carries the reason.
pub fn check_limits_fit(limits: &Limits, config: &SandboxConfig) -> Result<(), String> {
    limits.validate(config).map_err(|e| e.to_string())
}

/// The error string of a deterministic failure: `"<kind>: <message>"`, e.g.
/// `"out_of_fuel: out of fuel: the limit of 1000 was used up"`. Both parts are
/// functions of (module, input, limits) only, so honest replicas agree on it.
pub fn failure_string(e: &RunError) -> String {
    format!("{}: {e}", e.kind())
}

/// Maps a sandbox result to what the node reports.
pub fn classify(result: Result<Completed, RunError>) -> Disposition {
    match result {
        Ok(c) => Disposition::Report(UnitOutcome::Completed {
            exit_code: c.exit_code,
            fuel_used: c.fuel_used,
            stdout: c.stdout,
        }),
        Err(e) if e.is_deterministic() => Disposition::Report(UnitOutcome::Failed {
            error: failure_string(&e),
            fuel_used: e.fuel_used().unwrap_or(0),
        }),
        Err(e) => Disposition::HandBack(format!("non-deterministic failure: {e}")),
    }
}

/// Approximate bytes a report adds to a poll body (for batching).
pub fn outcome_size(o: &UnitOutcome) -> usize {
    const OVERHEAD: usize = 96;
    OVERHEAD
        + match o {
            UnitOutcome::Completed { stdout, .. } => stdout.len(),
            UnitOutcome::Failed { error, .. } => error.len(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_sandbox::TrapKind;

    #[test]
    fn limits_convert_field_by_field() {
        let w = UnitLimits {
            fuel: 123,
            memory_bytes: 4 << 20,
            timeout_ms: 1500,
            max_output_bytes: 77,
        };
        let l = to_sandbox_limits(&w);
        assert_eq!(l.fuel, 123);
        assert_eq!(l.memory_bytes, 4 << 20);
        assert_eq!(l.timeout, Duration::from_millis(1500));
        assert_eq!(l.max_output_bytes, 77);
    }

    #[test]
    fn limits_over_the_node_ceiling_do_not_fit() {
        let cfg = SandboxConfig {
            max_memory_bytes: 64 << 20,
            ..SandboxConfig::default()
        };
        let ok = to_sandbox_limits(&UnitLimits::default());
        assert!(check_limits_fit(&ok, &cfg).is_ok());
        let big = Limits {
            memory_bytes: 128 << 20,
            ..ok
        };
        let err = check_limits_fit(&big, &cfg).unwrap_err();
        assert!(err.contains("ceiling"), "{err}");
        let zero_timeout = Limits {
            timeout: Duration::ZERO,
            ..ok
        };
        assert!(check_limits_fit(&zero_timeout, &cfg).is_err());
    }

    #[test]
    fn classification_of_every_outcome() {
        let done = classify(Ok(Completed {
            exit_code: 3,
            stdout: b"hi".to_vec(),
            fuel_used: 9,
        }));
        assert_eq!(
            done,
            Disposition::Report(UnitOutcome::Completed {
                exit_code: 3,
                fuel_used: 9,
                stdout: b"hi".to_vec()
            })
        );
        let reported = [
            (RunError::OutOfFuel { fuel_limit: 50 }, 50),
            (
                RunError::MemoryLimit {
                    limit_bytes: 1,
                    fuel_used: 4,
                },
                4,
            ),
            (
                RunError::OutputTooLarge {
                    limit_bytes: 1,
                    fuel_used: 5,
                },
                5,
            ),
            (
                RunError::Trap {
                    kind: TrapKind::Unreachable,
                    fuel_used: 6,
                },
                6,
            ),
            (RunError::InvalidModule { reason: "x".into() }, 0),
            (
                RunError::UnsupportedImport {
                    module: "env".into(),
                    name: "f".into(),
                },
                0,
            ),
            (
                RunError::InvalidInput {
                    reason: "nul".into(),
                },
                0,
            ),
        ];
        for (e, fuel) in reported {
            let kind = e.kind();
            match classify(Err(e)) {
                Disposition::Report(UnitOutcome::Failed { error, fuel_used }) => {
                    assert!(error.starts_with(&format!("{kind}: ")), "{error}");
                    assert_eq!(fuel_used, fuel);
                }
                other => panic!("{kind}: {other:?}"),
            }
        }
        for e in [
            RunError::Timeout {
                timeout_ms: 1,
                fuel_used: 1,
            },
            RunError::Internal {
                reason: "oom".into(),
            },
        ] {
            assert!(
                matches!(classify(Err(e.clone())), Disposition::HandBack(_)),
                "{e:?}"
            );
        }
    }

    #[test]
    fn failure_strings_are_stable() {
        assert_eq!(
            failure_string(&RunError::OutOfFuel { fuel_limit: 1000 }),
            "out_of_fuel: out of fuel: the limit of 1000 was used up"
        );
        assert_eq!(
            failure_string(&RunError::Trap {
                kind: TrapKind::IntegerDivisionByZero,
                fuel_used: 3
            }),
            "trap: trap: integer divide by zero"
        );
    }
}
