//! Bounds on every field of a job submission: one definition, checked by the
//! gateway before anything is stored and by the client before anything is sent.
//!
//! The gateway serves the same numbers at `GET /v1/limits` (and lists them in its
//! OpenAPI document), so a client can check a job against the gateway it talks to.

use crate::wire::{Eligibility, SubmitJob, UnitInput, UnitLimits, Verification};
use serde::Serialize;

/// Longest job name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// Longest region code, in bytes (`[a-z0-9-]`).
pub const MAX_REGION_BYTES: usize = 16;
/// Most units one job may have.
pub const MAX_UNITS: usize = 1_000_000;
/// Largest stdin of one unit.
pub const MAX_UNIT_STDIN_BYTES: usize = 8 << 20;
/// Most arguments of one unit.
pub const MAX_UNIT_ARGS: usize = 64;
/// Longest argument, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// Largest fuel limit of one unit (about an hour at the believable speed ceiling).
pub const MAX_FUEL: u64 = 100_000_000_000_000;
/// Smallest linear-memory cap: one WebAssembly page.
pub const MIN_MEMORY_BYTES: u64 = 64 << 10;
/// Largest linear-memory cap: all of wasm32's address space.
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;
/// Longest wall-clock backstop of one unit.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// Largest stdout of one unit.
pub const MAX_OUTPUT_BYTES: u64 = 16 << 20;
/// Highest quorum.
pub const MAX_QUORUM: u8 = 16;
/// Most replicas of one unit (the scheduler's own cap).
pub const MAX_REPLICAS: u8 = 32;
/// Lowest price: work is never free (a zero price would let anyone occupy the network).
pub const MIN_PRICE_PER_FUEL: u128 = 1;
/// Highest price, in base units per unit of fuel (10^6 tokens).
pub const MAX_PRICE_PER_FUEL: u128 = 1_000_000_000_000_000_000_000_000;
/// Highest reputation a job may require (the scheduler's scale).
pub const MAX_REPUTATION: u32 = 1_000;
/// Most operators in a job's allow-list.
pub const MAX_ALLOWED_OPERATORS: usize = 64;
/// The fastest a node may believably run, in fuel per second per slot; a fuel
/// limit that no such node can burn within the unit's timeout is refused.
pub const DEFAULT_SPEED_CEILING_FUEL_PER_S: u64 = 50_000_000_000;

/// A field that is out of bounds: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

fn err<T>(field: &'static str, reason: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        field,
        reason: reason.into(),
    })
}

/// The bounds as served by `GET /v1/limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsView {
    pub max_name_bytes: usize,
    pub max_region_bytes: usize,
    pub max_units: usize,
    pub max_unit_stdin_bytes: usize,
    pub max_unit_args: usize,
    pub max_arg_bytes: usize,
    pub max_fuel: u64,
    pub min_memory_bytes: u64,
    pub max_memory_bytes: u64,
    pub max_timeout_ms: u64,
    pub max_output_bytes: u64,
    pub max_quorum: u8,
    pub max_replicas: u8,
    pub min_price_per_fuel: String,
    pub max_price_per_fuel: String,
    pub max_reputation: u32,
    pub max_allowed_operators: usize,
    pub speed_ceiling_fuel_per_s: u64,
}

impl LimitsView {
    pub fn new(speed_ceiling_fuel_per_s: u64) -> Self {
        Self {
            max_name_bytes: MAX_NAME_BYTES,
            max_region_bytes: MAX_REGION_BYTES,
            max_units: MAX_UNITS,
            max_unit_stdin_bytes: MAX_UNIT_STDIN_BYTES,
            max_unit_args: MAX_UNIT_ARGS,
            max_arg_bytes: MAX_ARG_BYTES,
            max_fuel: MAX_FUEL,
            min_memory_bytes: MIN_MEMORY_BYTES,
            max_memory_bytes: MAX_MEMORY_BYTES,
            max_timeout_ms: MAX_TIMEOUT_MS,
            max_output_bytes: MAX_OUTPUT_BYTES,
            max_quorum: MAX_QUORUM,
            max_replicas: MAX_REPLICAS,
            min_price_per_fuel: MIN_PRICE_PER_FUEL.to_string(),
            max_price_per_fuel: MAX_PRICE_PER_FUEL.to_string(),
            max_reputation: MAX_REPUTATION,
            max_allowed_operators: MAX_ALLOWED_OPERATORS,
            speed_ceiling_fuel_per_s,
        }
    }
}

/// A job name: 1 to [`MAX_NAME_BYTES`] bytes, not blank, no control characters.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    if name.trim().is_empty() || name.len() > MAX_NAME_BYTES {
        return err("name", format!("must be 1 to {MAX_NAME_BYTES} bytes"));
    }
    if name.chars().any(char::is_control) {
        return err("name", "must not contain control characters");
    }
    Ok(())
}

/// A region code: 1 to [`MAX_REGION_BYTES`] characters of `a-z`, `0-9` and `-`.
pub fn check_region(region: &str) -> Result<(), FieldError> {
    let b = region.as_bytes();
    if b.is_empty()
        || b.len() > MAX_REGION_BYTES
        || !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        return err(
            "region",
            format!("must be 1 to {MAX_REGION_BYTES} characters of a-z, 0-9 and '-'"),
        );
    }
    Ok(())
}

/// Per-unit limits, including that the fuel limit can be burnt within the
/// timeout by a node running at `speed_ceiling` fuel/s.
pub fn check_unit_limits(l: &UnitLimits, speed_ceiling: u64) -> Result<(), FieldError> {
    if l.fuel == 0 || l.fuel > MAX_FUEL {
        return err("limits.fuel", format!("must be between 1 and {MAX_FUEL}"));
    }
    if l.memory_bytes < MIN_MEMORY_BYTES || l.memory_bytes > MAX_MEMORY_BYTES {
        return err(
            "limits.memory_bytes",
            format!("must be between {MIN_MEMORY_BYTES} (one page) and {MAX_MEMORY_BYTES} (4 GiB)"),
        );
    }
    if l.timeout_ms == 0 || l.timeout_ms > MAX_TIMEOUT_MS {
        return err(
            "limits.timeout_ms",
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        );
    }
    if l.max_output_bytes > MAX_OUTPUT_BYTES {
        return err(
            "limits.max_output_bytes",
            format!("must be at most {MAX_OUTPUT_BYTES}"),
        );
    }
    let burnable = u128::from(speed_ceiling) * u128::from(l.timeout_ms) / 1000;
    if u128::from(l.fuel) > burnable {
        return err(
            "limits.fuel",
            format!(
                "{} fuel cannot be burnt within the {} ms timeout even at {speed_ceiling} fuel/s; raise timeout_ms or lower fuel",
                l.fuel, l.timeout_ms
            ),
        );
    }
    Ok(())
}

/// Quorum and replicas.
pub fn check_verification(v: &Verification) -> Result<(), FieldError> {
    if v.quorum == 0 || v.quorum > MAX_QUORUM {
        return err(
            "verification.quorum",
            format!("must be between 1 and {MAX_QUORUM}"),
        );
    }
    if v.max_replicas < v.quorum || v.max_replicas > MAX_REPLICAS {
        return err(
            "verification.max_replicas",
            format!("must be between the quorum and {MAX_REPLICAS}"),
        );
    }
    Ok(())
}

/// The price per unit of fuel.
pub fn check_price(p: u128) -> Result<(), FieldError> {
    if !(MIN_PRICE_PER_FUEL..=MAX_PRICE_PER_FUEL).contains(&p) {
        return err(
            "max_price_per_fuel",
            format!("must be between {MIN_PRICE_PER_FUEL} and {MAX_PRICE_PER_FUEL} base units"),
        );
    }
    Ok(())
}

/// Which nodes may run the units.
pub fn check_eligibility(e: &Eligibility) -> Result<(), FieldError> {
    if e.min_reputation > MAX_REPUTATION {
        return err(
            "eligibility.min_reputation",
            format!("must be at most {MAX_REPUTATION}"),
        );
    }
    if e.operators.len() > MAX_ALLOWED_OPERATORS {
        return err(
            "eligibility.operators",
            format!("at most {MAX_ALLOWED_OPERATORS} operators"),
        );
    }
    Ok(())
}

/// One unit's input.
pub fn check_unit(u: &UnitInput) -> Result<(), FieldError> {
    if u.stdin.len() > MAX_UNIT_STDIN_BYTES {
        return err(
            "units.stdin",
            format!("a unit's stdin must be at most {MAX_UNIT_STDIN_BYTES} bytes"),
        );
    }
    if u.args.len() > MAX_UNIT_ARGS {
        return err(
            "units.args",
            format!("a unit may have at most {MAX_UNIT_ARGS} arguments"),
        );
    }
    if u.args.iter().any(|a| a.len() > MAX_ARG_BYTES) {
        return err(
            "units.args",
            format!("an argument must be at most {MAX_ARG_BYTES} bytes"),
        );
    }
    Ok(())
}

/// Every field of a submission except the escrow (the ledger checks that).
pub fn check_submit(s: &SubmitJob, speed_ceiling: u64) -> Result<(), FieldError> {
    check_name(&s.name)?;
    if let Some(r) = &s.region {
        check_region(r)?;
    }
    if s.units.is_empty() {
        return err("units", "the job has no work units");
    }
    if s.units.len() > MAX_UNITS {
        return err("units", format!("at most {MAX_UNITS} units per job"));
    }
    s.units.iter().try_for_each(check_unit)?;
    check_unit_limits(&s.limits, speed_ceiling)?;
    check_verification(&s.verification)?;
    check_price(s.max_price_per_fuel)?;
    check_eligibility(&s.eligibility)?;
    if s.required_escrow().is_none() {
        return err(
            "max_price_per_fuel",
            "units × quorum × fuel × price overflows",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> UnitLimits {
        UnitLimits::default()
    }

    #[test]
    fn defaults_pass() {
        check_unit_limits(&limits(), DEFAULT_SPEED_CEILING_FUEL_PER_S).unwrap();
        check_verification(&Verification::default()).unwrap();
        check_name("sha256 of my files").unwrap();
        check_region("eu-west").unwrap();
        check_price(1).unwrap();
    }

    #[test]
    fn each_bound_is_enforced_at_its_edge() {
        let c = DEFAULT_SPEED_CEILING_FUEL_PER_S;
        assert!(check_name(&"x".repeat(MAX_NAME_BYTES)).is_ok());
        assert_eq!(
            check_name(&"x".repeat(MAX_NAME_BYTES + 1))
                .unwrap_err()
                .field,
            "name"
        );
        assert!(check_name("  ").is_err());
        assert!(check_name("a\u{7}b").is_err());
        assert!(check_region(&"a".repeat(MAX_REGION_BYTES + 1)).is_err());
        assert!(check_region("EU").is_err());
        assert!(check_price(0).is_err());
        assert!(check_price(MAX_PRICE_PER_FUEL + 1).is_err());
        let mut l = limits();
        l.memory_bytes = 1 << 63;
        assert_eq!(
            check_unit_limits(&l, c).unwrap_err().field,
            "limits.memory_bytes"
        );
        let mut l = limits();
        l.fuel = MAX_FUEL + 1;
        l.timeout_ms = MAX_TIMEOUT_MS;
        assert_eq!(check_unit_limits(&l, c).unwrap_err().field, "limits.fuel");
        // Burnable within the timeout at the ceiling: exactly at the edge passes.
        let mut l = limits();
        l.timeout_ms = 1000;
        l.fuel = c;
        assert!(check_unit_limits(&l, c).is_ok());
        l.fuel = c + 1;
        assert!(
            check_unit_limits(&l, c)
                .unwrap_err()
                .reason
                .contains("timeout")
        );
        let v = Verification {
            quorum: MAX_QUORUM + 1,
            max_replicas: MAX_REPLICAS,
            adaptive_trust: false,
        };
        assert!(check_verification(&v).is_err());
        let v = Verification {
            quorum: 2,
            max_replicas: MAX_REPLICAS + 1,
            adaptive_trust: false,
        };
        assert!(check_verification(&v).is_err());
        let u = UnitInput {
            stdin: vec![0; MAX_UNIT_STDIN_BYTES + 1],
            args: vec![],
        };
        assert!(check_unit(&u).is_err());
        let u = UnitInput {
            stdin: vec![],
            args: vec!["a".repeat(MAX_ARG_BYTES + 1)],
        };
        assert!(check_unit(&u).is_err());
    }
}
