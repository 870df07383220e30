//! What the engine asks of the application ([`App`]), and what it reports
//! back ([`Equivocation`]).

use lode_ledger::consensus::{
    CommitCertificate, VOTE_TAG, ValidatorSet, VoteBody, VoteType, vote_sign_bytes,
};
use lode_proto::{Did, Hash32, Signature};

use crate::signing::{PROPOSAL_TAG, ProposalBody, proposal_sign_bytes};

/// What the engine asks of the application. Calls are made from the engine's
/// task; they may block briefly (the engine runs them under
/// `tokio::task::block_in_place`, so it needs a multi-threaded runtime).
pub trait App: Send + 'static {
    /// Chain id bound into every vote and proposal signature.
    fn chain_id(&self) -> Hash32;
    /// Height of the last committed block (0 = only genesis). The engine
    /// starts consensus at committed_height() + 1.
    fn committed_height(&self) -> u64;
    /// The validator set that decides `height` (called for every height, also
    /// while syncing). Err stops the engine.
    fn validator_set(&self, height: u64) -> Result<ValidatorSet, AppError>;
    /// Builds a new block for `height` (from the app's mempool) and returns
    /// (block id, block bytes). The engine calls this only when it is the
    /// proposer and has not proposed at this height yet; a re-proposal at a
    /// later round reuses the stored earlier proposal (the engine keeps it),
    /// never calls propose again for the same height.
    fn propose(&mut self, height: u64, round: u32) -> Result<(Hash32, Vec<u8>), AppError>;
    /// Checks a complete proposal for `height` by `proposer`: decodes,
    /// re-executes, compares roots. Ok(id) = valid (id must be the block
    /// hash); Err(AppError::Invalid(_)) = vote invalid; other errors are
    /// local/transient.
    fn check(&mut self, height: u64, proposer: Did, bytes: &[u8]) -> Result<Hash32, AppError>;
    /// Durably stores the decided block `bytes` (id `block`) at `height` with
    /// its certificate. Called exactly once per height, in height order.
    /// After it returns, committed_height() == height.
    fn commit(
        &mut self,
        height: u64,
        block: Hash32,
        bytes: &[u8],
        cert: CommitCertificate,
    ) -> Result<(), AppError>;
    /// A committed block's bytes and certificate (to serve sync to lagging peers).
    fn decided(&self, height: u64) -> Result<Option<(Vec<u8>, CommitCertificate)>, AppError>;
    /// Misbehaviour the engine saw (double votes / double proposals), to be
    /// put on the ledger later.
    fn evidence(&mut self, evidence: Vec<Equivocation>);
}

/// An application's refusal or failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The proposal (or synced block) is invalid: vote against it.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A local or transient failure.
    #[error("{0}")]
    Other(String),
}

/// Which message a validator signed twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EquivocationKind {
    /// Two votes of one type (same height and round, different block or nil).
    Vote(VoteType),
    /// Two proposals (same height and round, different block or pol round).
    Proposal,
}

/// One of the two conflicting signed messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The block voted for or proposed (`None` = nil, votes only).
    pub block: Option<Hash32>,
    /// The proof-of-lock round of a proposal (`None` for votes, or undefined).
    pub pol_round: Option<u32>,
    pub signature: Signature,
}

/// Two conflicting signed messages of one validator at one (height, round,
/// kind): enough to check against `lode_ledger::consensus::vote_sign_bytes`
/// (votes) or [`crate::signing::proposal_sign_bytes`] (proposals) with
/// [`Equivocation::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    pub validator: Did,
    pub height: u64,
    pub round: u32,
    pub kind: EquivocationKind,
    pub first: Signed,
    pub second: Signed,
}

impl Equivocation {
    /// Whether both messages are signed by `validator` on `chain` and differ.
    pub fn verify(&self, chain: Hash32) -> bool {
        if self.first.block == self.second.block && self.first.pol_round == self.second.pol_round {
            return false;
        }
        [&self.first, &self.second].iter().all(|m| match self.kind {
            EquivocationKind::Vote(vote) => {
                let body = VoteBody {
                    chain,
                    vote,
                    height: self.height,
                    round: self.round,
                    block: m.block,
                    validator: self.validator,
                };
                self.validator
                    .verify_tagged(VOTE_TAG, &vote_sign_bytes(&body), &m.signature)
            }
            EquivocationKind::Proposal => {
                let Some(block) = m.block else { return false };
                let body = ProposalBody {
                    chain,
                    height: self.height,
                    round: self.round,
                    block,
                    pol_round: m.pol_round,
                    proposer: self.validator,
                };
                self.validator.verify_tagged(
                    PROPOSAL_TAG,
                    &proposal_sign_bytes(&body),
                    &m.signature,
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::Keypair;

    fn vote_sig(k: &Keypair, chain: Hash32, block: Option<Hash32>) -> Signature {
        let body = VoteBody {
            chain,
            vote: VoteType::Prevote,
            height: 3,
            round: 1,
            block,
            validator: k.did(),
        };
        k.sign_tagged(VOTE_TAG, &vote_sign_bytes(&body))
    }

    #[test]
    fn double_votes_verify_and_forgeries_do_not() {
        let k = Keypair::from_secret_bytes(&[3; 32]);
        let chain = Hash32([1; 32]);
        let a = Some(Hash32([5; 32]));
        let e = Equivocation {
            validator: k.did(),
            height: 3,
            round: 1,
            kind: EquivocationKind::Vote(VoteType::Prevote),
            first: Signed {
                block: a,
                pol_round: None,
                signature: vote_sig(&k, chain, a),
            },
            second: Signed {
                block: None,
                pol_round: None,
                signature: vote_sig(&k, chain, None),
            },
        };
        assert!(e.verify(chain));
        assert!(!e.verify(Hash32([2; 32])));
        let same = Equivocation {
            second: e.first.clone(),
            ..e.clone()
        };
        assert!(!same.verify(chain));
        let other = Equivocation {
            validator: Keypair::from_secret_bytes(&[4; 32]).did(),
            ..e
        };
        assert!(!other.verify(chain));
    }
}
