//! Property tests of the ledger invariants over random operation sequences:
//! * total supply is conserved, and issuance changes only when an epoch
//!   closes, by exactly the scheduled emission split (dust carried) and the
//!   scheduled vesting;
//! * no balance goes negative (u128 + every debit checked) and every running
//!   total matches the maps (`State::check_invariants`);
//! * a (job, unit, node) is credited at most once, and closed jobs take nothing;
//! * escrow always covers what it pays;
//! * a rejected entry changes nothing;
//! * replay from genesis reproduces every state root, and so do snapshots.

mod common;

use common::*;
use lode_ledger::*;
use lode_proto::{Did, Keypair};
use proptest::prelude::*;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
enum Op {
    Transfer {
        from: u8,
        to: u8,
        amount: u128,
    },
    Register {
        node: u8,
        operator: u8,
    },
    Escrow {
        job: u8,
        amount: u128,
        price: u128,
    },
    Receipt {
        job: u8,
        unit: u8,
        node: u8,
        other: u8,
        fuel: u64,
    },
    Settle {
        job: u8,
        close: bool,
    },
    Withdraw {
        from: u8,
        to: u8,
        amount: u128,
    },
    Penalty {
        node: u8,
        forfeit: u128,
    },
    Adjust {
        node: u8,
        bps: u32,
    },
    Replay,
    Seal {
        advance: u64,
    },
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        0u128..5,
        (0u128..20_000).prop_map(|x| x * ONE_TOKEN / 10),
        Just(u128::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..7, 0u8..7, amount()).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        2 => (0u8..4, 0u8..7).prop_map(|(node, operator)| Op::Register { node, operator }),
        2 => (0u8..4, amount(), 0u128..4).prop_map(|(job, amount, price)| Op::Escrow { job, amount, price }),
        6 => (0u8..4, 0u8..5, 0u8..4, 0u8..4, 0u64..2_000)
            .prop_map(|(job, unit, node, other, fuel)| Op::Receipt { job, unit, node, other, fuel }),
        2 => (0u8..4, any::<bool>()).prop_map(|(job, close)| Op::Settle { job, close }),
        2 => (0u8..7, 0u8..4, amount()).prop_map(|(from, to, amount)| Op::Withdraw { from, to, amount }),
        1 => (0u8..4, 0u128..3_000).prop_map(|(node, forfeit)| Op::Penalty { node, forfeit }),
        1 => (0u8..4, 0u32..12_000).prop_map(|(node, bps)| Op::Adjust { node, bps }),
        1 => Just(Op::Replay),
        3 => (0u64..2_500).prop_map(|advance| Op::Seal { advance }),
    ]
}

fn account(i: u8) -> Keypair {
    match i {
        0 => funder(),
        1 => requester(),
        6 => team(),
        n => kp(100 + n),
    }
}

/// What a failed submit must leave untouched.
fn fingerprint(s: &State) -> (Totals, Vec<(Did, u128, u64)>, usize) {
    let accts = s
        .accounts()
        .map(|(d, a)| (*d, a.balance, a.nonce))
        .collect();
    (s.totals().clone(), accts, s.credited_len())
}

use lode_ledger::state::Totals;

fn run(random: Vec<Op>) -> Result<(), TestCaseError> {
    // Fund the requester and register every node first, so that random
    // histories reach receipts, settlements and epoch rewards.
    let mut ops = vec![Op::Transfer {
        from: 0,
        to: 1,
        amount: 50_000 * ONE_TOKEN,
    }];
    ops.extend((0..4).map(|n| Op::Register {
        node: n,
        operator: n % 3,
    }));
    ops.extend(random);
    let (mut p, genesis_block) = Producer::genesis(&test_genesis(), validator()).unwrap();
    let mut blocks = vec![genesis_block];
    let mut now = T0;
    let mut credited: BTreeSet<(u8, u8, u8)> = BTreeSet::new();
    let mut closed_jobs: BTreeSet<u8> = BTreeSet::new();
    let mut accepted_signed: Vec<Entry> = Vec::new();
    let mut issued = p.state().supply().issued;
    let node_did = |i: u8| node_key(i).did();
    for op in ops {
        let st = p.state();
        let s = Signer { state: st };
        let entry = match &op {
            Op::Transfer { from, to, amount } => {
                Some(s.transfer(&account(*from), account(*to).did(), *amount))
            }
            Op::Register { node, operator } => {
                Some(s.register(&node_key(*node), account(*operator).did(), addr(*node)))
            }
            Op::Escrow {
                job: j,
                amount,
                price,
            } => Some(s.escrow(&requester(), job(u64::from(*j)), *amount, *price)),
            Op::Receipt {
                job: j,
                unit,
                node,
                other,
                fuel,
            } => Some(receipt(
                job(u64::from(*j)),
                u64::from(*unit),
                node_did(*node),
                *fuel,
                if node == other {
                    vec![node_did(*node)]
                } else {
                    vec![node_did(*node), node_did(*other)]
                },
            )),
            Op::Settle { job: j, close } => st
                .settlement(&job(u64::from(*j)), *close)
                .ok()
                .map(Entry::Settlement),
            Op::Withdraw { from, to, amount } => {
                Some(s.withdraw(&account(*from), addr(*to), *amount))
            }
            Op::Penalty { node, forfeit } => Some(Entry::Penalty(Penalty {
                node: node_did(*node),
                reason: PenaltyReason::QuorumDisagreement,
                job: None,
                unit: None,
                forfeit_weight: *forfeit,
                detail: "prop".into(),
            })),
            Op::Adjust { node, bps } => Some(Entry::AdjustNode(AdjustNode {
                node: node_did(*node),
                reward_bps: *bps,
                reason: "prop".into(),
            })),
            Op::Replay => accepted_signed.last().cloned(),
            Op::Seal { advance } => {
                now += advance;
                let before_epoch = p.state().epoch();
                let Some(b) = p.seal(now).unwrap() else {
                    continue;
                };
                let st = p.state();
                st.check_invariants().map_err(TestCaseError::fail)?;
                prop_assert_eq!(st.totals().total_supply, test_genesis().token.total_supply);
                let mut released = 0u128;
                let mut closes = 0;
                for e in &b.entries {
                    if let Entry::EpochClose(c) = e {
                        let rec = st.epoch_record(c.epoch).unwrap();
                        prop_assert!(c.emission <= test_genesis().scheduled_emission(c.epoch));
                        prop_assert_eq!(c.distributed + c.dust, c.emission + rec.dust_in);
                        if rec.total_weight > 0 {
                            // Each of the (at most 4) weighted nodes loses < 1 unit to flooring.
                            prop_assert!(c.dust < 4, "dust {} too large", c.dust);
                        } else {
                            // Nobody worked: nothing emitted, the dust stays carried.
                            prop_assert_eq!(c.emission, 0);
                            prop_assert_eq!(c.distributed, 0);
                            prop_assert_eq!(c.dust, rec.dust_in);
                        }
                        released += c.distributed + c.vested;
                        closes += 1;
                    }
                }
                prop_assert_eq!(st.epoch(), before_epoch + closes);
                let now_issued = st.supply().issued;
                prop_assert_eq!(
                    now_issued - issued,
                    released,
                    "issuance only by epoch close"
                );
                issued = now_issued;
                blocks.push(b);
                continue;
            }
        };
        let Some(entry) = entry else { continue };
        let before = fingerprint(p.state());
        let signed = entry.envelope().is_some();
        match p.submit(entry.clone()) {
            Ok(()) => {
                if signed {
                    accepted_signed.push(entry);
                }
                prop_assert!(!matches!(op, Op::Replay), "a replayed entry was accepted");
                match &op {
                    Op::Receipt {
                        job: j, unit, node, ..
                    } => {
                        prop_assert!(!closed_jobs.contains(j), "receipt for a closed job");
                        prop_assert!(
                            credited.insert((*j, *unit, *node)),
                            "credited twice: job {} unit {} node {}",
                            j,
                            unit,
                            node
                        );
                    }
                    Op::Settle {
                        job: j,
                        close: true,
                    } => {
                        closed_jobs.insert(*j);
                        credited.retain(|(cj, _, _)| cj != j);
                    }
                    _ => {}
                }
            }
            Err(_) => {
                prop_assert_eq!(
                    fingerprint(p.state()),
                    before,
                    "a rejected entry changed the state"
                );
            }
        }
        p.state().check_invariants().map_err(TestCaseError::fail)?;
    }
    if let Some(b) = p.seal(now + 1).unwrap() {
        blocks.push(b);
    }
    // Replay from genesis reproduces every state root.
    let mut s = State::from_genesis_block(&blocks[0]).unwrap();
    prop_assert_eq!(s.state_root(), blocks[0].header.state_root);
    for b in &blocks[1..] {
        s.apply_block(b)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(s.state_root(), b.header.state_root);
    }
    prop_assert_eq!(s.state_root(), p.state().state_root());
    prop_assert_eq!(s.recompute_state_root(), s.state_root());
    let snap = State::from_snapshot(&s.to_snapshot().unwrap()).unwrap();
    prop_assert_eq!(snap.state_root(), s.state_root());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_histories(ops in proptest::collection::vec(op(), 1..90)) {
        run(ops)?;
    }
}

/// A long deterministic history with many epochs (halvings, vesting to the end).
#[test]
fn long_history_keeps_every_invariant() {
    let mut ops = Vec::new();
    for j in 0..4u8 {
        ops.push(Op::Escrow {
            job: j,
            amount: 1_000 * ONE_TOKEN,
            price: 3,
        });
        for u in 0..5 {
            for n in 0..4 {
                ops.push(Op::Receipt {
                    job: j,
                    unit: u,
                    node: n,
                    other: (n + 1) % 4,
                    fuel: 700 + u64::from(u),
                });
            }
        }
        ops.push(Op::Settle {
            job: j,
            close: j % 2 == 0,
        });
        ops.push(Op::Withdraw {
            from: j % 2,
            to: j,
            amount: ONE_TOKEN,
        });
        ops.push(Op::Seal {
            advance: 3 * EPOCH_MS + 7,
        });
    }
    ops.push(Op::Seal {
        advance: 40 * EPOCH_MS,
    });
    run(ops).unwrap();
}
