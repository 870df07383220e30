//! Adversarial benchmark (issue 8): per scenario, a fresh gateway and honest
//! plus adversarial `lode node` processes on loopback, one sha256 job, then the
//! ledger read back. Every node connects from its own 127.0.0.x address and the
//! gateway runs with `--group-loopback`, so it groups nodes by source IP exactly
//! as it would on the Internet; a Sybil swarm shares one address.
//!
//! Per scenario: wrong results accepted (vs the bound of ARCHITECTURE.md where
//! one applies), the adversaries' share of fees and of epoch rewards vs their
//! share of the real verified work (credited replicas with the right output),
//! fees paid for wrong results (what the honest quorum lost), and the flags
//! raised against the adversaries.
//!
//! Run with `bench/adversaries.sh` (release build first), or
//! `cargo run --release --example advbench -- [--honest 8] [--units 1000] [--epoch-ms 2000]
//! [--swarm 10] [--only TEXT]` (`--only Sybil` runs the scenarios whose name contains it).

mod common;

use common::{Kill, arg, lode_bin, root, start_gateway, start_node, wait_nodes};
use lode_client::Client;
use lode_ledger::{LedgerView, ONE_TOKEN};
use lode_proto::jobspec::JobSpec;
use lode_proto::wire::UnitInput;
use lode_proto::{Did, Hash32, KeyFile};
use lode_sched::analysis;
use std::collections::HashSet;
use std::time::Duration;

/// Price of a unit of fuel in the bench jobs (base units).
const PRICE: u128 = 1_000;

#[derive(Clone)]
struct Adversary {
    /// Extra `lode node` arguments.
    args: Vec<String>,
    count: usize,
    /// All of them connect from one address (a Sybil swarm).
    one_ip: bool,
}

struct Scenario {
    name: &'static str,
    adversaries: Adversary,
    quorum: u8,
    max_replicas: u8,
    adaptive: bool,
    /// The adversaries return the same wrong output (colluding): compare with
    /// the collusion race of ARCHITECTURE.md. `Some(true)`: they may agree
    /// (lazy nodes replaying the same old output), so the race is an upper bound.
    colluding: Option<bool>,
    /// Intermittent cheaters' rate of wrong results.
    cheat_rate: Option<f64>,
    /// The adversaries start one after the other, after the honest nodes.
    start_together: bool,
    /// Staking on: every node is backed by this many LODE of stake, delegated
    /// by the requester; proven faults are slashed and trust is stake-backed.
    stake_lode: Option<u128>,
}

fn behaviour(b: &str) -> Vec<String> {
    vec!["--behaviour".into(), b.into()]
}

impl Adversary {
    /// `count` nodes with these `lode node` arguments, each from its own address
    /// (or all from one: `one_ip`).
    fn new(args: Vec<String>, count: usize, one_ip: bool) -> Self {
        Self {
            args,
            count,
            one_ip,
        }
    }
}

impl Scenario {
    /// Quorum 2 of at most 4 replicas, full quorum, no derived bound but 0 for
    /// non-colluding wrong outputs; adversaries spread among the honest nodes.
    fn new(name: &'static str, adversaries: Adversary) -> Self {
        Self {
            name,
            adversaries,
            quorum: 2,
            max_replicas: 4,
            adaptive: false,
            colluding: None,
            cheat_rate: None,
            start_together: false,
            stake_lode: None,
        }
    }

    /// `count` colluders (own addresses) at quorum `q` of at most `max` replicas.
    fn colluders(name: &'static str, count: usize, q: u8, max: u8) -> Self {
        Self {
            quorum: q,
            max_replicas: max,
            colluding: Some(false),
            ..Self::new(
                name,
                Adversary::new(behaviour("colluding:1000"), count, false),
            )
        }
    }

    fn adaptive(self) -> Self {
        Self {
            adaptive: true,
            ..self
        }
    }
}

fn spec(s: &Scenario) -> JobSpec {
    JobSpec::from_toml(&format!(
        "name = 'adv {}'\nmodule = 'sha256.wasm'\n[inputs]\nstdin = ['x']\n[limits]\nfuel = 50000000\nmemory_mb = 16\ntimeout_ms = 10000\n\
         [verification]\nquorum = {}\nmax_replicas = {}\nadaptive_trust = {}\n[price]\nmax_per_fuel = {PRICE}\n",
        s.name, s.quorum, s.max_replicas, s.adaptive
    ))
    .expect("spec")
}

fn inputs(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| (0..16 + next() % 200).map(|_| next() as u8).collect())
        .collect()
}

#[derive(Default)]
struct Outcome {
    units: usize,
    wrong_accepted: usize,
    failed: u32,
    bound: Option<f64>,
    /// The bound is an upper bound (worst-case strategy), not an expectation.
    upper: bool,
    adv_fees: u128,
    all_fees: u128,
    adv_rewards: u128,
    all_rewards: u128,
    adv_real: u128,
    all_real: u128,
    wrong_fees: u128,
    flags: Vec<String>,
    /// Adaptive trust: share of honest first replicas that were replicated.
    r: Option<f64>,
    /// Colluders' share of first replicas (measured).
    fp: Option<f64>,
    /// Sybil: the swarm's epoch rewards vs the mean honest node's.
    swarm_vs_honest: Option<(u128, u128)>,
    /// Replicas handed out, all nodes.
    assigned: u64,
    /// Intermittent cheaters: what cheating paid and cost.
    stake: Option<StakeOutcome>,
}

fn share(a: u128, b: u128) -> String {
    if b == 0 {
        "—".into()
    } else {
        format!("{:.1}%", a as f64 * 100.0 / b as f64)
    }
}

fn run(s: &Scenario, honest: usize, units: usize, epoch_ms: u64) -> Outcome {
    let bin = lode_bin();
    let dir = tempfile::tempdir().expect("tmp");
    let requester = KeyFile::generate(None).expect("key");
    let fund = format!("{}=1000000", requester.did());
    let epoch = epoch_ms.to_string();
    let gw_args = [
        "--group-loopback",
        "--poll-timeout-ms",
        "1000",
        "--block-interval-ms",
        "100",
        "--epoch-ms",
        &epoch,
        "--fund",
        &fund,
    ]
    .map(String::from);
    let mut gw_args = gw_args.to_vec();
    if s.stake_lode.is_some() {
        gw_args.extend(["--staking-share-bps".to_string(), "1000".to_string()]);
    }
    let (gw, url) = start_gateway(&bin, &dir.path().join("gw"), &gw_args);
    let mut procs: Vec<Kill> = vec![];
    let mut honest_dids = vec![];
    let mut adv_dids = HashSet::new();
    let node_args = |ip: String, extra: &[String]| -> Vec<String> {
        let mut a: Vec<String> = ["--slots", "1", "--max-prefetch", "0", "--no-nice"]
            .map(String::from)
            .to_vec();
        a.extend(["--source-ip".into(), ip]);
        a.extend_from_slice(extra);
        a
    };
    let a = &s.adversaries;
    // Start order: adversaries spread evenly among the honest nodes, or all
    // after them (`start_together`). With one slot each, nodes keep asking for
    // work in roughly the order they started, and consecutive askers get a
    // unit's consecutive replicas.
    let total = honest + a.count;
    let order: Vec<bool> = (0..total)
        .map(|k| {
            if s.start_together {
                k >= honest
            } else {
                (k + 1) * a.count / total > k * a.count / total
            }
        })
        .collect();
    let (mut i, mut j) = (0, 0);
    for adversary in order {
        if adversary {
            let ip = if a.one_ip {
                "127.0.0.200".to_string()
            } else {
                format!("127.0.0.{}", 100 + j)
            };
            let (p, d) = start_node(&bin, dir.path(), &url, honest + j, &node_args(ip, &a.args));
            procs.push(p);
            adv_dids.insert(d);
            j += 1;
        } else {
            let ip = format!("127.0.0.{}", 10 + i);
            let (p, d) = start_node(&bin, dir.path(), &url, i, &node_args(ip, &[]));
            procs.push(p);
            honest_dids.push(d);
            i += 1;
        }
    }
    let client = Client::new(&url).expect("client");
    wait_nodes(&client, honest + a.count);
    if let Some(lode) = s.stake_lode {
        // The requester backs every node (honest and adversarial alike).
        let key_path = dir.path().join("requester.key");
        requester.save_new(&key_path).expect("save key");
        let amount = format!("{lode} LODE");
        for d in honest_dids.iter().chain(adv_dids.iter()) {
            let out = std::process::Command::new(&bin)
                .args([
                    "stake",
                    "delegate",
                    "--to",
                    &d.to_string(),
                    &amount,
                    "--key",
                ])
                .arg(&key_path)
                .args(["--gateway", &url, "--json"])
                .output()
                .expect("lode stake delegate");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The covers are computed after the next sealed block.
        std::thread::sleep(Duration::from_millis(500));
    }

    let key = &requester.keypair;
    let wasm = std::fs::read(root().join("examples/jobs/wasm/sha256.wasm")).expect("sha256.wasm");
    let module = client.upload_module(key, &wasm).expect("upload");
    let chain = client.chain_id().expect("chain");
    let ins = inputs(units, 0xad7);
    let units_in = ins
        .iter()
        .map(|i| UnitInput {
            stdin: i.clone(),
            args: vec![],
        })
        .collect();
    let sub = Client::build_submission(key, chain, &spec(s), module, units_in).expect("build");
    let job = client.submit_job(key, &sub).expect("submit").job;
    let v = client
        .wait(&job, Duration::from_millis(100), Duration::from_secs(900))
        .expect("wait");
    let results = client.results(key, &job).expect("results");
    let nodes: serde_json::Value = client.get_json("/v1/nodes").expect("nodes");

    // Who held units' first replicas (the `f_p` of the collusion race).
    let (mut adv_first, mut all_first) = (0u64, 0u64);
    let mut o = Outcome {
        units,
        failed: v.failed,
        ..Default::default()
    };
    for n in nodes["nodes"].as_array().into_iter().flatten() {
        let did: Did = n["node"].as_str().unwrap_or("").parse().expect("did");
        let first = n["first_replicas"].as_u64().unwrap_or(0);
        all_first += first;
        if adv_dids.contains(&did) {
            adv_first += first;
            for f in n["flags"].as_array().into_iter().flatten() {
                o.flags.push(f.as_str().unwrap_or("").to_string());
            }
        }
    }
    for n in nodes["nodes"].as_array().into_iter().flatten() {
        o.assigned += n["assigned"].as_u64().unwrap_or(0);
    }
    let (mut adv_wrong_fuel, mut adv_fuel) = (0u128, 0u128);
    for (r, input) in results.iter().zip(&ins) {
        if r.status != "verified" {
            continue;
        }
        let expected = format!("{}\n", Hash32::sha256(input).to_hex()).into_bytes();
        let right = r.stdout_bytes().expect("stdout") == expected;
        let fuel = u128::from(r.fuel_used.unwrap_or(0));
        if !right {
            o.wrong_accepted += 1;
            o.wrong_fees += fuel * PRICE * r.credited.len() as u128;
        }
        for c in &r.credited {
            let d: Did = c.parse().expect("did");
            if adv_dids.contains(&d) {
                adv_fuel += fuel;
                if !right {
                    adv_wrong_fuel += fuel;
                }
            }
            if right {
                o.all_real += fuel;
                if adv_dids.contains(&d) {
                    o.adv_real += fuel;
                }
            }
        }
    }
    if let Some(upper) = s.colluding {
        // Exact finite-network race (ARCHITECTURE.md), with the colluders'
        // measured share of first replicas.
        let n = (honest + a.count) as u64;
        let groups = a.one_ip.then_some(1);
        let draw = analysis::colluder_draw_finite(n, a.count as u64, groups);
        let fp = adv_first as f64 / all_first.max(1) as f64;
        o.fp = Some(fp);
        // Under adaptive trust an honest first replica is replicated only with
        // probability r; the others were accepted on trust alone (one credited node).
        let r = s.adaptive.then(|| {
            let singles = results
                .iter()
                .filter(|r| r.status == "verified" && r.credited.len() == 1)
                .count() as f64;
            (1.0 - singles / (units as f64 * (1.0 - fp))).clamp(0.0, 1.0)
        });
        o.r = r;
        let (wrong, _) = analysis::collusion_rates(s.quorum, s.max_replicas, fp, &draw, r);
        o.bound = Some(wrong);
        o.upper = upper;
    } else if !s.adaptive {
        // Random wrong outputs never agree: nothing wrong can reach a quorum.
        o.bound = Some(0.0);
    } else if let Some(e) = s.cheat_rate {
        // Intermittent cheater, worst case (honest until trusted, T = 10, v = 0):
        // at most FAR per result; the cheaters return about their node share of results.
        let f = a.count as f64 / (honest + a.count) as f64;
        o.bound = Some(f * analysis::intermittent_cheater_closed_form(10, e));
        o.upper = true;
    }

    // Let an epoch close after the work, then stop the gateway cleanly.
    std::thread::sleep(Duration::from_millis(epoch_ms + 1_500));
    drop(procs);
    gw.terminate();
    let view = LedgerView::open(&dir.path().join("gw/ledger")).expect("ledger");
    let st = view.state();
    let mut honest_rewards = 0u128;
    for (d, n) in st.nodes() {
        o.all_fees += n.fees_total;
        o.all_rewards += n.rewards_total;
        if adv_dids.contains(d) {
            o.adv_fees += n.fees_total;
            o.adv_rewards += n.rewards_total;
        } else {
            honest_rewards += n.rewards_total;
        }
    }
    if a.one_ip {
        o.swarm_vs_honest = Some((o.adv_rewards, honest_rewards / honest.max(1) as u128));
    }
    if s.cheat_rate.is_some() {
        // What cheating paid: the fees of wrong results credited to the
        // adversaries plus their rewards' share for that fuel; what it cost:
        // the stake slashed behind them (honest nodes': must be 0).
        let paid_wrong = adv_wrong_fuel * PRICE + o.adv_rewards * adv_wrong_fuel / adv_fuel.max(1);
        let slashed = |d: &Did| st.stake_target(d).map_or(0, |t| t.slashed_total);
        o.stake = Some(StakeOutcome {
            paid_wrong,
            slashed: adv_dids.iter().map(slashed).sum(),
            honest_slashed: honest_dids.iter().map(slashed).sum(),
        });
    }
    o
}

fn lode(base_units: u128) -> String {
    format!("{:.2}", base_units as f64 / ONE_TOKEN as f64)
}

#[derive(Default, Debug)]
struct StakeOutcome {
    paid_wrong: u128,
    slashed: u128,
    honest_slashed: u128,
}

fn main() {
    let honest = arg("--honest", 8);
    let units = arg("--units", 1_000);
    let epoch_ms = arg("--epoch-ms", 2_000) as u64;
    let swarm = arg("--swarm", 10);
    // `--only TEXT`: run only the scenarios whose name contains TEXT.
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_default();
    let two = |b: &str| Adversary::new(behaviour(b), 2, false);
    let scenarios = [
        Scenario::new("random-wrong (always)", two("wrong-output:1000")),
        Scenario::new(
            "intermittent wrong (10% of units), full quorum",
            two("wrong-output:100"),
        ),
        Scenario {
            cheat_rate: Some(0.1),
            ..Scenario::new(
                "intermittent wrong (10% of units), adaptive trust",
                two("wrong-output:100"),
            )
            .adaptive()
        },
        Scenario {
            cheat_rate: Some(0.1),
            stake_lode: Some(5_000),
            ..Scenario::new(
                "intermittent wrong (10% of units), adaptive trust, staked (5,000 LODE each)",
                two("wrong-output:100"),
            )
            .adaptive()
        },
        Scenario {
            cheat_rate: Some(0.1),
            stake_lode: Some(50_000),
            ..Scenario::new(
                "intermittent wrong (10% of units), adaptive trust, staked (50,000 LODE each)",
                two("wrong-output:100"),
            )
            .adaptive()
        },
        Scenario {
            colluding: Some(true),
            ..Scenario::new("lazy (replays its last real output)", two("lazy:1000"))
        },
        Scenario::colluders("colluding group, q = 2, M = 3", 2, 2, 3),
        Scenario::colluders("colluding group, q = 2, M = 3, adaptive trust", 2, 2, 3).adaptive(),
        Scenario::colluders("colluding group (3 nodes), q = 3, M = 5", 3, 3, 5),
        Scenario::colluders(
            "colluding group (3 nodes), q = 3, M = 5, adaptive trust",
            3,
            3,
            5,
        )
        .adaptive(),
        Scenario {
            start_together: true,
            ..Scenario::colluders(
                "colluding group (3 nodes) started together, q = 3, M = 5",
                3,
                3,
                5,
            )
        },
        Scenario {
            colluding: Some(false),
            ..Scenario::new(
                "colluding Sybil swarm (one IP)",
                Adversary::new(behaviour("colluding:1000"), swarm, true),
            )
        },
        Scenario::new(
            "honest Sybil swarm (one IP)",
            Adversary::new(vec![], swarm, true),
        ),
        Scenario::new(
            "speed liar (claims 10^12 fuel/s)",
            Adversary::new(
                vec!["--claim-speed".into(), "1000000000000".into()],
                2,
                false,
            ),
        ),
    ];
    println!(
        "machine: {} cores; {honest} honest nodes (1 slot, no prefetch, own 127.0.0.x each); {units} sha256 units per scenario; gateway --group-loopback, epoch {epoch_ms} ms",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!(
        "| scenario | adversaries | q / M / trust | wrong accepted | rate | bound | failed | adv. fee share | adv. reward share | adv. share of real work | fees for wrong results | flags on adversaries |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut staking = vec![];
    for s in scenarios.iter().filter(|s| s.name.contains(&only)) {
        let o = run(s, honest, units, epoch_ms);
        if let Some(st) = &o.stake {
            staking.push(format!(
                "| {} | {} | {} | {} | {:+.2} | {} | {:.3} |",
                s.name,
                s.stake_lode.map_or("none".into(), |u| format!("{u} LODE")),
                lode(st.paid_wrong),
                lode(st.slashed),
                (st.paid_wrong as f64 - st.slashed as f64) / ONE_TOKEN as f64,
                lode(st.honest_slashed),
                o.assigned as f64 / o.units as f64 - 1.0,
            ));
        }
        let mut flags = o.flags.clone();
        flags.sort();
        flags.dedup_by(|a, b| a == b);
        let counted: Vec<String> = flags
            .iter()
            .map(|f| format!("{f} ×{}", o.flags.iter().filter(|g| *g == f).count()))
            .collect();
        println!(
            "| {} | {} | {} / {} / {} | {} | {:.4} | {} | {} | {} | {} | {} | {} | {} |",
            s.name,
            s.adversaries.count,
            s.quorum,
            s.max_replicas,
            match (s.adaptive, o.r) {
                (true, Some(r)) => format!("adaptive, r = {r:.2}"),
                (true, None) => "adaptive".into(),
                (false, _) => "full".into(),
            },
            o.wrong_accepted,
            o.wrong_accepted as f64 / o.units as f64,
            o.bound.map_or("—".into(), |b| format!(
                "{}{b:.4}{}",
                if o.upper { "≤ " } else { "" },
                o.fp.map_or(String::new(), |fp| format!(" (f_p = {fp:.3})"))
            )),
            o.failed,
            share(o.adv_fees, o.all_fees),
            share(o.adv_rewards, o.all_rewards),
            share(o.adv_real, o.all_real),
            o.wrong_fees,
            if counted.is_empty() {
                "none".into()
            } else {
                counted.join(", ")
            }
        );
        if let Some((swarm, one)) = o.swarm_vs_honest {
            println!(
                "|   ↳ swarm's epoch rewards vs the mean honest node's | | | | | | | | {} vs {one} base units ({:.2}×) | | | |",
                swarm,
                swarm as f64 / one.max(1) as f64
            );
        }
    }
    if !staking.is_empty() {
        println!();
        println!(
            "Intermittent cheaters: paid for wrong results (fees + their epoch-reward share for that fuel) vs stake slashed, in LODE; overhead = replicas per unit − 1, all nodes."
        );
        println!();
        println!(
            "| scenario | stake per node | paid for wrong results | slashed | cheaters' profit | honest nodes slashed | overhead |"
        );
        println!("|---|---|---|---|---|---|---|");
        for row in staking {
            println!("{row}");
        }
    }
}
