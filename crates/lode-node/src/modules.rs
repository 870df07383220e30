//! Modules by content hash: downloaded once, checked, kept on disk, compiled locally.
//!
//! Lookup order for a module hash `h`:
//! 1. the in-memory map of compiled modules (bounded, oldest out first);
//! 2. `modules/<h>.wasm` in the data directory, re-hashed on every read (a file
//!    that does not hash to `h` is deleted and ignored);
//! 3. `GET {gateway}/v1/modules/<h>`, re-hashed: bytes that do not hash to `h` are
//!    refused ([`ModuleError::HashMismatch`]) and never stored or compiled.
//!
//! Compiling goes through the sandbox, whose own disk cache (`compiled/`) keeps the
//! machine code this node produced, so a restarted node does not recompile. Modules
//! are always compiled locally: no machine code ever comes from the network.
//!
//! Concurrent requests for one hash share a single download and compile. A module
//! that does not compile (invalid, unsupported import) is remembered as such: that is
//! a deterministic property of its bytes. A download failure is not remembered: the
//! next unit tries again.

use lode_proto::Hash32;
use lode_sandbox::{CompiledModule, RunError, Sandbox};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Why a module is not available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// Could not get the bytes (network, gateway, disk, size cap). Hand the unit back.
    #[error("module {hash} unavailable: {reason}")]
    Unavailable { hash: Hash32, reason: String },
    /// The gateway sent bytes that are not the module asked for. Hand the unit back.
    #[error("module {expected} refused: the bytes received hash to {actual}")]
    HashMismatch { expected: Hash32, actual: Hash32 },
    /// The module does not compile: a deterministic failure of every unit using it.
    #[error("module {hash} is not a runnable work unit: {error}")]
    Invalid { hash: Hash32, error: RunError },
}

/// Checks that `bytes` are the module named `expected`.
pub fn verify_module(expected: &Hash32, bytes: &[u8]) -> Result<(), ModuleError> {
    let actual = Hash32::sha256(bytes);
    if actual == *expected {
        Ok(())
    } else {
        Err(ModuleError::HashMismatch {
            expected: *expected,
            actual,
        })
    }
}

type Slot = Arc<OnceCell<Result<Arc<CompiledModule>, RunError>>>;

/// The node's module cache (see the module docs).
#[derive(Debug)]
pub struct ModuleCache {
    sandbox: Arc<Sandbox>,
    dir: PathBuf,
    max_module_bytes: u64,
    capacity: usize,
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    map: HashMap<Hash32, Slot>,
    order: VecDeque<Hash32>,
}

impl ModuleCache {
    /// `dir` is created if missing. `capacity`: compiled modules kept in memory.
    pub fn new(sandbox: Arc<Sandbox>, dir: PathBuf, capacity: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            max_module_bytes: sandbox.config().max_module_bytes,
            sandbox,
            dir,
            capacity: capacity.max(1),
            slots: Mutex::new(Slots::default()),
        })
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Largest module accepted, in bytes.
    pub fn max_module_bytes(&self) -> u64 {
        self.max_module_bytes
    }

    fn path(&self, hash: &Hash32) -> PathBuf {
        self.dir.join(format!("{}.wasm", hash.to_hex()))
    }

    /// The compiled module `hash`, downloading it with `fetch` if this node has
    /// never seen it. `fetch` is called at most once per concurrent wave of requests.
    pub async fn get<F, Fut>(
        &self,
        hash: Hash32,
        fetch: F,
    ) -> Result<Arc<CompiledModule>, ModuleError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, String>>,
    {
        let slot = self.slot(hash);
        let result = slot
            .get_or_try_init(|| async {
                let bytes = self.bytes(hash, fetch).await?;
                let sandbox = Arc::clone(&self.sandbox);
                let compiled = tokio::task::spawn_blocking(move || {
                    let compiled = sandbox.compile(&bytes);
                    drop(bytes);
                    crate::host::release_free_memory();
                    compiled
                })
                .await
                .map_err(|e| ModuleError::Unavailable {
                    hash,
                    reason: format!("compiler task failed: {e}"),
                })?;
                Ok::<_, ModuleError>(compiled)
            })
            .await?;
        match result {
            Ok(m) => Ok(Arc::clone(m)),
            Err(error) => Err(ModuleError::Invalid {
                hash,
                error: error.clone(),
            }),
        }
    }

    fn slot(&self, hash: Hash32) -> Slot {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = s.map.get(&hash) {
            return Arc::clone(slot);
        }
        let slot: Slot = Arc::default();
        s.map.insert(hash, Arc::clone(&slot));
        s.order.push_back(hash);
        while s.map.len() > self.capacity {
            match s.order.pop_front() {
                Some(old) => {
                    s.map.remove(&old);
                }
                None => break,
            }
        }
        slot
    }

    /// Compiled modules held in memory.
    pub fn len(&self) -> usize {
        let s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.map.values().filter(|c| c.initialized()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn bytes<F, Fut>(&self, hash: Hash32, fetch: F) -> Result<Vec<u8>, ModuleError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, String>>,
    {
        let path = self.path(&hash);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            if verify_module(&hash, &bytes).is_ok() {
                return Ok(bytes);
            }
            tracing::warn!(module = %hash, "cached module file is corrupt; downloading it again");
            let _ = tokio::fs::remove_file(&path).await;
        }
        let bytes = fetch()
            .await
            .map_err(|reason| ModuleError::Unavailable { hash, reason })?;
        if bytes.len() as u64 > self.max_module_bytes {
            return Err(ModuleError::Unavailable {
                hash,
                reason: format!(
                    "module is {} bytes, above this node's limit of {} bytes",
                    bytes.len(),
                    self.max_module_bytes
                ),
            });
        }
        verify_module(&hash, &bytes)?;
        if let Err(e) = store(&path, &bytes).await {
            tracing::warn!(module = %hash, error = %e, "cannot store module on disk");
        }
        Ok(bytes)
    }
}

/// Writes `bytes` to `path` via a temporary file and a rename, so a crash never
/// leaves a truncated module under its final name (and reads re-hash anyway).
async fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, bytes).await?;
    match tokio::fs::rename(&tmp, path).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_refuses_other_bytes() {
        let h = Hash32::sha256(b"module");
        assert!(verify_module(&h, b"module").is_ok());
        match verify_module(&h, b"other") {
            Err(ModuleError::HashMismatch { expected, actual }) => {
                assert_eq!(expected, h);
                assert_eq!(actual, Hash32::sha256(b"other"));
            }
            other => panic!("{other:?}"),
        }
    }
}
