//! Proposal parts: a block streams as `Init`, `Data` chunks of at most
//! [`CHUNK_BYTES`] and `Fin` (the proposer's signature over
//! [`crate::signing::ProposalBody`]), then the stream's end marker.
//!
//! [`Reassembler`] puts streams back together, out of order, with bounds on
//! everything a peer controls: the declared and received block size
//! (`max_block_bytes`), the chunk size, the number of parts and of streams in
//! flight. A malformed part is a typed [`PartError`], never a panic.

use std::collections::{BTreeMap, HashMap, VecDeque};

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_core_types::Round;

use crate::ctx::{Address, Height, Sig, ValueId};

/// Largest data chunk of a proposal stream.
pub const CHUNK_BYTES: usize = 128 * 1024;

/// Most streams reassembled at once (the oldest is dropped beyond it).
pub const MAX_STREAMS: usize = 64;

/// The first part: what the stream carries.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PartInit {
    pub height: Height,
    pub round: Round,
    pub pol_round: Round,
    pub proposer: Address,
    pub block: ValueId,
    /// Total length of the block bytes.
    pub len: u64,
}

/// One part of a streamed proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ProposalPart {
    Init(PartInit),
    Data(Vec<u8>),
    /// The proposer's signature over the proposal body.
    Fin(Sig),
}

/// Why a part or stream is refused (the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    #[error("the block is {len} bytes, more than the {max} allowed")]
    TooLarge { len: u64, max: usize },
    #[error("a data chunk of {0} bytes is larger than {CHUNK_BYTES}")]
    ChunkTooLarge(usize),
    #[error("sequence number {0} is out of bounds")]
    BadSequence(u64),
    #[error("part {0} arrived twice")]
    Duplicate(u64),
    #[error("malformed stream: {0}")]
    Malformed(&'static str),
}

/// A complete, not yet checked proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    pub init: PartInit,
    pub bytes: Bytes,
    pub signature: Sig,
}

/// Splits a block into the parts of its stream (without the end marker).
pub fn split(init: PartInit, bytes: &[u8], signature: Sig) -> Vec<ProposalPart> {
    let mut out = Vec::with_capacity(bytes.len() / CHUNK_BYTES + 3);
    out.push(ProposalPart::Init(init));
    out.extend(
        bytes
            .chunks(CHUNK_BYTES)
            .map(|c| ProposalPart::Data(c.to_vec())),
    );
    out.push(ProposalPart::Fin(signature));
    out
}

/// The stream messages of a block, end marker included.
pub fn stream(id: StreamId, parts: Vec<ProposalPart>) -> Vec<StreamMessage<ProposalPart>> {
    let n = parts.len() as u64;
    let mut out: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| StreamMessage::new(id.clone(), i as u64, StreamContent::Data(p)))
        .collect();
    out.push(StreamMessage::new(id, n, StreamContent::Fin));
    out
}

#[derive(Debug, Default)]
struct Partial {
    parts: BTreeMap<u64, ProposalPart>,
    end: Option<u64>,
    bytes: usize,
}

/// Streams are told apart by publisher and stream id (a relay cannot
/// poison another publisher's stream).
type Key = (Option<PeerId>, StreamId);

/// Puts proposal streams back together.
#[derive(Debug)]
pub struct Reassembler {
    max_block: usize,
    streams: HashMap<Key, Partial>,
    order: VecDeque<Key>,
    /// Data bytes buffered over all streams.
    total: usize,
}

impl Reassembler {
    pub fn new(max_block_bytes: usize) -> Self {
        Self {
            max_block: max_block_bytes,
            streams: HashMap::new(),
            order: VecDeque::new(),
            total: 0,
        }
    }

    fn max_parts(&self) -> u64 {
        (self.max_block / CHUNK_BYTES) as u64 + 3
    }

    /// Most data buffered over all streams: the oldest streams are dropped beyond it.
    fn max_total(&self) -> usize {
        self.max_block.saturating_mul(4).max(CHUNK_BYTES * 4)
    }

    fn drop_stream(&mut self, key: &Key) {
        if let Some(st) = self.streams.remove(key) {
            self.total -= st.bytes;
        }
        self.order.retain(|k| k != key);
    }

    /// Adds one message of `publisher`'s stream; returns the proposal once the
    /// stream is complete. On error the whole stream is dropped; an identical
    /// duplicate (a relay's copy) is ignored.
    pub fn push(
        &mut self,
        publisher: Option<PeerId>,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<Assembled>, PartError> {
        let key = (publisher, msg.stream_id.clone());
        let r = self.push_inner(&key, msg);
        if !matches!(r, Ok(None)) {
            self.drop_stream(&key);
        }
        r
    }

    fn push_inner(
        &mut self,
        key: &Key,
        msg: StreamMessage<ProposalPart>,
    ) -> Result<Option<Assembled>, PartError> {
        let seq = msg.sequence;
        if seq > self.max_parts() {
            return Err(PartError::BadSequence(seq));
        }
        let data_len = match &msg.content {
            StreamContent::Data(ProposalPart::Data(d)) if d.len() > CHUNK_BYTES => {
                return Err(PartError::ChunkTooLarge(d.len()));
            }
            StreamContent::Data(ProposalPart::Data(d)) => d.len(),
            StreamContent::Data(ProposalPart::Init(i)) if i.len > self.max_block as u64 => {
                return Err(PartError::TooLarge {
                    len: i.len,
                    max: self.max_block,
                });
            }
            _ => 0,
        };
        if !self.streams.contains_key(key) {
            if self.order.len() >= MAX_STREAMS
                && let Some(old) = self.order.front().cloned()
            {
                self.drop_stream(&old);
            }
            self.order.push_back(key.clone());
            self.streams.insert(key.clone(), Partial::default());
        }
        // Make room: drop the oldest other streams while over the total bound.
        while self.total + data_len > self.max_total() {
            match self.order.iter().find(|k| *k != key).cloned() {
                Some(old) => self.drop_stream(&old),
                None => break,
            }
        }
        let max_block = self.max_block;
        let Some(st) = self.streams.get_mut(key) else {
            return Err(PartError::Malformed("stream lost"));
        };
        match msg.content {
            StreamContent::Fin => match st.end {
                Some(e) if e == seq => return Ok(None),
                Some(_) => return Err(PartError::Duplicate(seq)),
                None => st.end = Some(seq),
            },
            StreamContent::Data(p) => match st.parts.get(&seq) {
                Some(old) if *old == p => return Ok(None),
                Some(_) => return Err(PartError::Duplicate(seq)),
                None => {
                    if st.bytes + data_len > max_block {
                        return Err(PartError::TooLarge {
                            len: (st.bytes + data_len) as u64,
                            max: max_block,
                        });
                    }
                    st.bytes += data_len;
                    self.total += data_len;
                    st.parts.insert(seq, p);
                }
            },
        }
        if let Some(end) = st.end
            && st.parts.keys().next_back().is_some_and(|k| *k >= end)
        {
            return Err(PartError::Malformed("a part after the end of the stream"));
        }
        match st.end {
            Some(end) if st.parts.len() as u64 == end => {}
            _ => return Ok(None),
        }
        let parts = std::mem::take(&mut st.parts);
        assemble(parts.into_values()).map(Some)
    }
}

fn assemble(parts: impl Iterator<Item = ProposalPart>) -> Result<Assembled, PartError> {
    let mut parts = parts.peekable();
    let Some(ProposalPart::Init(init)) = parts.next() else {
        return Err(PartError::Malformed("the stream does not start with Init"));
    };
    let mut bytes = Vec::with_capacity(init.len as usize);
    let mut signature = None;
    for p in parts {
        match p {
            ProposalPart::Data(d) if signature.is_none() => bytes.extend_from_slice(&d),
            ProposalPart::Fin(s) if signature.is_none() => signature = Some(s),
            _ => return Err(PartError::Malformed("a part out of place")),
        }
    }
    let Some(signature) = signature else {
        return Err(PartError::Malformed("the stream has no Fin"));
    };
    if bytes.len() as u64 != init.len {
        return Err(PartError::Malformed(
            "the data does not match the declared length",
        ));
    }
    Ok(Assembled {
        init,
        bytes: Bytes::from(bytes),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::{Hash32, Keypair};

    fn init(len: u64) -> PartInit {
        PartInit {
            height: Height(1),
            round: Round::new(0),
            pol_round: Round::Nil,
            proposer: Address(Keypair::from_secret_bytes(&[1; 32]).did()),
            block: ValueId(Hash32([2; 32])),
            len,
        }
    }

    fn sid(n: u8) -> StreamId {
        StreamId::new(Bytes::from(vec![n]))
    }

    #[test]
    fn roundtrip_out_of_order() {
        let block: Vec<u8> = (0..CHUNK_BYTES * 2 + 5).map(|i| i as u8).collect();
        let mut msgs = stream(
            sid(1),
            split(init(block.len() as u64), &block, Sig([3; 64])),
        );
        msgs.reverse();
        let mut r = Reassembler::new(1 << 20);
        let mut done = None;
        for m in msgs {
            if let Some(a) = r.push(None, m).unwrap() {
                done = Some(a);
            }
        }
        let a = done.unwrap();
        assert_eq!(&a.bytes[..], &block[..]);
        assert_eq!(a.signature, Sig([3; 64]));
    }

    #[test]
    fn oversized_is_refused() {
        let mut r = Reassembler::new(1000);
        let e = r
            .push(
                None,
                StreamMessage::new(
                    sid(1),
                    0,
                    StreamContent::Data(ProposalPart::Init(init(5000))),
                ),
            )
            .unwrap_err();
        assert!(matches!(e, PartError::TooLarge { .. }));
        // a lying Init: declared small, data beyond the bound
        r.push(
            None,
            StreamMessage::new(sid(2), 0, StreamContent::Data(ProposalPart::Init(init(10)))),
        )
        .unwrap();
        let e = r
            .push(
                None,
                StreamMessage::new(
                    sid(2),
                    1,
                    StreamContent::Data(ProposalPart::Data(vec![0; 1001])),
                ),
            )
            .unwrap_err();
        assert!(matches!(e, PartError::TooLarge { .. }));
        let e = r
            .push(
                None,
                StreamMessage::new(
                    sid(3),
                    1,
                    StreamContent::Data(ProposalPart::Data(vec![0; CHUNK_BYTES + 1])),
                ),
            )
            .unwrap_err();
        assert!(matches!(e, PartError::ChunkTooLarge(_)));
    }

    #[test]
    fn malformed_streams() {
        let mut r = Reassembler::new(1000);
        // no Init
        r.push(
            None,
            StreamMessage::new(sid(1), 0, StreamContent::Data(ProposalPart::Data(vec![1]))),
        )
        .unwrap();
        let e = r
            .push(None, StreamMessage::new(sid(1), 1, StreamContent::Fin))
            .unwrap_err();
        assert!(matches!(e, PartError::Malformed(_)));
        // wrong length
        r.push(
            None,
            StreamMessage::new(sid(2), 0, StreamContent::Data(ProposalPart::Init(init(3)))),
        )
        .unwrap();
        r.push(
            None,
            StreamMessage::new(
                sid(2),
                1,
                StreamContent::Data(ProposalPart::Fin(Sig([0; 64]))),
            ),
        )
        .unwrap();
        let e = r
            .push(None, StreamMessage::new(sid(2), 2, StreamContent::Fin))
            .unwrap_err();
        assert!(matches!(e, PartError::Malformed(_)));
        // absurd sequence
        let e = r
            .push(
                None,
                StreamMessage::new(sid(3), u64::MAX, StreamContent::Fin),
            )
            .unwrap_err();
        assert!(matches!(e, PartError::BadSequence(_)));
    }

    #[test]
    fn relayed_copies_are_ignored() {
        let block = vec![5u8; 10];
        let msgs = stream(sid(1), split(init(10), &block, Sig([3; 64])));
        let mut r = Reassembler::new(1000);
        r.push(None, msgs[0].clone()).unwrap();
        assert_eq!(r.push(None, msgs[0].clone()), Ok(None));
        r.push(None, msgs[1].clone()).unwrap();
        r.push(None, msgs[2].clone()).unwrap();
        assert!(r.push(None, msgs[3].clone()).unwrap().is_some());
    }
}
