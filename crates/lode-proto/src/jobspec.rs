//! The job spec: a requester's description of a job, as a TOML file.
//!
//! ```toml
//! name = "sha256 of my files"
//! engine = "wasm"                      # only "wasm" today
//! module = "sha256.wasm"               # path, relative to the spec file
//! region = "eu-west"                   # optional preference
//!
//! [inputs]                             # one work unit per entry; pick one or more kinds
//! files = ["data/*.bin", "extra.txt"]  # each matching file is one unit's stdin (sorted)
//! stdin = ["inline text", "more"]      # each string is one unit's stdin
//! args = [["100"], ["200", "-v"]]      # each argument vector is one unit (empty stdin)
//!
//! [limits]                             # per unit; all optional, defaults shown
//! fuel = 1000000000
//! memory_mb = 64
//! timeout_ms = 30000
//! max_output_bytes = 1048576
//!
//! [verification]                       # optional, defaults shown
//! quorum = 2
//! max_replicas = 5
//! adaptive_trust = false               # true: trusted nodes' units may skip the second replica
//!
//! [price]
//! max_per_fuel = 1000                  # token base units per unit of fuel (integer or string)
//!
//! [eligibility]                        # optional: who may run the units (and see their inputs)
//! min_reputation = 500                 # 0..=1000; 0 = any node
//! operators = ["did:key:z6Mk…"]        # only nodes of these operators; empty = any
//! ```
//!
//! Parsing is pure; resolving `files` globs against the filesystem is the client's job.

use crate::wire::{Engine, UnitLimits, Verification};
use serde::{Deserialize, Deserializer};

/// Most units one job may have.
pub use crate::limits::MAX_UNITS;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    #[serde(default)]
    pub engine: Engine,
    pub module: String,
    #[serde(default)]
    pub region: Option<String>,
    pub inputs: Inputs,
    #[serde(default)]
    pub limits: LimitsSpec,
    #[serde(default)]
    pub verification: VerificationSpec,
    pub price: PriceSpec,
    #[serde(default)]
    pub eligibility: EligibilitySpec,
}

/// `[eligibility]`: which nodes may run the units.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EligibilitySpec {
    pub min_reputation: u32,
    pub operators: Vec<crate::Did>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub stdin: Vec<String>,
    #[serde(default)]
    pub args: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSpec {
    pub fuel: u64,
    pub memory_mb: u64,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        let d = UnitLimits::default();
        Self {
            fuel: d.fuel,
            memory_mb: d.memory_bytes >> 20,
            timeout_ms: d.timeout_ms,
            max_output_bytes: d.max_output_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerificationSpec {
    pub quorum: u8,
    pub max_replicas: u8,
    pub adaptive_trust: bool,
}

impl Default for VerificationSpec {
    fn default() -> Self {
        let d = Verification::default();
        Self {
            quorum: d.quorum,
            max_replicas: d.max_replicas,
            adaptive_trust: d.adaptive_trust,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    #[serde(deserialize_with = "u128_from_int_or_string")]
    pub max_per_fuel: u128,
}

fn u128_from_int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        S(String),
    }
    match N::deserialize(d)? {
        N::I(i) => {
            u128::try_from(i).map_err(|_| serde::de::Error::custom("price must not be negative"))
        }
        N::S(s) => s
            .replace('_', "")
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a non-negative integer"))),
    }
}

/// Why a job spec is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobSpecError {
    #[error("job spec is not valid TOML: {0}")]
    Toml(String),
    #[error("job spec has no inputs: add [inputs] files, stdin or args")]
    NoInputs,
    #[error("job spec field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Which `[verification]` fields a spec's TOML sets itself; the others take
/// defaults (a gateway's governed defaults, else [`VerificationSpec::default`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerificationSet {
    pub quorum: bool,
    pub max_replicas: bool,
}

impl JobSpec {
    /// Which verification fields the spec `text` sets (nothing for text that
    /// is not TOML: [`JobSpec::from_toml`] reports that).
    pub fn verification_set(text: &str) -> VerificationSet {
        let table: toml::Table = toml::from_str(text).unwrap_or_default();
        let v = table.get("verification").and_then(toml::Value::as_table);
        let has = |k: &str| v.is_some_and(|t| t.contains_key(k));
        VerificationSet {
            quorum: has("quorum"),
            max_replicas: has("max_replicas"),
        }
    }

    /// Parses and validates a spec.
    pub fn from_toml(text: &str) -> Result<Self, JobSpecError> {
        let spec: JobSpec = toml::from_str(text).map_err(|e| JobSpecError::Toml(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the spec against the shared bounds of [`crate::limits`] (the same
    /// checks the gateway runs on the submission), with the spec's field names.
    pub fn validate(&self) -> Result<(), JobSpecError> {
        use crate::limits;
        let invalid = |field, reason: String| Err(JobSpecError::Invalid { field, reason });
        let spec_field = |e: limits::FieldError| JobSpecError::Invalid {
            field: match e.field {
                "limits.memory_bytes" => "limits.memory_mb",
                "max_price_per_fuel" => "price.max_per_fuel",
                f => f,
            },
            reason: e.reason,
        };
        limits::check_name(&self.name).map_err(spec_field)?;
        if self.module.trim().is_empty() {
            return invalid("module", "must name a .wasm file".into());
        }
        let i = &self.inputs;
        if i.files.is_empty() && i.stdin.is_empty() && i.args.is_empty() {
            return Err(JobSpecError::NoInputs);
        }
        if i.stdin.len() + i.args.len() > MAX_UNITS {
            return invalid("inputs", format!("at most {MAX_UNITS} units per job"));
        }
        if let Some(r) = &self.region {
            limits::check_region(r).map_err(spec_field)?;
        }
        if self.limits.memory_mb > limits::MAX_MEMORY_BYTES >> 20 {
            return invalid(
                "limits.memory_mb",
                format!("must be between 1 and {}", limits::MAX_MEMORY_BYTES >> 20),
            );
        }
        limits::check_unit_limits(
            &self.unit_limits(),
            limits::DEFAULT_SPEED_CEILING_FUEL_PER_S,
        )
        .map_err(spec_field)?;
        limits::check_verification(&self.verification()).map_err(spec_field)?;
        limits::check_price(self.price.max_per_fuel).map_err(spec_field)?;
        limits::check_eligibility(&self.eligibility()).map_err(spec_field)?;
        Ok(())
    }

    pub fn eligibility(&self) -> crate::wire::Eligibility {
        crate::wire::Eligibility {
            min_reputation: self.eligibility.min_reputation,
            operators: self.eligibility.operators.clone(),
        }
    }

    pub fn unit_limits(&self) -> UnitLimits {
        UnitLimits {
            fuel: self.limits.fuel,
            memory_bytes: self.limits.memory_mb << 20,
            timeout_ms: self.limits.timeout_ms,
            max_output_bytes: self.limits.max_output_bytes,
        }
    }

    pub fn verification(&self) -> Verification {
        Verification {
            quorum: self.verification.quorum,
            max_replicas: self.verification.max_replicas,
            adaptive_trust: self.verification.adaptive_trust,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_set_tells_explicit_fields_from_defaults() {
        let set = |t: &str| JobSpec::verification_set(t);
        assert_eq!(set("name='x'"), VerificationSet::default());
        assert_eq!(
            set("[verification]\nquorum = 3\n"),
            VerificationSet {
                quorum: true,
                max_replicas: false
            }
        );
        assert_eq!(
            set("[verification]\nmax_replicas = 4\nquorum = 1\n"),
            VerificationSet {
                quorum: true,
                max_replicas: true
            }
        );
        assert_eq!(set("not toml ["), VerificationSet::default());
    }

    const FULL: &str = r#"
name = "demo"
engine = "wasm"
module = "sha256.wasm"
region = "eu-west"
[inputs]
files = ["data/*.bin"]
stdin = ["a", "b"]
args = [["1"], ["2", "-v"]]
[limits]
fuel = 5000
memory_mb = 16
timeout_ms = 1000
max_output_bytes = 4096
[verification]
quorum = 3
max_replicas = 6
adaptive_trust = false
[price]
max_per_fuel = "1_000_000_000_000_000_000_000"
"#;

    #[test]
    fn parses_full_spec() {
        let s = JobSpec::from_toml(FULL).unwrap();
        assert_eq!(s.inputs.args[1], vec!["2", "-v"]);
        assert_eq!(s.unit_limits().memory_bytes, 16 << 20);
        assert_eq!(
            s.verification(),
            Verification {
                quorum: 3,
                max_replicas: 6,
                adaptive_trust: false
            }
        );
        assert_eq!(s.price.max_per_fuel, 1_000_000_000_000_000_000_000u128);
    }

    #[test]
    fn defaults_apply() {
        let s = JobSpec::from_toml(
            "name='x'\nmodule='m.wasm'\n[inputs]\nstdin=['a']\n[price]\nmax_per_fuel=5\n",
        )
        .unwrap();
        assert_eq!(s.engine, Engine::Wasm);
        assert_eq!(s.unit_limits(), UnitLimits::default());
        assert_eq!(s.verification(), Verification::default());
    }

    #[test]
    fn errors_are_typed_and_clear() {
        let base = "name='x'\nmodule='m.wasm'\n[price]\nmax_per_fuel=5\n";
        assert_eq!(
            JobSpec::from_toml(&format!("{base}[inputs]\n")),
            Err(JobSpecError::NoInputs)
        );
        assert!(matches!(
            JobSpec::from_toml("name="),
            Err(JobSpecError::Toml(_))
        ));
        let e = JobSpec::from_toml(&format!(
            "{base}[inputs]\nstdin=['a']\n[verification]\nquorum=3\nmax_replicas=2\n"
        ))
        .unwrap_err();
        assert!(
            matches!(
                e,
                JobSpecError::Invalid {
                    field: "verification.max_replicas",
                    ..
                }
            ),
            "{e}"
        );
        let e = JobSpec::from_toml(
            "name='x'\nmodule='m'\nengine='gpu'\n[inputs]\nstdin=['a']\n[price]\nmax_per_fuel=5\n",
        )
        .unwrap_err();
        assert!(
            matches!(e, JobSpecError::Toml(ref m) if m.contains("gpu")),
            "{e}"
        );
        let e = JobSpec::from_toml(
            "name='x'\nmodule='m'\n[inputs]\nstdin=['a']\n[price]\nmax_per_fuel=-1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        let e = JobSpec::from_toml(
            "name='x'\nmodule='m'\nbogus=1\n[inputs]\nstdin=['a']\n[price]\nmax_per_fuel=1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }
}
