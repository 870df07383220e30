//! Ed25519 key pairs and tagged signatures.

use crate::did::Did;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Prefix of every signed message: protocol name and signature-scheme version.
pub const SIGNING_CONTEXT: &[u8] = b"lode/sig/v1";

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(s).map_err(serde::de::Error::custom)?
        } else {
            serde_bytes_vec(d)?
        };
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| serde::de::Error::invalid_length(v.len(), &"64 bytes"))?;
        Ok(Self(arr))
    }
}

pub(crate) fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_bytes(V)
}

/// The bytes an Ed25519 signature actually covers:
/// `SIGNING_CONTEXT ‖ 0x00 ‖ len(tag) as u16 BE ‖ tag ‖ message`.
///
/// The length-prefixed tag gives domain separation: a signature made for one
/// tag never verifies under another, whatever the message bytes.
pub fn signing_input(tag: &str, message: &[u8]) -> Vec<u8> {
    let tag = tag.as_bytes();
    let mut buf = Vec::with_capacity(SIGNING_CONTEXT.len() + 3 + tag.len() + message.len());
    buf.extend_from_slice(SIGNING_CONTEXT);
    buf.push(0);
    buf.extend_from_slice(&(tag.len() as u16).to_be_bytes());
    buf.extend_from_slice(tag);
    buf.extend_from_slice(message);
    buf
}

/// An Ed25519 secret key and its `did:key` identity.
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Keypair({})", self.did())
    }
}

impl Clone for Keypair {
    fn clone(&self) -> Self {
        Self {
            signing: self.signing.clone(),
        }
    }
}

/// The operating system could not provide randomness.
#[derive(Debug, thiserror::Error)]
#[error("OS random number generator failed: {0}")]
pub struct RandomnessError(String);

impl RandomnessError {
    pub(crate) fn from_message(m: String) -> Self {
        Self(m)
    }
}

impl Keypair {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).map_err(RandomnessError::new)?;
        Ok(Self::from_secret_bytes(&secret))
    }

    /// A key from its 32-byte secret (the RFC 8032 seed).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// The 32-byte secret. Handle with care.
    pub fn secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.signing.to_bytes())
    }

    pub fn did(&self) -> Did {
        Did::from_verifying_key(&self.signing.verifying_key())
    }

    /// Signs `message` under domain tag `tag` (see [`signing_input`]).
    pub fn sign_tagged(&self, tag: &str, message: &[u8]) -> Signature {
        Signature(self.signing.sign(&signing_input(tag, message)).to_bytes())
    }
}

impl Did {
    /// Verifies a signature made by [`Keypair::sign_tagged`] with the same tag.
    /// Uses strict verification (rejects small-order keys and malleable signatures).
    pub fn verify_tagged(&self, tag: &str, message: &[u8], sig: &Signature) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        self.verifying_key()
            .verify_strict(&signing_input(tag, message), &sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_separate_domains() {
        let kp = Keypair::from_secret_bytes(&[1; 32]);
        let sig = kp.sign_tagged("a", b"msg");
        assert!(kp.did().verify_tagged("a", b"msg", &sig));
        assert!(!kp.did().verify_tagged("b", b"msg", &sig));
        assert!(!kp.did().verify_tagged("a", b"msh", &sig));
        // Tag/message boundary cannot be shifted: ("ab","c") != ("a","bc").
        let sig2 = kp.sign_tagged("ab", b"c");
        assert!(!kp.did().verify_tagged("a", b"bc", &sig2));
        let other = Keypair::from_secret_bytes(&[2; 32]);
        assert!(!other.did().verify_tagged("a", b"msg", &sig));
    }

    #[test]
    fn debug_hides_secret() {
        let kp = Keypair::from_secret_bytes(&[9; 32]);
        let dbg = format!("{kp:?}");
        assert!(dbg.contains("did:key:z6Mk"));
        assert!(!dbg.contains(&hex::encode([9u8; 32])));
    }

    #[test]
    fn generate_gives_distinct_keys() {
        let a = Keypair::generate().unwrap();
        let b = Keypair::generate().unwrap();
        assert_ne!(a.did(), b.did());
    }
}
