//! Chains without `[staking]` are unchanged by issue 15: the genesis block
//! hash, every state root and every reward figure of a scripted chain equal
//! the values the ledger produced before staking existed (recorded from the
//! code at commit a7ddd90).

mod common;

use common::*;
use lode_ledger::*;

fn chain() -> (Vec<Block>, State) {
    let (mut p, g) = Producer::genesis(&test_genesis(), validator()).unwrap();
    let mut blocks = vec![g];
    let e = Signer { state: p.state() }.transfer(&funder(), requester().did(), 1_000 * ONE_TOKEN);
    p.submit(e).unwrap();
    for i in 0..3 {
        let e = Signer { state: p.state() }.register(&node_key(i), node_key(i).did(), addr(i));
        p.submit(e).unwrap();
    }
    let e = Signer { state: p.state() }.escrow(&requester(), job(1), 100 * ONE_TOKEN, 7);
    p.submit(e).unwrap();
    blocks.push(p.seal(T0 + 1).unwrap().unwrap());
    let q: Vec<_> = (0..3).map(|i| node_key(i).did()).collect();
    for u in 0..5u64 {
        for (i, n) in q.iter().enumerate() {
            p.submit(receipt(job(1), u, *n, 1_000 + 17 * i as u64 + u, q.clone()))
                .unwrap();
        }
    }
    blocks.push(p.seal(T0 + 2).unwrap().unwrap());
    for t in [T0 + EPOCH_MS, T0 + 2 * EPOCH_MS + 5] {
        p.submit(receipt(job(1), 100 + t, q[0], 333, q.clone()))
            .unwrap();
        blocks.push(p.seal(t).unwrap().unwrap());
    }
    let s = p.state().settlement(&job(1), true).unwrap();
    p.submit(Entry::Settlement(s)).unwrap();
    blocks.push(p.seal(T0 + 4 * EPOCH_MS).unwrap().unwrap());
    let st = p.state().clone();
    (blocks, st)
}

#[test]
fn legacy_chain_hashes_and_rewards_are_unchanged() {
    let (blocks, st) = chain();
    let got: Vec<String> = blocks.iter().map(|b| b.hash().to_string()).collect();
    let rewards: Vec<String> = (0..3)
        .map(|i| {
            st.node(&node_key(i).did())
                .unwrap()
                .rewards_total
                .to_string()
        })
        .collect();
    assert_eq!(
        got,
        [
            "99c1ea1d85c2745b9171fa4c631a7def7a73a7a78245ec0860e51ac6a27ce5ab",
            "56c2f0d045e5a356e32186253c738d9839dc8ea9ff308b2ed0041ddb6b43a18d",
            "093da1b5c72fd4a8d3a812d3d88a7386e03e514d0602eeb0e2c6111b922044ab",
            "a26c588fc0b5e6931d267eee20666dd8ef718a622834ba33ae7d5b9733fabc4f",
            "a2a5735b8a9f2edd4a6c6b4b80a4e079b989c492627d769e183e009949d3fb53",
            "330f2a72c86ca0d4f9600177e18fded624324023b09024d66b1c81a136bb1792",
        ]
    );
    assert_eq!(
        st.state_root().to_string(),
        "418a06d18ce1266781e93a021e737bad019f63893cb77d63617e9d3d150e9274"
    );
    assert_eq!(
        rewards,
        [
            "13421052631578947368423",
            "3262261493148930720962",
            "3316685875272121910615",
        ]
    );
    st.check_invariants().unwrap();
    // The genesis encodes exactly as before (no trailing sections).
    let g = test_genesis();
    let bytes = lode_proto::canonical::encode(&g).unwrap();
    assert_eq!(lode_proto::canonical::decode::<Genesis>(&bytes).unwrap(), g);
    assert_eq!(
        lode_proto::canonical::encode(&st.genesis().clone()).unwrap(),
        lode_proto::canonical::encode(&blocks_genesis(&blocks)).unwrap()
    );
    // Replay and snapshots still agree.
    assert_eq!(replay(&blocks).state_root(), st.state_root());
    let again = State::from_snapshot(&st.to_snapshot().unwrap()).unwrap();
    assert_eq!(again.state_root(), st.state_root());
}

fn blocks_genesis(blocks: &[Block]) -> Genesis {
    match &blocks[0].entries[0] {
        Entry::Genesis(g) => (**g).clone(),
        _ => unreachable!(),
    }
}
