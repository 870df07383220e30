//! Staking and governance, read side (the signed entries go through
//! `POST /v1/entries`, see `wallet_api.rs`). Everything is computed from the
//! ledger state under the core lock; see `docs/design/staking.md`.
//!
//! * `GET /v1/staking` — parameters in force, treasury and totals, the
//!   validator set in force and the one the next epoch close puts in force,
//!   stake targets by bonded power (with commission), the staking rewards of
//!   the last epochs closed while this gateway ran, and an APR estimate.
//! * `GET /v1/staking/{did}` — an account's delegations and unbondings (with
//!   the epoch whose close releases them).
//! * `GET /v1/gov/proposals` — every proposal, newest first, with its live
//!   tally while it is open.
//! * `GET /v1/gov/proposals/{id}` — one proposal: change, deposit, voting
//!   window, tally (the ledger's own tally function) and status/outcome.

use crate::api_error::ApiError;
use crate::core::Core;
use crate::http::App;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lode_ledger::state::gov::{Proposal, ProposalStatus, Tally, tally_outcome};
use lode_proto::Did;
use serde_json::{Value, json};

/// Most stake targets listed by `GET /v1/staking`.
const MAX_TARGETS: usize = 200;
/// Most proposals listed by `GET /v1/gov/proposals`.
const MAX_PROPOSALS: usize = 200;
/// Most delegations/unbondings listed for one account.
const MAX_ACCOUNT_ROWS: usize = 1_000;
const YEAR_MS: u128 = 365 * 86_400_000 + 86_400_000 / 4;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/v1/staking", get(overview))
        .route("/v1/staking/{did}", get(account))
        .route("/v1/gov/proposals", get(proposals))
        .route("/v1/gov/proposals/{id}", get(proposal))
}

fn ok(v: &Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn parse_did(s: &str) -> Result<Did, ApiError> {
    s.parse()
        .map_err(|e: lode_proto::DidError| ApiError::bad_request("bad_did", e.to_string()))
}

/// The staking section of the genesis, or a typed refusal.
fn staking_on(core: &Core) -> Result<(), ApiError> {
    if core.ledger().state().genesis().staking.is_none() {
        return Err(ApiError::not_found(
            "staking_disabled",
            "staking is not enabled on this chain (no [staking] in its genesis)",
        ));
    }
    Ok(())
}

/// Staking APR estimate in basis points from the recorded epochs: the mean
/// of released / bonded per epoch, times epochs per year.
fn apr_bps(core: &Core) -> Option<u64> {
    let length = core.ledger().state().genesis().epoch.length_ms.max(1) as u128;
    let eps: Vec<_> = core
        .staking_epochs
        .iter()
        .filter(|e| e.bonded > 0)
        .collect();
    if eps.is_empty() {
        return None;
    }
    // Σ released × 10,000 / bonded, in u128 with saturating math.
    let sum: u128 = eps
        .iter()
        .map(|e| e.released.saturating_mul(10_000) / e.bonded)
        .fold(0u128, u128::saturating_add);
    let per_epoch = sum / eps.len() as u128;
    let per_year = per_epoch.saturating_mul(YEAR_MS) / length;
    Some(u64::try_from(per_year).unwrap_or(u64::MAX))
}

async fn overview(State(app): State<App>) -> Result<Response, ApiError> {
    let core = app.lock();
    staking_on(&core)?;
    let st = core.ledger().state();
    let g = st.staking_globals();
    let params = st.params();
    let knobs = core.live_knobs();
    let genesis = st.genesis();
    let mut targets: Vec<_> = st.stake_targets().collect();
    targets.sort_by(|a, b| b.1.power.cmp(&a.1.power).then(a.0.cmp(b.0)));
    let total_targets = targets.len();
    let targets: Vec<Value> = targets
        .into_iter()
        .take(MAX_TARGETS)
        .map(|(d, t)| {
            json!({
                "target": d.to_string(),
                "kind": if st.node(d).is_some() { "node" } else { "validator" },
                "power": t.power.to_string(),
                "commission_bps": t.commission_bps,
                "jailed": t.jailed,
                "jailed_epoch": st.jailed_epoch(d),
                "tombstoned": t.tombstoned,
                "slashed_total": t.slashed_total.to_string(),
                "rewards_total": t.rewards_total.to_string(),
            })
        })
        .collect();
    let epochs: Vec<Value> = core
        .staking_epochs
        .iter()
        .rev()
        .map(|e| {
            json!({
                "epoch": e.epoch,
                "released": e.released.to_string(),
                "bonded": e.bonded.to_string(),
            })
        })
        .collect();
    let dids = |v: Vec<Did>| v.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let v = json!({
        "epoch": st.epoch(),
        "epoch_ends_at_ms": st.epoch_end_ms(),
        "staking": genesis.staking,
        "governance": genesis.governance.as_ref().map(|g| json!({
            "min_deposit": g.min_deposit.to_string(),
            "voting_period_epochs": g.voting_period_epochs,
        })),
        "params": params,
        "gateway_knobs": {
            "speed_ceiling": knobs.speed_ceiling,
            "region_spread_permille": knobs.region_spread_permille,
            "k_anonymity": knobs.k_anonymity,
            "default_quorum": knobs.default_quorum,
            "default_replicas": knobs.default_replicas,
        },
        "bonded": g.bonded.to_string(),
        "unbonding": g.unbonding.to_string(),
        "treasury": g.treasury.to_string(),
        "deposits": g.deposits.to_string(),
        "staking_released": g.staking_released.to_string(),
        "validator_set": dids(st.validator_set()),
        // Who signs blocks with what voting power (issue 14): the staking set,
        // or the genesis validators while nobody is bonded.
        "validators_in_force": lode_ledger::consensus::ValidatorSet::in_force(st)
            .map(|s| {
                s.validators()
                    .iter()
                    .map(|v| json!({"validator": v.did.to_string(), "power": v.power}))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
        "next_validator_set": dids(st.next_validator_set()),
        "targets": targets,
        "targets_total": total_targets,
        "recent_epochs": epochs,
        "apr_bps": apr_bps(&core),
    });
    Ok(ok(&v))
}

async fn account(State(app): State<App>, Path(did): Path<String>) -> Result<Response, ApiError> {
    let did = parse_did(&did)?;
    let core = app.lock();
    staking_on(&core)?;
    let st = core.ledger().state();
    let mut bonded = 0u128;
    let delegations: Vec<Value> = st
        .delegations()
        .filter(|((_, d), _)| *d == did)
        .take(MAX_ACCOUNT_ROWS)
        .map(|((t, _), a)| {
            bonded = bonded.saturating_add(*a);
            let commission = st.stake_target(t).map_or(0, |x| x.commission_bps);
            json!({ "target": t.to_string(), "amount": a.to_string(), "commission_bps": commission })
        })
        .collect();
    let mut unbonding = 0u128;
    let unbondings: Vec<Value> = st
        .unbondings()
        .filter(|((_, _, d), _)| *d == did)
        .take(MAX_ACCOUNT_ROWS)
        .map(|((end, t, _), a)| {
            unbonding = unbonding.saturating_add(*a);
            json!({
                "from": t.to_string(),
                "amount": a.to_string(),
                "last_epoch": end,
                "released_at_close_of_epoch": end,
            })
        })
        .collect();
    let target = st.stake_target(&did).map(|t| {
        json!({
            "power": t.power.to_string(),
            "commission_bps": t.commission_bps,
            "jailed": t.jailed,
            "jailed_epoch": st.jailed_epoch(&did),
            "unjail_from_epoch": st.jailed_epoch(&did).map(lode_ledger::State::unjail_from),
            "tombstoned": t.tombstoned,
            "rewards_total": t.rewards_total.to_string(),
            "slashed_total": t.slashed_total.to_string(),
        })
    });
    let v = json!({
        "account": did.to_string(),
        "epoch": st.epoch(),
        "balance": st.balance(&did).to_string(),
        "bonded": bonded.to_string(),
        "unbonding": unbonding.to_string(),
        "delegations": delegations,
        "unbondings": unbondings,
        "target": target,
    });
    Ok(ok(&v))
}

fn tally_json(t: &Tally) -> Value {
    json!({
        "yes": t.yes.to_string(),
        "no": t.no.to_string(),
        "abstain": t.abstain.to_string(),
        "veto": t.veto.to_string(),
        "bonded": t.bonded.to_string(),
    })
}

fn status_name(s: ProposalStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn proposal_json(core: &Core, id: u64, p: &Proposal) -> Value {
    let st = core.ledger().state();
    let (tally, projected) = match &p.tally {
        Some(t) => (t.clone(), None),
        None => {
            let t = st.current_tally(id);
            let o = tally_outcome(&t);
            (t, Some(o))
        }
    };
    json!({
        "id": id,
        "title": p.title,
        "proposer": p.proposer.to_string(),
        "change": p.change,
        "deposit": p.deposit.to_string(),
        "submitted_epoch": p.submitted_epoch,
        "voting_end_epoch": p.voting_end_epoch,
        "open": p.is_open(),
        "status": status_name(p.status),
        "tally": tally_json(&tally),
        "tally_is_live": p.tally.is_none(),
        "outcome_if_tallied_now": projected.map(status_name),
    })
}

async fn proposals(State(app): State<App>) -> Result<Response, ApiError> {
    let core = app.lock();
    let st = core.ledger().state();
    if st.genesis().governance.is_none() {
        return Err(governance_off());
    }
    // Ids are sequential: newest first without walking the whole map.
    let next = st.staking_globals().next_proposal;
    let list: Vec<Value> = (0..next)
        .rev()
        .filter_map(|id| st.proposal(id).map(|p| proposal_json(&core, id, p)))
        .take(MAX_PROPOSALS)
        .collect();
    Ok(ok(&json!({
        "epoch": st.epoch(),
        "next_proposal": st.staking_globals().next_proposal,
        "proposals": list,
    })))
}

fn governance_off() -> ApiError {
    ApiError::not_found(
        "governance_disabled",
        "governance is not enabled on this chain (no [governance] in its genesis)",
    )
}

async fn proposal(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_proposal_id",
            format!("{id:?} is not a proposal id (an integer)"),
        )
    })?;
    let core = app.lock();
    let st = core.ledger().state();
    if st.genesis().governance.is_none() {
        return Err(governance_off());
    }
    let Some(p) = st.proposal(id) else {
        return Err(ApiError::not_found(
            "unknown_proposal",
            format!("proposal {id} does not exist (GET /v1/gov/proposals)"),
        ));
    };
    let mut v = proposal_json(&core, id, p);
    v["epoch"] = json!(st.epoch());
    Ok(ok(&v))
}
