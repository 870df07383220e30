//! The sandbox: one wasmtime engine, its module caches, the instance pool and
//! the epoch ticker; `compile` and `run`.

use crate::cache::DiskCache;
use crate::error::{RunError, SandboxError, TrapKind};
use crate::host::{self, HostState, MAX_TABLE_ELEMENTS, MAX_TABLES, RandomStream};
use crate::limits::{Limits, SandboxConfig};
use crate::nan::{self, NAN_REWRITE_VERSION};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wasmtime::{
    Config, Engine, ExternType, FuncType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    ModuleVersionStrategy, OptLevel, PoolingAllocationConfig, Store, Trap,
};

/// The fixed maximum WebAssembly stack of every unit, in bytes. Part of the
/// sandbox semantics (recursion deeper than this traps with
/// [`TrapKind::StackOverflow`]), so it is a constant, not a setting. `run`
/// needs this much plus some headroom free on the calling thread's stack
/// (std and tokio blocking threads have 2 MiB).
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// Input of one work unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInput {
    /// Bytes the unit reads on stdin.
    pub stdin: Vec<u8>,
    /// Arguments after `argv[0]` (which is always `"unit"`).
    pub args: Vec<String>,
}

/// A unit that ran to completion: `_start` returned (exit code 0) or the unit
/// called `proc_exit(n)` (exit code `n`, which may be non-zero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    pub exit_code: i32,
    /// Everything the unit wrote to stdout (at most `Limits::max_output_bytes`).
    pub stdout: Vec<u8>,
    /// Fuel burned: `Limits::fuel` minus the fuel left when the unit stopped.
    /// Deterministic for a given module and input. 0 when the sandbox runs
    /// without metering (`SandboxConfig::consume_fuel == false`).
    pub fuel_used: u64,
}

/// Where a [`CompiledModule`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleOrigin {
    /// Compiled from the wasm bytes by this process.
    Compiled,
    /// Loaded from this sandbox's on-disk cache (an artifact this machine
    /// compiled earlier, integrity-checked before loading).
    DiskCache,
}

/// A validated, compiled WASI command module, ready to instantiate quickly.
/// Shared (`Arc`) between any number of concurrent runs.
pub struct CompiledModule {
    sha256: [u8; 32],
    module: Module,
    pre: InstancePre<HostState>,
    origin: ModuleOrigin,
}

impl CompiledModule {
    /// SHA-256 of the wasm bytes (the module's content address).
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    pub fn origin(&self) -> ModuleOrigin {
        self.origin
    }
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("sha256", &self.sha256_hex())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// What a node reports about its sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineFingerprint {
    /// Everything that decides results and fuel: crate and wasmtime major
    /// version, fuel metering, stack size, float and SIMD rules, virtual
    /// clocks and random stream. Replicas of a unit must share this to agree.
    pub semantics: String,
    /// First 16 hex digits of SHA-256(`semantics`).
    pub semantics_id: String,
    /// Hash of wasmtime's precompile compatibility hash (exact wasmtime
    /// version, compiler flags, CPU features): identifies this machine's
    /// compiled code, and keys the on-disk cache. Differs between machines
    /// without affecting results.
    pub engine_id: String,
}

impl std::fmt::Display for EngineFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (semantics {}, engine {})",
            self.semantics, self.semantics_id, self.engine_id
        )
    }
}

/// A deterministic, fuel-metered WebAssembly sandbox for untrusted work units.
///
/// `Send + Sync`: share one per process (e.g. in an `Arc`) and call
/// [`Sandbox::run`] from many threads at once; up to
/// `SandboxConfig::max_concurrent_units` run in parallel, further calls wait
/// for a slot. `run` blocks its thread; from async code call it inside
/// `tokio::task::spawn_blocking`.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    config: SandboxConfig,
    provided: HashMap<(String, String), FuncType>,
    memory_cache: Mutex<MemoryCache>,
    disk: Option<DiskCache>,
    slots: Slots,
    random: RandomStream,
    fingerprint: EngineFingerprint,
    // Declared last: dropped (stopped and joined) after everything else.
    _ticker: Ticker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Build the engine, the WASI linker, the instance pool and the epoch
    /// ticker; open the on-disk cache if configured.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        config.validate()?;
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| SandboxError::Engine(error_chain(&e)))?;

        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| SandboxError::Engine(error_chain(&e)))?;

        let random = RandomStream::new();
        // Record what the linker provides, to name the first unsupported
        // import of a module precisely.
        let provided = {
            let mut store = Store::new(&engine, HostState::new(&[], &[], &random, 0, 0, None));
            let defined: Vec<_> = linker
                .iter(&mut store)
                .map(|(module, name, ext)| (module.to_string(), name.to_string(), ext))
                .collect();
            defined
                .into_iter()
                .filter_map(|(module, name, ext)| match ext.ty(&store) {
                    ExternType::Func(ft) => Some(((module, name), ft)),
                    _ => None,
                })
                .collect()
        };

        let engine_id = engine_id(&engine);
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, engine_id.clone())?),
            None => None,
        };
        let semantics = semantics(&config);
        let fingerprint = EngineFingerprint {
            semantics_id: hex::encode(Sha256::digest(semantics.as_bytes()))[..16].to_string(),
            semantics,
            engine_id,
        };
        let ticker = Ticker::spawn(engine.clone(), config.epoch_tick())
            .map_err(|e| SandboxError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self {
            slots: Slots::new(config.max_concurrent_units),
            memory_cache: Mutex::new(MemoryCache::new(config.memory_cache_modules)),
            engine,
            linker,
            provided,
            disk,
            random,
            fingerprint,
            config,
            _ticker: ticker,
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    pub fn fingerprint(&self) -> &EngineFingerprint {
        &self.fingerprint
    }

    /// Validate and compile `wasm` (a WASI preview1 command module in the
    /// binary format), or fetch it from the memory or disk cache.
    ///
    /// Errors: [`RunError::InvalidModule`] (bad bytes, not a command, too
    /// large) and [`RunError::UnsupportedImport`] (naming the first import
    /// the sandbox does not provide).
    pub fn compile(&self, wasm: &[u8]) -> Result<Arc<CompiledModule>, RunError> {
        if wasm.len() as u64 > self.config.max_module_bytes {
            return Err(RunError::InvalidModule {
                reason: format!(
                    "module is {} bytes, above the limit of {} bytes",
                    wasm.len(),
                    self.config.max_module_bytes
                ),
            });
        }
        let sha256: [u8; 32] = Sha256::digest(wasm).into();
        if let Some(m) = self.memory_cache().get(&sha256) {
            return Ok(m);
        }

        let from_disk = self
            .disk
            .as_ref()
            .and_then(|d| d.load(&sha256))
            .and_then(|artifact| self.deserialize_own_artifact(&artifact));
        let (module, origin) = match from_disk {
            Some(m) => (m, ModuleOrigin::DiskCache),
            None => {
                if !wasm.starts_with(b"\0asm") {
                    return Err(RunError::InvalidModule {
                        reason: "not a WebAssembly binary (missing \\0asm magic)".into(),
                    });
                }
                let invalid = |reason: String| RunError::InvalidModule { reason };
                // Validate the module as given (errors refer to its bytes),
                // then compile its NaN-canonicalized rewrite.
                Module::validate(&self.engine, wasm).map_err(|e| invalid(error_chain(&e)))?;
                // Reject unknown imports before paying for compilation.
                self.precheck_import_names(wasm)?;
                let rewritten = nan::canonicalize_observed_nans(wasm).map_err(invalid)?;
                let m = Module::from_binary(&self.engine, &rewritten)
                    .map_err(|e| invalid(error_chain(&e)))?;
                (m, ModuleOrigin::Compiled)
            }
        };

        check_command(&module)?;
        self.check_imports(&module)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| RunError::InvalidModule {
                reason: error_chain(&e),
            })?;

        if origin == ModuleOrigin::Compiled
            && let Some(disk) = &self.disk
        {
            match module.serialize() {
                Ok(artifact) => disk.store(&sha256, &artifact),
                Err(e) => tracing::warn!(error = %error_chain(&e), "cannot serialize module"),
            }
        }
        let compiled = Arc::new(CompiledModule {
            sha256,
            module,
            pre,
            origin,
        });
        self.memory_cache().insert(sha256, Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Load an artifact from this sandbox's own disk cache.
    ///
    /// `None` if wasmtime rejects it (e.g. written by an older wasmtime that
    /// happened to hash alike); the caller then recompiles from wasm.
    #[allow(unsafe_code)]
    fn deserialize_own_artifact(&self, artifact: &[u8]) -> Option<Module> {
        // SAFETY: `Module::deserialize` trusts its input to be machine code
        // that wasmtime produced for a compatible engine. These bytes come
        // only from `DiskCache::load`, which returns an artifact only if its
        // keyed-BLAKE3 MAC verifies under this cache's secret key (created
        // by this cache, mode 0600) over exactly these in-memory bytes, and
        // bound to the entry name (wasm SHA-256 + this engine's
        // compatibility hash). Only `Sandbox::compile` writes entries, from
        // `Module::serialize` of a module this machine compiled from wasm.
        // So the bytes are our own wasmtime output for this engine
        // configuration; wasmtime additionally checks version and flags and
        // errors (handled below) on any mismatch. Nothing from the network
        // ever reaches this function.
        match unsafe { Module::deserialize(&self.engine, artifact) } {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cached module rejected by wasmtime; recompiling");
                None
            }
        }
    }

    /// Names-only import check on the raw (already validated) bytes: every
    /// import must be a function the linker defines. Types are checked after
    /// compiling, in [`Sandbox::check_imports`].
    fn precheck_import_names(&self, wasm: &[u8]) -> Result<(), RunError> {
        use wasmtime::wasmparser::{Parser, Payload, TypeRef};
        for payload in Parser::new(0).parse_all(wasm) {
            let Ok(Payload::ImportSection(reader)) = payload else {
                continue;
            };
            for import in reader.into_imports() {
                let Ok(import) = import else {
                    break; // cannot happen after validation; the full check follows
                };
                let key = (import.module.to_string(), import.name.to_string());
                if !matches!(import.ty, TypeRef::Func(_)) || !self.provided.contains_key(&key) {
                    return Err(RunError::UnsupportedImport {
                        module: key.0,
                        name: key.1,
                    });
                }
            }
            break;
        }
        Ok(())
    }

    fn check_imports(&self, module: &Module) -> Result<(), RunError> {
        for import in module.imports() {
            let unsupported = || RunError::UnsupportedImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            };
            let key = (import.module().to_string(), import.name().to_string());
            match (self.provided.get(&key), import.ty()) {
                (Some(provided), ExternType::Func(wanted)) if provided.matches(&wanted) => {}
                _ => return Err(unsupported()),
            }
        }
        Ok(())
    }

    /// Compile (or fetch from cache) and run in one call.
    pub fn run_wasm(
        &self,
        wasm: &[u8],
        input: &RunInput,
        limits: &Limits,
    ) -> Result<Completed, RunError> {
        let module = self.compile(wasm)?;
        self.run(&module, input, limits)
    }

    /// Run one work unit: a fresh instance of `module` with `input` on stdin
    /// and as arguments, under `limits`. Blocks until the unit completes or
    /// fails; never panics on anything the unit does. The unit's stderr is
    /// discarded.
    pub fn run(
        &self,
        module: &CompiledModule,
        input: &RunInput,
        limits: &Limits,
    ) -> Result<Completed, RunError> {
        self.run_inner(module, input, limits, None).0
    }

    /// [`Sandbox::run`], also capturing the first `max_stderr_bytes` the
    /// unit writes to stderr (the rest is dropped silently). stderr is
    /// diagnostics for the module's author; it is not part of the result and
    /// never affects it.
    pub fn run_with_stderr(
        &self,
        module: &CompiledModule,
        input: &RunInput,
        limits: &Limits,
        max_stderr_bytes: usize,
    ) -> (Result<Completed, RunError>, Vec<u8>) {
        self.run_inner(module, input, limits, Some(max_stderr_bytes))
    }

    fn run_inner(
        &self,
        module: &CompiledModule,
        input: &RunInput,
        limits: &Limits,
        stderr_capture: Option<usize>,
    ) -> (Result<Completed, RunError>, Vec<u8>) {
        let mut stderr = Vec::new();
        let outcome = self.execute(module, input, limits, stderr_capture, &mut stderr);
        (outcome, stderr)
    }

    fn execute(
        &self,
        module: &CompiledModule,
        input: &RunInput,
        limits: &Limits,
        stderr_capture: Option<usize>,
        stderr: &mut Vec<u8>,
    ) -> Result<Completed, RunError> {
        limits.validate(&self.config)?;
        if let Some(bad) = input.args.iter().position(|a| a.contains('\0')) {
            return Err(RunError::InvalidInput {
                reason: format!("argument {} contains a NUL byte", bad + 1),
            });
        }
        if !Engine::same(module.module.engine(), &self.engine) {
            return Err(RunError::Internal {
                reason: "module was compiled by a different sandbox".into(),
            });
        }
        let max_output = usize::try_from(limits.max_output_bytes).unwrap_or(usize::MAX);

        let _slot = self.slots.acquire();
        let state = HostState::new(
            &input.stdin,
            &input.args,
            &self.random,
            limits.memory_bytes,
            max_output,
            stderr_capture,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        if self.config.consume_fuel {
            store.set_fuel(limits.fuel).map_err(internal)?;
        }
        store.set_epoch_deadline(epoch_ticks(limits.timeout, self.config.epoch_tick()));
        store.epoch_deadline_trap();

        let outcome = match module.pre.instantiate(&mut store) {
            Ok(instance) => match instance.get_typed_func::<(), ()>(&mut store, "_start") {
                Ok(start) => start.call(&mut store, ()).map_err(|e| (e, Phase::Running)),
                Err(e) => Err((e, Phase::Instantiating)),
            },
            Err(e) => Err((e, Phase::Instantiating)),
        };

        let fuel_used = if self.config.consume_fuel {
            let left = store.get_fuel().map_err(internal)?;
            limits.fuel.saturating_sub(left)
        } else {
            0
        };
        if let Some(captured) = &store.data().stderr {
            *stderr = captured.take();
        }
        let exit_code = match outcome {
            Ok(()) => 0,
            Err((err, phase)) => classify(err, phase, store.data(), limits, fuel_used)?,
        };
        let stdout = store.data().stdout.take();
        Ok(Completed {
            exit_code,
            stdout,
            fuel_used,
        })
    }

    fn memory_cache(&self) -> MutexGuard<'_, MemoryCache> {
        // The cache map stays consistent even if a holder panicked.
        self.memory_cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Instantiating,
    Running,
}

/// Turn a wasmtime error from instantiating or running a unit into its exit
/// code (a `proc_exit`) or its typed error.
fn classify(
    err: wasmtime::Error,
    phase: Phase,
    state: &HostState,
    limits: &Limits,
    fuel_used: u64,
) -> Result<i32, RunError> {
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Ok(exit.0);
    }
    if state.stdout.overflowed() || err.is::<host::OutputLimitExceeded>() {
        return Err(RunError::OutputTooLarge {
            limit_bytes: limits.max_output_bytes,
            fuel_used,
        });
    }
    if state.limiter.hit || err.is::<host::MemoryLimitExceeded>() {
        return Err(RunError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
            fuel_used,
        });
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return Err(match *trap {
            Trap::OutOfFuel => RunError::OutOfFuel {
                fuel_limit: limits.fuel,
            },
            Trap::Interrupt => RunError::Timeout {
                timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
                fuel_used,
            },
            other => RunError::Trap {
                kind: TrapKind::from_wasmtime(other),
                fuel_used,
            },
        });
    }
    Err(match phase {
        // Instantiation failing for a reason other than a trap or a limit is a
        // property of the module (e.g. it needs more tables or table elements
        // than the pool allows).
        Phase::Instantiating => RunError::InvalidModule {
            reason: error_chain(&err),
        },
        Phase::Running => RunError::Trap {
            kind: TrapKind::Host(error_chain(&err)),
            fuel_used,
        },
    })
}

fn internal(e: wasmtime::Error) -> RunError {
    RunError::Internal {
        reason: error_chain(&e),
    }
}

/// `e` and its causes, joined by ": ".
fn error_chain(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if parts.last() != Some(&s) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// A WASI command exports `_start: [] -> []` and its `memory`.
fn check_command(module: &Module) -> Result<(), RunError> {
    let invalid = |reason: &str| RunError::InvalidModule {
        reason: reason.to_string(),
    };
    match module.get_export("_start") {
        Some(ExternType::Func(ft)) if ft.params().len() == 0 && ft.results().len() == 0 => {}
        Some(_) => return Err(invalid("`_start` export is not a function [] -> []")),
        None => {
            return Err(invalid(
                "no `_start` export: not a WASI command module (reactors and libraries are not work units)",
            ));
        }
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => Ok(()),
        _ => Err(invalid(
            "no exported `memory`: WASI modules must export their memory",
        )),
    }
}

const KEEP_RESIDENT_BYTES: usize = 1024 * 1024;
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 * 1024;

fn engine_config(cfg: &SandboxConfig) -> Config {
    let units = cfg.max_concurrent_units;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(units)
        .total_memories(units)
        .total_tables(units * MAX_TABLES as u32)
        .total_component_instances(0)
        .total_gc_heaps(0)
        .max_memories_per_module(1)
        .max_tables_per_module(MAX_TABLES as u32)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(cfg.max_memory_bytes as usize);
    // Reset the first MiB of a used memory slot (and table) with memset
    // instead of madvise: no TLB shootdown and no page faults on reuse. This
    // cuts the per-unit overhead of small units by about 3x (see
    // docs/bench/lode-sandbox.md); larger memories are still decommitted.
    pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES);

    let mut c = Config::new();
    c.consume_fuel(cfg.consume_fuel)
        .epoch_interruption(true)
        // Determinism (together with the NaN rewrite in `nan.rs`).
        // NaN bits are made deterministic by rewriting the module (see
        // `nan.rs`), at the points where they can be observed; canonicalizing
        // after every float operation here would cost ~5x on float code.
        .cranelift_nan_canonicalization(false)
        .relaxed_simd_deterministic(true)
        .wasm_threads(false)
        .wasm_shared_everything_threads(false)
        .max_wasm_stack(MAX_WASM_STACK)
        // Smaller attack surface: proposals a C/Rust WASI command does not
        // need, and whose memory (GC heaps) would sit outside the memory cap.
        .wasm_component_model(false)
        .wasm_gc(false)
        .wasm_exceptions(false)
        .wasm_stack_switching(false)
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        // Traps are classified by code; backtraces would only cost time.
        .wasm_backtrace_max_frames(None)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

/// The string that pins down result semantics (see [`EngineFingerprint`]).
fn semantics(cfg: &SandboxConfig) -> String {
    format!(
        "lode-sandbox/{} wasmtime/{} wasi=preview1 fuel={} stack={} {} \
         relaxed-simd=deterministic threads=off clocks=virtual/v1 random=sha256-ctr/v1",
        env!("CARGO_PKG_VERSION"),
        ModuleVersionStrategy::default().as_str(),
        if cfg.consume_fuel {
            "wasmtime-default"
        } else {
            "off"
        },
        MAX_WASM_STACK,
        NAN_REWRITE_VERSION,
    )
}

/// Hex of SHA-256 over wasmtime's compatibility hash stream and the version
/// of the module rewrite applied before compiling (first 16 digits).
fn engine_id(engine: &Engine) -> String {
    struct ShaHasher(Sha256);
    impl std::hash::Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0 // unused: the digest is taken from the inner state
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.update(NAN_REWRITE_VERSION.as_bytes());
    h.0.update(nan::NAN_REWRITE_SOURCE.as_bytes());
    hex::encode(h.0.finalize())[..16].to_string()
}

/// Epoch ticks to allow for `timeout`: rounded up, plus one because the
/// current tick is already partly over. The unit is stopped no earlier than
/// `timeout` and at most about two ticks later.
fn epoch_ticks(timeout: Duration, tick: Duration) -> u64 {
    let t = timeout.as_nanos();
    let k = tick.as_nanos().max(1);
    u64::try_from(t.div_ceil(k)).unwrap_or(u64::MAX / 2) + 1
}

/// Background thread advancing the engine's epoch: the wall-clock backstop.
/// The epoch counts whole ticks of *real* time since the thread started: a
/// late wake-up (a loaded machine) catches up with several increments, so
/// scheduling delays never stretch a timeout. Stopped and joined on drop.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    fn spawn(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("lode-sandbox-epoch".into())
            .spawn(move || {
                let start = Instant::now();
                let mut ticks: u128 = 0;
                loop {
                    let due = (ticks + 1) * tick.as_nanos();
                    let now = start.elapsed().as_nanos();
                    let wait = Duration::from_nanos(
                        u64::try_from(due.saturating_sub(now)).unwrap_or(u64::MAX),
                    );
                    match rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {
                            let elapsed = start.elapsed().as_nanos() / tick.as_nanos();
                            while ticks < elapsed {
                                engine.increment_epoch();
                                ticks += 1;
                            }
                        }
                        // Stop requested, or the sandbox is gone.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(Self {
            stop: Some(tx),
            handle: Some(handle),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Counting semaphore over the pool's instance slots.
struct Slots {
    free: Mutex<u32>,
    available: Condvar,
}

struct SlotGuard<'a>(&'a Slots);

impl Slots {
    fn new(n: u32) -> Self {
        Self {
            free: Mutex::new(n),
            available: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, u32> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.lock();
        while *free == 0 {
            free = self.available.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.lock() += 1;
        self.0.available.notify_one();
    }
}

/// Bounded map of compiled modules; the oldest entry goes first when full.
struct MemoryCache {
    map: HashMap<[u8; 32], Arc<CompiledModule>>,
    order: VecDeque<[u8; 32]>,
    capacity: usize,
}

impl MemoryCache {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, k: &[u8; 32]) -> Option<Arc<CompiledModule>> {
        self.map.get(k).cloned()
    }

    fn insert(&mut self, k: [u8; 32], v: Arc<CompiledModule>) {
        if self.capacity == 0 {
            return;
        }
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ticks_round_up() {
        let ms = Duration::from_millis;
        assert_eq!(epoch_ticks(ms(10), ms(2)), 6);
        assert_eq!(epoch_ticks(ms(11), ms(2)), 7);
        assert_eq!(epoch_ticks(ms(1), ms(2)), 2);
        assert!(epoch_ticks(Duration::MAX, Duration::from_nanos(1)) > 1_000_000);
    }

    #[test]
    fn sandbox_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sandbox>();
        assert_send_sync::<Arc<CompiledModule>>();
    }
}
