//! Conversions between Malachite's commit certificates and Lode's
//! ([`lode_ledger::consensus::CommitCertificate`]), and from the engine's
//! misbehaviour evidence to [`Equivocation`]s.

use lode_ledger::consensus::{CommitCertificate, VoteType as LedgerVoteType};
use malachitebft_core_consensus::MisbehaviorEvidence;
use malachitebft_core_types::{
    CommitCertificate as McCert, ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal,
    Round, SignedProposal, SignedVote, VoteType,
};

use crate::app::{Equivocation, EquivocationKind, Signed};
use crate::ctx::{Address, Height, LodeCtx, ValueId, round_u32};

/// Lode's certificate for an engine certificate (signatures sorted by did).
pub fn to_lode(c: &McCert<LodeCtx>) -> CommitCertificate {
    let mut signatures: Vec<_> = c
        .commit_signatures
        .iter()
        .map(|s| (s.address.0, s.signature.into()))
        .collect();
    signatures.sort_by_key(|(d, _)| *d);
    CommitCertificate {
        height: c.height.0,
        round: round_u32(c.round),
        block: c.value_id.0,
        signatures,
    }
}

/// The engine's (sync) certificate for a Lode certificate.
pub fn from_lode(c: &CommitCertificate) -> ExtendedCommitCertificate<LodeCtx> {
    ExtendedCommitCertificate {
        height: Height(c.height),
        round: Round::new(c.round),
        value_id: ValueId(c.block),
        commit_signatures: c
            .signatures
            .iter()
            .map(|(d, s)| ExtendedCommitSignature::new(Address(*d), (*s).into(), None))
            .collect(),
    }
}

fn vote_signed(v: &SignedVote<LodeCtx>) -> Signed {
    Signed {
        block: match &v.message.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(id.0),
        },
        pol_round: None,
        signature: v.signature.into(),
    }
}

fn proposal_signed(p: &SignedProposal<LodeCtx>) -> Signed {
    Signed {
        block: Some(p.message.value.id.0),
        pol_round: p.message.pol_round.as_u32(),
        signature: p.signature.into(),
    }
}

/// The engine's evidence as Lode equivocations.
pub fn equivocations(e: &MisbehaviorEvidence<LodeCtx>) -> Vec<Equivocation> {
    let mut out = Vec::new();
    for (addr, pairs) in e.votes.iter() {
        for (a, b) in pairs {
            out.push(Equivocation {
                validator: addr.0,
                height: a.message.height.0,
                round: round_u32(a.message.round),
                kind: EquivocationKind::Vote(match a.message.typ {
                    VoteType::Prevote => LedgerVoteType::Prevote,
                    VoteType::Precommit => LedgerVoteType::Precommit,
                }),
                first: vote_signed(a),
                second: vote_signed(b),
            });
        }
    }
    for (addr, pairs) in e.proposals.iter() {
        for (a, b) in pairs {
            out.push(Equivocation {
                validator: addr.0,
                height: a.message.height.0,
                round: round_u32(a.message.round),
                kind: EquivocationKind::Proposal,
                first: proposal_signed(a),
                second: proposal_signed(b),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::Vote;
    use crate::signing::LodeSigner;
    use lode_ledger::consensus::{Validator, ValidatorSet, VoteBody, vote_sign_bytes};
    use lode_proto::{Hash32, Keypair};
    use malachitebft_core_types::CommitSignature;

    fn keys() -> Vec<Keypair> {
        (1..=4u8)
            .map(|i| Keypair::from_secret_bytes(&[i; 32]))
            .collect()
    }

    #[test]
    fn signer_bytes_are_the_ledgers() {
        let chain = Hash32([9; 32]);
        let k = &keys()[0];
        let vote = Vote {
            typ: VoteType::Precommit,
            height: Height(5),
            round: Round::new(2),
            value: NilOrVal::Val(ValueId(Hash32([3; 32]))),
            validator: Address(k.did()),
            extension: None,
        };
        let sig = LodeSigner::new(k.clone(), chain).vote_signature(&vote);
        let body = VoteBody {
            chain,
            vote: LedgerVoteType::Precommit,
            height: 5,
            round: 2,
            block: Some(Hash32([3; 32])),
            validator: k.did(),
        };
        let expected = k.sign_tagged(lode_ledger::consensus::VOTE_TAG, &vote_sign_bytes(&body));
        assert_eq!(lode_proto::Signature::from(sig), expected);
    }

    #[test]
    fn certificate_converts_and_verifies() {
        let chain = Hash32([9; 32]);
        let block = Hash32([3; 32]);
        let ks = keys();
        let set = ValidatorSet::new(
            ks.iter()
                .enumerate()
                .map(|(i, k)| Validator {
                    did: k.did(),
                    power: i as u64 + 1,
                })
                .collect(),
        )
        .unwrap();
        // powers 2, 3, 4 sign: 9 of 10
        let sigs = ks[1..]
            .iter()
            .map(|k| {
                let vote = Vote {
                    typ: VoteType::Precommit,
                    height: Height(7),
                    round: Round::new(1),
                    value: NilOrVal::Val(ValueId(block)),
                    validator: Address(k.did()),
                    extension: None,
                };
                let s = LodeSigner::new(k.clone(), chain).vote_signature(&vote);
                CommitSignature::new(Address(k.did()), s)
            })
            .collect();
        let mc = McCert {
            height: Height(7),
            round: Round::new(1),
            value_id: ValueId(block),
            commit_signatures: sigs,
        };
        let cert = to_lode(&mc);
        cert.verify(chain, 7, block, &set).unwrap();
        assert!(cert.verify(Hash32([8; 32]), 7, block, &set).is_err());
        // and back to the engine's form for sync
        let back = from_lode(&cert);
        assert_eq!(back.commit_signatures.len(), 3);
        assert_eq!(back.value_id, ValueId(block));
    }
}
