//! Commit certificates of a replicated chain (issue 14, step 1 of
//! `docs/design/validators.md`): the bytes a validator signs for a vote, the
//! validator set with voting power as the ledger state defines it, and the
//! check that a certificate carries precommits of more than 2/3 of the power.
//!
//! Pure and free of any consensus engine: `lode ledger verify` and wallets
//! check certificates with this module alone; the validator process
//! (Malachite) signs the same [`vote_sign_bytes`].

use crate::amount::ONE_TOKEN;
use crate::state::State;
use lode_proto::{Did, Hash32, Signature, canonical};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Domain tag of a consensus vote signature.
pub const VOTE_TAG: &str = "lode/consensus/vote/v1";

/// Most validators in a set (Malachite and the certificate size stay small).
pub const MAX_VALIDATORS: usize = 256;

/// Prevote or precommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteType {
    Prevote,
    Precommit,
}

/// What a validator signs for a vote. The chain id is part of it (the
/// engine's own vote has none), so a signature never counts on another chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteBody {
    pub chain: Hash32,
    pub vote: VoteType,
    pub height: u64,
    pub round: u32,
    /// The block voted for; `None` is a vote for nothing (nil).
    pub block: Option<Hash32>,
    pub validator: Did,
}

/// The bytes signed (under [`VOTE_TAG`]) for a vote.
pub fn vote_sign_bytes(v: &VoteBody) -> Vec<u8> {
    // Hashes, integers and a did: encoding cannot fail.
    canonical::encode(v).unwrap_or_default()
}

/// A validator and its voting power.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub did: Did,
    pub power: u64,
}

/// A validator set, sorted by did, without duplicates, every power ≥ 1, and
/// `3 × total` fitting a `u64` (the engine's threshold arithmetic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u64,
}

/// Why a validator set or a certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the validator set is empty")]
    EmptySet,
    #[error("the validator set has {0} validators, more than {MAX_VALIDATORS}")]
    TooManyValidators(usize),
    #[error("validator {0} appears twice in the set")]
    DuplicateValidator(Did),
    #[error("validator {0} has no voting power")]
    ZeroPower(Did),
    #[error("the set's total power overflows the threshold arithmetic")]
    PowerOverflow,
    #[error(
        "the certificate is for block {found} at height {found_height}, not {expected} at {expected_height}"
    )]
    WrongBlock {
        expected: Hash32,
        expected_height: u64,
        found: Hash32,
        found_height: u64,
    },
    #[error("{0} signed the certificate but is not in the validator set")]
    NotAValidator(Did),
    #[error("{0} signed the certificate twice")]
    DuplicateSigner(Did),
    #[error("the precommit of {0} does not verify (other chain, round, block or key)")]
    BadSignature(Did),
    #[error("precommits of {signed} of {total} voting power: more than 2/3 are needed")]
    NotEnoughPower { signed: u64, total: u64 },
}

impl ValidatorSet {
    /// Checks and sorts a set.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, CertError> {
        if validators.is_empty() {
            return Err(CertError::EmptySet);
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(CertError::TooManyValidators(validators.len()));
        }
        validators.sort_by_key(|v| v.did);
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if i > 0 && validators[i - 1].did == v.did {
                return Err(CertError::DuplicateValidator(v.did));
            }
            if v.power == 0 {
                return Err(CertError::ZeroPower(v.did));
            }
            total = total.checked_add(v.power).ok_or(CertError::PowerOverflow)?;
        }
        total.checked_mul(3).ok_or(CertError::PowerOverflow)?;
        Ok(Self { validators, total })
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn total_power(&self) -> u64 {
        self.total
    }

    pub fn power_of(&self, did: &Did) -> Option<u64> {
        self.validators
            .binary_search_by(|v| v.did.cmp(did))
            .ok()
            .map(|i| self.validators[i].power)
    }

    /// The set the ledger state puts in force for its next block: the staking
    /// set stored at the last epoch close (power = bonded whole tokens, at
    /// least 1), or, while there is none (no staking, or nobody bonded yet),
    /// the `[consensus]` validators with their genesis power (a replicated
    /// chain) or the genesis validators with power 1 each. The staking set
    /// changes only at an epoch close, so a new set takes effect from the
    /// block after the one that closed the epoch: never within a height.
    pub fn in_force(state: &State) -> Result<Self, CertError> {
        let staked = state.validator_set();
        let validators: Vec<Validator> = if staked.is_empty() {
            if let Some(c) = &state.genesis().consensus {
                return Self::new(c.validators.clone());
            }
            state
                .genesis()
                .validators
                .iter()
                .map(|d| Validator { did: *d, power: 1 })
                .collect()
        } else {
            staked
                .iter()
                .map(|d| Validator {
                    did: *d,
                    power: voting_power(state.stake_target(d).map_or(0, |t| t.power)),
                })
                .collect()
        };
        Self::new(validators)
    }
}

/// Voting power of bonded stake: whole tokens (the engine needs `u64` powers
/// whose threefold sum fits), at least 1, at most `u64::MAX / 3 / MAX_VALIDATORS`.
pub fn voting_power(bonded: u128) -> u64 {
    let cap = u64::MAX / 3 / MAX_VALIDATORS as u64;
    u64::try_from(bonded / ONE_TOKEN)
        .unwrap_or(cap)
        .clamp(1, cap)
}

/// Precommits for one block: what makes it final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub round: u32,
    pub block: Hash32,
    /// (validator, its precommit signature), sorted by did.
    pub signatures: Vec<(Did, Signature)>,
}

impl CommitCertificate {
    /// Checks that the certificate is for `block` at `height` on `chain` and
    /// carries valid, distinct precommits of validators of `set` holding more
    /// than 2/3 of its power (`3 × signed > 2 × total`).
    pub fn verify(
        &self,
        chain: Hash32,
        height: u64,
        block: Hash32,
        set: &ValidatorSet,
    ) -> Result<(), CertError> {
        if self.height != height || self.block != block {
            return Err(CertError::WrongBlock {
                expected: block,
                expected_height: height,
                found: self.block,
                found_height: self.height,
            });
        }
        let mut seen = BTreeSet::new();
        let mut signed: u64 = 0;
        for (did, sig) in &self.signatures {
            let power = set.power_of(did).ok_or(CertError::NotAValidator(*did))?;
            if !seen.insert(*did) {
                return Err(CertError::DuplicateSigner(*did));
            }
            let body = VoteBody {
                chain,
                vote: VoteType::Precommit,
                height,
                round: self.round,
                block: Some(block),
                validator: *did,
            };
            if !did.verify_tagged(VOTE_TAG, &vote_sign_bytes(&body), sig) {
                return Err(CertError::BadSignature(*did));
            }
            // Cannot overflow: the set's total fits.
            signed += power;
        }
        let total = set.total_power();
        if u128::from(signed) * 3 <= u128::from(total) * 2 {
            return Err(CertError::NotEnoughPower { signed, total });
        }
        Ok(())
    }
}
