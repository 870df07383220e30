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
//!   current-epoch weight, and its reward multiplier drops to [`FLAGGED_BPS`];
//! * `SlowerThanClaimed`: `Penalty{ImpossibleSpeed}` (no forfeit) and the
//!   multiplier drops to [`FLAGGED_BPS`];
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
            "{slow_results} of {results} results slower than a quarter of the claimed {claimed_speed} fuel/s (last observed {last_observed_speed} fuel/s)"
        ),
        Flag::HighDissent { invalid, verified } => {
            format!("{invalid} of {verified} verified results rejected by the quorum")
        }
        Flag::RepeatedExpiry { expired, assigned } => {
            format!("{expired} of {assigned} assigned units expired or lost")
        }
    };
    FlagEvidence {
        kind: format!("{:?}", flag.kind()),
        detail,
    }
}

fn observed(fuel: u64, ms: u64) -> u128 {
    u128::from(fuel) * 1000 / u128::from(ms.max(1))
}

/// Ledger entries for a flag: a penalty with the evidence and, for dissent and
/// speed lies, the reduced multiplier (when it is not already at or below it).
pub fn flag_entries(
    node: Did,
    flag: &Flag,
    job: Option<JobId>,
    fuel_weight: u64,
    current_bps: u32,
) -> Vec<Entry> {
    let ev = flag_evidence(flag, job);
    let (reason, forfeit, adjust, unit) = match flag {
        Flag::TooFast {
            unit, fuel_used, ..
        } => (
            PenaltyReason::ImpossibleSpeed,
            u128::from(*fuel_used) * u128::from(fuel_weight),
            false,
            Some(u64::from(unit.index)),
        ),
        Flag::SlowerThanClaimed { .. } => (PenaltyReason::ImpossibleSpeed, 0, true, None),
        Flag::HighDissent { .. } => (PenaltyReason::QuorumDisagreement, u128::MAX, true, None),
        Flag::RepeatedExpiry { .. } => (PenaltyReason::ExpiredWork, 0, false, None),
    };
    let mut out = vec![Entry::Penalty(Penalty {
        node,
        reason,
        job: job.filter(|_| unit.is_some()),
        unit,
        forfeit_weight: forfeit,
        detail: format!("flag {}: {}", ev.kind, ev.detail),
    })];
    if adjust && current_bps > FLAGGED_BPS {
        out.push(Entry::AdjustNode(AdjustNode {
            node,
            reward_bps: FLAGGED_BPS,
            reason: format!("flag {}: {}", ev.kind, ev.detail),
        }));
    }
    out
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
    fn flags_map_to_reasons_forfeits_and_multipliers() {
        let too_fast = Flag::TooFast {
            unit: UnitRef::new(lode_sched::JobId(1), 4),
            elapsed_ms: 10,
            fuel_used: 1_000_000,
            claimed_speed: 1_000,
        };
        let e = flag_entries(did(), &too_fast, Some(Hash32::sha256(b"j")), 2, 10_000);
        assert_eq!(e.len(), 1);
        let Entry::Penalty(p) = &e[0] else { panic!() };
        assert_eq!(p.reason, PenaltyReason::ImpossibleSpeed);
        assert_eq!((p.unit, p.forfeit_weight), (Some(4), 2_000_000));
        assert!(p.detail.contains("100000000 fuel/s"), "{}", p.detail);

        let dissent = Flag::HighDissent {
            invalid: 5,
            verified: 10,
        };
        let e = flag_entries(did(), &dissent, None, 1, 10_000);
        assert_eq!(e.len(), 2);
        assert!(
            matches!(&e[0], Entry::Penalty(p) if p.forfeit_weight == u128::MAX && p.detail.contains("5 of 10"))
        );
        assert!(matches!(&e[1], Entry::AdjustNode(a) if a.reward_bps == FLAGGED_BPS));
        // Already down-weighted: no second AdjustNode.
        assert_eq!(flag_entries(did(), &dissent, None, 1, FLAGGED_BPS).len(), 1);

        let expiry = Flag::RepeatedExpiry {
            expired: 6,
            assigned: 8,
        };
        let e = flag_entries(did(), &expiry, None, 1, 10_000);
        assert!(
            matches!(&e[..], [Entry::Penalty(p)] if p.reason == PenaltyReason::ExpiredWork && p.forfeit_weight == 0)
        );
    }
}
