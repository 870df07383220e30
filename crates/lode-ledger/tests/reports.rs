//! Report credits (browser nodes' confirmed scam reports) and published models:
//! typed refusals that change nothing, at most one credit per (domain, node),
//! rewards at the epoch close by the same rule as compute, replay from blocks and
//! snapshots giving the same state root.

mod common;

use common::*;
use lode_ledger::entry::{MAX_REPORT_CREDIT, MAX_TEXT_LEN, PublishModel, ReportCredit};
use lode_ledger::*;
use lode_proto::{Hash32, Keypair};

fn genesis_with_reports() -> Genesis {
    let mut g = test_genesis();
    g.contribution_weights
        .insert(ContributionKind::Report, 1_000);
    g
}

fn credit(domain: &str, node: &Keypair, amount: u64) -> Entry {
    Entry::ReportCredit(ReportCredit {
        domain: Hash32::sha256(domain.as_bytes()),
        node: node.did(),
        amount,
        groups: 5,
        detail: format!("{domain} confirmed"),
    })
}

#[test]
fn a_report_is_credited_once_and_paid_at_the_epoch_close() {
    let (mut p, g) = Producer::genesis(&genesis_with_reports(), validator()).unwrap();
    let mut blocks = vec![g];
    let (a, b) = (node_key(0), node_key(1));
    // Not registered yet.
    assert!(matches!(
        p.submit(credit("bad.top", &a, 1)),
        Err(ProduceError::Entry(EntryError::UnknownNode(_)))
    ));
    for k in [&a, &b] {
        let e = Signer { state: p.state() }.register(k, k.did(), addr(1));
        p.submit(e).unwrap();
    }
    for bad in [0, MAX_REPORT_CREDIT + 1] {
        assert!(matches!(
            p.submit(credit("bad.top", &a, bad)),
            Err(ProduceError::Entry(EntryError::ReportAmount(_)))
        ));
    }
    let mut long = credit("bad.top", &a, 1);
    if let Entry::ReportCredit(r) = &mut long {
        r.detail = "x".repeat(MAX_TEXT_LEN + 1);
    }
    assert!(matches!(
        p.submit(long),
        Err(ProduceError::Entry(EntryError::TextTooLong { .. }))
    ));
    p.submit(credit("bad.top", &a, 1)).unwrap();
    p.submit(credit("bad.top", &b, 1)).unwrap();
    assert!(matches!(
        p.submit(credit("bad.top", &a, 1)),
        Err(ProduceError::Entry(
            EntryError::ReportAlreadyCredited { .. }
        ))
    ));
    let b1 = p.seal(T0 + 1).unwrap().expect("block");
    blocks.push(b1);
    // Still refused in a later block; another domain is another credit.
    assert!(matches!(
        p.submit(credit("bad.top", &a, 1)),
        Err(ProduceError::Entry(
            EntryError::ReportAlreadyCredited { .. }
        ))
    ));
    p.submit(credit("worse.top", &a, 1)).unwrap();
    let h = Hash32::sha256(b"bad.top");
    assert!(p.state().is_report_credited(&h, &a.did()));
    assert_eq!(p.state().report_credits_len(), 3);
    // The epoch closes: a has two credits, b one: 2/3 and 1/3 of the emission.
    let b2 = p.seal(T0 + EPOCH_MS + 1).unwrap().expect("block");
    blocks.push(b2);
    let st = p.state();
    let (ba, bb) = (st.balance(&a.did()), st.balance(&b.did()));
    assert!(ba > 0 && bb > 0, "{ba} {bb}");
    assert_eq!(ba / 2, bb, "rewards follow the credited weight");
    let s = replay(&blocks);
    assert_eq!(s.state_root(), p.state().state_root());
    assert_eq!(s.recompute_state_root(), s.state_root());
    let snap = State::from_snapshot(&s.to_snapshot().unwrap()).unwrap();
    assert_eq!(snap.state_root(), s.state_root());
    assert!(snap.is_report_credited(&h, &b.did()));
}

#[test]
fn reports_without_a_genesis_weight_are_refused() {
    let (mut p, _) = Producer::genesis(&test_genesis(), validator()).unwrap();
    let a = node_key(0);
    let e = Signer { state: p.state() }.register(&a, a.did(), addr(1));
    p.submit(e).unwrap();
    assert!(matches!(
        p.submit(credit("bad.top", &a, 1)),
        Err(ProduceError::Entry(EntryError::UnweightedKind(
            ContributionKind::Report
        )))
    ));
}

#[test]
fn a_published_model_is_recorded_and_checked() {
    let (mut p, g) = Producer::genesis(&test_genesis(), validator()).unwrap();
    let mut blocks = vec![g];
    let publish = |name: &str, h: u8| {
        Entry::PublishModel(PublishModel {
            name: name.into(),
            sha256: Hash32([h; 32]),
            feature_version: 1,
            detail: "test".into(),
        })
    };
    for bad in ["", "Scam", "a b", &"x".repeat(65)] {
        assert!(
            matches!(
                p.submit(publish(bad, 1)),
                Err(ProduceError::Entry(EntryError::Malformed { .. }))
            ),
            "{bad:?}"
        );
    }
    assert!(p.state().published_model("scam-classifier").is_none());
    p.submit(publish("scam-classifier", 1)).unwrap();
    assert!(matches!(
        p.submit(publish("scam-classifier", 1)),
        Err(ProduceError::Entry(
            EntryError::ModelAlreadyPublished { .. }
        ))
    ));
    blocks.push(p.seal(T0 + 1).unwrap().expect("block"));
    p.submit(publish("scam-classifier", 2)).unwrap();
    blocks.push(p.seal(T0 + 2).unwrap().expect("block"));
    let r = p
        .state()
        .published_model("scam-classifier")
        .expect("record");
    assert_eq!((r.sha256, r.height), (Hash32([2; 32]), 2));
    let s = replay(&blocks);
    assert_eq!(s.published_model("scam-classifier"), Some(r));
    let snap = State::from_snapshot(&s.to_snapshot().unwrap()).unwrap();
    assert_eq!(snap.state_root(), s.state_root());
}
