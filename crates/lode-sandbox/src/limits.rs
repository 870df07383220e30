//! Per-unit limits (set by the job) and per-sandbox configuration (set by the
//! node operator).

use crate::error::{RunError, SandboxError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// WebAssembly page size.
pub const WASM_PAGE: u64 = 64 * 1024;

/// The largest linear memory a 32-bit WebAssembly module can address (4 GiB).
pub const MAX_WASM32_MEMORY: u64 = 4 * 1024 * 1024 * 1024;

/// Resource limits of one work unit. They come from the job, so every replica
/// of a unit runs under the same limits, which makes `OutOfFuel`,
/// `MemoryLimit` and `OutputTooLarge` deterministic outcomes.
///
/// In JSON/TOML every field is optional and defaults to [`Limits::default`];
/// the timeout is written as `timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel the unit may burn: the deterministic instruction meter, the unit
    /// of work and of price. Default 5 000 000 000 (roughly a few seconds of
    /// compiled code). `u64::MAX` means effectively unlimited (the timeout
    /// then is the only stop).
    pub fuel: u64,
    /// Cap on the unit's linear memory in bytes. Default 256 MiB.
    pub memory_bytes: u64,
    /// Wall-clock backstop. Default 30 s. Not deterministic: keep it well
    /// above the time the fuel limit takes to burn, so fuel always decides.
    #[serde(rename = "timeout_ms", with = "duration_ms")]
    pub timeout: Duration,
    /// Cap on stdout in bytes, enforced while the output streams. Default 16 MiB.
    pub max_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 5_000_000_000,
            memory_bytes: 256 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_output_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Check these limits against the sandbox's ceilings.
    pub fn validate(&self, config: &SandboxConfig) -> Result<(), RunError> {
        let bad = |reason: String| Err(RunError::InvalidInput { reason });
        if self.memory_bytes > config.max_memory_bytes {
            return bad(format!(
                "memory limit {} bytes is above this sandbox's ceiling of {} bytes",
                self.memory_bytes, config.max_memory_bytes
            ));
        }
        if self.max_output_bytes > config.max_output_bytes {
            return bad(format!(
                "output limit {} bytes is above this sandbox's ceiling of {} bytes",
                self.max_output_bytes, config.max_output_bytes
            ));
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive".into());
        }
        if self.timeout > MAX_TIMEOUT {
            return bad(format!(
                "timeout {} ms is above the maximum of {} ms",
                self.timeout.as_millis(),
                MAX_TIMEOUT.as_millis()
            ));
        }
        Ok(())
    }
}

/// Longest accepted wall-clock timeout (one day).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// How a node operator sets up its sandbox. None of these fields changes the
/// *result* of a unit (that is fixed by the module, input and [`Limits`]);
/// they size the host side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Directory for compiled modules (created if missing). `None`: compile
    /// caching stays in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Fuel metering. Always on in production; off only to measure what
    /// metering costs (then `fuel_used` is 0 and `Limits::fuel` is ignored).
    pub consume_fuel: bool,
    /// How many units may run at once (pooling-allocator slots). Further
    /// `run` calls wait for a free slot. Default 16.
    pub max_concurrent_units: u32,
    /// Ceiling for `Limits::memory_bytes` (size of each pool memory slot).
    /// Default and maximum 4 GiB.
    pub max_memory_bytes: u64,
    /// Ceiling for `Limits::max_output_bytes`. Default 256 MiB.
    pub max_output_bytes: u64,
    /// Largest module accepted by `compile`, in bytes. Default 64 MiB.
    pub max_module_bytes: u64,
    /// Period of the epoch ticker that drives the wall-clock backstop, in
    /// microseconds. Default 2000 (2 ms); range 100 us ..= 1 s.
    pub epoch_tick_us: u64,
    /// Compiled modules kept in memory. Default 64.
    pub memory_cache_modules: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            consume_fuel: true,
            max_concurrent_units: 16,
            max_memory_bytes: MAX_WASM32_MEMORY,
            max_output_bytes: 256 * 1024 * 1024,
            max_module_bytes: 64 * 1024 * 1024,
            epoch_tick_us: 2000,
            memory_cache_modules: 64,
        }
    }
}

impl SandboxConfig {
    pub(crate) fn validate(&self) -> Result<(), SandboxError> {
        let bad = |m: String| Err(SandboxError::Config(m));
        if self.max_concurrent_units == 0 || self.max_concurrent_units > 4096 {
            return bad(format!(
                "max_concurrent_units must be in 1..=4096, got {}",
                self.max_concurrent_units
            ));
        }
        if self.max_memory_bytes < WASM_PAGE || self.max_memory_bytes > MAX_WASM32_MEMORY {
            return bad(format!(
                "max_memory_bytes must be in {WASM_PAGE}..={MAX_WASM32_MEMORY}, got {}",
                self.max_memory_bytes
            ));
        }
        if usize::try_from(self.max_output_bytes).is_err() {
            return bad("max_output_bytes does not fit in memory".into());
        }
        if !(100..=1_000_000).contains(&self.epoch_tick_us) {
            return bad(format!(
                "epoch_tick_us must be in 100..=1000000, got {}",
                self.epoch_tick_us
            ));
        }
        Ok(())
    }

    pub(crate) fn epoch_tick(&self) -> Duration {
        Duration::from_micros(self.epoch_tick_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_json_defaults_and_names() {
        let l: Limits = serde_json::from_str("{}").unwrap();
        assert_eq!(l, Limits::default());
        let l: Limits = serde_json::from_str(r#"{"fuel": 7, "timeout_ms": 1500}"#).unwrap();
        assert_eq!(l.fuel, 7);
        assert_eq!(l.timeout, Duration::from_millis(1500));
        assert_eq!(l.memory_bytes, Limits::default().memory_bytes);
        let json = serde_json::to_value(Limits::default()).unwrap();
        assert_eq!(json["timeout_ms"], 30_000);
        assert!(serde_json::from_str::<Limits>(r#"{"gas": 1}"#).is_err());
    }

    #[test]
    fn limits_validation() {
        let cfg = SandboxConfig::default();
        assert!(Limits::default().validate(&cfg).is_ok());
        let too_much_mem = Limits {
            memory_bytes: MAX_WASM32_MEMORY + 1,
            ..Limits::default()
        };
        assert!(matches!(
            too_much_mem.validate(&cfg),
            Err(RunError::InvalidInput { .. })
        ));
        let zero_timeout = Limits {
            timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert!(zero_timeout.validate(&cfg).is_err());
        let big_output = Limits {
            max_output_bytes: cfg.max_output_bytes + 1,
            ..Limits::default()
        };
        assert!(big_output.validate(&cfg).is_err());
    }

    #[test]
    fn config_validation() {
        assert!(SandboxConfig::default().validate().is_ok());
        for bad in [
            SandboxConfig {
                max_concurrent_units: 0,
                ..SandboxConfig::default()
            },
            SandboxConfig {
                max_memory_bytes: MAX_WASM32_MEMORY * 2,
                ..SandboxConfig::default()
            },
            SandboxConfig {
                epoch_tick_us: 5,
                ..SandboxConfig::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(SandboxError::Config(_))));
        }
    }
}
