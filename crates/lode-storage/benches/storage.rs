//! Storage core throughput: Reed-Solomon encode and decode (k = 4, n = 8),
//! Merkle tree build over a share, and audit answer checks.
//!
//! `cargo bench -p lode-storage --bench storage`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lode_proto::Hash32;
use lode_storage::coding::{self, DEFAULT_SHARD_BYTES, Layout};
use lode_storage::merkle::{self, DEFAULT_CHUNK_BYTES, Tree};
use lode_storage::{Challenge, ChunkProof};
use std::hint::black_box;

const FILE: usize = 16 << 20;

fn data() -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..FILE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let data = data();
    let layout = Layout::new(FILE as u64, 4, 8, DEFAULT_SHARD_BYTES).unwrap();
    let shares = coding::encode(&layout, &data).unwrap();

    let mut g = c.benchmark_group("coding_16MiB_k4_n8");
    g.throughput(Throughput::Bytes(FILE as u64));
    g.sample_size(10);
    g.bench_function("encode", |b| {
        b.iter(|| coding::encode(&layout, black_box(&data)).unwrap())
    });
    // Worst case: every original share lost, rebuilt from the 4 recovery shares.
    let recovery: Vec<Option<&[u8]>> = shares
        .iter()
        .enumerate()
        .map(|(i, s)| (i >= 4).then_some(s.as_slice()))
        .collect();
    g.bench_function("decode_from_recovery_only", |b| {
        b.iter(|| coding::decode(&layout, black_box(&recovery)).unwrap())
    });
    let originals: Vec<Option<&[u8]>> = shares
        .iter()
        .enumerate()
        .map(|(i, s)| (i < 4).then_some(s.as_slice()))
        .collect();
    g.bench_function("decode_from_originals", |b| {
        b.iter(|| coding::decode(&layout, black_box(&originals)).unwrap())
    });
    g.finish();

    let share = &shares[0];
    let mut g = c.benchmark_group("merkle_4MiB_share");
    g.throughput(Throughput::Bytes(share.len() as u64));
    g.sample_size(10);
    g.bench_function("tree_build", |b| {
        b.iter(|| Tree::build(black_box(share), DEFAULT_CHUNK_BYTES).root())
    });
    g.finish();

    // One audit answer of 16 chunks (4 KiB each) checked against the root.
    let tree = Tree::build(share, DEFAULT_CHUNK_BYTES);
    let root = tree.root();
    let ch = Challenge {
        file: Hash32([1; 32]),
        share: 0,
        seed: Hash32([2; 32]),
        count: 16,
    };
    let len = share.len() as u64;
    let answer: Vec<ChunkProof> = ch
        .indices(merkle::chunk_count(len, DEFAULT_CHUNK_BYTES))
        .into_iter()
        .map(|i| {
            let a = (i * u64::from(DEFAULT_CHUNK_BYTES)) as usize;
            let b = (a + DEFAULT_CHUNK_BYTES as usize).min(share.len());
            ChunkProof {
                index: i,
                chunk: share[a..b].to_vec(),
                path: tree.path(i).unwrap(),
            }
        })
        .collect();
    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(16));
    g.bench_function("check_16_chunk_answer", |b| {
        b.iter(|| {
            ch.check(&root, len, DEFAULT_CHUNK_BYTES, black_box(&answer))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
