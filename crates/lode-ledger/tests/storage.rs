//! Storage contracts on the ledger: the manifest's escrow, share placements,
//! byte-hour receipts paid from the escrow and by the epoch emission, failed
//! audits as penalties, typed rejections, and replay.

mod common;

use common::*;
use lode_ledger::*;
use lode_proto::{Hash32, Keypair};
use lode_storage::Manifest;

const PRICE: u128 = 1_000;

fn genesis() -> Genesis {
    let mut g = test_genesis();
    g.contribution_weights.insert(ContributionKind::Storage, 1);
    g
}

fn manifest(file: u8) -> Manifest {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    Manifest::build(Hash32([file; 32]), &data, 2, 4, 1024, 256)
        .unwrap()
        .0
}

fn contract(p: &Producer, who: &Keypair, m: &Manifest, term: u64, amount: Amount) -> Entry {
    let c = StorageContract {
        chain: p.state().chain_id(),
        manifest: m.clone(),
        term_hours: term,
        amount,
        price_per_byte_hour: PRICE,
    };
    Entry::sign(who, 0, 0, &c).unwrap()
}

fn storage_receipt(file: Hash32, unit: u64, node: lode_proto::Did, byte_hours: u64) -> Entry {
    Entry::WorkReceipt(WorkReceipt {
        job: file,
        unit,
        node,
        kind: ContributionKind::Storage,
        amount: byte_hours,
        result: Hash32::default(),
        quorum: vec![node],
    })
}

#[test]
fn contract_escrow_receipts_penalties_and_rewards() {
    let (mut p, g) = Producer::genesis(&genesis(), validator()).unwrap();
    let mut blocks = vec![g];
    let s = Signer { state: p.state() };
    let e = s.transfer(&funder(), requester().did(), 1_000 * ONE_TOKEN);
    p.submit(e).unwrap();
    for i in 0..2 {
        let e = Signer { state: p.state() }.register(&node_key(i), node_key(i).did(), addr(i));
        p.submit(e).unwrap();
    }
    let (n0, n1) = (node_key(0).did(), node_key(1).did());
    let m = manifest(1);
    let need = m.required_escrow(24, PRICE).unwrap();
    assert_eq!(need, u128::from(m.share_len()) * 4 * 24 * PRICE);

    // Wrong escrow amount, zero term, a manifest missing a root: typed refusals.
    let err = p
        .submit(contract(&p, &requester(), &m, 24, need - 1))
        .unwrap_err();
    assert!(err.to_string().contains("needs exactly"), "{err}");
    assert!(p.submit(contract(&p, &requester(), &m, 0, need)).is_err());
    let mut short = m.clone();
    short.roots.pop();
    assert!(
        p.submit(contract(&p, &requester(), &short, 24, need))
            .is_err()
    );
    // A requester who cannot afford the term.
    let poor = kp(77);
    let err = p.submit(contract(&p, &poor, &m, 24, need)).unwrap_err();
    assert!(err.to_string().contains("base units"), "{err}");
    // A share placed for a file that has no contract.
    let share = |file: Hash32, node| {
        Entry::StorageShare(StorageShare {
            file,
            share: 0,
            node,
            reason: "placement".into(),
        })
    };
    assert!(p.submit(share(m.file, n0)).is_err());

    p.submit(contract(&p, &requester(), &m, 24, need)).unwrap();
    // The same file id again: refused (ids are unique forever).
    assert!(p.submit(contract(&p, &requester(), &m, 24, need)).is_err());
    p.submit(share(m.file, n0)).unwrap();
    p.submit(share(m.file, n1)).unwrap();
    // Audited storage: byte-hours at the contract's price.
    p.submit(storage_receipt(m.file, 0, n0, 3_000)).unwrap();
    p.submit(storage_receipt(m.file, 1, n1, 1_000)).unwrap();
    assert!(
        p.submit(storage_receipt(m.file, 1, n1, 1_000)).is_err(),
        "credited once"
    );
    // A failed audit: a penalty with its evidence.
    p.submit(Entry::Penalty(Penalty {
        node: n1,
        reason: PenaltyReason::FailedAudit,
        job: Some(m.file),
        unit: Some(1),
        forfeit_weight: u128::MAX,
        detail: "seed 00.. chunk 3: proof does not lead to the root".into(),
    }))
    .unwrap();
    let st = p.state();
    assert_eq!(st.job(&m.file).unwrap().owed, 4_000 * PRICE);
    let settle = st.settlement(&m.file, false).unwrap();
    p.submit(Entry::Settlement(settle)).unwrap();
    let b = p.seal(T0 + EPOCH_MS).unwrap().unwrap();
    blocks.push(b);
    let st = p.state();
    // n0 earned its fee and the whole emission (n1's weight was forfeited).
    assert_eq!(st.node(&n0).unwrap().fees_total, 3_000 * PRICE);
    assert_eq!(st.node(&n1).unwrap().fees_total, 1_000 * PRICE);
    assert_eq!(st.node(&n0).unwrap().rewards_total, 10_000 * ONE_TOKEN);
    assert_eq!(st.node(&n1).unwrap().rewards_total, 0);
    assert_eq!(st.node(&n1).unwrap().penalties, 1);
    assert_eq!(
        st.balance(&requester().did()),
        1_000 * ONE_TOKEN - need,
        "the escrow stays locked for the rest of the term"
    );
    // Closing refunds what the receipts did not use.
    let close = p.state().settlement(&m.file, true).unwrap();
    assert_eq!(close.refund, need - 4_000 * PRICE);
    p.submit(Entry::Settlement(close)).unwrap();
    let b = p.seal(T0 + EPOCH_MS + 1).unwrap().unwrap();
    blocks.push(b);
    assert!(p.submit(share(m.file, n0)).is_err(), "closed contract");
    p.state().check_invariants().unwrap();

    // Anyone replays the chain to the same state.
    let mut s = State::from_genesis_block(&blocks[0]).unwrap();
    for b in &blocks[1..] {
        s = apply(&s, b).unwrap();
        assert_eq!(s.state_root(), b.header.state_root);
    }
    assert_eq!(s.state_root(), p.state().state_root());
    // The signed contract shows its manifest in the JSON view.
    let v = blocks[1]
        .entries
        .iter()
        .find(|e| e.kind_name() == "storage_contract")
        .unwrap()
        .to_view();
    assert_eq!(v["entry"]["message"]["manifest"]["k"], 2);
}
