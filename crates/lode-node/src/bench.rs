//! The self-benchmark: how much fuel one slot burns per second.
//!
//! It runs a fixed CPU-bound module (an integer hash loop with memory traffic,
//! built here from WAT) in the real sandbox, with real fuel metering, until its
//! fuel runs out. Fuel per run starts small and doubles until one run takes a
//! noticeable time; runs continue until the time budget is spent. The figure is
//! total fuel over total wall time of the runs (compiling excluded), on one thread:
//! fuel per second *per slot*.

use lode_sandbox::{Limits, RunError, RunInput, Sandbox};
use std::time::{Duration, Instant};

/// The benchmark's work unit: an endless loop of 64-bit LCG steps, each stored to
/// and loaded from linear memory (one 64 KiB page, walked in 8-byte steps). It only
/// stops when its fuel is used up.
pub const BENCH_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start")
    (local $x i64) (local $p i32)
    (local.set $x (i64.const 88172645463325252))
    (loop $spin
      (local.set $x
        (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005))
                 (i64.const 1442695040888963407)))
      (local.set $p (i32.and (i32.add (local.get $p) (i32.const 8)) (i32.const 65528)))
      (i64.store (local.get $p) (i64.xor (local.get $x) (i64.load (local.get $p))))
      (br $spin))))"#;

/// The benchmark module in binary form.
pub fn bench_module() -> Vec<u8> {
    // The text above is fixed and valid: parsing cannot fail.
    wat::parse_str(BENCH_WAT).unwrap_or_default()
}

/// Result of the self-benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchResult {
    pub fuel_per_s: u64,
    pub fuel: u64,
    pub elapsed: Duration,
    pub runs: u32,
}

/// Runs the benchmark on the calling thread for about `budget` (blocking).
pub fn self_benchmark(sandbox: &Sandbox, budget: Duration) -> Result<BenchResult, RunError> {
    let module = sandbox.compile(&bench_module())?;
    let input = RunInput::default();
    let mut fuel_per_run: u64 = 1_000_000;
    let mut fuel = 0u64;
    let mut elapsed = Duration::ZERO;
    let mut runs = 0u32;
    // A run should take at least 1/8 of the budget (at most ~10 doublings).
    let target_run = budget / 8;
    loop {
        let limits = Limits {
            fuel: fuel_per_run,
            memory_bytes: 64 * 1024,
            timeout: Duration::from_secs(60),
            max_output_bytes: 0,
        };
        let start = Instant::now();
        let r = sandbox.run(&module, &input, &limits);
        let took = start.elapsed();
        match r {
            Err(RunError::OutOfFuel { fuel_limit }) => {
                fuel = fuel.saturating_add(fuel_limit);
                elapsed += took;
                runs += 1;
            }
            Err(e) => return Err(e),
            Ok(_) => {
                return Err(RunError::Internal {
                    reason: "the benchmark loop returned".into(),
                });
            }
        }
        if elapsed >= budget {
            break;
        }
        if took < target_run && fuel_per_run < u64::MAX / 4 {
            fuel_per_run *= 2;
        }
    }
    let nanos = elapsed.as_nanos().max(1);
    let fuel_per_s = u64::try_from(u128::from(fuel) * 1_000_000_000 / nanos).unwrap_or(u64::MAX);
    Ok(BenchResult {
        fuel_per_s,
        fuel,
        elapsed,
        runs,
    })
}
