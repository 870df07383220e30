//! Consequences of the scheduler's verdicts on the ledger (issue 8): which
//! `Penalty` / `AdjustNode` entries a rejected result or a behaviour flag
//! produces, and the evidence text they carry. Pure: the core submits them.
//!
//! Policy (documented in docs/design/lode-gateway.md):
//! * a result the quorum rejected is never credited (no receipt, so no fee and
//!   no reward weight for it) and costs the node a `Penalty{InvalidResult}`
//!   forfeiting the reward weight of the work it claimed (canonical fuel ×
//!   the fuel weight) from its current epoch;
//! * `TooFast`: `Penalty{ImpossibleSpeed}` forfeiting that unit's weight;
//! * `HighDissent`: `Penalty{QuorumDisagreement}` forfeiting the node's whole
//!   current-epoch weight, and its multiplier base drops to [`FLAGGED_BPS`];
//! * `SlowerThanClaimed`: `Penalty{ImpossibleSpeed}` (no forfeit) and the
//!   multiplier base drops to [`FLAGGED_BPS`];
//! * `ImpossibleClaim` (a speed per slot above the believable ceiling, at
//!   join): `Penalty{ImpossibleSpeed}` (no forfeit), the multiplier base drops to
//!   [`FLAGGED_BPS`], and the scheduler uses the ceiling instead of the claim;
//! * Sybil policy ([`SybilTracker`]): the multiplier is the base divided by the
//!   number of nodes sharing the node's IP group (or operator) this epoch;
//! * `RepeatedExpiry`: `Penalty{ExpiredWork}` (no forfeit: expired work was
//!   never credited; the scheduler already cut its reputation).

use lode_ledger::{AdjustNode, Entry, JobId, Penalty, PenaltyReason};
use lode_proto::Did;
use lode_sched::{Flag, ResultDigest};

/// Reward multiplier (basis points) of a node flagged for dissent or for lying
/// about its speed. Setting it is idempotent: a flag raised again after a
/// gateway restart does not compound.
pub const FLAGGED_BPS: u32 = 5_000;

/// One flag as the API shows it: its kind and the evidence in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlagEvidence {
    pub kind: String,
    pub detail: String,
}

/// Short form of a digest for evidence texts.
fn digest_text(d: &ResultDigest) -> String {
    format!(
        "output {} exit {} fuel {}",
        &d.output_hash.to_hex()[..16],
        d.exit_code,
        d.fuel_used
    )
}

/// The penalty for a result that disagreed with the accepted one.
pub fn invalid_result(
    node: Did,
    job: JobId,
    unit: u32,
    returned: &ResultDigest,
    accepted: &ResultDigest,
    agreeing: usize,
    fuel_weight: u64,
) -> Entry {
    Entry::Penalty(Penalty {
        node,
        reason: PenaltyReason::InvalidResult,
        job: Some(job),
        unit: Some(u64::from(unit)),
        forfeit_weight: u128::from(accepted.fuel_used) * u128::from(fuel_weight),
        detail: format!(
            "returned {}; {agreeing} node(s) of distinct operators and IP groups agreed on {}; not credited",
            digest_text(returned),
            digest_text(accepted)
        ),
    })
}

/// Evidence of a flag in words (for the API, the dashboard and the ledger).
pub fn flag_evidence(flag: &Flag, job: Option<JobId>) -> FlagEvidence {
    let detail = match flag {
        Flag::TooFast {
            unit,
            elapsed_ms,
            fuel_used,
            claimed_speed,
        } => format!(
            "{}unit {}: {fuel_used} fuel reported after {elapsed_ms} ms ({} fuel/s) while the node claims {claimed_speed} fuel/s",
            job.map(|j| format!("job {j} ")).unwrap_or_default(),
            unit.index,
            observed(*fuel_used, *elapsed_ms)
        ),
        Flag::SlowerThanClaimed {
            slow_results,
            results,
            claimed_speed,
            last_observed_speed,
        } => format!(
            "{slow_results} of {results} results far slower (beyond the slow tolerance) than the claimed {claimed_speed} fuel/s (last observed {last_observed_speed} fuel/s)"
        ),
        Flag::HighDissent { invalid, verified } => {
            format!("{invalid} of {verified} verified results rejected by the quorum")
        }
        Flag::RepeatedExpiry { expired, assigned } => {
            format!("{expired} of {assigned} assigned units expired or lost")
        }
        Flag::ImpossibleClaim {
            claimed_speed,
            ceiling,
        } => format!(
            "claims {claimed_speed} fuel/s per slot, above the believable ceiling of {ceiling} fuel/s; scheduled at the ceiling"
        ),
    };
    FlagEvidence {
        kind: format!("{:?}", flag.kind()),
        detail,
    }
}

fn observed(fuel: u64, ms: u64) -> u128 {
    u128::from(fuel) * 1000 / u128::from(ms.max(1))
}

/// The ledger record of a node losing trusted (single-replica) status: a
/// penalty without forfeit whose detail says why and what follows. `cv` is
/// the run of verified results it had.
pub fn trust_lost(node: Did, cause: &lode_sched::TrustCause, job: Option<JobId>, cv: u32) -> Entry {
    use lode_sched::TrustCause;
    let (reason, unit, why) = match cause {
        TrustCause::Invalid { unit } => (
            PenaltyReason::InvalidResult,
            Some(unit.index),
            "a result the quorum rejected",
        ),
        TrustCause::Inconclusive { unit } => (
            PenaltyReason::Other,
            Some(unit.index),
            "a unit that failed without consensus",
        ),
        TrustCause::Flagged => (PenaltyReason::Other, None, "a behaviour flag"),
        TrustCause::Lost(_) => (PenaltyReason::ExpiredWork, None, "lost work"),
        TrustCause::Valid => (PenaltyReason::Other, None, "a trust reset"),
    };
    Entry::Penalty(Penalty {
        node,
        reason,
        job: job.filter(|_| unit.is_some()),
        unit: unit.map(u64::from),
        forfeit_weight: 0,
        detail: format!(
            "lost trusted (single-replica) status after {cv} consecutive verified results, by {why}: its units are verified by a full quorum again until it has rebuilt the run"
        ),
    })
}

/// Whether a flag down-weights the node (its multiplier base drops to
/// [`FLAGGED_BPS`]): dissent and speed lies (observed or claimed).
pub fn flag_downweights(kind: &str) -> bool {
    matches!(
        kind,
        "HighDissent" | "SlowerThanClaimed" | "ImpossibleClaim"
    )
}

/// The penalty entry for a flag, with its evidence.
pub fn flag_penalty(node: Did, flag: &Flag, job: Option<JobId>, fuel_weight: u64) -> Entry {
    let ev = flag_evidence(flag, job);
    let (reason, forfeit, unit) = match flag {
        Flag::TooFast {
            unit, fuel_used, ..
        } => (
            PenaltyReason::ImpossibleSpeed,
            u128::from(*fuel_used) * u128::from(fuel_weight),
            Some(u64::from(unit.index)),
        ),
        Flag::SlowerThanClaimed { .. } | Flag::ImpossibleClaim { .. } => {
            (PenaltyReason::ImpossibleSpeed, 0, None)
        }
        Flag::HighDissent { .. } => (PenaltyReason::QuorumDisagreement, u128::MAX, None),
        Flag::RepeatedExpiry { .. } => (PenaltyReason::ExpiredWork, 0, None),
    };
    Entry::Penalty(Penalty {
        node,
        reason,
        job: job.filter(|_| unit.is_some()),
        unit,
        forfeit_weight: forfeit,
        detail: format!("flag {}: {}", ev.kind, ev.detail),
    })
}

/// Which nodes share one node's reward weight (issue 8, Sybil resistance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SybilPolicy {
    /// No grouping.
    Off,
    /// Nodes sharing an IP group (IPv4 /32, IPv6 /64 by default).
    Ip,
    /// Nodes sharing an IP group or an operator.
    #[default]
    IpOrOperator,
}

impl std::str::FromStr for SybilPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "ip" => Ok(Self::Ip),
            "ip-operator" => Ok(Self::IpOrOperator),
            o => Err(format!(
                "unknown Sybil policy {o:?}: off, ip or ip-operator"
            )),
        }
    }
}

/// The nodes that connected during the current epoch, with their IP group and
/// operator. A node's group size `k` is the number of these nodes sharing its
/// IP group (or, by policy, its operator), itself included; its reward
/// multiplier is `base / k` (floor), `base` = 10,000 bps, or [`FLAGGED_BPS`]
/// when flagged. So `k` nodes doing the work of `k` equal machines earn what
/// one of them would, and the rounding never gives a group more. Pure.
#[derive(Debug, Default)]
pub struct SybilTracker {
    pub policy: SybilPolicy,
    /// Geographic spread (permille, 0 = off): see [`SybilTracker::region_bps`].
    pub region_spread_permille: u32,
    epoch: u64,
    seen: std::collections::HashMap<Did, (lode_sched::IpGroup, lode_sched::OperatorId)>,
    /// Each seen node's declared region ("" when none).
    regions: std::collections::HashMap<Did, String>,
    /// Region factors (bps) fixed at the start of the epoch, by region.
    region_factor: std::collections::HashMap<String, u32>,
}

/// Default geographic spread: a region keeps full weight up to 1.5 × its fair
/// share of nodes.
pub const DEFAULT_REGION_SPREAD_PERMILLE: u32 = 1_500;

impl SybilTracker {
    pub fn new(policy: SybilPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Starts epoch `epoch` if it is a new one (forgetting who was seen);
    /// returns whether it did.
    pub fn start_epoch(&mut self, epoch: u64) -> bool {
        if epoch == self.epoch {
            return false;
        }
        self.epoch = epoch;
        self.seen.clear();
        self.regions.clear();
        self.region_factor.clear();
        true
    }

    /// Fixes the epoch's region factors from the nodes seen so far (call after
    /// recording the nodes online at the start of an epoch).
    pub fn fix_region_factors(&mut self) {
        let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
        for r in self.regions.values() {
            *counts.entry(r.as_str()).or_default() += 1;
        }
        let total: u64 = counts.values().sum();
        let n_regions = counts.len() as u64;
        self.region_factor = counts
            .iter()
            .map(|(r, n)| {
                (
                    r.to_string(),
                    region_factor_bps(*n, total, n_regions, self.region_spread_permille),
                )
            })
            .collect();
    }

    /// The region factor of `node` (bps): as fixed at the start of the epoch,
    /// or full weight for a region nobody was in then.
    pub fn region_bps(&self, node: &Did) -> u32 {
        self.regions
            .get(node)
            .and_then(|r| self.region_factor.get(r))
            .copied()
            .unwrap_or(lode_ledger::entry::FULL_BPS)
    }

    /// Records a node; returns the nodes whose group size may have changed.
    pub fn saw(
        &mut self,
        node: Did,
        ip: lode_sched::IpGroup,
        op: lode_sched::OperatorId,
        region: Option<&str>,
    ) -> Vec<Did> {
        self.seen.insert(node, (ip, op));
        self.regions
            .insert(node, region.unwrap_or_default().to_string());
        self.group(&node)
    }

    /// The nodes grouped with `node` (itself included; empty if not seen).
    pub fn group(&self, node: &Did) -> Vec<Did> {
        let Some(&(ip, op)) = self.seen.get(node) else {
            return vec![];
        };
        let mut g: Vec<Did> = self
            .seen
            .iter()
            .filter(|(d, (i, o))| {
                *d == node
                    || match self.policy {
                        SybilPolicy::Off => false,
                        SybilPolicy::Ip => *i == ip,
                        SybilPolicy::IpOrOperator => *i == ip || *o == op,
                    }
            })
            .map(|(d, _)| *d)
            .collect();
        g.sort();
        g
    }

    /// The multiplier of `node` for a base multiplier `base`:
    /// `floor(floor(base × region / 10,000) / k)`.
    pub fn target_bps(&self, node: &Did, base: u32) -> u32 {
        let k = self.group(node).len().max(1) as u32;
        let regional = u64::from(base) * u64::from(self.region_bps(node))
            / u64::from(lode_ledger::entry::FULL_BPS);
        regional as u32 / k
    }
}

/// Geographic spread of reward weight: the rule the scheduler also uses for
/// work, [`lode_sched::region_factor_bps`].
pub use lode_sched::region_factor_bps;

/// The `AdjustNode` bringing `node` from `current` to `target`, if they differ.
pub fn reweigh_entry(
    node: Did,
    current: u32,
    target: u32,
    group: usize,
    flagged: bool,
) -> Option<Entry> {
    (current != target).then(|| {
        let mut why = vec![];
        if flagged {
            why.push(format!("flagged for dissent or a false speed ({FLAGGED_BPS} bps base)"));
        }
        if group > 1 {
            why.push(format!(
                "shares its IP group or operator with {} other node(s) this epoch: one node's weight split {group} ways",
                group - 1
            ));
        }
        if why.is_empty() {
            why.push("full weight".into());
        }
        Entry::AdjustNode(AdjustNode {
            node,
            reward_bps: target,
            reason: why.join("; "),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lode_proto::{Hash32, Keypair};
    use lode_sched::UnitRef;

    fn did() -> Did {
        Keypair::from_secret_bytes(&[7; 32]).did()
    }

    #[test]
    fn invalid_result_forfeits_the_claimed_work_and_names_both_results() {
        let a = ResultDigest {
            output_hash: Hash32::sha256(b"right"),
            exit_code: 0,
            fuel_used: 1_000,
        };
        let w = ResultDigest {
            output_hash: Hash32::sha256(b"wrong"),
            ..a
        };
        let Entry::Penalty(p) = invalid_result(did(), Hash32::sha256(b"j"), 3, &w, &a, 2, 1) else {
            panic!("not a penalty")
        };
        assert_eq!(p.reason, PenaltyReason::InvalidResult);
        assert_eq!((p.unit, p.forfeit_weight), (Some(3), 1_000));
        assert!(p.detail.contains(&Hash32::sha256(b"wrong").to_hex()[..16]));
        assert!(p.detail.contains(&Hash32::sha256(b"right").to_hex()[..16]));
    }

    #[test]
    fn flags_map_to_reasons_and_forfeits() {
        let too_fast = Flag::TooFast {
            unit: UnitRef::new(lode_sched::JobId(1), 4),
            elapsed_ms: 10,
            fuel_used: 1_000_000,
            claimed_speed: 1_000,
        };
        let Entry::Penalty(p) = flag_penalty(did(), &too_fast, Some(Hash32::sha256(b"j")), 2)
        else {
            panic!()
        };
        assert_eq!(p.reason, PenaltyReason::ImpossibleSpeed);
        assert_eq!((p.unit, p.forfeit_weight), (Some(4), 2_000_000));
        assert!(p.detail.contains("100000000 fuel/s"), "{}", p.detail);
        let dissent = Flag::HighDissent {
            invalid: 5,
            verified: 10,
        };
        let e = flag_penalty(did(), &dissent, None, 1);
        assert!(
            matches!(&e, Entry::Penalty(p) if p.forfeit_weight == u128::MAX && p.detail.contains("5 of 10"))
        );
        assert!(flag_downweights(&flag_evidence(&dissent, None).kind));
        let expiry = Flag::RepeatedExpiry {
            expired: 6,
            assigned: 8,
        };
        let e = flag_penalty(did(), &expiry, None, 1);
        assert!(
            matches!(&e, Entry::Penalty(p) if p.reason == PenaltyReason::ExpiredWork && p.forfeit_weight == 0)
        );
        assert!(!flag_downweights(&flag_evidence(&expiry, None).kind));
        let claim = Flag::ImpossibleClaim {
            claimed_speed: 1_000_000_000_000,
            ceiling: 50_000_000_000,
        };
        let e = flag_penalty(did(), &claim, None, 1);
        assert!(
            matches!(&e, Entry::Penalty(p) if p.reason == PenaltyReason::ImpossibleSpeed
                && p.forfeit_weight == 0
                && p.detail.contains("claims 1000000000000 fuel/s")
                && p.detail.contains("50000000000")),
            "{e:?}"
        );
        assert!(flag_downweights(&flag_evidence(&claim, None).kind));
    }

    fn kp(i: u8) -> Did {
        Keypair::from_secret_bytes(&[i; 32]).did()
    }

    #[test]
    fn a_swarm_behind_one_ip_shares_one_nodes_weight() {
        use lode_sched::{IpGroup, OperatorId};
        let mut t = SybilTracker::new(SybilPolicy::IpOrOperator);
        t.start_epoch(1);
        let honest = kp(1);
        t.saw(honest, IpGroup(1), OperatorId([1; 32]), None);
        for i in 0..10 {
            let g = t.saw(kp(10 + i), IpGroup(9), OperatorId([10 + i; 32]), None);
            assert_eq!(g.len(), usize::from(i) + 1);
        }
        assert_eq!(t.target_bps(&honest, 10_000), 10_000);
        // 10 nodes with equal work w: 10 × w × 1,000 = one node's w × 10,000.
        assert_eq!(t.target_bps(&kp(10), 10_000), 1_000);
        assert_eq!(t.target_bps(&kp(10), FLAGGED_BPS), 500);
        // Rounding never gives a group more than one node: 3 × 3,333 < 10,000.
        let mut t3 = SybilTracker::new(SybilPolicy::Ip);
        for i in 0..3 {
            t3.saw(kp(i), IpGroup(5), OperatorId([i; 32]), None);
        }
        assert_eq!(t3.target_bps(&kp(0), 10_000), 3_333);
        // Operator sharing counts under ip-operator, not under ip.
        let mut a = SybilTracker::new(SybilPolicy::IpOrOperator);
        let mut b = SybilTracker::new(SybilPolicy::Ip);
        for t in [&mut a, &mut b] {
            t.saw(kp(1), IpGroup(1), OperatorId([7; 32]), None);
            t.saw(kp(2), IpGroup(2), OperatorId([7; 32]), None);
        }
        assert_eq!(a.target_bps(&kp(1), 10_000), 5_000);
        assert_eq!(b.target_bps(&kp(1), 10_000), 10_000);
        // Off: every node alone. A new epoch forgets the old groups.
        let mut off = SybilTracker::new(SybilPolicy::Off);
        off.saw(kp(1), IpGroup(1), OperatorId([7; 32]), None);
        off.saw(kp(2), IpGroup(1), OperatorId([7; 32]), None);
        assert_eq!(off.target_bps(&kp(1), 10_000), 10_000);
        assert!(t.start_epoch(2));
        assert!(t.group(&kp(10)).is_empty());
        assert_eq!(
            reweigh_entry(kp(10), 10_000, 10_000, 1, false),
            None,
            "no entry when nothing changes"
        );
        assert!(matches!(
            reweigh_entry(kp(10), 10_000, 1_000, 10, false),
            Some(Entry::AdjustNode(a)) if a.reward_bps == 1_000 && a.reason.contains("9 other")
        ));
    }

    /// Geographic spread, simulated: seeded networks of nodes in regions with
    /// equal work per node; one epoch's emission split by the ledger's own
    /// pro-rata math over `work × multiplier`.
    #[test]
    fn sim_rewards_prefer_under_served_regions() {
        use lode_ledger::rewards::split_pro_rata;
        use lode_sched::{IpGroup, OperatorId};
        const EMISSION: u128 = 410_958 * 10u128.pow(18);
        // (region of each node) → (reward per node by region, share of region 0)
        let run = |regions: &[&'static str]| {
            let mut t = SybilTracker::new(SybilPolicy::IpOrOperator);
            t.region_spread_permille = DEFAULT_REGION_SPREAD_PERMILLE;
            t.start_epoch(1);
            let dids: Vec<Did> = (0..regions.len())
                .map(|i| {
                    let mut seed = [0u8; 32];
                    seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                    Keypair::from_secret_bytes(&seed).did()
                })
                .collect();
            for (i, (d, r)) in dids.iter().zip(regions).enumerate() {
                t.saw(*d, IpGroup(i as u128), OperatorId([i as u8; 32]), Some(r));
            }
            t.fix_region_factors();
            // Equal work (1,000 fuel) per node; weight = work × multiplier.
            let weights: Vec<u128> = dids
                .iter()
                .map(|d| 1_000 * u128::from(t.target_bps(d, 10_000)))
                .collect();
            let (paid, dust) = split_pro_rata(EMISSION, &weights).expect("split");
            assert_eq!(paid.iter().sum::<u128>() + dust, EMISSION);
            let mut by_region: std::collections::BTreeMap<&'static str, (u128, u128)> =
                Default::default();
            for (r, p) in regions.iter().zip(&paid) {
                let e = by_region.entry(r).or_default();
                e.0 += p;
                e.1 += 1;
            }
            by_region
        };
        // Seeded random networks: 60–90 % of 200 nodes in "eu", the rest over 4 regions.
        let mut x = 0x5eed_u64;
        for _ in 0..20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let crowded = 120 + (x % 61) as usize;
            let others = ["us", "sa", "af", "ap"];
            let mut regions: Vec<&'static str> = vec!["eu"; crowded];
            for i in 0..200 - crowded {
                regions.push(others[i % 4]);
            }
            let r = run(&regions);
            let per_node = |k: &str| r[k].0 / r[k].1;
            let eu_share = r["eu"].0 as f64 / EMISSION as f64;
            let node_share = crowded as f64 / 200.0;
            // Under-served regions earn more per node (same work) than the crowded one.
            for o in others {
                assert!(per_node(o) > per_node("eu"), "{o}: {r:?}");
            }
            // The crowded region's reward share falls below its node share ...
            assert!(eu_share < node_share, "{eu_share} vs {node_share}");
            // ... to the weight of 1.5 fair shares: 1.5 × 40 nodes against the others.
            let eu_weight = 60.0;
            let expected = eu_weight / (eu_weight + (200 - crowded) as f64);
            assert!(
                (eu_share - expected).abs() < 0.01,
                "{eu_share} vs {expected}"
            );
        }
        // Evenly spread regions, or a single region: nobody is scaled.
        let even: Vec<&'static str> = (0..200).map(|i| ["eu", "us", "ap", "sa"][i % 4]).collect();
        let r = run(&even);
        assert!(r.values().all(|(p, n)| p / n == r["eu"].0 / r["eu"].1));
        assert_eq!(region_factor_bps(200, 200, 1, 1_500), 10_000);
        assert_eq!(region_factor_bps(50, 200, 4, 1_500), 10_000);
        assert_eq!(region_factor_bps(150, 200, 5, 1_500), 4_000);
        assert_eq!(region_factor_bps(150, 200, 5, 0), 10_000);
    }

    #[test]
    fn losing_trust_is_recorded_with_its_cause() {
        let unit = UnitRef::new(lode_sched::JobId(1), 9);
        let cause = lode_sched::TrustCause::Invalid { unit };
        let Entry::Penalty(p) = trust_lost(did(), &cause, Some(Hash32::sha256(b"j")), 14) else {
            panic!()
        };
        assert_eq!(
            (p.reason, p.unit, p.forfeit_weight),
            (PenaltyReason::InvalidResult, Some(9), 0)
        );
        assert!(p.detail.contains("after 14 consecutive") && p.detail.contains("rejected"));
    }
}
