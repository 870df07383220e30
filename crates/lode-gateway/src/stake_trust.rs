//! Stake-backed trust and proven-fault slashing (issue 15; design in
//! `docs/design/staking.md`, "Stake-backed trust").
//!
//! * **Cover**: on a chain with `[staking]`, a node's single result is accepted
//!   under adaptive trust only while the value of its unverified results stays
//!   within `stake behind it × fault_slash_bps / 10,000 / multiple`
//!   ([`lode_sched::StakeTrust`]); the gateway recomputes every node's cover
//!   from the ledger after each sealed block.
//! * **Claims**: on such a chain every result carries the node's signature of
//!   a standalone [`ResultClaim`]; a report without a valid one is refused.
//! * **Referee**: when a quorum rejects the result of a node with stake, the
//!   gateway re-runs the unit in its own sandbox, exactly as a node does
//!   (`lode_node::outcome`). Only if the re-run equals the accepted result is
//!   a `Slash {ProvenFault}` with the claim submitted; a re-run that agrees
//!   with nobody, or with the dissenter, slashes nobody (colluders who won a
//!   quorum cannot get an honest node slashed).

use lode_ledger::entry::{ResultClaim, Slash, SlashEvidence, SlashReason};
use lode_ledger::{ContributionKind, Entry, State};
use lode_proto::wire::{UnitInput, UnitLimits};
use lode_proto::{Did, Envelope, Hash32};
use lode_sched::{ResultDigest, StakeTrust};
use std::collections::HashMap;

/// Referee runs waiting at most; more are dropped with a warning (a slash is
/// a deterrent, not a bookkeeping duty: the penalty is on the ledger anyway).
pub const MAX_REFEREE_QUEUE: usize = 64;

/// Epochs looked back for the latest one with verified work.
const REWARD_LOOKBACK_EPOCHS: u64 = 64;

/// The stake-trust rule in force, or `None` on chains without staking or with
/// `multiple = 0`. A unit's value counts the epoch reward per fuel of the
/// latest closed epoch with verified work (within the last 64) on top of the
/// job's price; before there is one, the reward is unknown and counted as
/// unbounded (no unit is covered: a new chain's first work is replicated).
pub fn rule(state: &State, multiple: u32) -> Option<StakeTrust> {
    state.genesis().staking.as_ref()?;
    if multiple == 0 {
        return None;
    }
    let epoch = state.epoch();
    let last = (1..=REWARD_LOOKBACK_EPOCHS.min(epoch))
        .filter_map(|back| state.epoch_record(epoch - back))
        .find(|r| r.total_weight > 0);
    let reward_per_gfuel = match last {
        // Effective weight = fuel × kind weight × reward multiplier (bps); a
        // node at the full multiplier earns this per 10⁹ fuel.
        Some(r) => {
            let w = u128::from(state.weight_of(ContributionKind::Fuel).unwrap_or(0));
            r.emission
                .saturating_mul(1_000_000_000)
                .checked_div(r.total_weight)
                .unwrap_or(0)
                .saturating_mul(w)
                .saturating_mul(u128::from(lode_ledger::entry::FULL_BPS))
        }
        None => u128::MAX,
    };
    Some(StakeTrust { reward_per_gfuel })
}

/// Every node's cover: the value of unverified results its stake answers
/// for, `power × fault_slash_bps / 10,000 / multiple` (jailed: 0).
pub fn covers(state: &State, multiple: u32) -> HashMap<Did, u128> {
    let Some(p) = state.genesis().staking.as_ref() else {
        return HashMap::new();
    };
    let m = u128::from(multiple.max(1));
    state
        .stake_targets()
        .filter(|(did, t)| state.node(did).is_some() && !t.jailed)
        .map(|(did, t)| {
            let slashable = t.power.saturating_mul(u128::from(p.fault_slash_bps)) / 10_000;
            (*did, slashable / m)
        })
        .collect()
}

/// Whether `node` has stake a proven fault could take.
pub fn slashable(state: &State, node: &Did) -> bool {
    state.genesis().staking.is_some() && state.stake_target(node).is_some_and(|t| t.power > 0)
}

/// The claim a result makes.
pub fn claim_of(chain: Hash32, job: Hash32, unit: u32, d: &ResultDigest) -> ResultClaim {
    ResultClaim::of_result(chain, job, unit, &d.output_hash, d.exit_code, d.fuel_used)
}

/// A rejected result of a staked node, to be re-run before it is slashed.
#[derive(Debug, Clone)]
pub struct RefereeTask {
    pub node: Did,
    /// The node's signed claim (already verified).
    pub claim: Envelope,
    pub accepted: ResultDigest,
    pub job: Hash32,
    pub unit: u32,
    pub module: Hash32,
    pub input: UnitInput,
    pub limits: UnitLimits,
}

/// The slash a referee run justifies, or why there is none.
pub fn slash_for(
    task: &RefereeTask,
    referee: Option<&ResultDigest>,
    fault_slash_bps: u32,
) -> Result<Entry, String> {
    let referee = referee.ok_or("the referee run gave no deterministic result")?;
    if referee != &task.accepted {
        return Err(format!(
            "the referee run (exit {}, fuel {}) does not confirm the accepted result: no slash",
            referee.exit_code, referee.fuel_used
        ));
    }
    let hash =
        |d: &ResultDigest| ResultClaim::result_hash(&d.output_hash, d.exit_code, d.fuel_used);
    Ok(Entry::Slash(Slash {
        who: task.node,
        fraction_bps: fault_slash_bps,
        reason: SlashReason::ProvenFault,
        evidence: SlashEvidence::ProvenFault {
            claim: task.claim.clone(),
            accepted: hash(&task.accepted),
            referee: hash(referee),
        },
    }))
}

/// Runs a unit as an honest node does and returns what replicas compare.
pub fn referee_run(
    sandbox: &lode_sandbox::Sandbox,
    module: &[u8],
    input: &UnitInput,
    limits: &UnitLimits,
) -> Option<ResultDigest> {
    use lode_node::outcome::{Disposition, classify, to_sandbox_limits};
    let limits = to_sandbox_limits(limits);
    let run_input = lode_sandbox::RunInput {
        stdin: input.stdin.clone(),
        args: input.args.clone(),
    };
    if lode_node::outcome::check_limits_fit(&limits, sandbox.config()).is_err() {
        return None;
    }
    let result = sandbox
        .compile(module)
        .and_then(|m| sandbox.run(&m, &run_input, &limits));
    match classify(result) {
        Disposition::Report(o) => {
            let (exit_code, fuel_used, output) = o.compared();
            Some(ResultDigest {
                output_hash: Hash32::sha256(output),
                exit_code,
                fuel_used,
            })
        }
        Disposition::HandBack(_) => None,
    }
}
