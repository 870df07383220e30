//! The codec and proposal streams refuse garbage without panicking.

use bytes::Bytes;
use lode_validator::codec::LodeCodec;
use lode_validator::ctx::{LodeCtx, ProposalPart};
use lode_validator::parts::{CHUNK_BYTES, PartError, Reassembler};
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::{PolkaCertificate, ValidatorProof};
use malachitebft_app_channel::app::types::sync;
use malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};
use proptest::prelude::*;

fn decode_all(c: &LodeCodec, b: Bytes) {
    let _ = Codec::<ProposalPart>::decode(c, b.clone());
    let _ = Codec::<SignedConsensusMsg<LodeCtx>>::decode(c, b.clone());
    let _ = Codec::<LivenessMsg<LodeCtx>>::decode(c, b.clone());
    let _ = Codec::<StreamMessage<ProposalPart>>::decode(c, b.clone());
    let _ = Codec::<ProposedValue<LodeCtx>>::decode(c, b.clone());
    let _ = Codec::<PolkaCertificate<LodeCtx>>::decode(c, b.clone());
    let _ = Codec::<sync::Status<LodeCtx>>::decode(c, b.clone());
    let _ = Codec::<sync::Request<LodeCtx>>::decode(c, b.clone());
    let _ = Codec::<sync::Response<LodeCtx>>::decode(c, b.clone());
    let _ = Codec::<ValidatorProof<LodeCtx>>::decode(c, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let c = LodeCodec::new(1 << 20);
        decode_all(&c, Bytes::from(bytes.clone()));
        // and with the right version byte, so borsh sees the garbage
        if !bytes.is_empty() {
            bytes[0] = lode_validator::codec::CODEC_VERSION;
        }
        decode_all(&c, Bytes::from(bytes));
    }

    #[test]
    fn reassembling_garbage_never_panics(parts in proptest::collection::vec((0u64..40, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..40)) {
        let c = LodeCodec::new(1 << 20);
        let mut r = Reassembler::new(4096);
        for (seq, fin, bytes) in parts {
            let content = if fin {
                StreamContent::Fin
            } else {
                let mut b = vec![lode_validator::codec::CODEC_VERSION];
                b.extend(bytes);
                match Codec::<ProposalPart>::decode(&c, Bytes::from(b)) {
                    Ok(p) => StreamContent::Data(p),
                    Err(_) => StreamContent::Data(ProposalPart::Data(vec![1, 2, 3])),
                }
            };
            let _ = r.push(None, StreamMessage::new(StreamId::new(Bytes::from_static(b"s")), seq, content));
        }
    }
}

#[test]
fn an_oversized_stream_is_refused() {
    let mut r = Reassembler::new(3 * CHUNK_BYTES);
    let id = StreamId::new(Bytes::from_static(b"big"));
    let mut refused = None;
    for seq in 1..10u64 {
        let part = ProposalPart::Data(vec![0; CHUNK_BYTES]);
        if let Err(e) = r.push(
            None,
            StreamMessage::new(id.clone(), seq, StreamContent::Data(part)),
        ) {
            refused = Some(e);
            break;
        }
    }
    assert!(matches!(refused, Some(PartError::TooLarge { .. })));
    // an oversized message is refused by the codec before borsh sees it
    let c = LodeCodec::new(1000);
    assert!(Codec::<ProposalPart>::decode(&c, Bytes::from(vec![1u8; 1001])).is_err());
}
