//! Key files: a node's, requester's or validator's secret key on disk.
//!
//! JSON, mode `0600`, written atomically (temp file + fsync + rename):
//!
//! ```json
//! {
//!   "lode_key_version": 1,
//!   "did": "did:key:z6Mk…",
//!   "secret_key": "<64 hex digits: the Ed25519 seed>",
//!   "payout_address": "0x…"   // optional, EIP-55
//! }
//! ```
//!
//! Loading refuses files readable or writable by group or others, files whose
//! `did` does not match the secret, and anything malformed, each with its own
//! [`KeyFileError`].

use crate::did::Did;
use crate::evm::EvmAddress;
use crate::keys::{Keypair, RandomnessError};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const KEY_FILE_VERSION: u32 = 1;

/// A loaded key file.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub keypair: Keypair,
    pub payout_address: Option<EvmAddress>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    lode_key_version: u32,
    did: String,
    secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payout_address: Option<String>,
}

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {0} does not exist (create one with `lode keys new --out {0}`)")]
    NotFound(PathBuf),
    #[error("key file {0} already exists; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    #[error(
        "key file {path} has permissions {mode:04o}; it must not be accessible by group or others (run `chmod 600 {path}`)"
    )]
    WrongPermissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "key file {path} has unsupported version {version} (this lode reads version {KEY_FILE_VERSION})"
    )]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error(
        "key file {path} is inconsistent: its did is {stated} but its secret key belongs to {actual}"
    )]
    DidMismatch {
        path: PathBuf,
        stated: String,
        actual: Did,
    },
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl KeyFile {
    /// A new random key.
    pub fn generate(payout_address: Option<EvmAddress>) -> Result<Self, KeyFileError> {
        Ok(Self {
            keypair: Keypair::generate()?,
            payout_address,
        })
    }

    pub fn did(&self) -> Did {
        self.keypair.did()
    }

    /// Parses a 64-hex-digit secret (the Ed25519 seed), surrounding whitespace allowed.
    pub fn parse_secret_hex(text: &str) -> Result<Keypair, String> {
        let t = text.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(t, secret.as_mut())
            .map_err(|_| "secret key must be 64 hex digits (32 bytes)".to_string())?;
        Ok(Keypair::from_secret_bytes(&secret))
    }

    /// Reads and validates a key file.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyFileError::NotFound(path.to_path_buf()));
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        check_permissions(path, &meta)?;
        let text = fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                KeyFileError::Malformed {
                    path: path.to_path_buf(),
                    reason: "not UTF-8 text".into(),
                }
            } else {
                io_err(path)(e)
            }
        })?;
        let malformed = |reason: String| KeyFileError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        if disk.lode_key_version != KEY_FILE_VERSION {
            return Err(KeyFileError::UnsupportedVersion {
                path: path.to_path_buf(),
                version: disk.lode_key_version,
            });
        }
        let keypair = Self::parse_secret_hex(&disk.secret_key).map_err(malformed)?;
        if disk.did != keypair.did().to_string() {
            return Err(KeyFileError::DidMismatch {
                path: path.to_path_buf(),
                stated: disk.did,
                actual: keypair.did(),
            });
        }
        let payout_address = disk
            .payout_address
            .map(|a| {
                a.parse::<EvmAddress>()
                    .map_err(|e| malformed(format!("payout_address: {e}")))
            })
            .transpose()?;
        Ok(Self {
            keypair,
            payout_address,
        })
    }

    fn to_json(&self) -> String {
        let disk = OnDisk {
            lode_key_version: KEY_FILE_VERSION,
            did: self.did().to_string(),
            secret_key: hex::encode(*self.keypair.secret_bytes()),
            payout_address: self.payout_address.map(|a| a.to_string()),
        };
        let mut s = serde_json::to_string_pretty(&disk).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes a new key file with mode 0600. Never overwrites an existing file.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyFileError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        set_private_mode(&mut opts);
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::AlreadyExists(path.to_path_buf())
            } else {
                io_err(path)(e)
            }
        })?;
        let write = f
            .write_all(self.to_json().as_bytes())
            .and_then(|_| f.sync_all());
        if let Err(e) = write {
            let _ = fs::remove_file(path);
            return Err(io_err(path)(e));
        }
        sync_parent(path);
        Ok(())
    }

    /// Replaces an existing key file atomically (used to change the payout address).
    pub fn save_replace(&self, path: &Path) -> Result<(), KeyFileError> {
        let tmp = path.with_extension("tmp-lode");
        let _ = fs::remove_file(&tmp);
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        set_private_mode(&mut opts);
        let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
        f.write_all(self.to_json().as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, path).map_err(io_err(path))?;
        sync_parent(path);
        Ok(())
    }
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

#[cfg(unix)]
fn set_private_mode(opts: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(0o600);
}

#[cfg(not(unix))]
fn set_private_mode(_opts: &mut OpenOptions) {}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &fs::Metadata) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::WrongPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeyFileError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write_private(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/node.key");
        let addr: EvmAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
            .parse()
            .unwrap();
        let kf = KeyFile::generate(Some(addr)).unwrap();
        kf.save_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = KeyFile::load(&path).unwrap();
        assert_eq!(back.did(), kf.did());
        assert_eq!(back.payout_address, Some(addr));
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        KeyFile::generate(None).unwrap().save_new(&path).unwrap();
        let before = fs::read(&path).unwrap();
        let err = KeyFile::generate(None)
            .unwrap()
            .save_new(&path)
            .unwrap_err();
        assert!(matches!(err, KeyFileError::AlreadyExists(_)), "{err}");
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "existing key must be untouched"
        );
    }

    #[test]
    fn rejects_open_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        KeyFile::generate(None).unwrap().save_new(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyFile::load(&path).unwrap_err();
        assert!(
            matches!(err, KeyFileError::WrongPermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn malformed_files_give_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(matches!(
            KeyFile::load(&path).unwrap_err(),
            KeyFileError::NotFound(_)
        ));

        write_private(&path, "not json");
        assert!(matches!(
            KeyFile::load(&path).unwrap_err(),
            KeyFileError::Malformed { .. }
        ));

        let kp = Keypair::from_secret_bytes(&[3; 32]);
        let other = Keypair::from_secret_bytes(&[4; 32]);
        let secret = hex::encode([3u8; 32]);
        write_private(
            &path,
            &format!(
                r#"{{"lode_key_version":1,"did":"{}","secret_key":"{secret}"}}"#,
                other.did()
            ),
        );
        assert!(matches!(
            KeyFile::load(&path).unwrap_err(),
            KeyFileError::DidMismatch { .. }
        ));

        write_private(
            &path,
            &format!(
                r#"{{"lode_key_version":9,"did":"{}","secret_key":"{secret}"}}"#,
                kp.did()
            ),
        );
        assert!(matches!(
            KeyFile::load(&path).unwrap_err(),
            KeyFileError::UnsupportedVersion { version: 9, .. }
        ));

        write_private(
            &path,
            &format!(
                r#"{{"lode_key_version":1,"did":"{}","secret_key":"abcd"}}"#,
                kp.did()
            ),
        );
        assert!(matches!(
            KeyFile::load(&path).unwrap_err(),
            KeyFileError::Malformed { .. }
        ));

        write_private(
            &path,
            &format!(
                r#"{{"lode_key_version":1,"did":"{}","secret_key":"{secret}","payout_address":"0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}}"#,
                kp.did()
            ),
        );
        let err = KeyFile::load(&path).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");

        fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            KeyFile::load(&path).unwrap_err(),
            KeyFileError::Malformed { .. }
        ));
    }

    #[test]
    fn replace_keeps_key_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let mut kf = KeyFile::generate(None).unwrap();
        kf.save_new(&path).unwrap();
        kf.payout_address = Some(
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
                .parse()
                .unwrap(),
        );
        kf.save_replace(&path).unwrap();
        let back = KeyFile::load(&path).unwrap();
        assert_eq!(back.did(), kf.did());
        assert_eq!(back.payout_address, kf.payout_address);
    }
}
