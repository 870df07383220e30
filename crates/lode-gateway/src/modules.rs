//! Content-addressed module store: `DIR/<sha256 hex>.wasm`.
//!
//! A module is written to a temporary file, fsynced and renamed into place, so a
//! crash never leaves a half-written module under its final name. Its name is the
//! SHA-256 of its bytes, checked before it is stored.

use lode_proto::Hash32;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a module could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum ModuleStoreError {
    #[error("module is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("module bytes hash to {actual}, not the announced {announced}")]
    HashMismatch { announced: Hash32, actual: Hash32 },
    #[error("module {0} is not stored here")]
    NotFound(Hash32),
    #[error("module store IO error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct ModuleStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl ModuleStore {
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, ModuleStoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| ModuleStoreError::Io {
            path: dir.clone(),
            source,
        })?;
        // Leftovers of interrupted writes.
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(Self { dir, max_bytes })
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn path(&self, hash: &Hash32) -> PathBuf {
        self.dir.join(format!("{}.wasm", hash.to_hex()))
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.path(hash).is_file()
    }

    /// Stores `bytes` after checking size and hash. Idempotent.
    pub fn put(&self, announced: &Hash32, bytes: &[u8]) -> Result<(), ModuleStoreError> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Err(ModuleStoreError::TooLarge {
                size,
                limit: self.max_bytes,
            });
        }
        let actual = Hash32::sha256(bytes);
        if actual != *announced {
            return Err(ModuleStoreError::HashMismatch {
                announced: *announced,
                actual,
            });
        }
        let dest = self.path(announced);
        if dest.is_file() {
            return Ok(());
        }
        let tmp = self
            .dir
            .join(format!("{}.{}.tmp", announced.to_hex(), std::process::id()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ModuleStoreError::Io { path, source }
        };
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(io(&tmp))?;
        fs::rename(&tmp, &dest).map_err(io(&dest))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Deletes a module (no error if it is already gone).
    pub fn remove(&self, hash: &Hash32) -> Result<(), ModuleStoreError> {
        let path = self.path(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ModuleStoreError::Io { path, source }),
        }
    }

    /// Every stored module and its size.
    pub fn list(&self) -> Result<Vec<(Hash32, u64)>, ModuleStoreError> {
        let io = |source| ModuleStoreError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut out = vec![];
        for e in fs::read_dir(&self.dir).map_err(io)? {
            let e = e.map_err(io)?;
            let name = e.file_name();
            let Some(h) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wasm"))
                .and_then(|h| h.parse::<Hash32>().ok())
            else {
                continue;
            };
            let size = e.metadata().map_err(io)?.len();
            out.push((h, size));
        }
        Ok(out)
    }

    pub fn get(&self, hash: &Hash32) -> Result<Vec<u8>, ModuleStoreError> {
        let path = self.path(hash);
        match fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ModuleStoreError::NotFound(*hash))
            }
            Err(source) => Err(ModuleStoreError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModuleStore::open(dir.path().join("modules"), 16).unwrap();
        let bytes = b"\0asm\x01\0\0\0".to_vec();
        let h = Hash32::sha256(&bytes);
        assert!(matches!(store.get(&h), Err(ModuleStoreError::NotFound(_))));
        store.put(&h, &bytes).unwrap();
        store.put(&h, &bytes).unwrap();
        assert_eq!(store.get(&h).unwrap(), bytes);

        let wrong = Hash32::sha256(b"other");
        assert!(matches!(
            store.put(&wrong, &bytes),
            Err(ModuleStoreError::HashMismatch { .. })
        ));
        assert!(!store.contains(&wrong), "nothing stored on mismatch");

        let big = vec![0u8; 17];
        let hb = Hash32::sha256(&big);
        assert!(matches!(
            store.put(&hb, &big),
            Err(ModuleStoreError::TooLarge {
                size: 17,
                limit: 16
            })
        ));
        assert!(!store.contains(&hb));
    }

    #[test]
    fn reopen_cleans_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let mdir = dir.path().join("m");
        ModuleStore::open(&mdir, 1024).unwrap();
        fs::write(mdir.join("abc.1.tmp"), b"partial").unwrap();
        ModuleStore::open(&mdir, 1024).unwrap();
        assert!(!mdir.join("abc.1.tmp").exists());
    }
}
