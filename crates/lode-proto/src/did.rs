//! W3C `did:key` identities for Ed25519 keys.
//!
//! Format (did:key method spec, §"Ed25519"): `did:key:` + multibase base58btc
//! (prefix `z`) of the multicodec varint `0xed 0x01` followed by the 32-byte
//! public key. Such identifiers always start with `did:key:z6Mk`.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

const PREFIX: &str = "did:key:";
/// Unsigned-varint encoding of multicodec `ed25519-pub` (0xed).
const MULTICODEC_ED25519_PUB: [u8; 2] = [0xed, 0x01];

/// A `did:key` identity: an Ed25519 public key.
///
/// Construction always validates that the bytes are a valid curve point, so a
/// `Did` can always be used to verify signatures.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did([u8; 32]);

/// Why a string or byte string is not a valid Ed25519 `did:key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    #[error("not a did:key identifier (expected it to start with \"did:key:\")")]
    NotDidKey,
    #[error("unsupported multibase prefix {0:?}: only base58btc ('z') is supported")]
    UnsupportedMultibase(char),
    #[error("did:key is not valid base58btc")]
    InvalidBase58,
    #[error("did:key is not an Ed25519 key (multicodec prefix 0xed01 expected)")]
    NotEd25519,
    #[error("did:key holds {0} key bytes, expected 32")]
    WrongLength(usize),
    #[error("did:key bytes are not a valid Ed25519 public key")]
    InvalidKey,
}

impl Did {
    /// Builds a `Did` from raw public-key bytes, validating the point.
    pub fn from_public_key_bytes(bytes: [u8; 32]) -> Result<Self, DidError> {
        VerifyingKey::from_bytes(&bytes).map_err(|_| DidError::InvalidKey)?;
        Ok(Self(bytes))
    }

    pub(crate) fn from_verifying_key(vk: &VerifyingKey) -> Self {
        Self(vk.to_bytes())
    }

    /// The 32 raw public-key bytes.
    pub fn public_key_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The Ed25519 verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        // Invariant: every constructor validated the point.
        VerifyingKey::from_bytes(&self.0)
            .unwrap_or_else(|_| unreachable!("validated on construction"))
    }

    /// The multibase part after `did:key:` (`z6Mk…`).
    pub fn multibase(&self) -> String {
        let mut buf = Vec::with_capacity(34);
        buf.extend_from_slice(&MULTICODEC_ED25519_PUB);
        buf.extend_from_slice(&self.0);
        format!("z{}", bs58::encode(buf).into_string())
    }

    /// A short form for logs and tables: `z6Mk…` plus the last 6 characters.
    pub fn short(&self) -> String {
        let m = self.multibase();
        format!("{}…{}", &m[..8], &m[m.len() - 6..])
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.multibase())
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({self})")
    }
}

impl FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix(PREFIX).ok_or(DidError::NotDidKey)?;
        // A DID URL fragment (`#z6Mk…`) names a key of the same DID; accept the DID part.
        let rest = rest.split('#').next().unwrap_or(rest);
        let mut chars = rest.chars();
        match chars.next() {
            Some('z') => {}
            Some(c) => return Err(DidError::UnsupportedMultibase(c)),
            None => return Err(DidError::InvalidBase58),
        }
        let raw = bs58::decode(chars.as_str())
            .into_vec()
            .map_err(|_| DidError::InvalidBase58)?;
        let key = raw
            .strip_prefix(&MULTICODEC_ED25519_PUB)
            .ok_or(DidError::NotEd25519)?;
        let bytes: [u8; 32] = key
            .try_into()
            .map_err(|_| DidError::WrongLength(key.len()))?;
        Self::from_public_key_bytes(bytes)
    }
}

impl Serialize for Did {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Did {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b = <[u8; 32]>::deserialize(d)?;
            Self::from_public_key_bytes(b).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;

    /// The Ed25519 vectors of the did:key specification
    /// (w3c-ccg/did-method-key, test-vectors/ed25519-x25519.json):
    /// (seed = Ed25519 secret key, did, publicKeyBase58).
    const VECTORS: &[(&str, &str, &str)] = &[
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
            "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
            "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000002",
            "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
            "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000003",
            "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
            "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000004",
            "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
            "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
        ),
    ];

    #[test]
    fn spec_vectors_encode_and_decode() {
        for (seed, did, pk58) in VECTORS {
            let mut secret = [0u8; 32];
            hex::decode_to_slice(seed, &mut secret).unwrap();
            let kp = Keypair::from_secret_bytes(&secret);
            assert_eq!(kp.did().to_string(), *did, "seed {seed}");
            let pk = bs58::decode(pk58).into_vec().unwrap();
            assert_eq!(kp.did().public_key_bytes().as_slice(), pk.as_slice());
            let parsed: Did = did.parse().unwrap();
            assert_eq!(parsed, kp.did());
            assert_eq!(parsed.to_string(), *did);
            assert!(did.starts_with("did:key:z6Mk"));
        }
    }

    #[test]
    fn fragment_is_accepted() {
        let (_, did, _) = VECTORS[0];
        let with_frag = format!("{did}#{}", &did[8..]);
        assert_eq!(with_frag.parse::<Did>().unwrap().to_string(), did);
    }

    #[test]
    fn malformed_dids_give_typed_errors() {
        assert_eq!(
            "did:web:example.com".parse::<Did>(),
            Err(DidError::NotDidKey)
        );
        assert_eq!("did:key:".parse::<Did>(), Err(DidError::InvalidBase58));
        assert_eq!(
            "did:key:f00".parse::<Did>(),
            Err(DidError::UnsupportedMultibase('f'))
        );
        assert_eq!("did:key:z0OIl".parse::<Did>(), Err(DidError::InvalidBase58));
        // secp256k1 did:key (multicodec 0xe7): not Ed25519.
        assert_eq!(
            "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme".parse::<Did>(),
            Err(DidError::NotEd25519)
        );
        // Right prefix, short key.
        let mut short = vec![0xed, 0x01];
        short.extend_from_slice(&[1u8; 31]);
        let s = format!("did:key:z{}", bs58::encode(short).into_string());
        assert_eq!(s.parse::<Did>(), Err(DidError::WrongLength(31)));
    }

    #[test]
    fn serde_forms() {
        let kp = Keypair::from_secret_bytes(&[7u8; 32]);
        let did = kp.did();
        let json = serde_json::to_string(&did).unwrap();
        assert_eq!(json, format!("\"{did}\""));
        assert_eq!(serde_json::from_str::<Did>(&json).unwrap(), did);
        let bin = postcard::to_allocvec(&did).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(postcard::from_bytes::<Did>(&bin).unwrap(), did);
    }

    proptest::proptest! {
        #[test]
        fn round_trips(secret in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let did = Keypair::from_secret_bytes(&secret).did();
            let text = did.to_string();
            proptest::prop_assert!(text.starts_with("did:key:z6Mk"));
            proptest::prop_assert_eq!(text.parse::<Did>().unwrap(), did);
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = s.parse::<Did>();
            let _ = format!("did:key:z{s}").parse::<Did>();
        }
    }
}
