//! Ledger benchmarks (figures and commands: docs/bench/lode-ledger.md).
//!
//! * `append/*`: entries applied AND persisted (redb, fsync, two-phase
//!   commit) per second in batched blocks, for validator-authored receipts,
//!   signed transfers (each Ed25519 signature verified) and a mix; plus the
//!   same block applied in memory only, to separate the cost of persistence.
//! * `verify/*`: full-chain verification rate (replay from genesis).
//! * `epoch/*`: epoch close with 1,000,000 payout addresses (claims tree +
//!   every proof), and the reward split over many rewarded nodes.
//!
//! Run: `cargo bench -p lode-ledger --bench ledger` (add a filter, e.g. `-- append`).
//! The 1,000,000-node reward split has a long setup; it runs only with
//! `LODE_BENCH_BIG=1`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lode_ledger::*;
use lode_proto::{Did, EvmAddress, Hash32, Keypair};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const T0: u64 = 1_700_000_000_000;
const EPOCH_MS: u64 = 3_600_000;
const TOKEN: u128 = ONE_TOKEN;

fn kp(i: u64) -> Keypair {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s[31] = 0x5a;
    Keypair::from_secret_bytes(&s)
}

fn validator() -> Keypair {
    kp(u64::MAX)
}
fn funder() -> Keypair {
    kp(u64::MAX - 1)
}

/// A genesis whose funder holds 40% of a 10^12 LODE supply.
fn genesis() -> Genesis {
    let mut g = Genesis::default_genesis();
    g.chain_id = "bench".into();
    g.genesis_time_ms = T0;
    g.epoch.length_ms = EPOCH_MS;
    g.token.total_supply = 1_000_000_000_000 * TOKEN;
    g.emission.initial_per_epoch = 1_000_000 * TOKEN;
    g.allocations = vec![
        Allocation {
            name: "contributors".into(),
            role: AllocationRole::Contributors,
            amount: 600_000_000_000 * TOKEN,
            beneficiary: None,
            unlocked_at_launch: 0,
            cliff_epochs: 0,
            vesting_epochs: 0,
        },
        Allocation {
            name: "funder".into(),
            role: AllocationRole::Vesting,
            amount: 400_000_000_000 * TOKEN,
            beneficiary: Some(funder().did()),
            unlocked_at_launch: 400_000_000_000 * TOKEN,
            cliff_epochs: 0,
            vesting_epochs: 0,
        },
    ];
    g
}

fn job(i: u64) -> JobId {
    Hash32::sha256(&i.to_be_bytes())
}

fn receipt(job: JobId, unit: u64, node: Did) -> Entry {
    Entry::WorkReceipt(WorkReceipt {
        job,
        unit,
        node,
        kind: ContributionKind::Fuel,
        amount: 1_000_000 + unit % 1000,
        result: Hash32::sha256(&unit.to_le_bytes()),
        quorum: vec![node],
    })
}

struct Fixture {
    nodes: Vec<Did>,
}

/// Registers `n` nodes and escrows job 1 with a large budget.
fn setup_ledger(l: &mut Ledger, n: u64) -> Fixture {
    let chain = l.chain_id();
    let mut nodes = Vec::new();
    for i in 0..n {
        let k = kp(i);
        let m = RegisterNode {
            chain,
            operator: k.did(),
            payout: EvmAddress([i as u8; 20]),
        };
        l.submit(Entry::sign(&k, 0, 0, &m).unwrap()).unwrap();
        nodes.push(k.did());
    }
    let m = JobEscrow {
        chain,
        job: job(1),
        amount: 100_000_000_000 * TOKEN,
        price_per_unit: 1,
    };
    l.submit(Entry::sign(&funder(), 0, 0, &m).unwrap()).unwrap();
    l.seal_block(T0 + 1).unwrap();
    Fixture { nodes }
}

fn new_ledger(dir: &Path) -> Ledger {
    Ledger::create(dir, &genesis(), validator(), LedgerConfig::default()).unwrap()
}

fn transfers(l: &Ledger, n: u64, salt: u64) -> Vec<Entry> {
    let f = funder();
    let chain = l.chain_id();
    let nonce = l.state().next_nonce(&f.did());
    (0..n)
        .map(|i| {
            let m = Transfer {
                chain,
                to: kp(1_000_000 + (salt * n + i) % 5_000).did(),
                amount: 1 + u128::from(i),
                memo: String::new(),
            };
            Entry::sign(&f, nonce + i, 0, &m).unwrap()
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for block in [1_000u64, 10_000, 50_000] {
        g.throughput(Throughput::Elements(block));
        g.bench_function(format!("receipts_persisted/{block}"), |b| {
            let dir = tempfile::tempdir().unwrap();
            let mut l = new_ledger(dir.path());
            let fx = setup_ledger(&mut l, 64);
            let mut unit = 0u64;
            let mut now = T0 + 2;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let entries: Vec<Entry> = (0..block)
                        .map(|k| {
                            unit += 1;
                            receipt(job(1), unit, fx.nodes[(k % 64) as usize])
                        })
                        .collect();
                    now += 1;
                    let t = Instant::now();
                    for e in entries {
                        l.submit(e).unwrap();
                    }
                    black_box(l.seal_block(now).unwrap());
                    total += t.elapsed();
                }
                total
            });
        });
    }
    let block = 10_000u64;
    g.throughput(Throughput::Elements(block));
    g.bench_function("receipts_in_memory/10000", |b| {
        let (mut p, _) = Producer::genesis(&genesis(), validator()).unwrap();
        let chain = p.state().chain_id();
        let mut nodes = Vec::new();
        for i in 0..64 {
            let k = kp(i);
            let m = RegisterNode {
                chain,
                operator: k.did(),
                payout: EvmAddress([0; 20]),
            };
            p.submit(Entry::sign(&k, 0, 0, &m).unwrap()).unwrap();
            nodes.push(k.did());
        }
        let m = JobEscrow {
            chain,
            job: job(1),
            amount: 100_000_000_000 * TOKEN,
            price_per_unit: 1,
        };
        p.submit(Entry::sign(&funder(), 0, 0, &m).unwrap()).unwrap();
        p.seal(T0 + 1).unwrap();
        let mut unit = 0u64;
        let mut now = T0 + 2;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let entries: Vec<Entry> = (0..block)
                    .map(|k| {
                        unit += 1;
                        receipt(job(1), unit, nodes[(k % 64) as usize])
                    })
                    .collect();
                now += 1;
                let t = Instant::now();
                for e in entries {
                    p.submit(e).unwrap();
                }
                black_box(p.seal(now).unwrap());
                total += t.elapsed();
            }
            total
        });
    });
    let block = 2_000u64;
    g.throughput(Throughput::Elements(block));
    for batch in [false, true] {
        let name = if batch {
            "signed_transfers_parallel_verify/2000"
        } else {
            "signed_transfers/2000"
        };
        g.bench_function(name, |b| {
            let dir = tempfile::tempdir().unwrap();
            let mut l = new_ledger(dir.path());
            let mut now = T0 + 2;
            let mut salt = 0;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    salt += 1;
                    let entries = transfers(&l, block, salt);
                    now += 1;
                    let t = Instant::now();
                    if batch {
                        for r in l.submit_batch(entries) {
                            r.unwrap();
                        }
                    } else {
                        for e in entries {
                            l.submit(e).unwrap();
                        }
                    }
                    black_box(l.seal_block(now).unwrap());
                    total += t.elapsed();
                }
                total
            });
        });
    }
    // A gateway-like mix: 95% receipts, 5% signed account entries.
    let block = 10_000u64;
    g.throughput(Throughput::Elements(block));
    g.bench_function("mix_95_receipts_5_signed/10000", |b| {
        let dir = tempfile::tempdir().unwrap();
        let mut l = new_ledger(dir.path());
        let fx = setup_ledger(&mut l, 64);
        let mut unit = 0u64;
        let mut now = T0 + 2;
        let mut salt = 0;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                salt += 1;
                let mut entries = transfers(&l, block / 20, salt);
                entries.extend((0..block - block / 20).map(|k| {
                    unit += 1;
                    receipt(job(1), unit, fx.nodes[(k % 64) as usize])
                }));
                now += 1;
                let t = Instant::now();
                for r in l.submit_batch(entries) {
                    r.unwrap();
                }
                black_box(l.seal_block(now).unwrap());
                total += t.elapsed();
            }
            total
        });
    });
    g.finish();
}

fn verify_chain(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let dir = tempfile::tempdir().unwrap();
    let mut l = new_ledger(dir.path());
    let fx = setup_ledger(&mut l, 64);
    let mut unit = 0u64;
    // 20 blocks of 10,000 receipts + 500 signed transfers; an epoch close every 5 blocks.
    for b in 0..20u64 {
        let mut entries = transfers(&l, 500, b);
        entries.extend((0..10_000u64).map(|k| {
            unit += 1;
            receipt(job(1), unit, fx.nodes[(k % 64) as usize])
        }));
        for r in l.submit_batch(entries) {
            r.unwrap();
        }
        l.seal_block(T0 + 2 + b * EPOCH_MS / 5).unwrap();
    }
    drop(l);
    let report = verify(dir.path()).unwrap();
    g.throughput(Throughput::Elements(report.entries));
    g.bench_function(
        format!(
            "full_chain/{}_entries_{}_signed",
            report.entries, report.signed_entries
        ),
        |b| b.iter(|| black_box(verify(dir.path()).unwrap())),
    );
    g.finish();
}

fn address(i: u64) -> EvmAddress {
    let h = Hash32::sha256(&i.to_le_bytes());
    let mut a = [0u8; 20];
    a.copy_from_slice(&h.0[..20]);
    EvmAddress(a)
}

/// A producer whose state has `n` payout addresses with cumulative
/// withdrawals and `nodes` nodes with work in the open epoch.
fn claims_state(n: u64, nodes: u64) -> Producer {
    let (mut p, _) = Producer::genesis(&genesis(), validator()).unwrap();
    let chain = p.state().chain_id();
    let f = funder();
    // Withdrawals are signed (in parallel here); their signatures are valid,
    // and submit_checked skips re-verifying them to keep the setup short.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let per = n.div_ceil(threads);
    let entries: Vec<Entry> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| {
                            let m = Withdraw {
                                chain,
                                to: address(i),
                                amount: 1 + u128::from(i),
                            };
                            Entry::sign(f, i, 0, &m).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut now = T0 + 1;
    for chunk in entries.chunks(50_000) {
        for e in chunk {
            p.submit_checked(e.clone(), true).unwrap();
        }
        now += 1;
        p.seal(now).unwrap();
    }
    let regs: Vec<(Did, Entry)> = std::thread::scope(|s| {
        let per = nodes.div_ceil(threads);
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(nodes))
                        .map(|i| {
                            let k = kp(10_000_000 + i);
                            let m = RegisterNode {
                                chain,
                                operator: k.did(),
                                payout: address(i),
                            };
                            (k.did(), Entry::sign(&k, 0, 0, &m).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let m = JobEscrow {
        chain,
        job: job(1),
        amount: 100_000_000_000 * TOKEN,
        price_per_unit: 1,
    };
    p.submit_checked(Entry::sign(&f, 0, 0, &m).unwrap(), true)
        .unwrap();
    for (_, e) in &regs {
        if p.pending_len() >= 40_000 {
            now += 1;
            p.seal(now).unwrap();
        }
        p.submit_checked(e.clone(), true).unwrap();
    }
    for (k, (d, _)) in regs.iter().enumerate() {
        if p.pending_len() >= 40_000 {
            now += 1;
            p.seal(now).unwrap();
        }
        p.submit(receipt(job(1), k as u64, *d)).unwrap();
    }
    p.seal(now + 1).unwrap();
    p
}

/// CPU time (user + system, all threads, including finished ones) of this
/// process, from /proc/self/stat (10 ms resolution). Used next to wall time
/// because the benchmark machine is shared: CPU time is far less sensitive to
/// other processes competing for the cores than wall time is.
fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Runs `f` on a fresh clone of `base` per iteration (clone not measured),
/// returning the summed wall or CPU time.
fn measure<S: Clone, T>(base: &S, iters: u64, cpu: bool, f: impl Fn(S) -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = base.clone();
        let (w, c) = (Instant::now(), process_cpu_time());
        let out = f(input);
        total += if cpu {
            process_cpu_time() - c
        } else {
            w.elapsed()
        };
        drop(black_box(out));
    }
    total
}

fn proofs_of_all(tree: &StandardMerkleTree) -> u8 {
    let mut acc = 0u8;
    tree.for_each_proof(|_, p| acc ^= p.first().map_or(0, |h| h[0]));
    acc
}

/// `n` payout addresses (address order) with distinct amounts.
fn claim_values(n: u64) -> Vec<(EvmAddress, Amount)> {
    let mut v: Vec<_> = (0..n).map(|i| (address(i), 1 + u128::from(i))).collect();
    v.sort();
    v
}

/// After epoch 0 closed with 1,000,000 payout addresses: 10,000 more
/// withdrawals (half to existing addresses, half to new ones) and more work.
fn warm_claims_state(mut p: Producer, n: u64) -> Producer {
    p.seal(T0 + EPOCH_MS).unwrap().unwrap();
    let f = funder();
    let chain = p.state().chain_id();
    let nonce0 = p.state().next_nonce(&f.did());
    for k in 0..10_000u64 {
        let to = if k % 2 == 0 {
            address(k * 97 % n)
        } else {
            address(n + k)
        };
        let m = Withdraw {
            chain,
            to,
            amount: 5,
        };
        p.submit_checked(Entry::sign(&f, nonce0 + k, 0, &m).unwrap(), true)
            .unwrap();
    }
    for i in 0..1_000u64 {
        let d = kp(10_000_000 + i).did();
        p.submit(receipt(job(1), n + i, d)).unwrap();
    }
    p.seal(T0 + EPOCH_MS + 1).unwrap();
    p
}

/// Seals the block that closes the open epoch, then produces every claim proof.
fn close_and_prove(mut p: Producer, at: u64) -> (Block, u8, Producer) {
    let block = p.seal(at).unwrap().unwrap();
    assert!(matches!(block.entries.last(), Some(Entry::EpochClose(_))));
    let tree = p.claims_tree().unwrap();
    let acc = proofs_of_all(&tree);
    (block, acc, p)
}

fn epoch(c: &mut Criterion) {
    let mut g = c.benchmark_group("epoch");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    const N: u64 = 1_000_000;
    g.throughput(Throughput::Elements(N));
    for cpu in [false, true] {
        let clock = if cpu { "cpu" } else { "wall" };
        g.bench_function(format!("claims_tree_and_all_proofs/1000000/{clock}"), |b| {
            let values = claim_values(N);
            b.iter_custom(|iters| {
                measure(&values, iters, cpu, |v| {
                    let tree = StandardMerkleTree::of(v).unwrap();
                    let acc = proofs_of_all(&tree);
                    (tree, acc)
                })
            });
        });
    }
    let cold = std::sync::OnceLock::new();
    for cpu in [false, true] {
        let clock = if cpu { "cpu" } else { "wall" };
        g.bench_function(
            format!("close_1000000_payout_addresses_all_new_with_proofs/{clock}"),
            |b| {
                let p = cold.get_or_init(|| claims_state(N, 1_000));
                b.iter_custom(|iters| {
                    measure(p, iters, cpu, |p| close_and_prove(p, T0 + EPOCH_MS))
                });
            },
        );
    }
    let warm = std::sync::OnceLock::new();
    for cpu in [false, true] {
        let clock = if cpu { "cpu" } else { "wall" };
        g.bench_function(
            format!("close_1000000_payout_addresses_10000_changed_with_proofs/{clock}"),
            |b| {
                let p = warm.get_or_init(|| {
                    warm_claims_state(cold.get_or_init(|| claims_state(N, 1_000)).clone(), N)
                });
                b.iter_custom(|iters| {
                    measure(p, iters, cpu, |p| close_and_prove(p, T0 + 2 * EPOCH_MS))
                });
            },
        );
    }
    // Reference for ratios: the raw cost of the hash function on this machine.
    g.throughput(Throughput::Elements(300_000));
    g.bench_function("keccak256_64_bytes_sequential/300000", |b| {
        b.iter(|| {
            let mut x = [0u8; 64];
            for i in 0..300_000u32 {
                x[..4].copy_from_slice(&i.to_le_bytes());
                let h = lode_proto::evm::keccak256(&x);
                x[32..].copy_from_slice(&h);
            }
            black_box(x)
        })
    });
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("close_100000_rewarded_nodes/wall", |b| {
        let p = claims_state(1_000, 100_000);
        b.iter_custom(|iters| measure(&p, iters, false, |mut p| p.seal(T0 + EPOCH_MS).unwrap()));
    });
    if std::env::var_os("LODE_BENCH_BIG").is_some() {
        g.throughput(Throughput::Elements(N));
        g.bench_function("close_1000000_rewarded_nodes/wall", |b| {
            let p = claims_state(1_000, N);
            b.iter_custom(|iters| {
                measure(&p, iters, false, |mut p| p.seal(T0 + EPOCH_MS).unwrap())
            });
        });
    }
    g.finish();
}

criterion_group!(benches, append, verify_chain, epoch);
criterion_main!(benches);
