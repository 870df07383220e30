//! On-disk cache of modules this sandbox compiled itself.
//!
//! Layout of the cache directory:
//!
//! ```text
//! key                                   32 random bytes, created once (mode 0600)
//! v1/<sha256(wasm)>-<engine>.cwasm      wasmtime's serialized module
//! v1/<sha256(wasm)>-<engine>.mac        keyed BLAKE3 of (entry name, artifact bytes)
//! ```
//!
//! `<engine>` is a hash of wasmtime's `Engine::precompile_compatibility_hash`
//! (wasmtime version, compiler flags, target CPU features, tunables such as
//! fuel and epochs), so an engine never even looks at another engine's
//! artifacts.
//!
//! Trust argument: deserializing a module means running its machine code, so
//! only artifacts this cache wrote are ever loaded. Each artifact is written
//! together with a MAC under a secret key that only this cache's owner can
//! read; on load the whole artifact is read into memory, the MAC is checked
//! over exactly those bytes, and only those bytes are deserialized. A file
//! that was tampered with, truncated, copied from another machine or written
//! by anything else fails the check and is recompiled from the wasm bytes
//! (and overwritten). Nothing received over the network ever reaches this
//! directory: the node only ever passes wasm bytes to `Sandbox::compile`.

use crate::error::SandboxError;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const KEY_FILE: &str = "key";
const VERSION_DIR: &str = "v1";

#[derive(Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
    key: [u8; 32],
    engine_tag: String,
}

impl DiskCache {
    /// Open (creating if needed) the cache at `root` for an engine whose
    /// compatibility hash is `engine_tag`.
    pub(crate) fn open(root: &Path, engine_tag: String) -> Result<Self, SandboxError> {
        let err = |source| SandboxError::Cache {
            path: root.to_path_buf(),
            source,
        };
        let dir = root.join(VERSION_DIR);
        fs::create_dir_all(&dir).map_err(err)?;
        let key = load_or_create_key(root).map_err(err)?;
        Ok(Self {
            dir,
            key,
            engine_tag,
        })
    }

    fn paths(&self, wasm_sha256: &[u8; 32]) -> (String, PathBuf, PathBuf) {
        let name = format!("{}-{}", hex::encode(wasm_sha256), self.engine_tag);
        let artifact = self.dir.join(format!("{name}.cwasm"));
        let mac = self.dir.join(format!("{name}.mac"));
        (name, artifact, mac)
    }

    fn mac(&self, name: &str, artifact: &[u8]) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(artifact);
        h.finalize()
    }

    /// The artifact stored for this wasm, if present and authentic. Any
    /// problem (missing, unreadable, MAC mismatch) is a miss.
    pub(crate) fn load(&self, wasm_sha256: &[u8; 32]) -> Option<Vec<u8>> {
        let (name, artifact_path, mac_path) = self.paths(wasm_sha256);
        let artifact = fs::read(&artifact_path).ok()?;
        let stored = fs::read(&mac_path).ok()?;
        let stored: [u8; 32] = stored.as_slice().try_into().ok()?;
        // blake3::Hash compares in constant time.
        if self.mac(&name, &artifact) == blake3::Hash::from_bytes(stored) {
            Some(artifact)
        } else {
            tracing::warn!(
                path = %artifact_path.display(),
                "compiled-module cache entry failed its integrity check; recompiling"
            );
            None
        }
    }

    /// Store an artifact this process just produced. Failures are logged and
    /// otherwise ignored: the cache is an optimisation.
    pub(crate) fn store(&self, wasm_sha256: &[u8; 32], artifact: &[u8]) {
        let (name, artifact_path, mac_path) = self.paths(wasm_sha256);
        let mac = self.mac(&name, artifact);
        // Artifact first, MAC second: a crash in between leaves an entry
        // without a valid MAC, which is just a miss.
        let result = write_atomically(&artifact_path, artifact)
            .and_then(|()| write_atomically(&mac_path, mac.as_bytes()));
        if let Err(e) = result {
            tracing::warn!(path = %artifact_path.display(), error = %e, "cannot write compiled-module cache entry");
        }
    }

    #[cfg(test)]
    pub(crate) fn artifact_path(&self, wasm_sha256: &[u8; 32]) -> PathBuf {
        self.paths(wasm_sha256).1
    }
}

/// Read the cache key, creating it if it does not exist yet. Creation is
/// race-free between processes: the key is written to a private temporary
/// file and hard-linked into place, which fails if another process won.
fn load_or_create_key(root: &Path) -> io::Result<[u8; 32]> {
    let path = root.join(KEY_FILE);
    for _ in 0..3 {
        match fs::read(&path) {
            Ok(bytes) => {
                if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
                    return Ok(key);
                }
                // Corrupt key: replace it. Entries under the old key then fail
                // their MAC and get recompiled.
                tracing::warn!(path = %path.display(), "module cache key is corrupt; replacing it");
                fs::remove_file(&path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = temp_path(&path);
        write_private(&tmp, &key)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok(key),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("could not create or read the cache key"))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        hex::encode(nonce)
    ));
    path.with_file_name(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Write `bytes` to a temporary file next to `path`, fsync, then rename over
/// `path`: readers see the old file or the new one, never a torn write.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let result = write_private(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), "e1".into()).unwrap();
        let id = [7u8; 32];
        assert_eq!(cache.load(&id), None);
        cache.store(&id, b"artifact bytes");
        assert_eq!(cache.load(&id).as_deref(), Some(&b"artifact bytes"[..]));

        // Same directory, same key: another process sees the entry.
        let again = DiskCache::open(dir.path(), "e1".into()).unwrap();
        assert_eq!(again.load(&id).as_deref(), Some(&b"artifact bytes"[..]));
        // Another engine never sees it.
        let other_engine = DiskCache::open(dir.path(), "e2".into()).unwrap();
        assert_eq!(other_engine.load(&id), None);

        // Tamper with the artifact: rejected.
        let path = cache.artifact_path(&id);
        fs::write(&path, b"artifact byteS").unwrap();
        assert_eq!(cache.load(&id), None);
        // Swap in another entry's (authentic) artifact+MAC under this name: rejected.
        let other = [8u8; 32];
        cache.store(&other, b"other artifact");
        fs::copy(cache.artifact_path(&other), &path).unwrap();
        fs::copy(
            cache.artifact_path(&other).with_extension("mac"),
            path.with_extension("mac"),
        )
        .unwrap();
        assert_eq!(cache.load(&id), None);
        // A cache with a different key (another machine) rejects it too.
        cache.store(&id, b"artifact bytes");
        let foreign = tempfile::tempdir().unwrap();
        let foreign_cache = DiskCache::open(foreign.path(), "e1".into()).unwrap();
        fs::copy(&path, foreign_cache.artifact_path(&id)).unwrap();
        fs::copy(
            path.with_extension("mac"),
            foreign_cache.artifact_path(&id).with_extension("mac"),
        )
        .unwrap();
        assert_eq!(foreign_cache.load(&id), None);
    }

    #[test]
    fn corrupt_key_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let cache = DiskCache::open(dir.path(), "e".into()).unwrap();
        assert_eq!(fs::read(dir.path().join(KEY_FILE)).unwrap().len(), 32);
        cache.store(&[1; 32], b"a");
        assert!(cache.load(&[1; 32]).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key is private to its owner");
        }
    }
}
