//! Properties of the storage core: any k of n shares rebuild the file; a
//! tampered chunk, path or index fails its audit.

use lode_proto::Hash32;
use lode_storage::coding::{self, Layout};
use lode_storage::merkle::{self, Tree};
use lode_storage::{AuditError, Challenge, ChunkProof, Manifest};
use proptest::prelude::*;

fn answer(share: &[u8], chunk_bytes: u32, c: &Challenge) -> Vec<ChunkProof> {
    let tree = Tree::build(share, chunk_bytes);
    let chunks = merkle::chunk_count(share.len() as u64, chunk_bytes);
    c.indices(chunks)
        .into_iter()
        .map(|i| {
            let a = (i * u64::from(chunk_bytes)) as usize;
            let b = (a + chunk_bytes as usize).min(share.len());
            ChunkProof {
                index: i,
                chunk: share[a..b].to_vec(),
                path: tree.path(i).unwrap(),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_k_of_n_shares_rebuild_the_file(
        data in proptest::collection::vec(any::<u8>(), 1..5000),
        k in 1u16..6,
        extra in 1u16..5,
        shard_half in 1u32..300,
        pick_seed in any::<u64>(),
    ) {
        let n = k + extra;
        let layout = Layout::new(data.len() as u64, k, n, shard_half * 2).unwrap();
        let shares = coding::encode(&layout, &data).unwrap();
        prop_assert_eq!(shares.len(), usize::from(n));
        // Keep a pseudo-random subset of exactly k shares.
        let mut idx: Vec<usize> = (0..usize::from(n)).collect();
        let mut s = pick_seed;
        for i in (1..idx.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            idx.swap(i, (s >> 33) as usize % (i + 1));
        }
        let keep: Vec<usize> = idx[..usize::from(k)].to_vec();
        let some: Vec<Option<&[u8]>> = shares
            .iter()
            .enumerate()
            .map(|(i, sh)| keep.contains(&i).then_some(sh.as_slice()))
            .collect();
        prop_assert_eq!(coding::decode(&layout, &some).unwrap(), data.clone());
        // Repair rebuilds exactly the missing shares.
        let missing: Vec<usize> = (0..usize::from(n)).filter(|i| !keep.contains(i)).collect();
        for (i, rebuilt) in coding::rebuild(&layout, &some, &missing).unwrap() {
            prop_assert_eq!(&rebuilt, &shares[i]);
        }
        // k − 1 shares are not enough.
        if k > 1 {
            let fewer: Vec<Option<&[u8]>> = shares
                .iter()
                .enumerate()
                .map(|(i, sh)| keep[1..].contains(&i).then_some(sh.as_slice()))
                .collect();
            prop_assert!(coding::decode(&layout, &fewer).is_err());
        }
    }

    #[test]
    fn honest_answers_pass_and_tampered_ones_fail(
        share in proptest::collection::vec(any::<u8>(), 1..4000),
        chunk_half in 32u32..200,
        seed in any::<[u8; 32]>(),
        count in 1u32..20,
        which in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let chunk_bytes = chunk_half * 2;
        let root = merkle::share_root(&share, chunk_bytes);
        let len = share.len() as u64;
        let c = Challenge { file: Hash32([3; 32]), share: 1, seed: Hash32(seed), count };
        let good = answer(&share, chunk_bytes, &c);
        prop_assert!(c.check(&root, len, chunk_bytes, &good).is_ok());

        // A flipped bit in one challenged chunk.
        let mut bad = good.clone();
        let i = which.index(bad.len());
        bad[i].chunk[0] ^= 1 << bit;
        let r = c.check(&root, len, chunk_bytes, &bad);
        prop_assert!(matches!(r, Err(AuditError::Proof(_))), "{:?}", r);

        // A flipped bit in a path hash (when the share has more than one chunk).
        let mut bad = good.clone();
        if let Some(h) = bad[i].path.first_mut() {
            h.0[0] ^= 1 << bit;
            prop_assert!(c.check(&root, len, chunk_bytes, &bad).is_err());
        }

        // Another chunk than the challenged one, with its own valid proof.
        let chunks = merkle::chunk_count(len, chunk_bytes);
        if chunks > 1 {
            let mut bad = good.clone();
            let other = (bad[i].index + 1) % chunks;
            let tree = Tree::build(&share, chunk_bytes);
            let a = (other * u64::from(chunk_bytes)) as usize;
            let b = (a + chunk_bytes as usize).min(share.len());
            bad[i] = ChunkProof { index: other, chunk: share[a..b].to_vec(), path: tree.path(other).unwrap() };
            let r = c.check(&root, len, chunk_bytes, &bad);
            prop_assert!(matches!(r, Err(AuditError::WrongIndex { .. })), "{:?}", r);
            // ... or presented under the challenged index.
            bad[i].index = good[i].index;
            prop_assert!(c.check(&root, len, chunk_bytes, &bad).is_err());
        }

        // A missing proof.
        let mut short = good.clone();
        short.pop();
        let r = c.check(&root, len, chunk_bytes, &short);
        prop_assert!(matches!(r, Err(AuditError::WrongCount { .. })), "{:?}", r);
    }

    #[test]
    fn a_manifest_rejects_any_other_content(
        data in proptest::collection::vec(any::<u8>(), 1..3000),
        pos in any::<prop::sample::Index>(),
    ) {
        let (m, _) = Manifest::build(Hash32([1; 32]), &data, 2, 5, 256, 64).unwrap();
        prop_assert!(m.check_data(&data).is_ok());
        let mut bad = data.clone();
        let p = pos.index(bad.len());
        bad[p] = bad[p].wrapping_add(1);
        prop_assert!(m.check_data(&bad).is_err());
    }
}
