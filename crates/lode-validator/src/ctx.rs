//! The Malachite [`Context`](mc::Context) on Lode's types.
//!
//! - a validator's address is its [`Did`] (Ed25519 public key);
//! - the value is an opaque block proposal: its bytes and the block id the
//!   application computed (`Value::id()` never re-hashes the bytes);
//! - proposer selection is stateless and stake-weighted
//!   ([`select_proposer`]): deterministic from (set, height, round) alone,
//!   which keeps it safe while syncing.
//!
//! Proposals travel "by reference": the engine's proposal message carries the
//! block id only (see [`Proposal`]'s encoding); the bytes travel as proposal
//! parts ([`crate::parts`]). Two values are equal when their ids are.

use std::cmp::Ordering;
use std::fmt;
use std::io;

use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use lode_ledger::consensus as ledger;
use lode_proto::{Did, Hash32, Keypair};
use malachitebft_core_types::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};

/// A block height (1 = the first block after genesis).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
)]
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
        Height(self.0.saturating_add(n))
    }
    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }
    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's consensus address: its did (Ed25519 public key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub Did);

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.short())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.short())
    }
}

impl mc::Address for Address {}

impl BorshSerialize for Address {
    fn serialize<W: io::Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(self.0.public_key_bytes())
    }
}

impl BorshDeserialize for Address {
    fn deserialize_reader<R: io::Read>(r: &mut R) -> io::Result<Self> {
        let bytes = <[u8; 32]>::deserialize_reader(r)?;
        Did::from_public_key_bytes(bytes)
            .map(Address)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// A block id (the application's block hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub Hash32);

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0.0[..8]))
    }
}

impl BorshSerialize for ValueId {
    fn serialize<W: io::Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(&self.0.0)
    }
}

impl BorshDeserialize for ValueId {
    fn deserialize_reader<R: io::Read>(r: &mut R) -> io::Result<Self> {
        Ok(ValueId(Hash32(<[u8; 32]>::deserialize_reader(r)?)))
    }
}

/// An opaque block proposal: the bytes and the id the application gave them.
/// Equality and order are by id (the id commits to the bytes).
#[derive(Clone, Debug)]
pub struct Value {
    pub id: ValueId,
    pub bytes: Bytes,
}

impl Value {
    pub fn new(id: Hash32, bytes: impl Into<Bytes>) -> Self {
        Self {
            id: ValueId(id),
            bytes: bytes.into(),
        }
    }

    /// A value known by its id only (a proposal message; the bytes come as parts).
    pub fn by_ref(id: ValueId) -> Self {
        Self {
            id,
            bytes: Bytes::new(),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id.cmp(&other.id)
    }
}

impl mc::Value for Value {
    type Id = ValueId;
    fn id(&self) -> ValueId {
        self.id
    }
}

/// Full encoding (id and bytes): used where the engine stores a proposed value (WAL).
impl BorshSerialize for Value {
    fn serialize<W: io::Write>(&self, w: &mut W) -> io::Result<()> {
        self.id.serialize(w)?;
        self.bytes.as_ref().serialize(w)
    }
}

impl BorshDeserialize for Value {
    fn deserialize_reader<R: io::Read>(r: &mut R) -> io::Result<Self> {
        let id = ValueId::deserialize_reader(r)?;
        let bytes = Vec::<u8>::deserialize_reader(r)?;
        Ok(Self {
            id,
            bytes: Bytes::from(bytes),
        })
    }
}

/// Ed25519 with Lode's tagged signing input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LodeEd25519;

/// A signature (Ed25519, over Lode's tagged signing input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Sig(pub [u8; 64]);

impl From<Sig> for lode_proto::Signature {
    fn from(s: Sig) -> Self {
        lode_proto::Signature(s.0)
    }
}

impl From<lode_proto::Signature> for Sig {
    fn from(s: lode_proto::Signature) -> Self {
        Sig(s.0)
    }
}

impl mc::SigningScheme for LodeEd25519 {
    type DecodingError = String;
    type Signature = Sig;
    type PublicKey = Did;
    type PrivateKey = Keypair;

    fn decode_signature(bytes: &[u8]) -> Result<Sig, String> {
        <[u8; 64]>::try_from(bytes)
            .map(Sig)
            .map_err(|_| "a signature is 64 bytes".into())
    }
    fn encode_signature(s: &Sig) -> Vec<u8> {
        s.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<Did, String> {
        let arr = <[u8; 32]>::try_from(bytes).map_err(|_| "a public key is 32 bytes")?;
        Did::from_public_key_bytes(arr).map_err(|e| e.to_string())
    }
    fn encode_public_key(k: &Did) -> Vec<u8> {
        k.public_key_bytes().to_vec()
    }
}

/// A validator as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: Address,
    pub public_key: Did,
    pub power: VotingPower,
}

impl mc::Validator<LodeCtx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &Did {
        &self.public_key
    }
    fn voting_power(&self) -> VotingPower {
        self.power
    }
}

/// The engine's view of a [`lode_ledger::consensus::ValidatorSet`]: sorted by
/// did, distinct, powers ≥ 1, total × 3 fitting a `u64` (checked there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u64,
}

impl ValidatorSet {
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }
}

impl From<&ledger::ValidatorSet> for ValidatorSet {
    fn from(set: &ledger::ValidatorSet) -> Self {
        Self {
            validators: set
                .validators()
                .iter()
                .map(|v| Validator {
                    address: Address(v.did),
                    public_key: v.did,
                    power: v.power,
                })
                .collect(),
            total: set.total_power(),
        }
    }
}

impl mc::ValidatorSet<LodeCtx> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> VotingPower {
        self.total
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

/// A proposal: `value` is carried by reference (id only) on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: Value,
    pub pol_round: Round,
    pub proposer: Address,
}

impl BorshSerialize for Proposal {
    fn serialize<W: io::Write>(&self, w: &mut W) -> io::Result<()> {
        self.height.serialize(w)?;
        self.round.serialize(w)?;
        self.value.id.serialize(w)?;
        self.pol_round.serialize(w)?;
        self.proposer.serialize(w)
    }
}

impl BorshDeserialize for Proposal {
    fn deserialize_reader<R: io::Read>(r: &mut R) -> io::Result<Self> {
        Ok(Self {
            height: Height::deserialize_reader(r)?,
            round: Round::deserialize_reader(r)?,
            value: Value::by_ref(ValueId::deserialize_reader(r)?),
            pol_round: Round::deserialize_reader(r)?,
            proposer: Address::deserialize_reader(r)?,
        })
    }
}

impl mc::Proposal<LodeCtx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

pub use crate::parts::ProposalPart;

impl mc::ProposalPart<LodeCtx> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init(_))
    }
    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// A prevote or precommit.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub typ: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<ValueId>,
    pub validator: Address,
    pub extension: Option<SignedExtension<LodeCtx>>,
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
        Vote {
            extension: Some(extension),
            ..self
        }
    }
}

/// A round as Lode's signed bodies carry it (`u32`; an undefined round, which
/// a vote never has, maps to `u32::MAX`).
pub fn round_u32(r: Round) -> u32 {
    r.as_u32().unwrap_or(u32::MAX)
}

/// Domain tag of the proposer-selection seed.
const PROPOSER_SEED_TAG: &[u8] = b"lode/consensus/proposer/v1\0";

/// Stake-weighted, stateless proposer selection: a point in `[0, total)` from
/// sha256(tag, height, round) picks the validator whose cumulative-power
/// interval (in did order) holds it.
pub fn select_proposer(vs: &ValidatorSet, height: u64, round: u32) -> Option<&Validator> {
    if vs.total == 0 {
        return None;
    }
    let seed = Hash32::sha256_parts(&[
        PROPOSER_SEED_TAG,
        &height.to_be_bytes(),
        &round.to_be_bytes(),
    ]);
    let mut first = [0u8; 8];
    first.copy_from_slice(&seed.0[..8]);
    let mut point = u64::from_be_bytes(first) % vs.total;
    for v in &vs.validators {
        if point < v.power {
            return Some(v);
        }
        point -= v.power;
    }
    None
}

/// Lode's consensus context (stateless).
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
    type Value = Value;
    type Vote = Vote;
    type Extension = Vec<u8>;
    type SigningScheme = LodeEd25519;

    fn select_proposer<'a>(
        &self,
        vs: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        // The engine never hands an empty set (lode_ledger refuses one).
        select_proposer(vs, height.0, round_u32(round))
            .or_else(|| vs.validators.first())
            .expect("a validator set is never empty")
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Value,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            typ: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<ValueId>,
        address: Address,
    ) -> Vote {
        Vote {
            typ: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
            extension: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn set(powers: &[u64]) -> ValidatorSet {
        let vs: Vec<ledger::Validator> = powers
            .iter()
            .enumerate()
            .map(|(i, p)| ledger::Validator {
                did: Keypair::from_secret_bytes(&[i as u8 + 1; 32]).did(),
                power: *p,
            })
            .collect();
        ValidatorSet::from(&ledger::ValidatorSet::new(vs).unwrap())
    }

    #[test]
    fn proposer_is_deterministic() {
        let a = set(&[1, 2, 3, 4]);
        let b = set(&[1, 2, 3, 4]);
        for h in 1..50 {
            for r in 0..3 {
                let pa = select_proposer(&a, h, r).unwrap().address;
                let pb = select_proposer(&b, h, r).unwrap().address;
                assert_eq!(pa, pb);
            }
        }
    }

    #[test]
    fn proposer_follows_power() {
        let vs = set(&[1, 2, 3, 4]);
        let mut count: BTreeMap<u64, u32> = BTreeMap::new();
        let n = 20_000u32;
        for h in 0..u64::from(n) {
            *count
                .entry(select_proposer(&vs, h, 0).unwrap().power)
                .or_default() += 1;
        }
        for (power, c) in count {
            let expected = f64::from(n) * power as f64 / 10.0;
            let got = f64::from(c);
            assert!(
                (got - expected).abs() < expected * 0.1,
                "power {power}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn proposal_travels_by_reference() {
        let p = Proposal {
            height: Height(3),
            round: Round::new(1),
            value: Value::new(Hash32([7; 32]), vec![1, 2, 3]),
            pol_round: Round::Nil,
            proposer: Address(Keypair::from_secret_bytes(&[1; 32]).did()),
        };
        let back: Proposal = borsh::from_slice(&borsh::to_vec(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(back.value.bytes.is_empty());
    }
}
