//! Staking and slashing on the ledger (issue 15): bond, delegate, unbond with
//! its waiting period, commission, staking rewards at epoch close with exact
//! rounding, the validator set from stake, slashes with checked evidence,
//! typed rejections with no state change, conservation (proptest) and replay.

mod common;

use common::*;
use lode_ledger::*;
use lode_proto::{Did, Hash32, Keypair};
use proptest::prelude::*;

fn unbond(p: &Producer, k: &Keypair, from: Did, amount: Amount) -> Entry {
    let chain = p.state().chain_id();
    sign(
        p,
        k,
        &Unbond {
            chain,
            from,
            amount,
        },
    )
}

fn commission(p: &Producer, k: &Keypair, target: Did, bps: u32) -> Entry {
    let chain = p.state().chain_id();
    sign(p, k, &SetCommission { chain, target, bps })
}

fn fund(p: &mut Producer, to: Did, amount: Amount) {
    let e = Signer { state: p.state() }.transfer(&funder(), to, amount);
    p.submit(e).unwrap();
}

/// A rejected entry changes nothing: same supply, balances, nonces, stake.
fn assert_rejected(p: &mut Producer, e: Entry, want: fn(&EntryError) -> bool, who: &[Did]) {
    let snap = |p: &Producer| {
        let s = p.state();
        (
            s.supply(),
            s.staking_globals(),
            who.iter()
                .map(|d| (s.balance(d), s.next_nonce(d), s.unbonding_of(d)))
                .collect::<Vec<_>>(),
            s.delegations().map(|(k, a)| (*k, *a)).collect::<Vec<_>>(),
        )
    };
    let before = snap(p);
    let err = entry_err(p, e);
    assert!(want(&err), "unexpected error {err:?}");
    assert_eq!(snap(p), before, "a rejected entry changed the state");
}

/// A node with work this epoch: one receipt of `fuel` for `node`.
fn work(p: &mut Producer, job_id: JobId, unit: u64, node: Did, fuel: u64) {
    p.submit(receipt(job_id, unit, node, fuel, vec![node]))
        .unwrap();
}

struct World {
    p: Producer,
    blocks: Vec<Block>,
    a: Keypair,
    b: Keypair,
    op: Keypair,
    n0: Keypair,
}

fn world(share_bps: u32) -> World {
    let (mut p, g) = Producer::genesis(&staking_genesis(share_bps, 2), validator()).unwrap();
    let (a, b, op, n0) = (kp(10), kp(11), kp(12), node_key(0));
    for d in [a.did(), b.did(), validator().did(), requester().did()] {
        fund(&mut p, d, 10_000 * ONE_TOKEN);
    }
    let e = Signer { state: p.state() }.register(&n0, op.did(), addr(0));
    p.submit(e).unwrap();
    let e = Signer { state: p.state() }.escrow(&requester(), job(1), 1_000 * ONE_TOKEN, 1);
    p.submit(e).unwrap();
    let b0 = p.seal(T0 + 1).unwrap().unwrap();
    World {
        p,
        blocks: vec![g, b0],
        a,
        b,
        op,
        n0,
    }
}

impl World {
    fn seal(&mut self, t: u64) {
        if let Some(b) = self.p.seal(t).unwrap() {
            self.blocks.push(b);
        }
        self.p.state().check_invariants().unwrap();
    }
}

#[test]
fn bond_delegate_rewards_unbond_and_replay() {
    let mut w = world(2_000);
    let (v, a, b, op, n0) = (
        validator().did(),
        w.a.did(),
        w.b.did(),
        w.op.did(),
        w.n0.did(),
    );
    let vk = validator();
    let e = bond(&w.p, &vk, 1_000 * ONE_TOKEN);
    w.p.submit(e).unwrap();
    let e = delegate(&w.p, &w.a, v, 3_000 * ONE_TOKEN);
    w.p.submit(e).unwrap();
    let e = delegate(&w.p, &w.b, n0, 1_000 * ONE_TOKEN);
    w.p.submit(e).unwrap();
    let e = commission(&w.p, &w.op, n0, 1_000);
    w.p.submit(e).unwrap();
    assert_eq!(w.p.state().balance(&a), 7_000 * ONE_TOKEN);
    assert_eq!(w.p.state().delegation(&v, &a), 3_000 * ONE_TOKEN);
    assert_eq!(
        w.p.state().stake_target(&v).unwrap().power,
        4_000 * ONE_TOKEN
    );
    assert_eq!(w.p.state().stake_target(&n0).unwrap().commission_bps, 1_000);

    // Bad input: typed errors, nothing changes.
    let who = [a, b, v, op];
    let e = bond(&w.p, &w.a, 0);
    assert_rejected(&mut w.p, e, |e| *e == EntryError::ZeroAmount, &who);
    let e = bond(&w.p, &w.a, 7_000 * ONE_TOKEN + 1);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::InsufficientBalance { .. }),
        &who,
    );
    let e = bond(&w.p, &w.a, u128::MAX);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::InsufficientBalance { .. }),
        &who,
    );
    let e = delegate(&w.p, &w.a, kp(99).did(), ONE_TOKEN);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::UnknownStakeTarget(_)),
        &who,
    );
    let e = unbond(&w.p, &w.a, v, 3_000 * ONE_TOKEN + 1);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::InsufficientStake { .. }),
        &who,
    );
    let e = unbond(&w.p, &w.a, n0, 1);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::InsufficientStake { .. }),
        &who,
    );
    let e = unbond(&w.p, &w.a, v, 0);
    assert_rejected(&mut w.p, e, |e| *e == EntryError::ZeroAmount, &who);
    let e = commission(&w.p, &w.op, n0, 2_001);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::CommissionTooHigh { max: 2_000, .. }),
        &who,
    );
    let e = commission(&w.p, &w.a, n0, 10);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::NotTargetOperator { .. }),
        &who,
    );

    // Epoch 0: the node worked; no validator set is in force yet.
    work(&mut w.p, job(1), 0, n0, 100);
    w.seal(T0 + 10);
    w.seal(T0 + EPOCH_MS);
    let st = w.p.state();
    let rec = st.epoch_record(0).unwrap();
    // 10,000 LODE released: 20 % (2,000) to stakers, 8,000 to contributors.
    assert_eq!(rec.emission, 8_000 * ONE_TOKEN);
    assert_eq!(st.node(&n0).unwrap().rewards_total, 8_000 * ONE_TOKEN);
    // n0's stake is the only stake that performed: all 2,000 LODE, 10 % commission.
    assert_eq!(
        st.stake_target(&n0).unwrap().rewards_total,
        2_000 * ONE_TOKEN
    );
    assert_eq!(st.balance(&b), 9_000 * ONE_TOKEN + 1_800 * ONE_TOKEN);
    assert_eq!(st.balance(&op), 8_000 * ONE_TOKEN + 200 * ONE_TOKEN);
    assert_eq!(st.staking_globals().staking_released, 2_000 * ONE_TOKEN);
    // The fairness report shows both: contributors 8,000, stakers 2,000.
    let f = st.fairness();
    assert_eq!(f.stakers_issued, 2_000 * ONE_TOKEN);
    let contributors = f
        .shares
        .iter()
        .find(|s| s.allocation == "contributors")
        .unwrap();
    assert_eq!(contributors.issued, 8_000 * ONE_TOKEN);
    // Floors apart, the contributors' share is 4× the stakers' (80 % / 20 %).
    assert!(
        contributors.share_ppm.abs_diff(4 * f.stakers_share_ppm) <= 4,
        "{f:?}"
    );
    assert!(contributors.share_ppm > f.stakers_share_ppm);
    let total: u64 = f.shares.iter().map(|s| s.share_ppm).sum::<u64>() + f.stakers_share_ppm;
    assert!(total <= 1_000_000 && total > 999_990, "{f:?}");
    // The validator set for epoch 1: the validator (nodes are not candidates).
    assert_eq!(st.validator_set(), vec![v]);

    // Epoch 1: the node works again, the validator signs every block.
    work(&mut w.p, job(1), 1, n0, 100);
    w.seal(T0 + EPOCH_MS + 10);
    let e = unbond(&w.p, &w.a, v, 1_000 * ONE_TOKEN);
    w.p.submit(e).unwrap();
    w.seal(T0 + EPOCH_MS + 20);
    w.seal(T0 + 2 * EPOCH_MS);
    let st = w.p.state();
    // 2,000 LODE by weight: n0 1,000 × 100 %, the validator 3,000 (after A's
    // unbonding) × 100 %: 500 and 1,500; no commission on the validator.
    assert_eq!(
        st.stake_target(&n0).unwrap().rewards_total,
        2_500 * ONE_TOKEN
    );
    assert_eq!(
        st.stake_target(&v).unwrap().rewards_total,
        1_500 * ONE_TOKEN
    );
    // A: 2,000 of 3,000 behind the validator: 1,000 LODE; unbonding still locked.
    assert_eq!(st.balance(&a), 7_000 * ONE_TOKEN + 1_000 * ONE_TOKEN);
    assert_eq!(st.unbonding_of(&a), 1_000 * ONE_TOKEN);
    // Unbonding cannot be skipped: the tokens are not spendable yet.
    let e = Signer { state: w.p.state() }.transfer(&w.a, b, 8_000 * ONE_TOKEN + 1);
    assert!(matches!(
        entry_err(&mut w.p, e),
        EntryError::InsufficientBalance { .. }
    ));
    // Epoch 2 closes: the second close since the unbond releases it.
    w.seal(T0 + 3 * EPOCH_MS);
    let st = w.p.state();
    assert_eq!(st.unbonding_of(&a), 0);
    assert_eq!(st.balance(&a), 9_000 * ONE_TOKEN);
    st.check_invariants().unwrap();
    let root = st.state_root();

    // Anyone replays the chain to the same state root, and through a snapshot.
    let s = replay(&w.blocks);
    assert_eq!(s.state_root(), root);
    let snap = w.p.state().to_snapshot().unwrap();
    let again = State::from_snapshot(&snap).unwrap();
    assert_eq!(again.state_root(), root);
    assert_eq!(again.recompute_state_root(), root);
    assert_eq!(again.staking_globals(), w.p.state().staking_globals());
}

#[test]
fn rewards_round_down_and_remainder_goes_to_the_treasury() {
    // Three delegators with stakes that do not divide the reward evenly.
    let mut w = world(3_333);
    let n0 = w.n0.did();
    let ks = [kp(20), kp(21), kp(22)];
    for (i, k) in ks.iter().enumerate() {
        fund(&mut w.p, k.did(), ONE_TOKEN);
        let e = delegate(&w.p, k, n0, 7 + i as u128);
        w.p.submit(e).unwrap();
    }
    let e = commission(&w.p, &w.op, n0, 333);
    w.p.submit(e).unwrap();
    work(&mut w.p, job(1), 0, n0, 100);
    w.seal(T0 + 10);
    let before: Vec<Amount> = ks.iter().map(|k| w.p.state().balance(&k.did())).collect();
    let op_before = w.p.state().balance(&w.op.did());
    w.seal(T0 + EPOCH_MS);
    let st = w.p.state();
    let s = 10_000 * ONE_TOKEN * 3_333 / 10_000;
    assert_eq!(st.epoch_record(0).unwrap().emission, 10_000 * ONE_TOKEN - s);
    let r = s; // one target: it takes all of it, no remainder between targets
    let c = r * 333 / 10_000;
    let rest = r - c;
    let power: Amount = 7 + 8 + 9;
    let mut paid = 0;
    for (i, k) in ks.iter().enumerate() {
        let x = rest * (7 + i as u128) / power;
        paid += x;
        assert_eq!(st.balance(&k.did()) - before[i], x);
    }
    // Commission plus the delegators' rounding remainder go to the operator
    // (who also receives the contributors' emission of the node).
    let contrib = 10_000 * ONE_TOKEN - s;
    assert_eq!(
        st.balance(&w.op.did()) - op_before,
        contrib + (r - paid),
        "operator: emission + commission + remainder"
    );
    assert_eq!(st.staking_globals().treasury, 0);
    st.check_invariants().unwrap();
}

#[test]
fn no_staking_section_means_no_staking() {
    let (mut p, _) = Producer::genesis(&test_genesis(), validator()).unwrap();
    fund(&mut p, kp(10).did(), ONE_TOKEN);
    let e = bond(&p, &kp(10), 1);
    assert_eq!(entry_err(&mut p, e), EntryError::StakingDisabled);
    let e = unjail(&p, &validator());
    assert_eq!(entry_err(&mut p, e), EntryError::StakingDisabled);
    assert_eq!(p.state().params().staking_share_bps, 0);
    assert!(p.state().validator_set().is_empty());
}

fn double_sign(k: &Keypair, height: u64) -> SlashEvidence {
    let h = |t: u64| BlockHeader {
        version: 1,
        height,
        timestamp_ms: t,
        prev_hash: Hash32::default(),
        entries_root: Hash32::default(),
        entry_count: 0,
        state_root: Hash32::default(),
        validator: k.did(),
    };
    let (a, b) = (h(1), h(2));
    let sig_a = k.sign_tagged(lode_ledger::block::BLOCK_TAG, a.hash().as_bytes());
    let sig_b = k.sign_tagged(lode_ledger::block::BLOCK_TAG, b.hash().as_bytes());
    SlashEvidence::DoubleSign {
        a: Box::new(a),
        sig_a,
        b: Box::new(b),
        sig_b,
    }
}

fn claim(p: &Producer, node: &Keypair, result: Hash32) -> lode_proto::Envelope {
    let m = ResultClaim {
        chain: p.state().chain_id(),
        job: job(1),
        unit: 0,
        result,
    };
    lode_proto::Envelope::seal(node, &m, 0, 0).unwrap()
}

#[test]
fn slashing_checks_evidence_and_takes_bonded_and_unbonding_stake() {
    let mut w = world(2_000);
    let (v, a) = (validator().did(), w.a.did());
    let e = bond(&w.p, &validator(), 1_000 * ONE_TOKEN);
    w.p.submit(e).unwrap();
    let e = delegate(&w.p, &w.a, v, 3_001);
    w.p.submit(e).unwrap();
    let e = unbond(&w.p, &w.a, v, 1_000);
    w.p.submit(e).unwrap();
    w.seal(T0 + 10);
    let slash = |bps, reason, evidence| {
        Entry::Slash(Slash {
            who: v,
            fraction_bps: bps,
            reason,
            evidence,
        })
    };
    let who = [a, v];
    // Above the genesis cap (5 %), zero, evidence of someone else, one block
    // twice, the wrong kind of evidence: refused, nothing changes.
    let e = slash(501, SlashReason::DoubleSign, double_sign(&validator(), 3));
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::SlashFraction { max: 500, .. }),
        &who,
    );
    let e = slash(0, SlashReason::DoubleSign, double_sign(&validator(), 3));
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::SlashFraction { .. }),
        &who,
    );
    let e = slash(500, SlashReason::DoubleSign, double_sign(&kp(77), 3));
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::BadEvidence(_)),
        &who,
    );
    let SlashEvidence::DoubleSign { a: ha, sig_a, .. } = double_sign(&validator(), 3) else {
        unreachable!()
    };
    let same = SlashEvidence::DoubleSign {
        a: ha.clone(),
        sig_a,
        b: ha,
        sig_b: sig_a,
    };
    let e = slash(500, SlashReason::DoubleSign, same);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::BadEvidence(_)),
        &who,
    );
    let e = slash(1, SlashReason::Downtime, double_sign(&validator(), 3));
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::BadEvidence(_)),
        &who,
    );

    // A real double sign: 5 % of every delegation and unbonding, to the treasury.
    let e = slash(500, SlashReason::DoubleSign, double_sign(&validator(), 3));
    w.p.submit(e).unwrap();
    let st = w.p.state();
    let self_cut = 1_000 * ONE_TOKEN / 20;
    let a_cut = 2_001 * 500 / 10_000; // 100 (floor of 100.05)
    let u_cut = 1_000 * 500 / 10_000; // 50
    assert_eq!(st.delegation(&v, &v), 1_000 * ONE_TOKEN - self_cut);
    assert_eq!(st.delegation(&v, &a), 2_001 - a_cut);
    assert_eq!(st.unbonding_of(&a), 1_000 - u_cut);
    assert_eq!(st.staking_globals().treasury, self_cut + a_cut + u_cut);
    assert!(st.stake_target(&v).unwrap().jailed);
    w.seal(T0 + 20);
    w.seal(T0 + EPOCH_MS);
    assert!(
        w.p.state().validator_set().is_empty(),
        "a jailed validator leaves the set"
    );
    let s = replay(&w.blocks);
    assert_eq!(s.state_root(), w.p.state().state_root());
}

#[test]
fn nodes_are_slashed_only_on_a_signed_result_proven_wrong() {
    let mut w = world(2_000);
    let n0 = w.n0.did();
    let e = delegate(&w.p, &w.b, n0, 1_000);
    w.p.submit(e).unwrap();
    let (right, wrong) = (Hash32::sha256(b"right"), Hash32::sha256(b"wrong"));
    let fault = |claim, accepted, referee| {
        Entry::Slash(Slash {
            who: n0,
            fraction_bps: 1_000,
            reason: SlashReason::ProvenFault,
            evidence: SlashEvidence::ProvenFault {
                claim,
                accepted,
                referee,
            },
        })
    };
    let who = [w.b.did(), n0];
    // The node signed the result that was accepted: nothing to slash, even if
    // a quorum of colluders had accepted something else (the referee disagrees).
    let e = fault(claim(&w.p, &w.n0, right), right, right);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::BadEvidence(_)),
        &who,
    );
    let e = fault(claim(&w.p, &w.n0, right), wrong, right);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::BadEvidence(_)),
        &who,
    );
    // A claim the node did not sign.
    let e = fault(claim(&w.p, &kp(77), wrong), right, right);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::BadEvidence(_)),
        &who,
    );
    // Its own signed wrong result, confirmed by the validator's re-execution.
    let e = fault(claim(&w.p, &w.n0, wrong), right, right);
    w.p.submit(e).unwrap();
    let st = w.p.state();
    assert_eq!(st.delegation(&n0, &w.b.did()), 900);
    assert_eq!(st.staking_globals().treasury, 100);
    assert!(!st.stake_target(&n0).unwrap().jailed);
    st.check_invariants().unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    Bond(u8, u128),
    Delegate(u8, u8, u128),
    Unbond(u8, u8, u128),
    Transfer(u8, u8, u128),
    Work(u64),
    Slash(u32),
    Downtime(u64),
    Unjail(u8),
    Propose(u8, u128, bool),
    Vote(u8, u64, u8),
    Seal(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let amt = prop_oneof![
        0u128..2_000,
        Just(u128::MAX),
        (1u128..5).prop_map(|x| x * ONE_TOKEN)
    ];
    prop_oneof![
        (0u8..3, amt.clone()).prop_map(|(a, x)| Op::Bond(a, x)),
        (0u8..3, 0u8..5, amt.clone()).prop_map(|(a, t, x)| Op::Delegate(a, t, x)),
        (0u8..3, 0u8..5, amt.clone()).prop_map(|(a, t, x)| Op::Unbond(a, t, x)),
        (0u8..3, 0u8..3, amt).prop_map(|(a, b, x)| Op::Transfer(a, b, x)),
        (1u64..1_000).prop_map(Op::Work),
        (1u32..600).prop_map(Op::Slash),
        (0u64..3).prop_map(Op::Downtime),
        (0u8..3).prop_map(Op::Unjail),
        (0u8..3, 0u128..200, any::<bool>()).prop_map(|(a, x, spend)| Op::Propose(a, x, spend)),
        (0u8..3, 0u64..4, 0u8..4).prop_map(|(a, id, o)| Op::Vote(a, id, o)),
        (1u64..2_500).prop_map(Op::Seal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Total supply is constant and every invariant holds through any mix of
    /// bond, delegate, unbond, transfers, rewards, slashes (double sign and
    /// downtime), unjails, proposals (deposits,
    /// vetoes, treasury spends), votes and epoch closes;
    /// rejected entries change nothing; the chain replays to the same root.
    #[test]
    fn conservation_through_staking(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = world(2_500);
        let accts = [kp(10), kp(11), validator()];
        // Targets: the three accounts (self-bond makes them candidates), the
        // node, and an unknown key.
        let targets = [kp(10).did(), kp(11).did(), validator().did(), w.n0.did(), kp(99).did()];
        let supply = w.p.state().supply().total_supply;
        let mut now = T0 + 10;
        let mut unit = 100;
        for o in ops {
            let e = match o {
                Op::Bond(a, x) => Some(bond(&w.p, &accts[a as usize], x)),
                Op::Delegate(a, t, x) => Some(delegate(&w.p, &accts[a as usize], targets[t as usize], x)),
                Op::Unbond(a, t, x) => Some(unbond(&w.p, &accts[a as usize], targets[t as usize], x)),
                Op::Transfer(a, b, x) => Some(
                    Signer { state: w.p.state() }.transfer(&accts[a as usize], accts[b as usize].did(), x),
                ),
                Op::Work(f) => {
                    unit += 1;
                    Some(receipt(job(1), unit, w.n0.did(), f, vec![w.n0.did()]))
                }
                Op::Slash(bps) => Some(Entry::Slash(Slash {
                    who: validator().did(),
                    fraction_bps: bps,
                    reason: SlashReason::DoubleSign,
                    evidence: double_sign(&validator(), 7),
                })),
                Op::Downtime(epoch) => Some(downtime(epoch)),
                Op::Unjail(a) => Some(unjail(&w.p, &accts[a as usize])),
                Op::Propose(a, x, spend) => {
                    // Treasury spends (paid only if the treasury holds enough)
                    // or a staking-share change; deposits around the minimum.
                    let change = if spend {
                        ParamChange::TreasurySpend { to: accts[a as usize].did(), amount: x * 10 }
                    } else {
                        ParamChange::StakingShareBps(x as u32 * 30)
                    };
                    let deposit = 100 * ONE_TOKEN - 100 + x;
                    let chain = w.p.state().chain_id();
                    Some(sign(&w.p, &accts[a as usize], &Propose { chain, change, deposit, title: String::new() }))
                }
                Op::Vote(a, id, o) => {
                    let option = [VoteOption::Yes, VoteOption::No, VoteOption::Abstain, VoteOption::Veto][o as usize];
                    let chain = w.p.state().chain_id();
                    Some(sign(&w.p, &accts[a as usize], &Vote { chain, proposal: id, option }))
                }
                Op::Seal(dt) => {
                    now += dt;
                    w.seal(now);
                    None
                }
            };
            if let Some(e) = e {
                let before = w.p.state().supply();
                if w.p.submit(e).is_err() {
                    prop_assert_eq!(w.p.state().supply(), before);
                }
            }
            prop_assert_eq!(w.p.state().supply().total_supply, supply);
            w.p.state().check_invariants().map_err(TestCaseError::fail)?;
        }
        now += 3 * EPOCH_MS;
        w.seal(now);
        let s = replay(&w.blocks);
        prop_assert_eq!(s.state_root(), w.p.state().state_root());
        s.check_invariants().map_err(TestCaseError::fail)?;
    }
}

#[test]
fn a_durable_staking_chain_reopens_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = LedgerConfig {
        snapshot_every_blocks: 2,
        ..LedgerConfig::default()
    };
    let mut l = Ledger::create(d, &staking_genesis(2_000, 2), validator(), cfg.clone()).unwrap();
    let chain = l.state().chain_id();
    let a = kp(10);
    let e = Signer { state: l.state() }.transfer(&funder(), a.did(), 1_000 * ONE_TOKEN);
    l.submit(e).unwrap();
    let n = |l: &Ledger, k: &Keypair| l.state().next_nonce(&k.did());
    let e = Entry::sign(
        &a,
        n(&l, &a),
        0,
        &Bond {
            chain,
            amount: 500 * ONE_TOKEN,
        },
    )
    .unwrap();
    l.submit(e).unwrap();
    l.seal_block(T0 + 10).unwrap().unwrap();
    let change = ParamChange::ValidatorSetSize(3);
    let m = Propose {
        chain,
        change,
        deposit: 100 * ONE_TOKEN,
        title: "smaller set".into(),
    };
    let e = Entry::sign(&a, n(&l, &a), 0, &m).unwrap();
    l.submit(e).unwrap();
    let m = Vote {
        chain,
        proposal: 0,
        option: VoteOption::Yes,
    };
    let e = Entry::sign(&a, n(&l, &a), 0, &m).unwrap();
    l.submit(e).unwrap();
    let m = Unbond {
        chain,
        from: a.did(),
        amount: 100 * ONE_TOKEN,
    };
    let e = Entry::sign(&a, n(&l, &a), 0, &m).unwrap();
    l.submit(e).unwrap();
    l.seal_block(T0 + 20).unwrap().unwrap();
    for t in 1..4 {
        l.seal_block(T0 + t * EPOCH_MS).unwrap();
    }
    let st = l.state();
    st.check_invariants().unwrap();
    assert_eq!(st.params().validator_set_size, 3);
    assert_eq!(st.validator_set(), vec![a.did()]);
    assert_eq!(st.unbonding_of(&a.did()), 0);
    let root = st.state_root();
    drop(l);
    // Reopened from its snapshot, and verified from genesis.
    let l = Ledger::open(d, validator(), cfg).unwrap();
    assert_eq!(l.state().state_root(), root);
    assert!(l.open_report().snapshot_height.is_some());
    drop(l);
    let report = lode_ledger::verify(d).unwrap();
    assert_eq!(report.state_root, root);
}

#[test]
fn staking_entries_round_trip_and_show() {
    let p = world(0).p;
    let e = delegate(&p, &kp(10), node_key(0).did(), 5);
    let bytes = lode_proto::canonical::encode(&e).unwrap();
    assert_eq!(lode_proto::canonical::decode::<Entry>(&bytes).unwrap(), e);
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), e);
    assert!(e.signature_valid());
    let v = e.to_view();
    assert_eq!(v["kind"], "delegate");
    assert_eq!(v["entry"]["message"]["amount"], "5");
    // A delegate envelope presented as a bond does not verify.
    let Entry::Delegate(env) = e else {
        unreachable!()
    };
    assert!(!Entry::Bond(env).signature_valid());
    let s = Entry::Slash(Slash {
        who: validator().did(),
        fraction_bps: 1,
        reason: SlashReason::DoubleSign,
        evidence: double_sign(&validator(), 1),
    });
    let bytes = lode_proto::canonical::encode(&s).unwrap();
    assert_eq!(lode_proto::canonical::decode::<Entry>(&bytes).unwrap(), s);
    assert_eq!(s.to_view()["kind"], "slash");
    // Unjail is the last entry variant (tag 21: tags are wire format).
    let u = unjail(&p, &validator());
    let bytes = lode_proto::canonical::encode(&u).unwrap();
    assert_eq!(bytes[0], 21);
    assert_eq!(lode_proto::canonical::decode::<Entry>(&bytes).unwrap(), u);
    let json = serde_json::to_string(&u).unwrap();
    assert!(json.starts_with(r#"{"unjail":"#), "{json}");
    assert!(u.signature_valid());
    assert_eq!(u.to_view()["kind"], "unjail");
}

#[test]
fn downtime_evidence_must_be_a_closed_epoch_below_half() {
    let mut w = world(0);
    let v = validator().did();
    let e = bond(&w.p, &validator(), 20_001);
    w.p.submit(e).unwrap();
    let down = |epoch, signed, expected| {
        Entry::Slash(Slash {
            who: v,
            fraction_bps: 1,
            reason: SlashReason::Downtime,
            evidence: SlashEvidence::Downtime {
                epoch,
                signed,
                expected,
            },
        })
    };
    let who = [v];
    let bad = |e: &EntryError| matches!(e, EntryError::BadEvidence(_));
    // Epoch 0 is still open.
    assert_rejected(&mut w.p, down(0, 0, 10), bad, &who);
    w.seal(T0 + EPOCH_MS);
    // Half or more signed is not downtime.
    assert_rejected(&mut w.p, down(0, 5, 10), bad, &who);
    // Above the 0.01 % cap.
    assert_rejected(
        &mut w.p,
        Entry::Slash(Slash {
            fraction_bps: 2,
            ..match down(0, 4, 10) {
                Entry::Slash(s) => s,
                _ => unreachable!(),
            }
        }),
        |e| matches!(e, EntryError::SlashFraction { max: 1, .. }),
        &who,
    );
    w.p.submit(down(0, 4, 10)).unwrap();
    let st = w.p.state();
    assert_eq!(st.delegation(&v, &v), 20_001 - 2, "1 bps, floored");
    assert!(st.stake_target(&v).unwrap().jailed);
    assert!(!st.stake_target(&v).unwrap().tombstoned);
}

fn unjail(p: &Producer, k: &Keypair) -> Entry {
    let chain = p.state().chain_id();
    sign(p, k, &Unjail { chain })
}

/// A Downtime slash of the genesis validator for (closed) epoch `epoch`.
fn downtime(epoch: u64) -> Entry {
    Entry::Slash(Slash {
        who: validator().did(),
        fraction_bps: 1,
        reason: SlashReason::Downtime,
        evidence: SlashEvidence::Downtime {
            epoch,
            signed: 4,
            expected: 10,
        },
    })
}

#[test]
fn a_jailed_target_unjails_from_the_next_epoch_unless_tombstoned() {
    let mut w = world(0);
    let (v, a, b) = (validator().did(), w.a.did(), w.b.did());
    let e = bond(&w.p, &validator(), 20_001);
    w.p.submit(e).unwrap();
    let e = bond(&w.p, &w.a, 1_000 * ONE_TOKEN);
    w.p.submit(e).unwrap();
    let who = [v, a, b];
    // Not a target, not jailed: refused, nothing changes.
    let e = unjail(&w.p, &w.b);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::NotStakeTarget(d) if *d == kp(11).did()),
        &who,
    );
    let e = unjail(&w.p, &validator());
    assert_rejected(&mut w.p, e, |e| matches!(e, EntryError::NotJailed(_)), &who);
    w.seal(T0 + EPOCH_MS);
    assert_eq!(w.p.state().validator_set(), vec![a, v], "by power");

    // Epoch 1: jailed for downtime in epoch 0, and `a` for a double sign.
    w.p.submit(downtime(0)).unwrap();
    let e = Entry::Slash(Slash {
        who: a,
        fraction_bps: 500,
        reason: SlashReason::DoubleSign,
        evidence: double_sign(&w.a, 3),
    });
    w.p.submit(e).unwrap();
    let st = w.p.state();
    assert!(st.stake_target(&v).unwrap().jailed);
    assert_eq!(st.jailed_epoch(&v), Some(1));
    assert!(st.next_validator_set().is_empty());
    // Too early: the jailing epoch is not over.
    let e = unjail(&w.p, &validator());
    assert_rejected(
        &mut w.p,
        e,
        |e| {
            matches!(
                e,
                EntryError::StillJailed {
                    jailed_epoch: 1,
                    unjail_from: 2,
                    epoch: 1,
                    ..
                }
            )
        },
        &who,
    );
    assert!(w.p.state().stake_target(&v).unwrap().jailed);
    w.seal(T0 + EPOCH_MS + 10);
    w.seal(T0 + 2 * EPOCH_MS);
    assert!(w.p.state().validator_set().is_empty());

    // Epoch 2: a double sign never unjails; downtime does.
    let e = unjail(&w.p, &w.a);
    assert_rejected(
        &mut w.p,
        e,
        |e| matches!(e, EntryError::Tombstoned(_)),
        &who,
    );
    assert!(w.p.state().stake_target(&a).unwrap().jailed);
    let nonce = w.p.state().next_nonce(&v);
    let e = unjail(&w.p, &validator());
    w.p.submit(e).unwrap();
    let st = w.p.state();
    assert!(!st.stake_target(&v).unwrap().jailed);
    assert_eq!(st.jailed_epoch(&v), None);
    assert_eq!(st.next_nonce(&v), nonce + 1);
    assert_eq!(st.next_validator_set(), vec![v]);
    assert!(
        st.validator_set().is_empty(),
        "back at the boundary, not before"
    );
    let e = unjail(&w.p, &validator());
    assert_rejected(&mut w.p, e, |e| matches!(e, EntryError::NotJailed(_)), &who);
    w.seal(T0 + 2 * EPOCH_MS + 10);
    w.seal(T0 + 3 * EPOCH_MS);
    assert_eq!(w.p.state().validator_set(), vec![v]);

    // Replay gives the same root, and the history says so.
    let s = replay(&w.blocks);
    assert_eq!(s.state_root(), w.p.state().state_root());
    let mut s = State::from_genesis_block(&w.blocks[0]).unwrap();
    s.record_events(true);
    for blk in &w.blocks[1..] {
        s.apply_block(blk).unwrap();
    }
    let events = s.take_events();
    assert!(
        events
            .iter()
            .any(|e| e.account == v && e.kind == EventKind::Unjailed { epoch: 2 }),
        "{events:?}"
    );
    // The jail epochs survive a snapshot.
    let mut w2 = world(0);
    let e = bond(&w2.p, &validator(), 20_001);
    w2.p.submit(e).unwrap();
    w2.seal(T0 + EPOCH_MS);
    w2.p.submit(downtime(0)).unwrap();
    w2.seal(T0 + EPOCH_MS + 10);
    let snap = State::from_snapshot(&w2.p.state().to_snapshot().unwrap()).unwrap();
    assert_eq!(snap.state_root(), w2.p.state().state_root());
    assert_eq!(snap.jailed_epoch(&v), Some(1));
}
