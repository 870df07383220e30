//! A minimal Malachite `Context` shaped like what Lode would need.
//! Written for this spike from the trait definitions in arc-malachitebft-core-types 0.8.2.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use malachitebft_app_channel::app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use sha2::{Digest, Sha256};

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

// ---------------------------------------------------------------- Height
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);
    fn increment_by(&self, n: u64) -> Self {
        Height(self.0 + n)
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

// ---------------------------------------------------------------- Address = Ed25519 public key (a Lode Did)
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct Address(pub [u8; 32]);

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}
impl mc::Address for Address {}

// ---------------------------------------------------------------- Value = a Lode block body
/// What consensus decides: in Lode this would be the block minus its
/// signature (parent hash, height, timestamp, entries, state root).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct BlockValue {
    pub height: u64,
    pub parent: [u8; 32],
    pub timestamp_ms: u64,
    pub entries: Vec<Vec<u8>>,
    /// sha256 over the entries (Lode: the RFC 6962 entries_root), computed once
    /// when the block is built and checked once when a proposal arrives.
    pub entries_root: [u8; 32],
    pub state_root: [u8; 32],
}

impl BlockValue {
    pub fn compute_entries_root(entries: &[Vec<u8>]) -> [u8; 32] {
        let mut h = Sha256::new();
        for e in entries {
            h.update((e.len() as u64).to_be_bytes());
            h.update(e);
        }
        h.finalize().into()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct ValueId(pub [u8; 32]);
impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..8]))
    }
}

impl mc::Value for BlockValue {
    type Id = ValueId;
    fn id(&self) -> ValueId {
        // Lode: the block hash (sha256 of the tagged canonical header), which
        // covers the entries through entries_root: cheap, whatever the block size.
        let header = (self.height, self.parent, self.timestamp_ms, self.entries.len() as u64, self.entries_root, self.state_root);
        ValueId(sha256(&[b"spike/value/v1\0", &borsh::to_vec(&header).expect("encode")]))
    }
}

// ---------------------------------------------------------------- Signing scheme (Ed25519 via ed25519-dalek, as Lode already uses)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LodeEd25519;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Sig(pub [u8; 64]);

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct PubKey(pub [u8; 32]);

impl mc::SigningScheme for LodeEd25519 {
    type DecodingError = String;
    type Signature = Sig;
    type PublicKey = PubKey;
    type PrivateKey = ed25519_dalek::SigningKey;

    fn decode_signature(bytes: &[u8]) -> Result<Sig, String> {
        <[u8; 64]>::try_from(bytes).map(Sig).map_err(|_| "bad signature length".into())
    }
    fn encode_signature(s: &Sig) -> Vec<u8> {
        s.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<PubKey, String> {
        <[u8; 32]>::try_from(bytes).map(PubKey).map_err(|_| "bad key length".into())
    }
    fn encode_public_key(k: &PubKey) -> Vec<u8> {
        k.0.to_vec()
    }
}

// ---------------------------------------------------------------- Validators
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validator {
    pub address: Address,
    pub public_key: PubKey,
    pub power: VotingPower,
}

impl mc::Validator<LodeCtx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PubKey {
        &self.public_key
    }
    fn voting_power(&self) -> VotingPower {
        self.power
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorSet {
    /// Sorted by address, no duplicates, every power > 0.
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    pub fn new(mut validators: Vec<Validator>) -> Self {
        validators.sort_by(|a, b| a.address.cmp(&b.address));
        validators.dedup_by(|a, b| a.address == b.address);
        validators.retain(|v| v.power > 0);
        ValidatorSet { validators }
    }
}

impl mc::ValidatorSet<LodeCtx> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> VotingPower {
        self.validators.iter().map(|v| v.power).sum()
    }
    fn get_by_address(&self, a: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(a))
            .ok()
            .map(|i| &self.validators[i])
    }
    fn get_by_index(&self, i: usize) -> Option<&Validator> {
        self.validators.get(i)
    }
}

// ---------------------------------------------------------------- Proposal / parts / votes
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockValue,
    pub pol_round: Round,
    pub proposer: Address,
}

impl mc::Proposal<LodeCtx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &BlockValue {
        &self.value
    }
    fn take_value(self) -> BlockValue {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// Spike: the whole block in one part, signed by the proposer.
/// Lode: Init{height, round, proposer, pol_round} / Data(chunk of entries) / Fin{signature over all}.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProposalPart {
    pub height: Height,
    pub round: Round,
    pub pol_round: Round,
    pub proposer: Address,
    pub value: BlockValue,
    pub signature: Sig,
}

impl mc::ProposalPart<LodeCtx> for ProposalPart {
    fn is_first(&self) -> bool {
        true
    }
    fn is_last(&self) -> bool {
        true
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub typ: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<ValueId>,
    pub validator: Address,
    pub extension: Option<SignedExtension<LodeCtx>>,
}

impl Vote {
    /// The bytes a validator signs. `lode ledger verify` rebuilds exactly
    /// these for each precommit in a commit certificate.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let core = (
            self.typ as u8,
            self.height.0,
            self.round.as_i64(),
            match &self.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(id) => Some(id.0),
            },
            self.validator.0,
        );
        let mut out = b"spike/vote/v1\0".to_vec();
        out.extend(borsh::to_vec(&core).expect("encode"));
        out
    }
}

impl mc::Vote<LodeCtx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<ValueId> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<ValueId> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.typ
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<LodeCtx>> {
        self.extension.as_ref()
    }
    fn take_extension(&mut self) -> Option<SignedExtension<LodeCtx>> {
        self.extension.take()
    }
    fn extend(self, extension: SignedExtension<LodeCtx>) -> Self {
        Vote { extension: Some(extension), ..self }
    }
}

// ---------------------------------------------------------------- Context
#[derive(Clone, Debug, Default)]
pub struct LodeCtx;

impl mc::Context for LodeCtx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockValue;
    type Vote = Vote;
    type Extension = Vec<u8>;
    type SigningScheme = LodeEd25519;

    /// Stake-weighted, stateless: a point in [0, total power) drawn from
    /// sha256(height, round) picks the validator whose power interval holds it.
    fn select_proposer<'a>(&self, vs: &'a ValidatorSet, height: Height, round: Round) -> &'a Validator {
        use mc::ValidatorSet as _;
        let total = vs.total_voting_power();
        assert!(total > 0, "empty validator set");
        let seed = sha256(&[b"spike/proposer\0", &height.0.to_be_bytes(), &round.as_i64().to_be_bytes()]);
        let mut point = u64::from_be_bytes(seed[..8].try_into().unwrap()) % total;
        for v in &vs.validators {
            if point < v.power {
                return v;
            }
            point -= v.power;
        }
        unreachable!()
    }

    fn new_proposal(&self, height: Height, round: Round, value: BlockValue, pol_round: Round, address: Address) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(&self, height: Height, round: Round, value_id: NilOrVal<ValueId>, address: Address) -> Vote {
        Vote { typ: VoteType::Prevote, height, round, value: value_id, validator: address, extension: None }
    }

    fn new_precommit(&self, height: Height, round: Round, value_id: NilOrVal<ValueId>, address: Address) -> Vote {
        Vote { typ: VoteType::Precommit, height, round, value: value_id, validator: address, extension: None }
    }
}
