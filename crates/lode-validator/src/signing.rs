//! Signer and verifier: Ed25519 over Lode's tagged signing input.
//!
//! Votes are signed exactly as `lode_ledger::consensus` checks them:
//! `key.sign_tagged(VOTE_TAG, &vote_sign_bytes(&VoteBody{chain, ..}))`, so a
//! Malachite commit certificate converts into a
//! [`lode_ledger::consensus::CommitCertificate`] that verifies
//! ([`crate::cert`]). Proposals and proposal parts are signed under
//! [`PROPOSAL_TAG`] over [`ProposalBody`].

use async_trait::async_trait;
use lode_ledger::consensus::{VOTE_TAG, VoteBody, VoteType as LedgerVoteType, vote_sign_bytes};
use lode_proto::{Did, Hash32, Keypair, canonical};
use malachitebft_core_types::{
    NilOrVal, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};
use serde::{Deserialize, Serialize};

use crate::ctx::{LodeCtx, Proposal, Sig, Vote, round_u32};

/// Domain tag of a proposal (and proposal-part) signature.
pub const PROPOSAL_TAG: &str = "lode/consensus/proposal/v1";
/// Domain tag of a (unused) vote-extension signature.
pub const EXTENSION_TAG: &str = "lode/consensus/extension/v1";
/// Domain tag binding a consensus key to a libp2p peer id.
pub const PEER_PROOF_TAG: &str = "lode/consensus/peer-proof/v1";

/// What a proposer signs for a proposal and for its streamed parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalBody {
    pub chain: Hash32,
    pub height: u64,
    pub round: u32,
    pub block: Hash32,
    /// The proof-of-lock round, `None` when undefined.
    pub pol_round: Option<u32>,
    pub proposer: Did,
}

/// The bytes signed (under [`PROPOSAL_TAG`]) for a proposal.
pub fn proposal_sign_bytes(p: &ProposalBody) -> Vec<u8> {
    // Integers, hashes and a did: encoding cannot fail.
    canonical::encode(p).unwrap_or_default()
}

/// The ledger's vote body for an engine vote on `chain`.
pub fn vote_body(chain: Hash32, v: &Vote) -> VoteBody {
    VoteBody {
        chain,
        vote: match v.typ {
            VoteType::Prevote => LedgerVoteType::Prevote,
            VoteType::Precommit => LedgerVoteType::Precommit,
        },
        height: v.height.0,
        round: round_u32(v.round),
        block: match &v.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(id.0),
        },
        validator: v.validator.0,
    }
}

/// The signed body of an engine proposal on `chain`.
pub fn proposal_body(chain: Hash32, p: &Proposal) -> ProposalBody {
    ProposalBody {
        chain,
        height: p.height.0,
        round: round_u32(p.round),
        block: p.value.id.0,
        pol_round: p.pol_round.as_u32(),
        proposer: p.proposer.0,
    }
}

fn ext_bytes(chain: Hash32, scope: &VoteExtensionScope<LodeCtx>, ext: &[u8]) -> Vec<u8> {
    let body = (
        chain,
        scope.height.0,
        round_u32(scope.round),
        scope.value_id.0,
        scope.validator_address.0,
        ext,
    );
    canonical::encode(&body).unwrap_or_default()
}

fn proof_bytes(pk: &[u8], peer: &[u8]) -> Vec<u8> {
    canonical::encode(&(pk, peer)).unwrap_or_default()
}

fn check(did: &Did, tag: &str, bytes: &[u8], sig: &Sig) -> VerificationResult {
    VerificationResult::from_bool(did.verify_tagged(tag, bytes, &(*sig).into()))
}

/// Checks a proposal signature of `body.proposer`.
pub fn verify_proposal(body: &ProposalBody, sig: &Sig) -> bool {
    check(
        &body.proposer,
        PROPOSAL_TAG,
        &proposal_sign_bytes(body),
        sig,
    )
    .is_valid()
}

/// Signs with a validator's Lode key, on one chain.
#[derive(Clone, Debug)]
pub struct LodeSigner {
    key: Keypair,
    chain: Hash32,
}

impl LodeSigner {
    pub fn new(key: Keypair, chain: Hash32) -> Self {
        Self { key, chain }
    }

    pub fn did(&self) -> Did {
        self.key.did()
    }

    pub fn chain(&self) -> Hash32 {
        self.chain
    }

    /// Signs a vote (the ledger's bytes).
    pub fn vote_signature(&self, v: &Vote) -> Sig {
        self.key
            .sign_tagged(VOTE_TAG, &vote_sign_bytes(&vote_body(self.chain, v)))
            .into()
    }

    /// Signs a proposal body.
    pub fn proposal_signature(&self, body: &ProposalBody) -> Sig {
        self.key
            .sign_tagged(PROPOSAL_TAG, &proposal_sign_bytes(body))
            .into()
    }
}

#[async_trait]
impl Signer<LodeCtx> for LodeSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<LodeCtx, Vote>, Error> {
        let s = self.vote_signature(&vote);
        Ok(SignedMessage::new(vote, s))
    }

    async fn sign_proposal(&self, p: Proposal) -> Result<SignedMessage<LodeCtx, Proposal>, Error> {
        let s = self.proposal_signature(&proposal_body(self.chain, &p));
        Ok(SignedMessage::new(p, s))
    }

    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<LodeCtx>,
        ext: Vec<u8>,
    ) -> Result<SignedMessage<LodeCtx, Vec<u8>>, Error> {
        let s = self
            .key
            .sign_tagged(EXTENSION_TAG, &ext_bytes(self.chain, &scope, &ext))
            .into();
        Ok(SignedMessage::new(ext, s))
    }

    async fn sign_validator_proof(
        &self,
        pk: Vec<u8>,
        peer: Vec<u8>,
    ) -> Result<ValidatorProof<LodeCtx>, Error> {
        let s = self
            .key
            .sign_tagged(PEER_PROOF_TAG, &proof_bytes(&pk, &peer))
            .into();
        Ok(ValidatorProof::new(pk, peer, s))
    }
}

/// Verifies signatures of one chain.
#[derive(Clone, Debug)]
pub struct LodeVerifier {
    chain: Hash32,
}

impl LodeVerifier {
    pub fn new(chain: Hash32) -> Self {
        Self { chain }
    }
}

#[async_trait]
impl Verifier<LodeCtx> for LodeVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        sig: &Sig,
        pk: &Did,
    ) -> Result<VerificationResult, Error> {
        let bytes = vote_sign_bytes(&vote_body(self.chain, vote));
        Ok(check(pk, VOTE_TAG, &bytes, sig))
    }

    async fn verify_signed_proposal(
        &self,
        p: &Proposal,
        sig: &Sig,
        pk: &Did,
    ) -> Result<VerificationResult, Error> {
        let bytes = proposal_sign_bytes(&proposal_body(self.chain, p));
        Ok(check(pk, PROPOSAL_TAG, &bytes, sig))
    }

    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<LodeCtx>,
        ext: &Vec<u8>,
        sig: &Sig,
        pk: &Did,
    ) -> Result<VerificationResult, Error> {
        Ok(check(
            pk,
            EXTENSION_TAG,
            &ext_bytes(self.chain, scope, ext),
            sig,
        ))
    }

    async fn verify_validator_proof(
        &self,
        p: &ValidatorProof<LodeCtx>,
    ) -> Result<VerificationResult, Error> {
        let Ok(pk) = <[u8; 32]>::try_from(p.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        let Ok(did) = Did::from_public_key_bytes(pk) else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(check(
            &did,
            PEER_PROOF_TAG,
            &proof_bytes(&p.public_key, &p.peer_id),
            &p.signature,
        ))
    }
}
