//! Signed envelopes: every message that crosses a process boundary.
//!
//! ```text
//! Envelope { kind, payload, signer, signature }
//! payload   = canonical(Payload { nonce, timestamp_ms, message })
//! signature = Ed25519(signer, "lode/sig/v1" ‖ 0 ‖ len(kind) ‖ kind ‖ payload)
//! ```
//!
//! * **Domain separation**: each message type has its own `KIND` tag, which
//!   the signature covers, so a signature for one kind never verifies as another.
//! * **Canonical bytes**: the payload is carried as the exact signed bytes
//!   (see [`crate::canonical`]); re-serialising the envelope as JSON or binary
//!   never changes what was signed.
//! * **Freshness and replay**: the payload carries a random 64-bit nonce and
//!   the sender's timestamp. [`ReplayGuard`] rejects timestamps outside a
//!   window and any (signer, nonce) it has already accepted inside the window.
//!   Because stale messages are rejected anyway, it only remembers nonces for
//!   the length of the window: its memory is bounded.
//!
//! Verification order: kind → signature → payload decoding → freshness → replay.
//! A message is recorded as seen only once every check passed.

use crate::canonical::{self, CanonicalError};
use crate::did::Did;
use crate::keys::{Keypair, RandomnessError, Signature};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::{BTreeSet, HashSet};

/// A message type that can be sent in an [`Envelope`].
pub trait Message: Serialize + DeserializeOwned {
    /// Domain-separation tag, unique per message kind and version,
    /// e.g. `"lode/node/hello/v1"`.
    const KIND: &'static str;
}

/// The signed part of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload<T> {
    /// Random per message; with the signer, identifies the message for replay checks.
    pub nonce: u64,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub message: T,
}

/// A signed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The message kind (`Message::KIND`) the signature was made for.
    pub kind: String,
    /// Canonical encoding of [`Payload`]; exactly the signed bytes.
    #[serde(with = "payload_bytes")]
    pub payload: Vec<u8>,
    pub signer: Did,
    pub signature: Signature,
}

/// A verified message with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<T> {
    pub signer: Did,
    pub nonce: u64,
    pub timestamp_ms: u64,
    pub message: T,
}

/// Why an envelope was rejected. Every failure is one of these; none panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("envelope could not be decoded: {0}")]
    Decode(#[from] CanonicalError),
    #[error("expected a {expected} message, got {found}")]
    UnexpectedKind {
        expected: &'static str,
        found: String,
    },
    #[error("signature does not verify for signer {signer} and kind {kind}")]
    BadSignature { signer: Did, kind: String },
    #[error("message is stale: sent {age_ms} ms ago, the limit is {max_age_ms} ms")]
    Stale { age_ms: u64, max_age_ms: u64 },
    #[error("message timestamp is {ahead_ms} ms in the future, the limit is {max_skew_ms} ms")]
    FromFuture { ahead_ms: u64, max_skew_ms: u64 },
    #[error("message replayed: nonce {nonce} from {signer} was already accepted")]
    Replayed { signer: Did, nonce: u64 },
    #[error("replay guard is full ({capacity} live nonces); refusing new messages")]
    GuardFull { capacity: usize },
}

impl Envelope {
    /// Signs `message` with an explicit nonce and timestamp.
    pub fn seal<T: Message>(
        key: &Keypair,
        message: &T,
        nonce: u64,
        timestamp_ms: u64,
    ) -> Result<Self, CanonicalError> {
        let payload = canonical::encode(&Payload {
            nonce,
            timestamp_ms,
            message,
        })?;
        let signature = key.sign_tagged(T::KIND, &payload);
        Ok(Self {
            kind: T::KIND.to_string(),
            payload,
            signer: key.did(),
            signature,
        })
    }

    /// Signs `message` with a fresh random nonce.
    pub fn seal_fresh<T: Message>(
        key: &Keypair,
        message: &T,
        now_ms: u64,
    ) -> Result<Self, SealError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Randomness(RandomnessError::new(e)))?;
        Ok(Self::seal(key, message, u64::from_le_bytes(nonce), now_ms)?)
    }

    /// Binary wire form (canonical).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Encoding an envelope (strings, bytes, fixed arrays) cannot fail.
        canonical::encode(self).unwrap_or_default()
    }

    /// Parses the binary wire form. Truncated or random bytes give a typed error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CanonicalError> {
        canonical::decode(bytes)
    }

    /// Checks kind and signature and decodes the payload, without freshness or
    /// replay checks. For records whose replay protection lives elsewhere
    /// (e.g. ledger entries, which the ledger state deduplicates).
    pub fn open_signed<T: Message>(&self) -> Result<Opened<T>, VerifyError> {
        if self.kind != T::KIND {
            return Err(VerifyError::UnexpectedKind {
                expected: T::KIND,
                found: self.kind.clone(),
            });
        }
        if !self
            .signer
            .verify_tagged(T::KIND, &self.payload, &self.signature)
        {
            return Err(VerifyError::BadSignature {
                signer: self.signer,
                kind: self.kind.clone(),
            });
        }
        let p: Payload<T> = decode_payload(&self.payload)?;
        Ok(Opened {
            signer: self.signer,
            nonce: p.nonce,
            timestamp_ms: p.timestamp_ms,
            message: p.message,
        })
    }

    /// Full verification: kind, signature, payload, freshness against `now_ms`,
    /// and replay against `guard`. On success the nonce is recorded in `guard`.
    pub fn open<T: Message>(
        &self,
        guard: &mut ReplayGuard,
        now_ms: u64,
    ) -> Result<Opened<T>, VerifyError> {
        let opened = self.open_signed::<T>()?;
        guard.check_and_record(opened.signer, opened.nonce, opened.timestamp_ms, now_ms)?;
        Ok(opened)
    }
}

fn decode_payload<T: Message>(bytes: &[u8]) -> Result<Payload<T>, CanonicalError> {
    canonical::decode::<Payload<T>>(bytes)
}

/// Sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Encode(#[from] CanonicalError),
    #[error(transparent)]
    Randomness(RandomnessError),
}

impl RandomnessError {
    pub(crate) fn new(e: impl std::fmt::Display) -> Self {
        Self::from_message(e.to_string())
    }
}

/// Rejects stale, future-dated and replayed messages, in bounded memory.
#[derive(Debug)]
pub struct ReplayGuard {
    max_age_ms: u64,
    max_skew_ms: u64,
    capacity: usize,
    seen: HashSet<(Did, u64)>,
    /// Same entries ordered by timestamp, for eviction.
    by_time: BTreeSet<(u64, Did, u64)>,
}

impl Default for ReplayGuard {
    /// Five-minute window back, 30 seconds of clock skew forward, 1M live nonces.
    fn default() -> Self {
        Self::new(5 * 60 * 1000, 30 * 1000, 1_000_000)
    }
}

impl ReplayGuard {
    pub fn new(max_age_ms: u64, max_skew_ms: u64, capacity: usize) -> Self {
        Self {
            max_age_ms,
            max_skew_ms,
            capacity,
            seen: HashSet::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// Number of nonces currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Checks freshness and uniqueness; records the nonce when both pass.
    pub fn check_and_record(
        &mut self,
        signer: Did,
        nonce: u64,
        ts_ms: u64,
        now_ms: u64,
    ) -> Result<(), VerifyError> {
        self.check_fresh(ts_ms, now_ms)?;
        self.evict(now_ms);
        if self.seen.contains(&(signer, nonce)) {
            return Err(VerifyError::Replayed { signer, nonce });
        }
        self.record(signer, nonce, ts_ms)
    }

    /// Checks only freshness (for signed reads, which change nothing and so
    /// need no nonce memory: a flood of reads cannot fill the guard).
    pub fn check_fresh(&self, ts_ms: u64, now_ms: u64) -> Result<(), VerifyError> {
        if ts_ms > now_ms {
            let ahead_ms = ts_ms - now_ms;
            if ahead_ms > self.max_skew_ms {
                return Err(VerifyError::FromFuture {
                    ahead_ms,
                    max_skew_ms: self.max_skew_ms,
                });
            }
        } else {
            let age_ms = now_ms - ts_ms;
            if age_ms > self.max_age_ms {
                return Err(VerifyError::Stale {
                    age_ms,
                    max_age_ms: self.max_age_ms,
                });
            }
        }
        Ok(())
    }

    fn record(&mut self, signer: Did, nonce: u64, ts_ms: u64) -> Result<(), VerifyError> {
        if self.seen.len() >= self.capacity {
            return Err(VerifyError::GuardFull {
                capacity: self.capacity,
            });
        }
        self.seen.insert((signer, nonce));
        self.by_time.insert((ts_ms, signer, nonce));
        Ok(())
    }

    /// Forgets nonces whose timestamp is older than the window: a replay of
    /// them would be rejected as stale anyway.
    fn evict(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.max_age_ms);
        while let Some(&(ts, signer, nonce)) = self.by_time.first() {
            if ts >= cutoff {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&(signer, nonce));
        }
    }
}

mod payload_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            s.serialize_bytes(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(s).map_err(serde::de::Error::custom)
        } else {
            crate::keys::serde_bytes_vec(d)
        }
    }
}
