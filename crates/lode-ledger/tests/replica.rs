//! A replicated chain without an engine (issue 14): four validators with
//! different power build the same genesis block, one proposes, the others
//! re-execute, a certificate of more than 2/3 of the power commits; short
//! or forged certificates, wrong roots and wrong proposers are refused and
//! leave nothing written; `verify` checks every certificate from genesis.

mod common;

use common::*;
use lode_ledger::consensus::CertError;
use lode_ledger::{
    BlockFault, Entry, Genesis, LedgerConfig, ONE_TOKEN, Replica, ReplicaError, Transfer,
    VerifyError,
};
use lode_proto::{Hash32, Keypair, canonical};

fn transfer(r: &mut Replica, amount: u128) -> Entry {
    let f = funder();
    let m = Transfer {
        chain: r.chain_id(),
        to: kp(42).did(),
        amount,
        memo: String::new(),
    };
    let nonce = r.state().next_nonce(&f.did());
    Entry::sign(&f, nonce, 0, &m).unwrap()
}

#[test]
fn four_validators_agree_and_certificates_decide() {
    let dir = tempfile::tempdir().unwrap();
    let mut rs = replicas(dir.path());
    let k = keys();
    let chain = rs[0].chain_id();
    assert!(
        rs.iter().all(|r| r.chain_id() == chain),
        "one genesis block for all"
    );
    assert_eq!(rs[0].validator_set().total_power(), 10);

    let t0 = genesis().genesis_time_ms + 1_000;
    for height in 1..=5u64 {
        let proposer = ((height - 1) % 4) as usize;
        let entries = vec![transfer(&mut rs[proposer], ONE_TOKEN)];
        let p = rs[proposer].propose(&entries, t0 + height).unwrap();
        assert_eq!(p.included, 1);
        assert!(p.rejected.is_empty());
        for (i, r) in rs.iter_mut().enumerate() {
            if i != proposer {
                let h = r
                    .check(height, k[proposer].did(), &p.bytes, t0 + height)
                    .unwrap();
                assert_eq!(h, p.hash);
            }
        }
        // Powers 2 + 3 + 4 = 9 of 10.
        let cert = certificate(chain, height, p.hash, &[&k[1], &k[2], &k[3]]);
        for r in &mut rs {
            r.commit(p.hash, Some(&p.bytes), &cert).unwrap();
        }
    }
    let roots: Vec<_> = rs.iter_mut().map(|r| r.state().state_root()).collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(rs[0].state().balance(&kp(42).did()), 5 * ONE_TOKEN);

    // Anyone can verify every certificate from genesis.
    drop(rs);
    let report = lode_ledger::verify(&dir.path().join("v2")).unwrap();
    assert_eq!(report.blocks, 6);
    assert_eq!(report.certified_blocks, 5);

    // Reopened (as after kill -9), the replica continues from its head.
    let mut r = Replica::open(
        &dir.path().join("v3"),
        k[3].clone(),
        LedgerConfig::default(),
    )
    .unwrap();
    assert_eq!(r.height(), 5);
    assert_eq!(r.state().state_root(), roots[0]);
}

#[test]
fn short_forged_or_foreign_certificates_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut rs = replicas(dir.path());
    let k = keys();
    let chain = rs[0].chain_id();
    let t = genesis().genesis_time_ms + 1_000;
    let entries = vec![transfer(&mut rs[0], ONE_TOKEN)];
    let p = rs[0].propose(&entries, t).unwrap();
    let r = &mut rs[1];
    r.check(1, k[0].did(), &p.bytes, t).unwrap();

    // Powers 1 + 2 + 3 = 6 of 10: not more than 2/3.
    let short = certificate(chain, 1, p.hash, &[&k[0], &k[1], &k[2]]);
    let e = r.commit(p.hash, Some(&p.bytes), &short).unwrap_err();
    assert!(
        matches!(
            e,
            ReplicaError::Certificate {
                height: 1,
                error: CertError::NotEnoughPower {
                    signed: 6,
                    total: 10
                }
            }
        ),
        "{e}"
    );
    // Another chain's precommits.
    let foreign = certificate(Hash32::sha256(b"other"), 1, p.hash, &[&k[1], &k[2], &k[3]]);
    assert!(matches!(
        r.commit(p.hash, Some(&p.bytes), &foreign).unwrap_err(),
        ReplicaError::Certificate {
            error: CertError::BadSignature(_),
            ..
        }
    ));
    // A non-validator's signature.
    let outsider = kp(77);
    let with_outsider = certificate(chain, 1, p.hash, &[&k[2], &k[3], &outsider]);
    assert!(matches!(
        r.commit(p.hash, Some(&p.bytes), &with_outsider)
            .unwrap_err(),
        ReplicaError::Certificate {
            error: CertError::NotAValidator(_),
            ..
        }
    ));
    assert_eq!(r.height(), 0);
    assert_eq!(r.store().head().unwrap(), Some(0), "nothing written");

    // The staged block survives refused commits; a good certificate commits it.
    let good = certificate(chain, 1, p.hash, &[&k[1], &k[2], &k[3]]);
    r.commit(p.hash, None, &good).unwrap();
    assert_eq!(r.height(), 1);
}

#[test]
fn bad_proposals_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let mut rs = replicas(dir.path());
    let k = keys();
    let t = genesis().genesis_time_ms + 1_000;
    let entries = vec![transfer(&mut rs[0], ONE_TOKEN)];
    let p = rs[0].propose(&entries, t).unwrap();
    let r = &mut rs[1];
    let invalid = |e: ReplicaError| matches!(e, ReplicaError::Invalid(_));

    // Not the round's proposer.
    assert!(invalid(r.check(1, k[2].did(), &p.bytes, t).unwrap_err()));
    // Wrong height.
    assert!(invalid(r.check(2, k[0].did(), &p.bytes, t).unwrap_err()));
    // From the future.
    assert!(invalid(
        r.check(1, k[0].did(), &p.bytes, t - 5_000).unwrap_err()
    ));
    // Garbage.
    assert!(invalid(r.check(1, k[0].did(), &[1, 2, 3], t).unwrap_err()));
    // A wrong state root (re-signed by the proposer, so only execution tells).
    let mut b = lode_ledger::Block::from_bytes(&p.bytes).unwrap();
    b.header.state_root = Hash32::sha256(b"lie");
    let b = lode_ledger::Block::seal(b.header, b.entries, &k[0]);
    let e = r
        .check(1, k[0].did(), &b.to_bytes().unwrap(), t)
        .unwrap_err();
    assert!(e.to_string().contains("state root"), "{e}");
    // A proposer outside the set signing its own block.
    let outsider = kp(77);
    let mut b = lode_ledger::Block::from_bytes(&p.bytes).unwrap();
    b.header.validator = outsider.did();
    let b = lode_ledger::Block::seal(b.header, b.entries, &outsider);
    let e = r
        .check(1, outsider.did(), &b.to_bytes().unwrap(), t)
        .unwrap_err();
    assert!(e.to_string().contains("not a validator"), "{e}");
    // The honest proposal still checks.
    assert_eq!(r.check(1, k[0].did(), &p.bytes, t).unwrap(), p.hash);
    // Entries that do not apply are left out of a proposal and reported.
    let twice = vec![entries[0].clone(), entries[0].clone()];
    let p2 = rs[2].propose(&twice, t).unwrap();
    assert_eq!(p2.included, 1);
    assert_eq!(p2.rejected.len(), 1);
    assert_eq!(p2.rejected[0].0, 1);
}

#[test]
fn verify_names_the_first_block_with_a_bad_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut rs = replicas(dir.path());
    let k = keys();
    let chain = rs[0].chain_id();
    let t = genesis().genesis_time_ms + 1_000;
    for height in 1..=3u64 {
        let p = rs[0].propose(&[], t + height).unwrap();
        let cert = certificate(chain, height, p.hash, &[&k[1], &k[2], &k[3]]);
        rs[0].commit(p.hash, None, &cert).unwrap();
    }
    let r = &rs[0];
    let items = |tamper: &dyn Fn(u64, Option<Vec<u8>>) -> Option<Vec<u8>>| {
        (0..=3u64)
            .map(|h| {
                let (b, c) = r.decided(h).unwrap().unwrap();
                (h, lode_ledger::Block::from_bytes(&b), tamper(h, c))
            })
            .collect::<Vec<_>>()
    };
    let (ok, _) = lode_ledger::verify_blocks(items(&|_, c| c)).unwrap();
    assert_eq!(ok.certified_blocks, 3);

    let fails_at = |items| match lode_ledger::verify_blocks(items) {
        Err(VerifyError::Block { height, fault }) => (height, fault),
        other => panic!("{other:?}"),
    };
    // Block 2 without its certificate.
    let (h, f) = fails_at(items(&|h, c| if h == 2 { None } else { c }));
    assert_eq!(h, 2);
    assert!(matches!(
        f,
        BlockFault::Invalid(lode_ledger::BlockError::MissingCertificate)
    ));
    // Block 2 with a short one (powers 1 + 2 + 3).
    let short = certificate(
        chain,
        2,
        r.block(2).unwrap().unwrap().hash(),
        &[&k[0], &k[1], &k[2]],
    );
    let short = canonical::encode(&short).unwrap();
    let (h, f) = fails_at(items(&|h, c| if h == 2 { Some(short.clone()) } else { c }));
    assert_eq!(h, 2);
    assert!(f.to_string().contains("more than 2/3"), "{f}");
    // Block 3 with block 1's certificate.
    let c1 = r.decided(1).unwrap().unwrap().1;
    let (h, _) = fails_at(items(&|h, c| if h == 3 { c1.clone() } else { c }));
    assert_eq!(h, 3);
}

#[test]
fn consensus_genesis_round_trips_and_is_checked() {
    let mut g = genesis();
    let done = lode_ledger::producer::complete_genesis(&g, &kp(1)).unwrap();
    assert_eq!(done.validators.len(), 4, "filled from [consensus]");
    let bytes = canonical::encode(&done).unwrap();
    let back: Genesis = canonical::decode(&bytes).unwrap();
    assert_eq!(back, done);
    assert_eq!(Genesis::from_toml(&done.to_toml()).unwrap(), done);
    // Without staking and governance, the sections before [consensus] are
    // spelled as absent; with none at all the legacy bytes are unchanged.
    let mut plain = done.clone();
    plain.consensus = None;
    let plain_bytes = canonical::encode(&plain).unwrap();
    assert!(bytes.starts_with(&plain_bytes));
    assert_eq!(&bytes[plain_bytes.len()..plain_bytes.len() + 3], &[0, 0, 1]);

    // The listed validators must be exactly the consensus ones.
    g.validators = vec![kp(1).did()];
    assert!(g.validate().is_err());
    let mut g = genesis();
    g.consensus.as_mut().unwrap().validators[1].power = 0;
    assert!(lode_ledger::producer::complete_genesis(&g, &kp(1)).is_err());
}

fn batch(r: &mut Replica, gateway: &Keypair, entries: Vec<Entry>) -> Entry {
    let m = lode_ledger::GatewayBatch {
        chain: r.chain_id(),
        entries,
    };
    let nonce = r.state().next_nonce(&gateway.did());
    Entry::sign(gateway, nonce, 0, &m).unwrap()
}

/// Proposes `entries` on `r` alone and commits them with every validator's precommit.
fn decide(r: &mut Replica, entries: &[Entry], t: u64) -> lode_ledger::replica::BlockProposal {
    let k = keys();
    let p = r.propose(entries, t).unwrap();
    let all: Vec<&Keypair> = k.iter().collect();
    let cert = certificate(r.chain_id(), p.height, p.hash, &all);
    r.commit(p.hash, None, &cert).unwrap();
    p
}

#[test]
fn gateways_submit_in_signed_batches_and_only_the_holder_settles() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = genesis();
    let gw_a = kp(99);
    let gw_b = kp(98);
    g.consensus.as_mut().unwrap().gateways = vec![gw_a.did(), gw_b.did()];
    let mut r = Replica::create(
        &dir.path().join("v"),
        &g,
        keys()[3].clone(),
        LedgerConfig::default(),
    )
    .unwrap();
    let t = g.genesis_time_ms + 1_000;
    let node = node_key(1);
    let (job, other_job) = (common::job(1), common::job(2));
    let (register, escrow, escrow2) = {
        let s = Signer { state: r.state() };
        (
            s.register(&node, funder().did(), addr(1)),
            s.escrow(&funder(), job, 100 * ONE_TOKEN, ONE_TOKEN),
            s.escrow(&funder(), other_job, 100 * ONE_TOKEN, ONE_TOKEN),
        )
    };
    let rc = receipt(job, 0, node.did(), 5, vec![node.did()]);

    // Gateway-made entries and escrows outside a batch are refused.
    let p = r
        .propose(&[rc.clone(), escrow.clone(), register.clone()], t)
        .unwrap();
    assert_eq!(p.included, 1, "only the node registration applies");
    assert!(matches!(
        p.rejected[0].1,
        lode_ledger::EntryError::GatewayOnly("work_receipt")
    ));
    assert!(matches!(
        p.rejected[1].1,
        lode_ledger::EntryError::GatewayOnly("job_escrow")
    ));
    let b1 = batch(&mut r, &gw_a, vec![register.clone()]);
    decide(&mut r, std::slice::from_ref(&register), t);

    // Gateway A takes job 1's escrow; gateway B job 2's.
    let a1 = batch(&mut r, &gw_a, vec![escrow.clone()]);
    let b1x = batch(&mut r, &gw_b, vec![escrow2.clone()]);
    let p = decide(&mut r, &[a1.clone(), b1x], t + 1);
    assert_eq!(p.included, 2);
    assert_eq!(r.state().job_gateway(&job), Some(gw_a.did()));
    assert_eq!(r.state().job_gateway(&other_job), Some(gw_b.did()));

    // The mempool's cheap admission says the same as applying would.
    let b2 = batch(&mut r, &gw_b, vec![rc.clone()]);
    assert!(matches!(
        r.admit(&b2).unwrap_err(),
        lode_ledger::EntryError::InBatch { error, .. } if matches!(*error, lode_ledger::EntryError::NotJobHolder { .. })
    ));
    let a_ok = batch(&mut r, &gw_a, vec![rc.clone()]);
    r.admit(&a_ok).unwrap();
    let future = {
        let m = lode_ledger::GatewayBatch {
            chain: r.chain_id(),
            entries: vec![rc.clone()],
        };
        let nonce = r.state().next_nonce(&gw_a.did()) + 1;
        Entry::sign(&gw_a, nonce, 0, &m).unwrap()
    };
    assert!(matches!(
        r.admit(&future).unwrap_err(),
        lode_ledger::EntryError::BadNonce { expected, found, .. } if found == expected + 1
    ));
    // B cannot post receipts for A's job; a non-gateway cannot batch at all.
    let outsider = kp(97);
    let o1 = batch(&mut r, &outsider, vec![rc.clone()]);
    let a2 = batch(&mut r, &gw_a, vec![rc.clone()]);
    let p = r
        .propose(&[b2, o1, a2.clone(), a2.clone(), a1.clone(), b1], t + 2)
        .unwrap();
    assert_eq!(p.included, 1, "{:?}", p.rejected);
    let errs: Vec<String> = p.rejected.iter().map(|(_, e)| e.to_string()).collect();
    assert!(errs[0].contains("does not hold the escrow"), "{errs:?}");
    assert!(matches!(
        p.rejected[1].1,
        lode_ledger::EntryError::NotAGateway(_)
    ));
    // The same batch twice, and an old batch again: at most once (nonce).
    assert!(
        matches!(p.rejected[2].1, lode_ledger::EntryError::BadNonce { .. }),
        "{errs:?}"
    );
    assert!(
        matches!(p.rejected[3].1, lode_ledger::EntryError::BadNonce { .. }),
        "{errs:?}"
    );
    let k = keys();
    let cert = certificate(r.chain_id(), p.height, p.hash, &[&k[1], &k[2], &k[3]]);
    r.commit(p.hash, None, &cert).unwrap();

    // All or nothing: a batch with one bad entry applies nothing.
    let bad = batch(&mut r, &gw_a, vec![rc.clone()]);
    let p = r.propose(&[bad], t + 3).unwrap();
    match &p.rejected[0].1 {
        lode_ledger::EntryError::InBatch { index: 0, error } => {
            assert!(matches!(
                **error,
                lode_ledger::EntryError::AlreadyCredited { .. }
            ))
        }
        e => panic!("{e}"),
    }
    drop(r);
    let rep = lode_ledger::verify(&dir.path().join("v")).unwrap();
    assert_eq!(rep.certified_blocks, 3);
}

#[test]
fn a_double_vote_is_recorded_on_the_ledger_once_and_forgeries_are_refused() {
    use lode_ledger::{Slash, SlashEvidence, SlashReason};
    let dir = tempfile::tempdir().unwrap();
    let mut g = genesis();
    g.staking = Some(lode_ledger::StakingParams::default());
    let mut r = Replica::create(
        &dir.path().join("v"),
        &g,
        keys()[1].clone(),
        LedgerConfig::default(),
    )
    .unwrap();
    let k = keys();
    let chain = r.chain_id();
    let vote = |key: &Keypair, block: Option<Hash32>| {
        let body = lode_ledger::consensus::VoteBody {
            chain,
            vote: lode_ledger::consensus::VoteType::Prevote,
            height: 1,
            round: 0,
            block,
            validator: k[0].did(),
        };
        key.sign_tagged(
            lode_ledger::consensus::VOTE_TAG,
            &lode_ledger::consensus::vote_sign_bytes(&body),
        )
    };
    let slash = |a: Option<Hash32>, sig_a, b: Option<Hash32>, sig_b| {
        Entry::Slash(Slash {
            who: k[0].did(),
            fraction_bps: 500,
            reason: SlashReason::DoubleSign,
            evidence: SlashEvidence::DoubleVote {
                vote: lode_ledger::consensus::VoteType::Prevote,
                height: 1,
                round: 0,
                a,
                sig_a,
                b,
                sig_b,
            },
        })
    };
    let (x, y) = (Some(Hash32::sha256(b"x")), Some(Hash32::sha256(b"y")));
    let good = slash(x, vote(&k[0], x), y, vote(&k[0], y));
    let forged = slash(x, vote(&k[0], x), y, vote(&k[2], y));
    let same = slash(x, vote(&k[0], x), x, vote(&k[0], x));
    for bad in [&forged, &same] {
        let e = r.trial(bad).unwrap_err();
        assert!(matches!(e, lode_ledger::EntryError::BadEvidence(_)), "{e}");
    }
    // Nobody staked on validator 0, yet the double vote is recorded.
    let p = r
        .propose(&[good.clone(), good.clone()], g.genesis_time_ms + 1_000)
        .unwrap();
    assert_eq!(p.included, 1, "{:?}", p.rejected);
    assert!(p.rejected[0].1.to_string().contains("already slashed"));
    let all: Vec<&Keypair> = k.iter().collect();
    let cert = certificate(chain, 1, p.hash, &all);
    r.commit(p.hash, None, &cert).unwrap();
    let t = r.state().stake_target(&k[0].did()).cloned().unwrap();
    assert!(t.jailed && t.tombstoned);
    drop(r);
    lode_ledger::verify(&dir.path().join("v")).unwrap();
}
