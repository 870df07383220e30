//! The host side of a unit: its WASI preview1 context with virtual clocks,
//! a fixed random stream, in-memory stdin, a capped stdout, and the memory
//! limiter.
//!
//! wasmtime-wasi provides preview1; two of its functions are replaced
//! (shadowed in the linker) because their stock behaviour is not acceptable
//! for untrusted, deterministic units:
//! * `poll_oneoff` would really sleep the host thread for as long as the unit
//!   asks (epoch interruption cannot stop a thread blocked in the host);
//!   here clock subscriptions fire at once and fd subscriptions report
//!   `ENOTSUP`;
//! * `proc_exit` rejects codes >= 126 with an error; here every code is a
//!   normal exit with that code.

use bytes::Bytes;
use std::cell::Cell;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::{Caller, Linker, ResourceLimiter};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, I32Exit, WasiCtxBuilder};

/// `argv[0]` of every unit.
pub const ARGV0: &str = "unit";

/// Seconds since the UNIX epoch reported by the virtual wall clock.
pub const VIRTUAL_WALL_CLOCK_SECS: u64 = 0;

/// How far the virtual monotonic clock advances on each read, in nanoseconds.
pub const VIRTUAL_MONOTONIC_STEP_NS: u64 = 1_000;

/// Largest `random_get` request, in bytes (larger requests trap).
pub const MAX_RANDOM_REQUEST: u64 = 1024 * 1024;

/// Length of the fixed pseudo-random stream handed out by `random_get`.
const RANDOM_STREAM_LEN: usize = 4096;

/// Per-store state of one unit.
pub(crate) struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stdout: CappedOutput,
    pub(crate) stderr: Option<CappedOutput>,
}

impl HostState {
    pub(crate) fn new(
        stdin: &[u8],
        args: &[String],
        random: &RandomStream,
        memory_limit: u64,
        max_output: usize,
        stderr_capture: Option<usize>,
    ) -> Self {
        let stdout = CappedOutput::new(max_output, Overflow::Trap);
        let stderr = stderr_capture.map(|cap| CappedOutput::new(cap, Overflow::Truncate));
        let mut b = WasiCtxBuilder::new();
        if let Some(stderr) = &stderr {
            b.stderr(stderr.clone());
        }
        b.stdin(MemoryInputPipe::new(Bytes::copy_from_slice(stdin)))
            .stdout(stdout.clone())
            .arg(ARGV0)
            .args(args)
            .wall_clock(VirtualWallClock)
            .monotonic_clock(VirtualMonotonicClock::default())
            .secure_random(wasmtime_wasi::Deterministic::new(random.secure.to_vec()))
            .insecure_random(wasmtime_wasi::Deterministic::new(random.insecure.to_vec()))
            .insecure_random_seed(random.seed)
            .max_random_size(MAX_RANDOM_REQUEST);
        // Environment, preopened directories and network stay at the
        // builder's defaults: empty, none, none. stderr is discarded unless
        // captured for diagnostics.
        Self {
            wasi: b.build_p1(),
            limiter: MemoryLimiter {
                limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
                hit: false,
            },
            stdout,
            stderr,
        }
    }
}

/// The fixed "random" bytes every unit sees: SHA-256 in counter mode over a
/// public constant. Deterministic by design, so never a secret.
#[derive(Debug)]
pub(crate) struct RandomStream {
    secure: Vec<u8>,
    insecure: Vec<u8>,
    seed: u128,
}

impl RandomStream {
    pub(crate) fn new() -> Self {
        use sha2::{Digest, Sha256};
        let expand = |label: &[u8]| {
            let mut out = Vec::with_capacity(RANDOM_STREAM_LEN);
            let mut counter = 0u64;
            while out.len() < RANDOM_STREAM_LEN {
                let mut h = Sha256::new();
                h.update(b"lode-sandbox/random/v1/");
                h.update(label);
                h.update(counter.to_le_bytes());
                out.extend_from_slice(&h.finalize());
                counter += 1;
            }
            out
        };
        let seed_bytes = expand(b"insecure-seed");
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&seed_bytes[..16]);
        Self {
            secure: expand(b"secure"),
            insecure: expand(b"insecure"),
            seed: u128::from_le_bytes(seed),
        }
    }
}

/// Wall clock frozen at [`VIRTUAL_WALL_CLOCK_SECS`].
struct VirtualWallClock;

impl HostWallClock for VirtualWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(VIRTUAL_WALL_CLOCK_SECS)
    }
}

/// Monotonic clock that starts at 0 and advances by a fixed step on every
/// read: time "passes" only as a function of what the unit does.
#[derive(Default)]
struct VirtualMonotonicClock {
    now: Cell<u64>,
}

impl HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        VIRTUAL_MONOTONIC_STEP_NS
    }
    fn now(&self) -> u64 {
        let t = self.now.get();
        self.now.set(t.saturating_add(VIRTUAL_MONOTONIC_STEP_NS));
        t
    }
}

/// Marker error: the unit's stdout went over its cap.
#[derive(Debug)]
pub(crate) struct OutputLimitExceeded;

impl std::fmt::Display for OutputLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout limit exceeded")
    }
}

impl std::error::Error for OutputLimitExceeded {}

/// Marker error: the unit asked for more linear memory than its limit.
#[derive(Debug)]
pub(crate) struct MemoryLimitExceeded;

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitExceeded {}

#[derive(Debug)]
struct OutputBuf {
    data: Vec<u8>,
    cap: usize,
    overflow: Overflow,
    overflowed: bool,
}

/// What a [`CappedOutput`] does with a write that would cross its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Refuse it whole and trap the unit (stdout: the result must be complete).
    Trap,
    /// Keep what fits, drop the rest, report success (captured stderr, which
    /// is diagnostics only).
    Truncate,
}

/// An output stream of a unit: an in-memory buffer that never grows past
/// `cap`. For stdout the write that would cross the cap is refused whole and
/// traps the unit, so the host holds at most `cap` bytes whatever the unit
/// writes.
#[derive(Debug, Clone)]
pub(crate) struct CappedOutput {
    inner: Arc<Mutex<OutputBuf>>,
}

impl CappedOutput {
    fn new(cap: usize, overflow: Overflow) -> Self {
        Self {
            inner: Arc::new(Mutex::new(OutputBuf {
                data: Vec::new(),
                cap,
                overflow,
                overflowed: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutputBuf> {
        // A panic while holding this lock cannot leave the buffer in an
        // inconsistent state (appends are all-or-nothing), so poisoning is
        // ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append `bytes`, or refuse (and remember) if that would cross the cap.
    fn append(&self, bytes: &[u8]) -> Result<(), OutputLimitExceeded> {
        let mut buf = self.lock();
        let room = buf.cap - buf.data.len();
        if bytes.len() > room || buf.overflowed {
            buf.overflowed = true;
            if buf.overflow == Overflow::Truncate {
                buf.data.extend_from_slice(&bytes[..room.min(bytes.len())]);
                return Ok(());
            }
            return Err(OutputLimitExceeded);
        }
        buf.data.extend_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.lock().data)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().data.len()
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Permit handed to writers; any write up to this size is attempted at once
/// (and refused if it crosses the cap).
const WRITE_PERMIT: usize = 64 * 1024;

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Memory cap of a unit. Growing past the limit (or instantiating a module
/// whose initial memory is past it) traps with [`MemoryLimitExceeded`]
/// instead of letting `memory.grow` return -1, so "too much memory" is one
/// clear, deterministic outcome.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The pooling allocator caps table elements; below that, allow.
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }
    fn memories(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// Table elements per table (pooling allocator slot size).
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Tables per module.
pub(crate) const MAX_TABLES: usize = 4;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOTSUP: i32 = 58;

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_WRITE: u8 = 2;

/// Add WASI preview1 to `linker`, with the deterministic replacements for
/// `poll_oneoff` and `proc_exit`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |s: &mut HostState| &mut s.wasi)?;
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "proc_exit",
        |_caller: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::new(I32Exit(code)))
        },
    )?;
    linker.func_wrap("wasi_snapshot_preview1", "poll_oneoff", poll_oneoff)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// `poll_oneoff(in, out, nsubscriptions, nevents_out) -> errno`.
///
/// Virtual time: every clock subscription has already expired, so it fires at
/// once (a `sleep` returns immediately). There is nothing to wait for on
/// fds either (stdin is fully in memory, stdout never blocks); fd
/// subscriptions get an event carrying `ENOTSUP`. All events are reported in
/// subscription order.
fn poll_oneoff(
    mut caller: Caller<'_, HostState>,
    subs_ptr: i32,
    events_ptr: i32,
    nsubs: i32,
    nevents_ptr: i32,
) -> wasmtime::Result<i32> {
    let Some(memory) = caller
        .get_export("memory")
        .and_then(wasmtime::Extern::into_memory)
    else {
        return Ok(ERRNO_FAULT);
    };
    let mem = memory.data_mut(&mut caller);
    let nsubs = nsubs as u32 as usize;
    if nsubs == 0 {
        return Ok(ERRNO_INVAL);
    }
    let range = |ptr: i32, len: usize| -> Option<std::ops::Range<usize>> {
        let start = ptr as u32 as usize;
        let end = start.checked_add(len)?;
        (end <= mem.len()).then_some(start..end)
    };
    let (Some(subs), Some(events), Some(nevents)) = (
        nsubs
            .checked_mul(SUBSCRIPTION_SIZE)
            .and_then(|l| range(subs_ptr, l)),
        nsubs
            .checked_mul(EVENT_SIZE)
            .and_then(|l| range(events_ptr, l)),
        range(nevents_ptr, 4),
    ) else {
        return Ok(ERRNO_FAULT);
    };
    let mut out = Vec::with_capacity(nsubs * EVENT_SIZE);
    for i in 0..nsubs {
        let sub = &mem[subs.start + i * SUBSCRIPTION_SIZE..][..SUBSCRIPTION_SIZE];
        let tag = sub[8];
        let error = match tag {
            EVENTTYPE_CLOCK => ERRNO_SUCCESS,
            1 | EVENTTYPE_FD_WRITE => ERRNO_NOTSUP,
            _ => return Ok(ERRNO_INVAL),
        };
        let mut ev = [0u8; EVENT_SIZE];
        ev[0..8].copy_from_slice(&sub[0..8]); // userdata
        ev[8..10].copy_from_slice(&(error as u16).to_le_bytes());
        ev[10] = tag;
        out.extend_from_slice(&ev);
    }
    mem[events].copy_from_slice(&out);
    mem[nevents].copy_from_slice(&(nsubs as u32).to_le_bytes());
    Ok(ERRNO_SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_output_refuses_the_crossing_write_and_stays_refused() {
        let out = CappedOutput::new(10, Overflow::Trap);
        assert!(out.append(b"12345").is_ok());
        assert!(out.append(b"12345").is_ok());
        assert_eq!(out.len(), 10);
        assert!(out.append(b"1").is_err());
        assert!(out.overflowed());
        assert_eq!(out.len(), 10, "never holds more than the cap");
        let out = CappedOutput::new(10, Overflow::Trap);
        assert!(out.append(&[0u8; 11]).is_err());
        assert_eq!(out.len(), 0);
        assert!(out.append(b"x").is_err(), "stays closed after overflowing");
    }

    #[test]
    fn truncating_output_keeps_the_head() {
        let out = CappedOutput::new(4, Overflow::Truncate);
        assert!(out.append(b"abc").is_ok());
        assert!(out.append(b"def").is_ok());
        assert!(out.append(b"ghi").is_ok());
        assert_eq!(out.take(), b"abcd");
    }

    #[test]
    fn virtual_clocks_are_fixed_and_stepping() {
        let m = VirtualMonotonicClock::default();
        assert_eq!(m.now(), 0);
        assert_eq!(m.now(), VIRTUAL_MONOTONIC_STEP_NS);
        assert_eq!(
            VirtualWallClock.now(),
            Duration::from_secs(VIRTUAL_WALL_CLOCK_SECS)
        );
    }

    #[test]
    fn random_stream_is_fixed() {
        let a = RandomStream::new();
        let b = RandomStream::new();
        assert_eq!(a.secure, b.secure);
        assert_eq!(a.secure.len(), RANDOM_STREAM_LEN);
        assert_ne!(a.secure, a.insecure);
        assert_eq!(a.seed, b.seed);
    }
}
