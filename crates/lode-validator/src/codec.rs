//! One codec for the WAL, consensus gossip and value sync: a version byte
//! ([`CODEC_VERSION`]) then borsh, through the engine's optional `borsh`
//! impls, plus two hand encodings for types 0.8.2 ships without borsh
//! (`ExtendedCommitCertificate` inside a sync response, `ValidatorProof`).
//!
//! The WAL is written with this codec, so changing an encoding means a new
//! [`CODEC_VERSION`] (an old WAL is then refused, never misread). Every
//! decode is bounded by the codec's `max_len` and fails with an error on
//! garbage, never a panic.

use bytes::Bytes;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    ExtendedCommitCertificate, ExtendedCommitSignature, PolkaCertificate, Round, SignedExtension,
    ValidatorProof,
};
use malachitebft_app_channel::app::types::sync::{self, RawDecidedValue};
use malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};
use malachitebft_sync::ValueResponse;

use crate::ctx::{Address, Height, LodeCtx, ProposalPart, Sig, ValueId};

/// Version of every encoding (WAL and wire).
pub const CODEC_VERSION: u8 = 1;

/// Why bytes do not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{len} bytes, more than the {max} a message may have")]
    TooLong { len: usize, max: usize },
    #[error("empty message")]
    Empty,
    #[error("codec version {0}, expected {CODEC_VERSION}")]
    Version(u8),
    #[error("malformed: {0}")]
    Malformed(#[from] std::io::Error),
}

/// The codec (cheap to copy).
#[derive(Clone, Copy, Debug)]
pub struct LodeCodec {
    max_len: usize,
}

impl LodeCodec {
    /// A codec refusing messages longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }

    fn open<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], CodecError> {
        if bytes.len() > self.max_len {
            return Err(CodecError::TooLong {
                len: bytes.len(),
                max: self.max_len,
            });
        }
        match bytes.split_first() {
            None => Err(CodecError::Empty),
            Some((&CODEC_VERSION, rest)) => Ok(rest),
            Some((v, _)) => Err(CodecError::Version(*v)),
        }
    }

    fn seal<T: borsh::BorshSerialize + ?Sized>(v: &T) -> Result<Bytes, CodecError> {
        let mut out = vec![CODEC_VERSION];
        v.serialize(&mut out)?;
        Ok(Bytes::from(out))
    }

    fn decode_borsh<T: borsh::BorshDeserialize>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(borsh::from_slice(self.open(bytes)?)?)
    }
}

macro_rules! borsh_codec {
    ($($t:ty),* $(,)?) => {$(
        impl Codec<$t> for LodeCodec {
            type Error = CodecError;
            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                self.decode_borsh(&bytes)
            }
            fn encode(&self, msg: &$t) -> Result<Bytes, CodecError> {
                Self::seal(msg)
            }
        }
    )*};
}

borsh_codec!(
    ProposalPart,
    SignedConsensusMsg<LodeCtx>,
    LivenessMsg<LodeCtx>,
    StreamMessage<ProposalPart>,
    ProposedValue<LodeCtx>,
    PolkaCertificate<LodeCtx>,
    sync::Status<LodeCtx>,
    sync::Request<LodeCtx>,
);

type WireSig = (Address, Sig, Option<SignedExtension<LodeCtx>>);
type WireValue = (Vec<u8>, Height, Round, ValueId, Vec<WireSig>);

fn response_to_wire(r: &sync::Response<LodeCtx>) -> (Height, Vec<WireValue>) {
    let sync::Response::ValueResponse(v) = r;
    let values = v
        .values
        .iter()
        .map(|d| {
            let c = &d.certificate;
            let sigs = c
                .commit_signatures
                .iter()
                .map(|s| (s.address, s.signature, s.extension.clone()))
                .collect();
            (d.value_bytes.to_vec(), c.height, c.round, c.value_id, sigs)
        })
        .collect();
    (v.start_height, values)
}

impl Codec<sync::Response<LodeCtx>> for LodeCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<sync::Response<LodeCtx>, CodecError> {
        let (start, values): (Height, Vec<WireValue>) = self.decode_borsh(&bytes)?;
        let values = values
            .into_iter()
            .map(|(vb, height, round, value_id, sigs)| RawDecidedValue {
                value_bytes: Bytes::from(vb),
                certificate: ExtendedCommitCertificate {
                    height,
                    round,
                    value_id,
                    commit_signatures: sigs
                        .into_iter()
                        .map(|(a, s, e)| ExtendedCommitSignature::new(a, s, e))
                        .collect(),
                },
            })
            .collect();
        Ok(sync::Response::ValueResponse(ValueResponse::new(
            start, values,
        )))
    }
    fn encode(&self, r: &sync::Response<LodeCtx>) -> Result<Bytes, CodecError> {
        Self::seal(&response_to_wire(r))
    }
}

impl HasEncodedLen<sync::Response<LodeCtx>> for LodeCodec {
    fn encoded_len(&self, msg: &sync::Response<LodeCtx>) -> Result<usize, CodecError> {
        Ok(1 + borsh::object_length(&response_to_wire(msg))?)
    }
}

impl Codec<ValidatorProof<LodeCtx>> for LodeCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<LodeCtx>, CodecError> {
        let (pk, peer, sig): (Vec<u8>, Vec<u8>, Sig) = self.decode_borsh(&bytes)?;
        Ok(ValidatorProof::new(pk, peer, sig))
    }
    fn encode(&self, p: &ValidatorProof<LodeCtx>) -> Result<Bytes, CodecError> {
        Self::seal(&(&p.public_key, &p.peer_id, &p.signature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(dead_code)]
    fn bounds() {
        use malachitebft_app_channel::app::types::codec::{ConsensusCodec, SyncCodec, WalCodec};
        fn wal<C: WalCodec<LodeCtx>>() {}
        fn cons<C: ConsensusCodec<LodeCtx>>() {}
        fn syn<C: SyncCodec<LodeCtx>>() {}
        wal::<LodeCodec>();
        cons::<LodeCodec>();
        syn::<LodeCodec>();
    }

    #[test]
    fn version_and_length_are_checked() {
        let c = LodeCodec::new(100);
        let part = ProposalPart::Data(vec![1, 2, 3]);
        let bytes = Codec::<ProposalPart>::encode(&c, &part).unwrap();
        assert_eq!(
            Codec::<ProposalPart>::decode(&c, bytes.clone()).unwrap(),
            part
        );
        let mut other = bytes.to_vec();
        other[0] = 9;
        assert!(matches!(
            Codec::<ProposalPart>::decode(&c, Bytes::from(other)),
            Err(CodecError::Version(9))
        ));
        let long = Codec::<ProposalPart>::encode(&c, &ProposalPart::Data(vec![0; 200])).unwrap();
        assert!(matches!(
            Codec::<ProposalPart>::decode(&c, long),
            Err(CodecError::TooLong { .. })
        ));
    }
}
