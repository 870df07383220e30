//! A gateway following a replicated chain (issue 14): its entries leave in
//! durable signed batches, validators include them, the gateway applies the
//! decided blocks (certificates checked) and ends on the validators' roots;
//! batches survive a crash of the gateway; a batch that no longer applies is
//! dropped and its entries that still apply go out again; nothing twice.

mod common;

use common::*;
use lode_ledger::{Entry, Ledger, LedgerConfig, ONE_TOKEN, Replica, Transfer};
use lode_proto::{Keypair, canonical};

struct Net {
    validators: Vec<Replica>,
    t: u64,
}

impl Net {
    fn new(dir: &std::path::Path) -> Net {
        Net {
            validators: replicas(dir),
            t: genesis().genesis_time_ms + 1_000,
        }
    }

    /// The next height: validator `h % 4` proposes `entries`, everyone commits
    /// with the precommits of all four; returns (block, certificate, proposal).
    fn decide(
        &mut self,
        entries: &[Entry],
    ) -> (
        lode_ledger::Block,
        lode_ledger::consensus::CommitCertificate,
        lode_ledger::replica::BlockProposal,
    ) {
        self.t += 1;
        let k = keys();
        let height = self.validators[0].height() + 1;
        let proposer = (height % 4) as usize;
        let p = self.validators[proposer].propose(entries, self.t).unwrap();
        let all: Vec<&Keypair> = k.iter().collect();
        let cert = certificate(self.validators[0].chain_id(), height, p.hash, &all);
        for (i, v) in self.validators.iter_mut().enumerate() {
            if i != proposer {
                v.check(height, k[proposer].did(), &p.bytes, self.t)
                    .unwrap();
            }
            v.commit(p.hash, None, &cert).unwrap();
        }
        (lode_ledger::Block::from_bytes(&p.bytes).unwrap(), cert, p)
    }
}

fn batches(gw: &Ledger) -> Vec<Entry> {
    gw.inflight()
        .into_iter()
        .map(|(_, b)| canonical::decode(b.as_slice()).unwrap())
        .collect()
}

#[test]
fn a_gateways_batches_reach_the_chain_once_even_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Net::new(dir.path());
    let gw_dir = dir.path().join("gateway");
    let gw_key = kp(99);
    let mut gw =
        Ledger::open_follower(&gw_dir, &genesis(), gw_key.clone(), LedgerConfig::default())
            .unwrap();
    assert_eq!(gw.chain_id(), net.validators[0].chain_id());
    let node = node_key(1);
    let job = common::job(1);
    {
        let s = Signer { state: gw.state() };
        let reg = s.register(&node, funder().did(), addr(1));
        let esc = s.escrow(&funder(), job, 100 * ONE_TOKEN, ONE_TOKEN);
        gw.submit(reg).unwrap();
        gw.submit(esc).unwrap();
    }
    // Receipts for the job are accepted locally at once (the escrow is queued).
    gw.submit(receipt(job, 0, node.did(), 7, vec![node.did()]))
        .unwrap();
    let sealed = gw.seal_block(net.t).unwrap().unwrap();
    assert_eq!(sealed.entries, 3);
    assert_eq!(gw.inflight_len(), 1);
    assert!(gw.seal_block(net.t).unwrap().is_none(), "nothing open");

    // A second batch, then the gateway dies before any is included.
    gw.submit(receipt(job, 1, node.did(), 9, vec![node.did()]))
        .unwrap();
    gw.seal_block(net.t).unwrap();
    let sent = batches(&gw);
    assert_eq!(sent.len(), 2);
    let speculative = gw.state().state_root();
    drop(gw);
    let mut gw =
        Ledger::open_follower(&gw_dir, &genesis(), gw_key.clone(), LedgerConfig::default())
            .unwrap();
    assert_eq!(gw.inflight_len(), 2, "the outbox survives");
    assert_eq!(gw.state().state_root(), speculative);

    // The validators include the first batch (twice offered: once applied).
    let (b, c, p) = net.decide(&[sent[0].clone(), sent[0].clone()]);
    assert_eq!(p.included, 1);
    let r = gw.apply_remote(b, &c).unwrap();
    assert_eq!(r.included_batches, 1);
    assert!(r.dropped.is_empty());
    assert_eq!(gw.inflight_len(), 1);
    // An empty block, then the second batch.
    let (b, c, _) = net.decide(&[]);
    gw.apply_remote(b, &c).unwrap();
    let (b, c, _) = net.decide(&[sent[1].clone()]);
    assert_eq!(gw.apply_remote(b, &c).unwrap().included_batches, 1);
    assert_eq!(gw.inflight_len(), 0);
    let root = net.validators[0].state().state_root();
    assert_eq!(
        gw.state().state_root(),
        root,
        "the gateway ends on the validators' state"
    );
    assert_eq!(gw.state().job(&job).unwrap().owed, 16 * ONE_TOKEN);

    // A block with a bad certificate (or out of order) changes nothing.
    let (b, mut c, _) = net.decide(&[]);
    let good = c.clone();
    c.signatures.truncate(2);
    assert!(gw.apply_remote(b.clone(), &c).is_err());
    assert_eq!(gw.height(), 3);
    gw.apply_remote(b, &good).unwrap();
    drop(gw);
    let rep = lode_ledger::verify(&gw_dir).unwrap();
    assert_eq!(rep.certified_blocks, 4);
}

#[test]
fn a_batch_the_chain_overtook_is_dropped_and_what_still_applies_goes_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Net::new(dir.path());
    let mut gw = Ledger::open_follower(
        &dir.path().join("gw"),
        &genesis(),
        kp(99),
        LedgerConfig::default(),
    )
    .unwrap();
    let f = funder();
    let transfer = |gw: &Ledger, memo: &str| {
        let m = Transfer {
            chain: gw.chain_id(),
            to: kp(42).did(),
            amount: ONE_TOKEN,
            memo: memo.into(),
        };
        Entry::sign(&f, gw.state().next_nonce(&f.did()), 0, &m).unwrap()
    };
    // The funder's transfer goes through the gateway …
    let via_gateway = transfer(&gw, "via gateway");
    gw.submit(via_gateway).unwrap();
    let node = node_key(2);
    let reg = Signer { state: gw.state() }.register(&node, f.did(), addr(2));
    gw.submit(reg).unwrap();
    gw.seal_block(net.t).unwrap();
    let sent = batches(&gw);
    // … but another transfer with the same nonce reaches a validator first.
    let direct = Entry::sign(
        &f,
        0,
        0,
        &Transfer {
            chain: gw.chain_id(),
            to: kp(43).did(),
            amount: ONE_TOKEN,
            memo: "direct".into(),
        },
    )
    .unwrap();
    let (b, c, p) = net.decide(&[direct, sent[0].clone()]);
    assert_eq!(
        p.included, 1,
        "the batch no longer applies at the validator either"
    );
    let r = gw.apply_remote(b, &c).unwrap();
    assert_eq!(r.included_batches, 0);
    assert_eq!(r.dropped.len(), 1, "the overtaken transfer is reported");
    assert_eq!(gw.inflight_len(), 0);
    // The registration still applies: it goes out in the next batch.
    gw.seal_block(net.t).unwrap();
    let again = batches(&gw);
    assert_eq!(again.len(), 1);
    let (b, c, _) = net.decide(&again);
    assert_eq!(gw.apply_remote(b, &c).unwrap().included_batches, 1);
    assert!(gw.state().node(&node.did()).is_some());
    assert_eq!(
        gw.state().state_root(),
        net.validators[1].state().state_root()
    );
}
