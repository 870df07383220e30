//! In-process validators on 127.0.0.1 (debug build): decide, restart,
//! halt without fork, equivocation evidence.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, chain_id, init_logs, serial};
use lode_validator::EquivocationKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_weighted_validators_decide_identical_blocks() {
    let _g = serial().await;
    init_logs();
    let t = Instant::now();
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    // blocks of ~300 KB: streamed as 3 parts
    for n in &mut c.nodes {
        n.filler = 300_000;
    }
    c.start_all().await;
    c.wait(60, "20 heights everywhere", |c| {
        c.nodes.iter().all(|n| n.height() >= 20)
    })
    .await;
    c.stop_all().await;
    c.assert_consistent();
    assert!(c.nodes[0].chain().blocks[&1].1.len() > 2 * 128 * 1024);
    eprintln!("20 heights in {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_validator_catches_up() {
    let _g = serial().await;
    init_logs();
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.start_all().await;
    c.wait(60, "5 heights", |c| c.nodes.iter().all(|n| n.height() >= 5))
        .await;
    c.stop(1).await; // power 2
    let stopped_at = c.nodes[1].height();
    c.wait(60, "progress without v1", |c| {
        c.nodes[0].height() >= stopped_at + 5
    })
    .await;
    c.restart_fresh(1).await;
    let target = c.nodes[0].height() + 3;
    c.wait(60, "v1 catches up", |c| c.nodes[1].height() >= target)
        .await;
    c.stop_all().await;
    c.assert_consistent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_two_thirds_the_chain_halts_then_resumes() {
    let _g = serial().await;
    init_logs();
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.start_all().await;
    c.wait(60, "3 heights", |c| c.nodes.iter().all(|n| n.height() >= 3))
        .await;
    c.stop(2).await; // power 3
    c.stop(3).await; // power 4
    // let a height already decided land
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = (c.nodes[0].height(), c.nodes[1].height());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (c.nodes[0].height(), c.nodes[1].height());
    assert_eq!(before, after, "3/10 of the power committed a block");
    c.restart_fresh(3).await; // power 4: 7/10 online
    let target = before.0.max(before.1) + 3;
    c.wait(60, "progress resumes", |c| c.nodes[0].height() >= target)
        .await;
    c.stop_all().await;
    c.assert_consistent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_equivocating_validator_is_reported() {
    let _g = serial().await;
    init_logs();
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.nodes[0].equivocate = true;
    let byz = c.nodes[0].did();
    c.start_all().await;
    c.wait(60, "evidence naming the equivocator", |c| {
        c.nodes[1..].iter().all(|n| n.height() >= 5)
            && c.nodes[1..]
                .iter()
                .any(|n| n.chain().evidence.iter().any(|e| e.validator == byz))
    })
    .await;
    c.stop_all().await;
    c.assert_consistent();
    let mut votes = 0;
    for n in &c.nodes[1..] {
        for e in n.chain().evidence {
            assert_eq!(e.validator, byz, "evidence against an honest validator");
            assert!(e.verify(chain_id()), "evidence does not verify: {e:?}");
            if matches!(e.kind, EquivocationKind::Vote(_)) {
                votes += 1;
            }
        }
    }
    assert!(votes > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_proposals_are_voted_down() {
    let _g = serial().await;
    init_logs();
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.nodes[3].bad = true; // power 4: its proposals (~40 % of rounds) are invalid
    let bad = c.nodes[3].did().short();
    c.start_all().await;
    c.wait(60, "10 heights", |c| {
        c.nodes[..3].iter().all(|n| n.height() >= 10)
    })
    .await;
    c.stop_all().await;
    c.assert_consistent();
    for (h, (_, bytes, _)) in c.nodes[0].chain().blocks {
        let b: common::ToyBlock = lode_proto::canonical::decode(&bytes).unwrap();
        assert!(
            !b.payload.starts_with(&bad),
            "an invalid block was committed at {h}"
        );
    }
}
