//! Envelope costs: seal (encode + sign) and open (decode + verify + replay check).
//! Run: cargo bench -p lode-proto --bench envelope

use criterion::{Criterion, criterion_group, criterion_main};
use lode_proto::{Envelope, Keypair, Message, ReplayGuard};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResultMsg {
    unit: u64,
    output_hash: [u8; 32],
    exit_code: i32,
    fuel_used: u64,
}
impl Message for ResultMsg {
    const KIND: &'static str = "lode/bench/result/v1";
}

fn bench(c: &mut Criterion) {
    let kp = Keypair::from_secret_bytes(&[5; 32]);
    let msg = ResultMsg {
        unit: 17,
        output_hash: [9; 32],
        exit_code: 0,
        fuel_used: 123_456,
    };
    let now = 1_700_000_000_000u64;
    c.bench_function("envelope_seal", |b| {
        b.iter(|| Envelope::seal(&kp, black_box(&msg), 1, now).unwrap())
    });
    let bytes = Envelope::seal(&kp, &msg, 1, now).unwrap().to_bytes();
    let mut guard = ReplayGuard::new(u64::MAX / 4, 0, usize::MAX);
    let mut nonce = 0u64;
    let envs: Vec<Vec<u8>> = (0..1024)
        .map(|i| Envelope::seal(&kp, &msg, i, now).unwrap().to_bytes())
        .collect();
    c.bench_function("envelope_open_signed", |b| {
        b.iter(|| {
            Envelope::from_bytes(black_box(&bytes))
                .unwrap()
                .open_signed::<ResultMsg>()
                .unwrap()
        })
    });
    c.bench_function("envelope_open_with_replay_guard", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            let env = Envelope::from_bytes(&envs[(nonce % 1024) as usize]).unwrap();
            // Reset periodically so the guard does not reject replays of the 1024 fixtures.
            if nonce.is_multiple_of(1024) {
                guard = ReplayGuard::new(u64::MAX / 4, 0, usize::MAX);
            }
            let _ = env.open::<ResultMsg>(&mut guard, now);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
