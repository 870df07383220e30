//! Behaviour of the state machine and the durable ledger: payments, rewards,
//! vesting, typed rejections, persistence, claims and history.

mod common;

use common::*;
use lode_ledger::block::{self, BlockHeader};
use lode_ledger::*;
use lode_proto::{Did, Hash32, Keypair};

fn sig(p: &Producer) -> Signer<'_> {
    Signer { state: p.state() }
}

fn start() -> (Producer, Vec<Block>) {
    let (p, g) = Producer::genesis(&test_genesis(), validator()).unwrap();
    (p, vec![g])
}

fn seal(p: &mut Producer, blocks: &mut Vec<Block>, t: u64) -> Block {
    let b = p.seal(t).unwrap().expect("a block");
    blocks.push(b.clone());
    b
}

const TOKEN: u128 = ONE_TOKEN;
const PRICE: u128 = 1_000_000_000;

/// Funds the requester and registers nodes 0..n (node 0 operates itself,
/// the others are operated by `operator()`).
fn setup(p: &mut Producer, nodes: u8) {
    let e = sig(p).transfer(&funder(), requester().did(), 1_000 * TOKEN);
    p.submit(e).unwrap();
    for i in 0..nodes {
        let op = if i == 0 {
            node_key(0).did()
        } else {
            operator().did()
        };
        let e = sig(p).register(&node_key(i), op, addr(i));
        p.submit(e).unwrap();
    }
}

fn operator() -> Keypair {
    kp(50)
}

#[test]
fn fees_rewards_and_refunds_add_up_exactly() {
    let (mut p, mut blocks) = start();
    setup(&mut p, 3);
    let (n0, n1, n2) = (node_key(0).did(), node_key(1).did(), node_key(2).did());
    let j = job(1);
    let e = sig(&p).escrow(&requester(), j, 100 * TOKEN, PRICE);
    p.submit(e).unwrap();
    for unit in 0..5 {
        p.submit(receipt(j, unit, n0, 1_000_000, vec![n0, n1]))
            .unwrap();
        p.submit(receipt(j, unit, n1, 1_000_000, vec![n0, n1]))
            .unwrap();
    }
    p.submit(receipt(j, 5, n2, 3_000_000, vec![n2])).unwrap();
    seal(&mut p, &mut blocks, T0 + 100);

    // Real-time pending earnings: shares of the epoch emission so far.
    let emission = 10_000 * TOKEN;
    let pe0 = p.state().pending_earnings(&n0).unwrap();
    assert_eq!(pe0.weight, 5_000_000);
    assert_eq!(pe0.total_effective_weight, 13_000_000 * 10_000);
    assert_eq!(pe0.estimated_reward, emission * 5 / 13);
    assert_eq!(pe0.unsettled_fees, 5_000_000 * PRICE);
    assert_eq!(p.state().job(&j).unwrap().owed, 13_000_000 * PRICE);

    // Pay what is owed, then close the job (refund the rest).
    let s = p.state().settlement(&j, false).unwrap();
    assert_eq!(s.payouts.len(), 3);
    p.submit(Entry::Settlement(s)).unwrap();
    seal(&mut p, &mut blocks, T0 + 200);
    let close = p.state().settlement(&j, true).unwrap();
    assert!(close.payouts.is_empty());
    assert_eq!(close.refund, 100 * TOKEN - 13_000_000 * PRICE);
    p.submit(Entry::Settlement(close)).unwrap();
    let b = seal(&mut p, &mut blocks, T0 + EPOCH_MS);
    // The block also closed epoch 0.
    assert!(matches!(b.entries.last(), Some(Entry::EpochClose(c)) if c.epoch == 0));
    let st = p.state();
    let r0 = emission * 5 / 13;
    let r2 = emission * 3 / 13;
    assert_eq!(st.balance(&n0), 5_000_000 * PRICE + r0);
    assert_eq!(
        st.balance(&operator().did()),
        8_000_000 * PRICE + r0 + r2,
        "operator receives its nodes' fees and rewards"
    );
    assert_eq!(
        st.balance(&requester().did()),
        900 * TOKEN + 100 * TOKEN - 13_000_000 * PRICE
    );
    let rec = st.epoch_record(0).unwrap();
    assert_eq!(rec.emission, emission);
    assert_eq!(rec.distributed, 2 * r0 + r2);
    assert_eq!(rec.dust_out, emission - 2 * r0 - r2);
    assert!(rec.dust_out < 3);
    assert_eq!(st.totals().reward_dust, rec.dust_out);
    assert_eq!(st.node(&n0).unwrap().rewards_total, r0);
    assert_eq!(st.node(&n1).unwrap().fees_total, 5_000_000 * PRICE);
    // Investors vest 90k over 5 epochs without a beneficiary: reserved.
    assert_eq!(rec.vested, 18_000 * TOKEN);
    assert_eq!(st.totals().reserved, 10_000 * TOKEN + 18_000 * TOKEN);
    assert_eq!(st.credited_len(), 0, "a closed job drops its credits");
    st.check_invariants().unwrap();
    let replayed = replay(&blocks);
    assert_eq!(replayed.state_root(), p.state().state_root());
    assert_eq!(replayed.recompute_state_root(), p.state().state_root());
}

#[test]
fn a_unit_is_credited_to_a_node_at_most_once() {
    let (mut p, mut blocks) = start();
    setup(&mut p, 2);
    let (n0, n1) = (node_key(0).did(), node_key(1).did());
    let j = job(7);
    let e = sig(&p).escrow(&requester(), j, 10 * TOKEN, PRICE);
    p.submit(e).unwrap();
    p.submit(receipt(j, 0, n0, 10, vec![n0, n1])).unwrap();
    let again = p.submit(receipt(j, 0, n0, 10, vec![n0, n1]));
    assert!(matches!(
        again,
        Err(ProduceError::Entry(EntryError::AlreadyCredited {
            unit: 0,
            ..
        }))
    ));
    seal(&mut p, &mut blocks, T0 + 1);
    // Still refused in a later block, with a different result hash or amount.
    let again = p.submit(receipt(j, 0, n0, 99, vec![n0]));
    assert!(matches!(
        again,
        Err(ProduceError::Entry(EntryError::AlreadyCredited { .. }))
    ));
    // Another node for the same unit is a different credit.
    p.submit(receipt(j, 0, n1, 10, vec![n0, n1])).unwrap();
    assert!(p.state().is_credited(&j, 0, &n1));
    let s = p.state().settlement(&j, true).unwrap();
    p.submit(Entry::Settlement(s)).unwrap();
    seal(&mut p, &mut blocks, T0 + 2);
    // A closed job accepts nothing, ever.
    assert!(matches!(
        p.submit(receipt(j, 9, n0, 1, vec![n0])),
        Err(ProduceError::Entry(EntryError::JobClosed(_)))
    ));
    // Escrowing the same job id again (a replayed or new escrow) is refused.
    let e = sig(&p).escrow(&requester(), j, TOKEN, PRICE);
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::JobExists(_)))
    ));
    replay(&blocks);
}

#[test]
fn escrow_covers_what_it_pays() {
    let (mut p, _) = start();
    setup(&mut p, 1);
    let n0 = node_key(0).did();
    let j = job(2);
    let e = sig(&p).escrow(&requester(), j, 25 * PRICE, PRICE);
    p.submit(e).unwrap();
    p.submit(receipt(j, 0, n0, 20, vec![n0])).unwrap();
    let before = p.state().totals().clone();
    let r = p.submit(receipt(j, 1, n0, 6, vec![n0]));
    assert!(matches!(
        r,
        Err(ProduceError::Entry(EntryError::EscrowExhausted { available, needed, .. }))
            if available == 5 * PRICE && needed == 6 * PRICE
    ));
    assert_eq!(
        *p.state().totals(),
        before,
        "a rejected entry changes nothing"
    );
    p.submit(receipt(j, 1, n0, 5, vec![n0])).unwrap();
    assert_eq!(p.state().job(&j).unwrap().available(), 0);
    // Escrow larger than the balance is refused too.
    let e = sig(&p).escrow(&requester(), job(3), 10_000 * TOKEN, 1);
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::InsufficientBalance { .. }))
    ));
}

#[test]
fn bad_account_entries_get_typed_errors_and_change_nothing() {
    let (mut p, mut blocks) = start();
    setup(&mut p, 2);
    seal(&mut p, &mut blocks, T0 + 1);
    let root = p.state().state_root();
    let f = funder();
    let to = kp(99).did();

    // Tampered payload: signature fails.
    let Entry::Transfer(mut env) = sig(&p).transfer(&f, to, 5) else {
        unreachable!()
    };
    env.payload[3] ^= 0x40;
    assert!(matches!(
        p.submit(Entry::Transfer(env.clone())),
        Err(ProduceError::Entry(EntryError::BadSignature { .. }))
    ));
    // A transfer envelope presented as a withdrawal.
    let Entry::Transfer(env) = sig(&p).transfer(&f, to, 5) else {
        unreachable!()
    };
    assert!(matches!(
        p.submit(Entry::Withdraw(env)),
        Err(ProduceError::Entry(EntryError::BadSignature { .. }))
    ));
    // Signed for another chain.
    let other = Transfer {
        chain: Hash32::sha256(b"other chain"),
        to,
        amount: 5,
        memo: String::new(),
    };
    let e = Entry::sign(&f, p.state().next_nonce(&f.did()), 0, &other).unwrap();
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::WrongChain { .. }))
    ));
    // Replay: the same signed entry twice.
    let e = sig(&p).transfer(&f, to, 5);
    p.submit(e.clone()).unwrap();
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::BadNonce {
            expected: 2,
            found: 1,
            ..
        }))
    ));
    // More than the balance, zero, oversized memo.
    let e = sig(&p).transfer(&kp(98), to, 1);
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::InsufficientBalance {
            balance: 0,
            ..
        }))
    ));
    let e = sig(&p).transfer(&f, to, 0);
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::ZeroAmount))
    ));
    let m = Transfer {
        chain: p.state().chain_id(),
        to,
        amount: 1,
        memo: "x".repeat(513),
    };
    let e = Entry::sign(&f, p.state().next_nonce(&f.did()), 0, &m).unwrap();
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::TextTooLong { .. }))
    ));
    let e = sig(&p).withdraw(&kp(98), addr(9), 1);
    assert!(matches!(
        p.submit(e),
        Err(ProduceError::Entry(EntryError::InsufficientBalance { .. }))
    ));
    // Ledger-made entries cannot be submitted.
    let g = Entry::Genesis(Box::new(test_genesis()));
    assert!(matches!(p.submit(g), Err(ProduceError::NotSubmittable(_))));
    // Only the valid transfer went in.
    seal(&mut p, &mut blocks, T0 + 2);
    assert_ne!(p.state().state_root(), root);
    assert_eq!(p.state().balance(&to), 5);
    replay(&blocks);
}

#[test]
fn bad_receipts_get_typed_errors() {
    let (mut p, _) = start();
    setup(&mut p, 2);
    let (n0, n1) = (node_key(0).did(), node_key(1).did());
    let stranger = kp(77).did();
    let j = job(1);
    let e = sig(&p).escrow(&requester(), j, 10 * TOKEN, 1);
    p.submit(e).unwrap();
    let err = |r: Result<(), ProduceError>| match r {
        Err(ProduceError::Entry(e)) => e,
        other => panic!("expected an entry error, got {other:?}"),
    };
    assert!(matches!(
        err(p.submit(receipt(job(9), 0, n0, 1, vec![n0]))),
        EntryError::UnknownJob(_)
    ));
    assert!(matches!(
        err(p.submit(receipt(j, 0, stranger, 1, vec![stranger]))),
        EntryError::UnknownNode(_)
    ));
    assert!(matches!(
        err(p.submit(receipt(j, 0, n0, 1, vec![n1]))),
        EntryError::NodeNotInQuorum { .. }
    ));
    assert!(matches!(
        err(p.submit(receipt(j, 0, n0, 1, vec![n0, stranger]))),
        EntryError::UnregisteredQuorumMember(_)
    ));
    assert!(matches!(
        err(p.submit(receipt(j, 0, n0, 1, vec![]))),
        EntryError::QuorumSize(0)
    ));
    let mut q = vec![n0, n1];
    q.sort();
    q.reverse();
    let unsorted = Entry::WorkReceipt(WorkReceipt {
        job: j,
        unit: 0,
        node: n0,
        kind: ContributionKind::Fuel,
        amount: 1,
        result: Hash32::default(),
        quorum: q,
    });
    assert!(matches!(
        err(p.submit(unsorted)),
        EntryError::QuorumNotSorted
    ));
    let storage = Entry::WorkReceipt(WorkReceipt {
        job: j,
        unit: 0,
        node: n0,
        kind: ContributionKind::Storage,
        amount: 1,
        result: Hash32::default(),
        quorum: vec![n0],
    });
    assert!(matches!(
        err(p.submit(storage)),
        EntryError::UnweightedKind(ContributionKind::Storage)
    ));
    // Weight 0 (uptime in the test genesis): fee paid, no emission weight.
    let uptime = Entry::WorkReceipt(WorkReceipt {
        job: j,
        unit: 1,
        node: n0,
        kind: ContributionKind::Uptime,
        amount: 100,
        result: Hash32::default(),
        quorum: vec![n0],
    });
    p.submit(uptime).unwrap();
    assert_eq!(p.state().pending_earnings(&n0).unwrap().weight, 0);
    assert_eq!(p.state().job(&j).unwrap().owed, 100);
}

#[test]
fn settlements_must_pay_exactly_what_is_owed() {
    let (mut p, _) = start();
    setup(&mut p, 2);
    let (n0, n1) = (node_key(0).did(), node_key(1).did());
    let j = job(1);
    let e = sig(&p).escrow(&requester(), j, 10 * TOKEN, PRICE);
    p.submit(e).unwrap();
    assert!(matches!(
        p.state().settlement(&j, false),
        Err(EntryError::NothingToSettle(_))
    ));
    p.submit(receipt(j, 0, n0, 7, vec![n0, n1])).unwrap();
    p.submit(receipt(j, 0, n1, 7, vec![n0, n1])).unwrap();
    let good = p.state().settlement(&j, true).unwrap();
    let mut more = good.clone();
    more.payouts[0].amount += 1;
    let mut fewer = good.clone();
    fewer.payouts.pop();
    let mut greedy = good.clone();
    greedy.refund += 1;
    let mut open = good.clone();
    open.close = false;
    for bad in [more, fewer, greedy, open] {
        assert!(matches!(
            p.submit(Entry::Settlement(bad)),
            Err(ProduceError::Entry(EntryError::SettlementMismatch { .. }))
        ));
    }
    p.submit(Entry::Settlement(good)).unwrap();
    assert!(matches!(
        p.state().settlement(&j, true),
        Err(EntryError::JobClosed(_))
    ));
    p.state().check_invariants().unwrap();
}

fn raw_block(state: &State, entries: Vec<Entry>, time: u64, key: &Keypair) -> Block {
    let encoded = block::encode_entries(&entries).unwrap();
    let header = BlockHeader {
        version: 1,
        height: state.height() + 1,
        timestamp_ms: time,
        prev_hash: state.head_hash(),
        entries_root: block::entries_root(&encoded),
        entry_count: entries.len() as u32,
        state_root: Hash32::default(),
        validator: key.did(),
    };
    Block::seal(header, entries, key)
}

#[test]
fn blocks_are_checked_before_and_after_their_entries() {
    let (mut p, mut blocks) = start();
    setup(&mut p, 1);
    let n0 = node_key(0).did();
    let e = sig(&p).escrow(&requester(), job(1), TOKEN, 1);
    p.submit(e).unwrap();
    p.submit(receipt(job(1), 0, n0, 10, vec![n0])).unwrap();
    seal(&mut p, &mut blocks, T0 + 10);
    let s = p.state().clone();
    let t = T0 + EPOCH_MS;
    let mut probe = s.clone();
    let close = probe.epoch_close(t).unwrap().unwrap();

    // Correct figures: only the (bogus) state root is wrong.
    let b = raw_block(&s, vec![Entry::EpochClose(close.clone())], t, &validator());
    assert!(matches!(
        apply(&s, &b),
        Err(BlockError::StateRootMismatch { .. })
    ));
    // Any wrong figure is an entry error.
    let mut inflated = close.clone();
    inflated.emission += 1;
    let b = raw_block(&s, vec![Entry::EpochClose(inflated)], t, &validator());
    assert!(matches!(
        apply(&s, &b),
        Err(BlockError::Entry {
            index: 0,
            error: EntryError::EpochCloseMismatch { .. },
            ..
        })
    ));
    let mut fake_root = close.clone();
    fake_root.claims_root = Hash32::sha256(b"x");
    let b = raw_block(&s, vec![Entry::EpochClose(fake_root)], t, &validator());
    assert!(apply(&s, &b).is_err());
    // Too early.
    let b = raw_block(
        &s,
        vec![Entry::EpochClose(close.clone())],
        t - 1,
        &validator(),
    );
    assert!(matches!(
        apply(&s, &b),
        Err(BlockError::Entry {
            error: EntryError::EpochNotOver { .. },
            ..
        })
    ));
    // Wrong signer, forged signature, wrong height, wrong link, time regression.
    let b = raw_block(&s, vec![], t, &kp(66));
    assert!(matches!(apply(&s, &b), Err(BlockError::NotAValidator(_))));
    let mut b = raw_block(&s, vec![], t, &validator());
    b.signature = kp(66).sign_tagged(block::BLOCK_TAG, b.hash().as_bytes());
    assert!(matches!(apply(&s, &b), Err(BlockError::BadSignature)));
    let mut b = raw_block(&s, vec![], t, &validator());
    b.header.height += 1;
    assert!(matches!(apply(&s, &b), Err(BlockError::WrongHeight { .. })));
    let mut b = raw_block(&s, vec![], t, &validator());
    b.header.prev_hash = Hash32::default();
    assert!(matches!(
        apply(&s, &b),
        Err(BlockError::WrongPrevHash { .. })
    ));
    let b = raw_block(&s, vec![], T0, &validator());
    assert!(matches!(
        apply(&s, &b),
        Err(BlockError::TimestampRegressed { .. })
    ));
    // Entries not matching the root.
    let mut b = raw_block(&s, vec![Entry::EpochClose(close)], t, &validator());
    b.entries.clear();
    assert!(apply(&s, &b).is_err());
    // The state machine still works from the untouched state.
    let again = p.seal(t).unwrap().unwrap();
    assert_eq!(
        apply(&s, &again).unwrap().state_root(),
        again.header.state_root
    );
}

#[test]
fn emission_halves_and_vesting_follows_the_schedule() {
    let (mut p, mut blocks) = start();
    setup(&mut p, 1);
    let n0 = node_key(0).did();
    let e = sig(&p).escrow(&requester(), job(1), TOKEN, 0);
    p.submit(e).unwrap();
    seal(&mut p, &mut blocks, T0 + 1);
    let mut issued = p.state().supply().issued;
    let mut pool = p.state().totals().pool_remaining;
    for epoch in 0..8u64 {
        // Work only in even epochs.
        if epoch % 2 == 0 {
            p.submit(receipt(job(1), epoch, n0, 1_000, vec![n0]))
                .unwrap();
        }
        let b = seal(&mut p, &mut blocks, T0 + (epoch + 1) * EPOCH_MS);
        let Some(Entry::EpochClose(c)) = b.entries.last() else {
            panic!("epoch {epoch} did not close");
        };
        assert_eq!(c.epoch, epoch);
        let scheduled = (10_000 * TOKEN) >> (epoch / 3);
        if epoch % 2 == 0 {
            assert_eq!(c.emission, scheduled, "epoch {epoch}");
            assert_eq!(c.rewarded_nodes, 1);
        } else {
            assert_eq!(c.emission, 0, "nobody worked: emission stays in the pool");
        }
        let st = p.state();
        assert_eq!(pool - st.totals().pool_remaining, c.emission);
        pool = st.totals().pool_remaining;
        // Issuance grows by exactly what the close released.
        let now = st.supply().issued;
        assert_eq!(now - issued, c.distributed + c.vested);
        issued = now;
        // Team: 100k, cliff 2, vesting 4.
        let team = st.balance(&team().did());
        let expected = match epoch + 1 {
            0 | 1 => 0,
            n => 100_000 * TOKEN * u128::from(n.min(4)) / 4,
        };
        assert_eq!(team, expected, "team after {} epochs", epoch + 1);
        st.check_invariants().unwrap();
    }
    // Investors fully vested after 5 epochs (reserved: no beneficiary).
    assert_eq!(
        p.state().allocation_state("investors").unwrap().released,
        100_000 * TOKEN
    );
    replay(&blocks);
}

#[test]
fn penalties_and_reward_multipliers_change_the_split() {
    let (mut p, mut blocks) = start();
    setup(&mut p, 3);
    let (n0, n1, n2) = (node_key(0).did(), node_key(1).did(), node_key(2).did());
    let e = sig(&p).escrow(&requester(), job(1), TOKEN, 0);
    p.submit(e).unwrap();
    for (u, n) in [n0, n1, n2].into_iter().enumerate() {
        p.submit(receipt(job(1), u as u64, n, 1_000, vec![n]))
            .unwrap();
    }
    p.submit(Entry::Penalty(Penalty {
        node: n1,
        reason: PenaltyReason::InvalidResult,
        job: Some(job(1)),
        unit: Some(1),
        forfeit_weight: 600,
        detail: "result rejected by quorum".into(),
    }))
    .unwrap();
    p.submit(Entry::AdjustNode(AdjustNode {
        node: n2,
        reward_bps: 5_000,
        reason: "shares an IP with another node".into(),
    }))
    .unwrap();
    assert!(matches!(
        p.submit(Entry::AdjustNode(AdjustNode {
            node: n2,
            reward_bps: 10_001,
            reason: String::new(),
        })),
        Err(ProduceError::Entry(EntryError::InvalidBps(10_001)))
    ));
    seal(&mut p, &mut blocks, T0 + EPOCH_MS);
    // Effective weights: n0 1000, n1 400, n2 500 (× 10,000 bps scale).
    let e = 10_000 * TOKEN;
    let st = p.state();
    assert_eq!(st.node(&n0).unwrap().rewards_total, e * 1000 / 1900);
    assert_eq!(st.node(&n1).unwrap().rewards_total, e * 400 / 1900);
    assert_eq!(st.node(&n2).unwrap().rewards_total, e * 500 / 1900);
    assert_eq!(st.node(&n1).unwrap().penalties, 1);
    replay(&blocks);
}

#[test]
fn state_root_depends_on_the_state_not_on_the_history() {
    let a = kp(90).did();
    let b = kp(91).did();
    let run = |first_a: bool| {
        let (mut p, _) = Producer::genesis(&test_genesis(), validator()).unwrap();
        let x = sig(&p).transfer(&funder(), a, 3);
        p.submit(x).unwrap();
        let y = sig(&p).transfer(&funder(), b, 4);
        p.submit(y).unwrap();
        p.seal(T0 + 1).unwrap();
        // Same final state through different transfers.
        if first_a {
            let z = sig(&p).transfer(&kp(90), b, 1);
            p.submit(z).unwrap();
        } else {
            let z = sig(&p).transfer(&kp(91), a, 1);
            p.submit(z).unwrap();
            let w = sig(&p).transfer(&kp(90), b, 2);
            p.submit(w).unwrap();
        }
        p.seal(T0 + 2).unwrap();
        p
    };
    // The same entries split differently across two blocks: same final state, same root.
    let split = |together: bool| {
        let (mut p, _) = Producer::genesis(&test_genesis(), validator()).unwrap();
        let x = sig(&p).transfer(&funder(), a, 3);
        p.submit(x).unwrap();
        if !together {
            p.seal(T0 + 1).unwrap();
        }
        let y = sig(&p).transfer(&funder(), b, 4);
        p.submit(y).unwrap();
        if together {
            p.seal(T0 + 1).unwrap();
        }
        let z = sig(&p).transfer(&kp(91), a, 1);
        p.submit(z).unwrap();
        p.seal(T0 + 2).unwrap();
        p.state().state_root()
    };
    assert_eq!(split(true), split(false));
    let p1 = run(true);
    let p2 = run(false);
    // Different nonces, so different states...
    assert_ne!(p1.state().state_root(), p2.state().state_root());
    assert_eq!(p1.state().balance(&a), 2);
    assert_eq!(p2.state().balance(&a), 2);
    // ...while every root equals the from-scratch recomputation.
    for p in [&p1, &p2] {
        assert_eq!(p.state().state_root(), p.state().recompute_state_root());
    }
}

// ---------------------------------------------------------------------------
// The durable ledger.

fn cfg() -> LedgerConfig {
    LedgerConfig {
        snapshot_every_blocks: 3,
        ..LedgerConfig::default()
    }
}

fn lsig(l: &Ledger) -> Signer<'_> {
    Signer { state: l.state() }
}

#[test]
fn ledger_persists_reopens_and_refuses_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = test_genesis();
    let mut l = Ledger::create(d, &g, validator(), cfg()).unwrap();
    assert!(matches!(
        Ledger::create(d, &g, validator(), cfg()),
        Err(LedgerError::Store(StoreError::AlreadyExists(_)))
    ));
    let e = lsig(&l).transfer(&funder(), requester().did(), 10 * TOKEN);
    l.submit(e).unwrap();
    assert_eq!(l.pending_len(), 1);
    for i in 0..5 {
        let e = lsig(&l).transfer(&requester(), kp(100 + i).did(), TOKEN);
        l.submit(e).unwrap();
        let sealed = l.seal_block(T0 + 400 * u64::from(i + 1)).unwrap().unwrap();
        assert_eq!(sealed.height, u64::from(i) + 1);
    }
    assert!(
        l.seal_block(T0 + 2_000).unwrap().is_none(),
        "nothing to seal"
    );
    let root = l.state().state_root();
    let head = l.height();
    drop(l);

    let l = Ledger::open(d, validator(), cfg()).unwrap();
    assert_eq!(l.state().state_root(), root);
    assert_eq!(l.height(), head);
    assert!(l.open_report().snapshot_height.is_some());
    assert_eq!(l.state().balance(&kp(104).did()), TOKEN);
    drop(l);

    // Without snapshots the replay from genesis gives the same state.
    let report = lode_ledger::verify(d).unwrap();
    assert_eq!(report.state_root, root);
    assert_eq!(report.head_height, head);

    let mut other = g.clone();
    other.chain_id = "another".into();
    assert!(matches!(
        Ledger::open_or_create(d, &other, validator(), cfg()),
        Err(LedgerError::GenesisMismatch)
    ));
    assert!(matches!(
        Ledger::open(d, kp(5), cfg()),
        Err(LedgerError::NotAValidator(_))
    ));
    let l = Ledger::open_or_create(d, &g, validator(), cfg()).unwrap();
    assert_eq!(l.state().state_root(), root);
    let view_dir = d.to_path_buf();
    // A read-only view works while the writer is open.
    let v = LedgerView::open(&view_dir).unwrap();
    assert_eq!(v.state().state_root(), root);
    assert!(matches!(
        Ledger::open(d, validator(), cfg()),
        Err(LedgerError::Store(
            StoreError::InUse(_) | StoreError::Db { .. }
        ))
    ));
}

#[test]
fn claims_tree_of_the_ledger_matches_openzeppelin() {
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("vectors/openzeppelin.json")).unwrap();
    let case = vectors["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ledger withdrawals")
        .unwrap()
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::create(dir.path(), &test_genesis(), validator(), cfg()).unwrap();
    assert!(matches!(
        l.claim_proof(&addr(1), None),
        Err(LedgerError::EpochNotClosed(0))
    ));
    // Two withdrawals to the first address add up (cumulative).
    let mut first = true;
    for pair in case["values"].as_array().unwrap() {
        let a: lode_proto::EvmAddress = pair[0].as_str().unwrap().parse().unwrap();
        let v: u128 = pair[1].as_str().unwrap().parse().unwrap();
        if first && v > 1 {
            let e = lsig(&l).withdraw(&funder(), a, 1);
            l.submit(e).unwrap();
            let e = lsig(&l).withdraw(&funder(), a, v - 1);
            l.submit(e).unwrap();
            first = false;
        } else {
            let e = lsig(&l).withdraw(&funder(), a, v);
            l.submit(e).unwrap();
        }
    }
    l.seal_block(T0 + 10).unwrap();
    let sealed = l.seal_block(T0 + EPOCH_MS).unwrap().unwrap();
    assert_eq!(sealed.epochs_closed, vec![0]);
    let tree = l.claims_tree(0).unwrap();
    assert_eq!(tree.dump_json(), case["dump_json"].as_str().unwrap());
    let rec = l.state().epoch_record(0).unwrap();
    assert_eq!(
        lode_ledger::merkle::hex0x(&rec.claims_root.0),
        case["root"].as_str().unwrap()
    );
    let (a, v) = tree.values()[2];
    let proof = l.claim_proof(&a, None).unwrap();
    assert_eq!(proof.amount, v.to_string());
    assert_eq!(proof.root, case["root"].as_str().unwrap());
    assert_eq!(
        proof.proof,
        case["proofs"][2]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );

    // Epoch 1: more withdrawn to one address; the epoch-0 tree is unchanged.
    let e = lsig(&l).withdraw(&funder(), a, 5);
    l.submit(e).unwrap();
    l.seal_block(T0 + 2 * EPOCH_MS).unwrap();
    assert_eq!(
        l.claims_tree(0).unwrap().dump_json(),
        case["dump_json"].as_str().unwrap()
    );
    let p1 = l.claim_proof(&a, Some(1)).unwrap();
    assert_eq!(p1.amount, (v + 5).to_string());
    assert_ne!(p1.root, proof.root);
    assert!(matches!(
        l.claim_proof(&addr(250), Some(1)),
        Err(LedgerError::NoClaimFor { .. })
    ));
    assert!(matches!(
        l.claims_tree(7),
        Err(LedgerError::EpochNotClosed(7))
    ));
    lode_ledger::verify(dir.path()).unwrap();
}

#[test]
fn history_and_fairness_explain_the_rewards() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::create(dir.path(), &test_genesis(), validator(), cfg()).unwrap();
    let e = lsig(&l).transfer(&funder(), requester().did(), 10 * TOKEN);
    l.submit(e).unwrap();
    let nodes: Vec<Did> = (0..4).map(|i| node_key(i).did()).collect();
    for i in 0..4u8 {
        let e = lsig(&l).register(&node_key(i), node_key(i).did(), addr(i));
        l.submit(e).unwrap();
    }
    let e = lsig(&l).escrow(&requester(), job(1), TOKEN, PRICE);
    l.submit(e).unwrap();
    for (i, n) in nodes.iter().enumerate() {
        for u in 0..=i as u64 {
            let r = receipt(job(1), u * 10 + i as u64, *n, 1_000, vec![*n]);
            l.submit(r).unwrap();
        }
    }
    let s = l.settlement(&job(1), true).unwrap();
    l.submit(Entry::Settlement(s)).unwrap();
    l.seal_block(T0 + EPOCH_MS).unwrap();
    let h = l.history(&nodes[3], 10).unwrap();
    let kinds: Vec<&str> = h
        .iter()
        .map(|e| match &e.kind {
            EventKind::Reward { .. } => "reward",
            EventKind::FeeEarned { .. } => "fee",
            EventKind::NodeRegistered { .. } => "registered",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["reward", "fee", "registered"], "newest first");
    let EventKind::Reward {
        weight,
        total_weight,
        amount,
        ..
    } = &h[0].kind
    else {
        unreachable!()
    };
    assert_eq!((*weight, *total_weight), (4_000 * 10_000, 10_000 * 10_000));
    assert_eq!(*amount, 10_000 * TOKEN * 4 / 10);
    let requester_history = l.history(&requester().did(), 10).unwrap();
    assert!(
        requester_history
            .iter()
            .any(|e| matches!(e.kind, EventKind::Refunded { .. }))
    );
    let funder_history = l.history(&funder().did(), 10).unwrap();
    assert!(matches!(
        funder_history.last().unwrap().kind,
        EventKind::GenesisUnlock { .. }
    ));

    let f = l.state().fairness();
    assert_eq!(f.shares[0].allocation, "contributors");
    assert_eq!(f.shares[0].issued, 10_000 * TOKEN);
    assert_eq!(f.rewarded_nodes, 4);
    // Rewards 1:2:3:4 → Gini = 0.25.
    assert!((f.contributor_gini - 0.25).abs() < 1e-9);
    let total_ppm: u64 = f.shares.iter().map(|s| s.share_ppm).sum();
    assert!(total_ppm <= 1_000_000 && total_ppm > 999_990);
}

#[test]
fn penalties_show_in_the_history_of_the_node_and_of_its_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::create(dir.path(), &test_genesis(), validator(), cfg()).unwrap();
    let (node, op) = (node_key(1).did(), operator().did());
    let e = lsig(&l).register(&node_key(1), op, addr(1));
    l.submit(e).unwrap();
    l.submit(Entry::Penalty(Penalty {
        node,
        reason: PenaltyReason::InvalidResult,
        job: Some(job(1)),
        unit: Some(7),
        forfeit_weight: 0,
        detail: "output differs from the quorum's".into(),
    }))
    .unwrap();
    l.submit(Entry::AdjustNode(AdjustNode {
        node,
        reward_bps: 5_000,
        reason: "flagged".into(),
    }))
    .unwrap();
    l.seal_block(T0 + 1).unwrap();
    for account in [node, op] {
        let h = l.history(&account, 10).unwrap();
        assert!(
            matches!(
                &h[0].kind,
                EventKind::RewardWeightSet {
                    reward_bps: 5_000,
                    ..
                }
            ),
            "{h:?}"
        );
        assert!(
            matches!(&h[1].kind, EventKind::Penalized { reason: PenaltyReason::InvalidResult, unit: Some(7), detail, .. } if detail.contains("quorum")),
            "{h:?}"
        );
    }
    lode_ledger::verify(dir.path()).unwrap();
}

#[test]
fn submit_batch_reports_each_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::create(dir.path(), &test_genesis(), validator(), cfg()).unwrap();
    let good = lsig(&l).transfer(&funder(), kp(80).did(), 1);
    let Entry::Transfer(mut env) = lsig(&l).transfer(&funder(), kp(81).did(), 1) else {
        unreachable!()
    };
    env.signature.0[0] ^= 1;
    let r = l.submit_batch(vec![good, Entry::Transfer(env)]);
    assert!(r[0].is_ok());
    assert!(matches!(
        r[1],
        Err(LedgerError::Entry(EntryError::BadSignature { .. }))
    ));
    // Block time never goes backwards.
    let a = l.seal_block(T0 + 500).unwrap().unwrap();
    let e = lsig(&l).transfer(&funder(), kp(80).did(), 1);
    l.submit(e).unwrap();
    let b = l.seal_block(T0 + 100).unwrap().unwrap();
    assert_eq!(b.timestamp_ms, a.timestamp_ms);
    let blk = l.block(b.height).unwrap().unwrap();
    assert_eq!(blk.hash(), b.hash);
}

#[test]
fn memory_grows_with_jobs_not_with_receipts_or_blocks() {
    // Each block runs a whole job (escrow, 50 receipts, close): closed jobs
    // keep one small record and drop their per-unit credits, so the state
    // grows by a constant per job, whatever the number of receipts.
    let (mut p, _) = start();
    setup(&mut p, 4);
    p.seal(T0 + 1).unwrap();
    let mut sizes = Vec::new();
    for j in 0..30u64 {
        let e = sig(&p).escrow(&requester(), job(100 + j), TOKEN, 1);
        p.submit(e).unwrap();
        for u in 0..50u64 {
            let n = node_key((u % 4) as u8).did();
            p.submit(receipt(job(100 + j), u, n, 10, vec![n])).unwrap();
        }
        let s = p.state().settlement(&job(100 + j), true).unwrap();
        p.submit(Entry::Settlement(s)).unwrap();
        p.seal(T0 + 2 + j).unwrap();
        assert_eq!(p.state().credited_len(), 0);
        assert!(!p.state().has_uncommitted());
        sizes.push(p.state().to_snapshot().unwrap().len());
    }
    let per_job = (sizes[29] - sizes[9]) / 20;
    assert!(
        per_job < 200,
        "state grows {per_job} bytes per closed job of 50 receipts"
    );
}
