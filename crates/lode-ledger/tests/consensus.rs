//! Commit certificates (issue 14, step 1): the 2/3 threshold exactly, every
//! kind of bad signature named, validator sets checked, and the set in force
//! taken from the ledger state.

mod common;

use common::*;
use lode_ledger::consensus::{
    CertError, CommitCertificate, VOTE_TAG, Validator, ValidatorSet, VoteBody, VoteType,
    vote_sign_bytes, voting_power,
};
use lode_ledger::{ONE_TOKEN, Producer};
use lode_proto::{Hash32, Keypair};
use proptest::prelude::*;

fn chain() -> Hash32 {
    Hash32::sha256(b"test chain")
}

fn block() -> Hash32 {
    Hash32::sha256(b"block 7")
}

fn vote(
    k: &Keypair,
    chain: Hash32,
    vote: VoteType,
    round: u32,
    block: Option<Hash32>,
) -> lode_proto::Signature {
    let body = VoteBody {
        chain,
        vote,
        height: 7,
        round,
        block,
        validator: k.did(),
    };
    k.sign_tagged(VOTE_TAG, &vote_sign_bytes(&body))
}

fn set(keys: &[Keypair], powers: &[u64]) -> ValidatorSet {
    ValidatorSet::new(
        keys.iter()
            .zip(powers)
            .map(|(k, p)| Validator {
                did: k.did(),
                power: *p,
            })
            .collect(),
    )
    .unwrap()
}

fn cert(signers: &[&Keypair]) -> CommitCertificate {
    let mut signatures: Vec<_> = signers
        .iter()
        .map(|k| {
            (
                k.did(),
                vote(k, chain(), VoteType::Precommit, 2, Some(block())),
            )
        })
        .collect();
    signatures.sort_by_key(|s| s.0);
    CommitCertificate {
        height: 7,
        round: 2,
        block: block(),
        signatures,
    }
}

fn keys(n: u8) -> Vec<Keypair> {
    (0..n).map(|i| kp(100 + i)).collect()
}

#[test]
fn exactly_two_thirds_is_not_enough_and_one_more_unit_is() {
    let k = keys(3);
    let s = set(&k, &[3, 3, 3]);
    let check = |c: &CommitCertificate| c.verify(chain(), 7, block(), &s);
    // 6 of 9 is exactly 2/3: refused.
    assert_eq!(
        check(&cert(&[&k[0], &k[1]])),
        Err(CertError::NotEnoughPower {
            signed: 6,
            total: 9
        })
    );
    assert_eq!(check(&cert(&[&k[0], &k[1], &k[2]])), Ok(()));
    // Weighted: 7 of 10 passes, 6 of 10 does not.
    let k = keys(4);
    let s = set(&k, &[1, 2, 3, 4]);
    assert_eq!(
        cert(&[&k[2], &k[3]]).verify(chain(), 7, block(), &s),
        Ok(())
    );
    assert!(matches!(
        cert(&[&k[1], &k[3]]).verify(chain(), 7, block(), &s),
        Err(CertError::NotEnoughPower {
            signed: 6,
            total: 10
        })
    ));
}

#[test]
fn every_bad_signature_and_signer_is_named() {
    let k = keys(4);
    let s = set(&k, &[1, 1, 1, 1]);
    let good = cert(&[&k[0], &k[1], &k[2]]);
    assert_eq!(good.verify(chain(), 7, block(), &s), Ok(()));
    let with = |i: usize, sig| {
        let mut c = good.clone();
        c.signatures[i].1 = sig;
        c.verify(chain(), 7, block(), &s)
    };
    let d0 = good.signatures[0].0;
    let k0 = k.iter().find(|x| x.did() == d0).unwrap();
    // Signed on another chain, for another round, block or nil, or as a prevote.
    for sig in [
        vote(
            k0,
            Hash32::sha256(b"other chain"),
            VoteType::Precommit,
            2,
            Some(block()),
        ),
        vote(k0, chain(), VoteType::Precommit, 3, Some(block())),
        vote(
            k0,
            chain(),
            VoteType::Precommit,
            2,
            Some(Hash32::sha256(b"other")),
        ),
        vote(k0, chain(), VoteType::Precommit, 2, None),
        vote(k0, chain(), VoteType::Prevote, 2, Some(block())),
        vote(&kp(1), chain(), VoteType::Precommit, 2, Some(block())),
    ] {
        assert_eq!(with(0, sig), Err(CertError::BadSignature(d0)));
    }
    // A signer outside the set, and one signing twice.
    let outsider = kp(99);
    let mut c = good.clone();
    c.signatures.push((
        outsider.did(),
        vote(&outsider, chain(), VoteType::Precommit, 2, Some(block())),
    ));
    assert_eq!(
        c.verify(chain(), 7, block(), &s),
        Err(CertError::NotAValidator(outsider.did()))
    );
    let mut c = good.clone();
    c.signatures.push(c.signatures[0]);
    assert_eq!(
        c.verify(chain(), 7, block(), &s),
        Err(CertError::DuplicateSigner(d0))
    );
    // For another block or height.
    assert!(matches!(
        good.verify(chain(), 8, block(), &s),
        Err(CertError::WrongBlock { .. })
    ));
    assert!(matches!(
        good.verify(chain(), 7, Hash32::sha256(b"x"), &s),
        Err(CertError::WrongBlock { .. })
    ));
}

#[test]
fn validator_sets_are_checked() {
    let k = keys(2);
    let v = |i: usize, power| Validator {
        did: k[i].did(),
        power,
    };
    assert_eq!(ValidatorSet::new(vec![]), Err(CertError::EmptySet));
    assert_eq!(
        ValidatorSet::new(vec![v(0, 1), v(0, 2)]),
        Err(CertError::DuplicateValidator(k[0].did()))
    );
    assert_eq!(
        ValidatorSet::new(vec![v(1, 0)]),
        Err(CertError::ZeroPower(k[1].did()))
    );
    assert_eq!(
        ValidatorSet::new(vec![v(0, u64::MAX / 2), v(1, 1)]),
        Err(CertError::PowerOverflow)
    );
    let s = ValidatorSet::new(vec![v(1, 5), v(0, 2)]).unwrap();
    assert_eq!(s.total_power(), 7);
    assert_eq!(s.power_of(&k[1].did()), Some(5));
    assert!(s.validators().windows(2).all(|w| w[0].did < w[1].did));
    // Voting power: whole tokens, at least 1, capped so that 3 × total fits.
    assert_eq!(voting_power(0), 1);
    assert_eq!(voting_power(ONE_TOKEN * 1_500 + 7), 1_500);
    let cap = voting_power(u128::MAX);
    let many: Vec<Validator> = (0..=255u8)
        .map(|i| Validator {
            did: kp(i).did(),
            power: cap,
        })
        .collect();
    assert!(ValidatorSet::new(many).is_ok());
}

#[test]
fn the_set_in_force_comes_from_the_ledger_state() {
    // Without staking: the genesis validators, power 1 each.
    let (p, _) = Producer::genesis(&test_genesis(), validator()).unwrap();
    let s = ValidatorSet::in_force(p.state()).unwrap();
    assert_eq!(
        s.validators(),
        &[Validator {
            did: validator().did(),
            power: 1
        }]
    );
    // With staking, before anyone bonded: still the genesis validators.
    let (mut p, _) = Producer::genesis(&staking_genesis(1_000, 2), validator()).unwrap();
    assert_eq!(ValidatorSet::in_force(p.state()).unwrap().total_power(), 1);
    // Bonded at epoch 0, in force after its close: power in whole tokens.
    let other = kp(10);
    for (k, amount) in [(validator(), 1_000), (other.clone(), 500)] {
        let e = Signer { state: p.state() }.transfer(&funder(), k.did(), 2_000 * ONE_TOKEN);
        p.submit(e).unwrap();
        let e = bond(&p, &k, amount * ONE_TOKEN);
        p.submit(e).unwrap();
    }
    p.seal(T0 + 1).unwrap();
    assert_eq!(ValidatorSet::in_force(p.state()).unwrap().total_power(), 1);
    p.seal(T0 + EPOCH_MS).unwrap();
    let s = ValidatorSet::in_force(p.state()).unwrap();
    assert_eq!(s.power_of(&validator().did()), Some(1_000));
    assert_eq!(s.power_of(&other.did()), Some(500));
    assert_eq!(s.total_power(), 1_500);
}

proptest! {
    /// A certificate verifies exactly when its signers hold more than 2/3.
    #[test]
    fn threshold_is_strictly_more_than_two_thirds(
        powers in prop::collection::vec(1u64..1_000, 1..8),
        mask in any::<u8>(),
    ) {
        let k = keys(powers.len() as u8);
        let s = set(&k, &powers);
        let signers: Vec<&Keypair> = (0..k.len()).filter(|i| mask & (1 << i) != 0).map(|i| &k[i]).collect();
        let signed: u64 = (0..k.len()).filter(|i| mask & (1 << i) != 0).map(|i| powers[i]).sum();
        let total: u64 = powers.iter().sum();
        let ok = cert(&signers).verify(chain(), 7, block(), &s).is_ok();
        prop_assert_eq!(ok, 3 * signed > 2 * total);
    }
}
