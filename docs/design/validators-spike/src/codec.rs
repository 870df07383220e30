//! One codec for WAL, consensus gossip and sync: borsh, via the engine's
//! optional `borsh` impls. (Lode could use its canonical postcard encoding
//! instead, but then it must write a Codec impl per engine type by hand.)

use bytes::Bytes;
use malachitebft_app_channel::app::types::core::ValidatorProof;
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::streaming::StreamMessage;
use malachitebft_app_channel::app::types::sync;
use malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::types::core::PolkaCertificate;

use crate::ctx::{Address, Height, LodeCtx, ProposalPart, PubKey, Sig, ValueId};
use malachitebft_app_channel::app::types::core::{
    ExtendedCommitCertificate, ExtendedCommitSignature, Round, SignedExtension,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_sync::ValueResponse;

#[derive(Clone, Copy, Debug, Default)]
pub struct BorshCodec;

macro_rules! borsh_codec {
    ($($t:ty),* $(,)?) => {$(
        impl Codec<$t> for BorshCodec {
            type Error = std::io::Error;
            fn decode(&self, bytes: Bytes) -> Result<$t, Self::Error> {
                borsh::from_slice(&bytes)
            }
            fn encode(&self, msg: &$t) -> Result<Bytes, Self::Error> {
                borsh::to_vec(msg).map(Bytes::from)
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

// arc-malachitebft 0.8.2 ships no borsh impl for ExtendedCommitCertificate, so the
// sync response (decided values + their certificates) is encoded by hand.
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
                .map(|s| (s.address, s.signature.clone(), s.extension.clone()))
                .collect();
            (d.value_bytes.to_vec(), c.height, c.round, c.value_id, sigs)
        })
        .collect();
    (v.start_height, values)
}

impl Codec<sync::Response<LodeCtx>> for BorshCodec {
    type Error = std::io::Error;
    fn decode(&self, bytes: Bytes) -> Result<sync::Response<LodeCtx>, Self::Error> {
        let (start, values): (Height, Vec<WireValue>) = borsh::from_slice(&bytes)?;
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
        Ok(sync::Response::ValueResponse(ValueResponse::new(start, values)))
    }
    fn encode(&self, r: &sync::Response<LodeCtx>) -> Result<Bytes, Self::Error> {
        borsh::to_vec(&response_to_wire(r)).map(Bytes::from)
    }
}

impl HasEncodedLen<sync::Response<LodeCtx>> for BorshCodec {
    fn encoded_len(&self, msg: &sync::Response<LodeCtx>) -> Result<usize, std::io::Error> {
        borsh::object_length(&response_to_wire(msg))
    }
}

// ValidatorProof has no borsh impl upstream: encode its three fields by hand.
impl Codec<ValidatorProof<LodeCtx>> for BorshCodec {
    type Error = std::io::Error;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<LodeCtx>, Self::Error> {
        let (pk, peer, sig): (Vec<u8>, Vec<u8>, Sig) = borsh::from_slice(&bytes)?;
        Ok(ValidatorProof::new(pk, peer, sig))
    }
    fn encode(&self, p: &ValidatorProof<LodeCtx>) -> Result<Bytes, Self::Error> {
        borsh::to_vec(&(&p.public_key, &p.peer_id, &p.signature)).map(Bytes::from)
    }
}

#[allow(dead_code)]
fn _assert_bounds() {
    fn wal<C: malachitebft_app_channel::app::types::codec::WalCodec<LodeCtx>>() {}
    fn cons<C: malachitebft_app_channel::app::types::codec::ConsensusCodec<LodeCtx>>() {}
    fn syn<C: malachitebft_app_channel::app::types::codec::SyncCodec<LodeCtx>>() {}
    wal::<BorshCodec>();
    cons::<BorshCodec>();
    syn::<BorshCodec>();
    let _ = PubKey([0; 32]);
}
