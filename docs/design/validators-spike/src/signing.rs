//! Signer / Verifier for the spike context (Ed25519, domain-tagged bytes).

use async_trait::async_trait;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use malachitebft_app_channel::app::types::core::{SignedMessage, ValidatorProof, VoteExtensionScope};
use malachitebft_app_channel::{Signer, Verifier};
use malachitebft_signing::{Error, VerificationResult};

use crate::ctx::{LodeCtx, Proposal, PubKey, Sig, Vote};

fn proposal_bytes(p: &Proposal) -> Vec<u8> {
    use malachitebft_app_channel::app::types::core::Value as _;
    let mut out = b"spike/proposal/v1\0".to_vec();
    out.extend(borsh::to_vec(&(p.height, p.round.as_i64(), p.value.id(), p.pol_round.as_i64(), p.proposer)).unwrap());
    out
}

fn ext_bytes(scope: &VoteExtensionScope<LodeCtx>, ext: &Vec<u8>) -> Vec<u8> {
    let mut out = b"spike/ext/v1\0".to_vec();
    out.extend(borsh::to_vec(&(scope.height, scope.round.as_i64(), scope.value_id, scope.validator_address, ext)).unwrap());
    out
}

fn proof_bytes(pk: &[u8], peer: &[u8]) -> Vec<u8> {
    let mut out = b"spike/peer-proof/v1\0".to_vec();
    out.extend(borsh::to_vec(&(pk, peer)).unwrap());
    out
}

pub fn verify(bytes: &[u8], sig: &Sig, pk: &PubKey) -> VerificationResult {
    let ok = VerifyingKey::from_bytes(&pk.0)
        .map(|k| k.verify(bytes, &ed25519_dalek::Signature::from_bytes(&sig.0)).is_ok())
        .unwrap_or(false);
    VerificationResult::from_bool(ok)
}

#[derive(Clone, Debug)]
pub struct LodeSigner(pub SigningKey);

impl LodeSigner {
    pub fn sign_raw(&self, bytes: &[u8]) -> Sig {
        Sig(self.0.sign(bytes).to_bytes())
    }
}

#[async_trait]
impl Signer<LodeCtx> for LodeSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<LodeCtx, Vote>, Error> {
        let s = self.sign_raw(&vote.sign_bytes());
        Ok(SignedMessage::new(vote, s))
    }
    async fn sign_proposal(&self, p: Proposal) -> Result<SignedMessage<LodeCtx, Proposal>, Error> {
        let s = self.sign_raw(&proposal_bytes(&p));
        Ok(SignedMessage::new(p, s))
    }
    async fn sign_vote_extension(
        &self,
        scope: VoteExtensionScope<LodeCtx>,
        ext: Vec<u8>,
    ) -> Result<SignedMessage<LodeCtx, Vec<u8>>, Error> {
        let s = self.sign_raw(&ext_bytes(&scope, &ext));
        Ok(SignedMessage::new(ext, s))
    }
    async fn sign_validator_proof(&self, pk: Vec<u8>, peer: Vec<u8>) -> Result<ValidatorProof<LodeCtx>, Error> {
        let s = self.sign_raw(&proof_bytes(&pk, &peer));
        Ok(ValidatorProof::new(pk, peer, s))
    }
}

#[derive(Clone, Debug, Default)]
pub struct LodeVerifier;

#[async_trait]
impl Verifier<LodeCtx> for LodeVerifier {
    async fn verify_signed_vote(&self, vote: &Vote, sig: &Sig, pk: &PubKey) -> Result<VerificationResult, Error> {
        Ok(verify(&vote.sign_bytes(), sig, pk))
    }
    async fn verify_signed_proposal(&self, p: &Proposal, sig: &Sig, pk: &PubKey) -> Result<VerificationResult, Error> {
        Ok(verify(&proposal_bytes(p), sig, pk))
    }
    async fn verify_signed_vote_extension(
        &self,
        scope: &VoteExtensionScope<LodeCtx>,
        ext: &Vec<u8>,
        sig: &Sig,
        pk: &PubKey,
    ) -> Result<VerificationResult, Error> {
        Ok(verify(&ext_bytes(scope, ext), sig, pk))
    }
    async fn verify_validator_proof(&self, p: &ValidatorProof<LodeCtx>) -> Result<VerificationResult, Error> {
        let Ok(pk) = <[u8; 32]>::try_from(p.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(verify(&proof_bytes(&p.public_key, &p.peer_id), &p.signature, &PubKey(pk)))
    }
}
