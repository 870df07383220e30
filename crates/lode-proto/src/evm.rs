//! 20-byte EVM addresses with EIP-55 mixed-case checksums.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Keccak256};
use std::fmt;
use std::str::FromStr;

/// An EVM account address. Printed in EIP-55 checksummed form (`0x5aAe…`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EvmAddress(pub [u8; 20]);

/// Why a string is not a valid EVM address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvmAddressError {
    #[error("EVM address must start with 0x")]
    MissingPrefix,
    #[error("EVM address must have 40 hex digits, found {0}")]
    WrongLength(usize),
    #[error("EVM address contains a non-hex character")]
    InvalidHex,
    #[error("EVM address has a wrong EIP-55 checksum (did you mean {0}?)")]
    BadChecksum(String),
}

/// keccak256, as used by Ethereum.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

impl EvmAddress {
    /// EIP-55: the i-th hex letter is upper-case iff the i-th nibble of
    /// keccak256(lower-case hex) is ≥ 8.
    pub fn to_checksummed(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksummed())
    }
}

impl fmt::Debug for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvmAddress({self})")
    }
}

impl FromStr for EvmAddress {
    type Err = EvmAddressError;

    /// Accepts all-lower-case or all-upper-case hex (no checksum), or mixed
    /// case only when the EIP-55 checksum is right.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let h = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or(EvmAddressError::MissingPrefix)?;
        if h.len() != 40 {
            return Err(EvmAddressError::WrongLength(h.len()));
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(h, &mut out).map_err(|_| EvmAddressError::InvalidHex)?;
        let addr = Self(out);
        let has_lower = h.chars().any(|c| c.is_ascii_lowercase());
        let has_upper = h.chars().any(|c| c.is_ascii_uppercase());
        if has_lower && has_upper {
            let expected = addr.to_checksummed();
            if expected[2..] != *h {
                return Err(EvmAddressError::BadChecksum(expected));
            }
        }
        Ok(addr)
    }
}

impl Serialize for EvmAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_checksummed())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for EvmAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Self(<[u8; 20]>::deserialize(d)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from EIP-55.
    const EIP55: &[&str] = &[
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
    ];

    #[test]
    fn eip55_vectors() {
        for v in EIP55 {
            let a: EvmAddress = v.parse().unwrap();
            assert_eq!(a.to_checksummed(), *v);
            let lower: EvmAddress = v.to_lowercase().parse().unwrap();
            assert_eq!(lower, a);
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse::<EvmAddress>(),
            Err(EvmAddressError::MissingPrefix)
        );
        assert_eq!(
            "0x1234".parse::<EvmAddress>(),
            Err(EvmAddressError::WrongLength(4))
        );
        assert_eq!(
            "0xzzAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse::<EvmAddress>(),
            Err(EvmAddressError::InvalidHex)
        );
        // Flip the case of one letter: checksum fails and names the right form.
        assert_eq!(
            "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".parse::<EvmAddress>(),
            Err(EvmAddressError::BadChecksum(
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into()
            ))
        );
    }

    #[test]
    fn keccak_known_vector() {
        assert_eq!(
            hex::encode(keccak256(b"")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
