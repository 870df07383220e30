//! The canonical byte encoding of Lode messages.
//!
//! **Choice: postcard** (serde's compact binary format) with two extra rules
//! enforced on decode:
//!
//! 1. no trailing bytes, and
//! 2. re-encoding the decoded value must give back exactly the input bytes.
//!
//! Why: postcard is deterministic for a given Rust type (struct fields in
//! declaration order, integers as LEB128 varints, no maps with unspecified
//! order as long as types use `BTreeMap`), compact, and fast. Rule 2 rejects
//! every alternative spelling of a value (for example an over-long varint), so
//! each value has exactly one accepted encoding: hashes and signatures over it
//! are unambiguous. JSON is kept for human-facing APIs only; signatures are
//! always over these bytes, carried verbatim inside the envelope, so a JSON
//! transport cannot change what was signed.
//!
//! Types that are signed or hashed must not contain `HashMap`/`HashSet`
//! (iteration order) or floats (NaN has many encodings).

use serde::{Serialize, de::DeserializeOwned};

/// Why bytes could not be decoded as the expected canonical value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("message is truncated")]
    Truncated,
    #[error("message is malformed: {0}")]
    Malformed(String),
    #[error("message has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("message is not in canonical encoding")]
    NonCanonical,
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("value could not be encoded: {0}")]
    Encode(String),
}

/// Encodes a value canonically.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    postcard::to_allocvec(value).map_err(|e| CanonicalError::Encode(e.to_string()))
}

/// Decodes canonical bytes, rejecting trailing bytes and non-canonical spellings.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, CanonicalError> {
    let (value, rest): (T, &[u8]) = postcard::take_from_bytes(bytes).map_err(map_err)?;
    if !rest.is_empty() {
        return Err(CanonicalError::TrailingBytes(rest.len()));
    }
    if encode(&value)? != bytes {
        return Err(CanonicalError::NonCanonical);
    }
    Ok(value)
}

fn map_err(e: postcard::Error) -> CanonicalError {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => CanonicalError::Truncated,
        other => CanonicalError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        a: u64,
        b: String,
    }

    #[test]
    fn round_trip() {
        let v = S {
            a: 300,
            b: "hi".into(),
        };
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<S>(&bytes).unwrap(), v);
    }

    #[test]
    fn rejects_truncated_trailing_and_overlong() {
        let bytes = encode(&S {
            a: 1,
            b: "x".into(),
        })
        .unwrap();
        assert_eq!(
            decode::<S>(&bytes[..bytes.len() - 1]),
            Err(CanonicalError::Truncated)
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode::<S>(&longer), Err(CanonicalError::TrailingBytes(1)));
        // 1 as an over-long varint (0x81 0x00) instead of 0x01.
        let mut overlong = vec![0x81, 0x00];
        overlong.extend_from_slice(&bytes[1..]);
        assert_eq!(decode::<S>(&overlong), Err(CanonicalError::NonCanonical));
    }
}
