//! The unit runners: `slots` OS threads, each running one unit at a time in the
//! sandbox (whose own slot count is the same, so a runner never waits for the pool).
//!
//! Runners are plain threads rather than tokio blocking tasks so that a node that is
//! shutting down does not wait for a unit it has already handed back: the event loop
//! returns, the threads finish (or die with the process).

use crate::config::Behaviour;
use crate::outcome::{Disposition, classify};
use crate::tracker::UnitCell;
use lode_proto::wire::{UnitOutcome, UnitRef};
use lode_proto::{Did, Hash32};
use lode_sandbox::{CompiledModule, Limits, RunInput, Sandbox};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Stack of a runner thread: the wasm stack limit plus room for the host.
const RUNNER_STACK: usize = lode_sandbox::MAX_WASM_STACK + (3 << 20);

/// A unit ready to run.
#[derive(Debug)]
pub struct Job {
    pub unit: UnitRef,
    pub module: Arc<CompiledModule>,
    pub input: RunInput,
    pub limits: Limits,
    pub cell: Arc<UnitCell>,
    /// When the unit was accepted (for `elapsed_ms`).
    pub accepted_at: Instant,
}

/// A unit is done with (run, or decided without running).
#[derive(Debug)]
pub struct Done {
    pub unit: UnitRef,
    pub disposition: Disposition,
    /// From acceptance to the end (queueing, download and run), for the report.
    pub elapsed_ms: u64,
    /// Time in the sandbox, when the unit ran.
    pub run_us: Option<u64>,
}

/// The runner threads. Dropping every handle lets idle runners exit.
#[derive(Debug, Clone)]
pub struct RunnerPool {
    tx: mpsc::Sender<Job>,
}

impl RunnerPool {
    pub fn spawn(
        n: u32,
        sandbox: Arc<Sandbox>,
        done: tokio::sync::mpsc::UnboundedSender<Done>,
        behaviour: Behaviour,
        node: Did,
        lower_priority: bool,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let memory = Arc::new(Memory::default());
        // The sandbox's WASI calls block on the ambient tokio runtime; without one
        // wasmtime-wasi starts its own multi-threaded runtime (a thread per core).
        // Runners enter the node's runtime instead: they are not its workers, so
        // blocking on it from them is allowed.
        let runtime = tokio::runtime::Handle::try_current().ok();
        for i in 0..n.max(1) {
            let rx = Arc::clone(&rx);
            let sandbox = Arc::clone(&sandbox);
            let done = done.clone();
            let runtime = runtime.clone();
            let memory = Arc::clone(&memory);
            std::thread::Builder::new()
                .name(format!("lode-unit-{i}"))
                .stack_size(RUNNER_STACK)
                .spawn(move || {
                    let _runtime = runtime.as_ref().map(|h| h.enter());
                    if lower_priority && let Err(e) = crate::host::lower_priority() {
                        tracing::warn!(error = %e, "cannot lower the runner's priority");
                    }
                    runner(&rx, &sandbox, &done, behaviour, node, &memory)
                })?;
        }
        Ok(Self { tx })
    }

    /// Queues a unit. `false` if every runner is gone.
    pub fn submit(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

fn runner(
    rx: &Mutex<mpsc::Receiver<Job>>,
    sandbox: &Sandbox,
    done: &tokio::sync::mpsc::UnboundedSender<Done>,
    behaviour: Behaviour,
    node: Did,
    memory: &Memory,
) {
    let lazy = matches!(behaviour, Behaviour::Lazy { .. });
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        if !job.cell.try_start() {
            continue; // abandoned while queued
        }
        let started = Instant::now();
        let replay = if lazy && cheats(behaviour, &job.unit) {
            memory.recall()
        } else {
            None
        };
        let (disposition, run_us) = match replay {
            Some(old) => (Disposition::Report(old), None),
            None => {
                let d = classify(sandbox.run(&job.module, &job.input, &job.limits));
                let run_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                if lazy && let Disposition::Report(o) = &d {
                    memory.keep(o);
                }
                (
                    apply_behaviour(behaviour, &node, &job.unit, d),
                    Some(run_us),
                )
            }
        };
        let elapsed_ms = u64::try_from(job.accepted_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        if done
            .send(Done {
                unit: job.unit,
                disposition,
                elapsed_ms,
                run_us,
            })
            .is_err()
        {
            return; // the node is gone
        }
    }
}

/// A lazy node's memory: the last outcome it really computed, which it replays
/// (exit code, fuel and output) instead of running the units it cheats on.
#[derive(Debug, Default)]
struct Memory(Mutex<Option<UnitOutcome>>);

impl Memory {
    fn keep(&self, o: &UnitOutcome) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(o.clone());
    }

    fn recall(&self) -> Option<UnitOutcome> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Whether a dishonest behaviour applies to `unit` (the same units on every node).
pub fn cheats(behaviour: Behaviour, unit: &UnitRef) -> bool {
    let per_mille = match behaviour {
        Behaviour::Honest => return false,
        Behaviour::WrongOutput { per_mille }
        | Behaviour::ColludingWrongOutput { per_mille }
        | Behaviour::Lazy { per_mille } => per_mille,
    };
    let h = Hash32::sha256_parts(&[
        b"lode-node/cheat",
        unit.job.as_bytes(),
        &unit.unit.to_le_bytes(),
    ]);
    u16::from_le_bytes([h.0[0], h.0[1]]) % 1000 < per_mille
}

/// Turns an honest outcome into the dishonest one `behaviour` asks for.
pub fn apply_behaviour(
    behaviour: Behaviour,
    node: &Did,
    unit: &UnitRef,
    d: Disposition,
) -> Disposition {
    // A lazy node's cheat is not running the unit (see `runner`).
    if !cheats(behaviour, unit) || matches!(behaviour, Behaviour::Lazy { .. }) {
        return d;
    }
    let Disposition::Report(outcome) = d else {
        return d;
    };
    let corrupt = |stdout: Vec<u8>| -> Vec<u8> {
        match behaviour {
            Behaviour::WrongOutput { .. } => {
                Hash32::sha256_parts(&[node.public_key_bytes(), &stdout])
                    .0
                    .to_vec()
            }
            _ => {
                let mut s = stdout;
                s.extend_from_slice(b"\n(colluded)");
                s
            }
        }
    };
    Disposition::Report(match outcome {
        UnitOutcome::Completed {
            exit_code,
            fuel_used,
            stdout,
        } => UnitOutcome::Completed {
            exit_code,
            fuel_used,
            stdout: corrupt(stdout),
        },
        UnitOutcome::Failed { error, fuel_used } => UnitOutcome::Completed {
            exit_code: 0,
            fuel_used,
            stdout: corrupt(error.into_bytes()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::Keypair;

    fn unit(i: u32) -> UnitRef {
        UnitRef {
            job: Hash32::sha256(b"job"),
            unit: i,
        }
    }

    #[test]
    fn cheat_rate_selects_the_same_units_everywhere() {
        let all = (0..2000).map(unit).collect::<Vec<_>>();
        let n = |b: Behaviour| all.iter().filter(|u| cheats(b, u)).count();
        assert_eq!(n(Behaviour::Honest), 0);
        assert_eq!(n(Behaviour::Lazy { per_mille: 1000 }), 2000);
        assert_eq!(n(Behaviour::Lazy { per_mille: 0 }), 0);
        let quarter = n(Behaviour::WrongOutput { per_mille: 250 });
        assert!((400..600).contains(&quarter), "{quarter}");
        // Colluders and independent cheaters pick the same units.
        for u in &all {
            assert_eq!(
                cheats(Behaviour::WrongOutput { per_mille: 250 }, u),
                cheats(Behaviour::ColludingWrongOutput { per_mille: 250 }, u)
            );
        }
    }

    #[test]
    fn wrong_outputs_differ_per_node_colluding_ones_agree() {
        let a = Keypair::from_secret_bytes(&[1; 32]).did();
        let b = Keypair::from_secret_bytes(&[2; 32]).did();
        let honest = Disposition::Report(UnitOutcome::Completed {
            exit_code: 0,
            fuel_used: 10,
            stdout: b"42\n".to_vec(),
        });
        let u = unit(0);
        let wrong = Behaviour::WrongOutput { per_mille: 1000 };
        let wa = apply_behaviour(wrong, &a, &u, honest.clone());
        let wb = apply_behaviour(wrong, &b, &u, honest.clone());
        assert_ne!(wa, honest);
        assert_ne!(wa, wb);
        let col = Behaviour::ColludingWrongOutput { per_mille: 1000 };
        let ca = apply_behaviour(col, &a, &u, honest.clone());
        assert_ne!(ca, honest);
        assert_eq!(ca, apply_behaviour(col, &b, &u, honest.clone()));
        assert_eq!(
            apply_behaviour(Behaviour::Honest, &a, &u, honest.clone()),
            honest
        );
        let hb = Disposition::HandBack("timeout".into());
        assert_eq!(apply_behaviour(wrong, &a, &u, hb.clone()), hb);
    }
}
