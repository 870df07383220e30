//! The wallet over the network: signed account entries in, balances, history,
//! entry status and claim proofs out. Everything `lode wallet --gateway` needs,
//! with nothing local but the key.
//!
//! * `POST /v1/entries` — a signed `Withdraw`, `Transfer` or `RegisterNode`
//!   ledger entry, or a staking / governance one (`Bond`, `Delegate`, `Unbond`,
//!   `SetCommission`, `Propose`, `Vote`, `Unjail`; see `staking_api.rs` for the reads) (the JSON `lode wallet withdraw --json` prints; browser nodes
//!   register themselves this way). Checked at once (kind, payout
//!   address, then signature, chain, nonce and balance by the ledger, which
//!   changes nothing on error), then the block holding it is sealed (fsync)
//!   before the answer: acknowledged means durable. The nonce is the account's
//!   sequence number, so an entry is included exactly once; a replay gets
//!   `409 replayed_entry` and nothing is stored.
//! * `GET /v1/accounts/{did}/entries/{nonce}` — pending → included in block H
//!   → claimable from epoch E's root (with the proof).
//! * `GET /v1/accounts/{did}/history?limit=N` — balance changes, newest first.
//! * `GET /v1/addresses/{0x…}` — what an EVM payout address can claim.
//! * `GET /v1/claims/{0x…}?epoch=E` — its claim proof (as `lode wallet proof --json`).

use crate::api_error::ApiError;
use crate::core::Core;
use crate::http::{App, now_ms};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lode_ledger::entry::decode_payload;
use lode_ledger::{
    Bond, ClaimProof, Delegate, Entry, EntryError, EventKind, LedgerError, Propose, RegisterNode,
    SetCommission, StandardMerkleTree, Transfer, Unbond, Unjail, Vote, Withdraw,
};
use lode_proto::{Did, Envelope, EvmAddress, Hash32, Message};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Largest accepted signed entry (a withdrawal is about 400 bytes of JSON; a
/// transfer with the longest memo about 1.5 KiB).
pub const MAX_ENTRY_BYTES: usize = 8 * 1024;
/// Most history events one request returns.
pub const MAX_HISTORY: usize = 1_000;
/// Account events scanned to find the block of an entry.
const STATUS_SCAN: usize = 10_000;
/// Blocks read to find the block of an entry (newest first).
const STATUS_BLOCK_READS: usize = 256;
/// Most node ids listed for one payout address.
const MAX_NODES_LISTED: usize = 100;

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/v1/entries",
            post(submit_entry).layer(DefaultBodyLimit::max(MAX_ENTRY_BYTES)),
        )
        .route("/v1/accounts/{did}/history", get(history))
        .route("/v1/accounts/{did}/entries/{nonce}", get(entry_status))
        .route("/v1/addresses/{address}", get(address_summary))
        .route("/v1/claims/{address}", get(claim_proof))
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "a signed entry is at most {MAX_ENTRY_BYTES} bytes: {e}"
            ))
        } else {
            ApiError::bad_request("bad_body", e.to_string())
        }
    })
}

fn parse_did(s: &str) -> Result<Did, ApiError> {
    s.parse()
        .map_err(|e: lode_proto::DidError| ApiError::bad_request("bad_did", e.to_string()))
}

fn parse_address(s: &str) -> Result<EvmAddress, ApiError> {
    s.parse().map_err(|e: lode_proto::evm::EvmAddressError| {
        ApiError::bad_request(
            "bad_address",
            format!("{s:?} is not an EVM address (0x and 40 hex digits, EIP-55 or one case): {e}"),
        )
    })
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("ledger: {e}"))
}

/// The claims tree of one closed epoch, kept built: trees of closed epochs
/// never change, and rebuilding one (every leaf hashed) for each proof,
/// address summary or followed withdrawal would cost O(addresses) each time.
type CachedTree = (Hash32, u64, Arc<StandardMerkleTree>);
static CLAIMS_TREE: Mutex<Option<CachedTree>> = Mutex::new(None);

fn claims_tree(core: &Core, epoch: u64) -> Result<Arc<StandardMerkleTree>, ApiError> {
    let chain = core.ledger().chain_id();
    let mut cache = CLAIMS_TREE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((c, e, t)) = cache.as_ref()
        && *c == chain
        && *e == epoch
    {
        return Ok(t.clone());
    }
    let tree = Arc::new(
        core.ledger()
            .claims_tree(epoch)
            .map_err(|e| claim_error(e, core))?,
    );
    *cache = Some((chain, epoch, tree.clone()));
    Ok(tree)
}

/// The claim proof of `address` in the root of `epoch` (default: the last
/// closed epoch), as `Ledger::claim_proof` makes it, from the cached tree.
fn proof_for(
    core: &Core,
    address: &EvmAddress,
    epoch: Option<u64>,
) -> Result<ClaimProof, ApiError> {
    let epoch = match epoch {
        Some(e) => e,
        None => match core.ledger().state().epoch().checked_sub(1) {
            Some(e) => e,
            None => return Err(claim_error(LedgerError::EpochNotClosed(0), core)),
        },
    };
    let tree = claims_tree(core, epoch)?;
    ClaimProof::from_tree(core.ledger().chain_id(), epoch, &tree, address).ok_or_else(|| {
        claim_error(
            LedgerError::NoClaimFor {
                address: *address,
                epoch,
            },
            core,
        )
    })
}

fn malformed(kind: &str, e: lode_proto::CanonicalError) -> ApiError {
    ApiError::bad_request(
        "malformed_entry",
        format!("the {kind} envelope does not decode: {e}"),
    )
}

/// What a submitted account entry is.
#[derive(Debug, Clone)]
struct EntryInfo {
    kind: &'static str,
    signer: Did,
    nonce: u64,
    amount: u128,
    /// `0x…` for a withdrawal, `did:key:…` for a transfer.
    to: String,
    withdraw_to: Option<EvmAddress>,
}

impl EntryInfo {
    /// A staking or governance entry decoded as `T`; `f` gives its amount and
    /// what it is about.
    fn signed<T: Message + Serialize + DeserializeOwned>(
        env: &Envelope,
        kind: &'static str,
        f: impl FnOnce(&T) -> (u128, String),
    ) -> Result<EntryInfo, ApiError> {
        let p = decode_payload::<T>(env).map_err(|e| malformed(kind, e))?;
        let (amount, to) = f(&p.message);
        Ok(EntryInfo {
            kind,
            signer: env.signer,
            nonce: p.nonce,
            amount,
            to,
            withdraw_to: None,
        })
    }

    fn of(entry: &Entry) -> Result<EntryInfo, ApiError> {
        match entry {
            Entry::Withdraw(env) => {
                let p = decode_payload::<Withdraw>(env).map_err(|e| malformed("withdraw", e))?;
                Ok(EntryInfo {
                    kind: "withdraw",
                    signer: env.signer,
                    nonce: p.nonce,
                    amount: p.message.amount,
                    to: p.message.to.to_checksummed(),
                    withdraw_to: Some(p.message.to),
                })
            }
            Entry::Transfer(env) => {
                Self::signed::<Transfer>(env, "transfer", |m| (m.amount, m.to.to_string()))
            }
            Entry::RegisterNode(env) => Self::signed::<RegisterNode>(env, "register_node", |m| {
                (0, m.payout.to_checksummed())
            }),
            Entry::Bond(env) => {
                Self::signed::<Bond>(env, "bond", |m| (m.amount, env.signer.to_string()))
            }
            Entry::Delegate(env) => {
                Self::signed::<Delegate>(env, "delegate", |m| (m.amount, m.to.to_string()))
            }
            Entry::Unbond(env) => {
                Self::signed::<Unbond>(env, "unbond", |m| (m.amount, m.from.to_string()))
            }
            Entry::SetCommission(env) => {
                Self::signed::<SetCommission>(env, "set_commission", |m| (0, m.target.to_string()))
            }
            Entry::Propose(env) => Self::signed::<Propose>(env, "propose", |m| {
                let change = serde_json::to_string(&m.change).unwrap_or_default();
                (m.deposit, change)
            }),
            Entry::Vote(env) => {
                Self::signed::<Vote>(env, "vote", |m| (0, format!("proposal {}", m.proposal)))
            }
            Entry::Unjail(env) => {
                Self::signed::<Unjail>(env, "unjail", |_| (0, env.signer.to_string()))
            }
            other => Err(ApiError::bad_request(
                "not_account_entry",
                format!(
                    "{} entries are not accepted here: POST /v1/entries takes signed withdraw, transfer, register_node, \
                     bond, delegate, unbond, set_commission, propose, vote and unjail entries (escrows come with POST /v1/jobs)",
                    other.kind_name()
                ),
            )),
        }
    }
}

/// A ledger refusal of an account entry, as a typed API error.
fn entry_error(e: LedgerError, info: &EntryInfo) -> ApiError {
    use EntryError as E;
    match e {
        LedgerError::Entry(E::BadSignature { signer, .. }) => ApiError::unauthorized(
            "bad_signature",
            format!("the entry's signature does not verify for {signer}"),
        ),
        LedgerError::Entry(E::WrongChain { expected, found }) => ApiError::bad_request(
            "wrong_chain",
            format!(
                "the entry is signed for chain {found}; this gateway's chain is {expected} (GET /v1/ledger)"
            ),
        ),
        LedgerError::Entry(E::BadNonce {
            account,
            expected,
            found,
        }) if found < expected => ApiError::conflict(
            "replayed_entry",
            format!(
                "nonce {found} of {account} is already used (an entry with it is on the ledger); \
                 its next nonce is {expected}: see GET /v1/accounts/{account}/entries/{found}"
            ),
        ),
        LedgerError::Entry(E::BadNonce {
            account,
            expected,
            found,
        }) => ApiError::conflict(
            "wrong_nonce",
            format!(
                "nonce {found} is ahead of {account}'s next nonce {expected}; sign the entry with nonce {expected}"
            ),
        ),
        LedgerError::Entry(E::InsufficientBalance {
            account,
            balance,
            needed,
        }) => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_funds",
            format!(
                "{account} has {balance} base units, the {} needs {needed}",
                info.kind
            ),
        ),
        LedgerError::Entry(E::ZeroAmount) => {
            ApiError::bad_request("zero_amount", "the amount must be positive")
        }
        LedgerError::Entry(e @ E::InsufficientStake { .. }) => {
            ApiError::bad_request("insufficient_stake", e.to_string())
        }
        LedgerError::Entry(e @ E::StakingDisabled) => {
            ApiError::conflict("staking_disabled", e.to_string())
        }
        LedgerError::Entry(e @ E::GovernanceDisabled) => {
            ApiError::conflict("governance_disabled", e.to_string())
        }
        LedgerError::Entry(e @ E::UnknownStakeTarget(_)) => {
            ApiError::bad_request("unknown_stake_target", e.to_string())
        }
        LedgerError::Entry(e @ E::CommissionTooHigh { .. }) => {
            ApiError::bad_request("commission_too_high", e.to_string())
        }
        LedgerError::Entry(e @ E::NotTargetOperator { .. }) => {
            ApiError::unauthorized("not_target_operator", e.to_string())
        }
        LedgerError::Entry(e @ E::NotStakeTarget(_)) => {
            ApiError::bad_request("not_stake_target", e.to_string())
        }
        LedgerError::Entry(e @ E::NotJailed(_)) => ApiError::conflict("not_jailed", e.to_string()),
        LedgerError::Entry(e @ E::Tombstoned(_)) => ApiError::conflict("tombstoned", e.to_string()),
        LedgerError::Entry(e @ E::StillJailed { .. }) => {
            ApiError::conflict("still_jailed", e.to_string())
        }
        LedgerError::Entry(e @ E::DepositTooLow { .. }) => {
            ApiError::bad_request("deposit_too_low", e.to_string())
        }
        LedgerError::Entry(E::UnknownProposal(id)) => ApiError::not_found(
            "unknown_proposal",
            format!("proposal {id} does not exist (GET /v1/gov/proposals)"),
        ),
        LedgerError::Entry(e @ E::VotingClosed { .. }) => {
            ApiError::conflict("voting_closed", e.to_string())
        }
        LedgerError::Entry(e @ E::InvalidParamChange(_)) => {
            ApiError::bad_request("invalid_param_change", e.to_string())
        }
        LedgerError::Entry(e @ E::TextTooLong { .. }) => {
            ApiError::bad_request("memo_too_long", e.to_string())
        }
        LedgerError::Entry(e @ E::Malformed { .. }) => {
            ApiError::bad_request("malformed_entry", e.to_string())
        }
        LedgerError::Entry(e) => ApiError::bad_request("ledger_rejected", e.to_string()),
        LedgerError::BlockFull(n) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!("the open ledger block is full ({n} entries); retry shortly"),
        ),
        other => internal(other),
    }
}

async fn submit_entry(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body)?;
    let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!(
                "body is not a signed ledger entry (as `lode wallet withdraw --json` prints): {e}"
            ),
        )
    })?;
    let info = EntryInfo::of(&entry)?;
    if info.withdraw_to == Some(EvmAddress([0; 20])) {
        return Err(ApiError::bad_request(
            "bad_address",
            "withdrawing to the zero address would burn the tokens: no claim can pay it",
        ));
    }
    let now = now_ms();
    let mut core = app.lock();
    // Signature, chain, nonce and balance: the ledger checks them all before
    // changing anything.
    core.submit_entry(entry)
        .map_err(|e| entry_error(*e, &info))?;
    let sealed = core.seal_durably(now).map_err(|e| {
        ApiError::internal(format!(
            "the entry was accepted but its block could not be written ({e}); it stays queued: \
             check GET /v1/accounts/{}/entries/{}",
            info.signer, info.nonce
        ))
    })?;
    let height = sealed.map(|b| b.height).unwrap_or(core.ledger().height());
    let v = status_of(&core, &info, Some(height))?;
    Ok(json_response(StatusCode::CREATED, &v))
}

/// The status of an entry known to be in block `height` (None: not yet in a
/// durable block).
fn status_of(core: &Core, info: &EntryInfo, height: Option<u64>) -> Result<Value, ApiError> {
    let ledger = core.ledger();
    let st = ledger.state();
    let mut v = json!({
        "account": info.signer.to_string(),
        "nonce": info.nonce,
        "kind": info.kind,
        "amount": info.amount.to_string(),
        "to": info.to,
        "status": "pending",
        "height": null,
        "block_hash": null,
        "epoch": st.epoch(),
        "epoch_ends_at_ms": st.epoch_end_ms(),
        "claimable_from_epoch": null,
        "proof": null,
    });
    let Some(h) = height else { return Ok(v) };
    v["status"] = json!("included");
    v["height"] = json!(h);
    if let Some(b) = ledger.block(h).map_err(internal)? {
        v["block_hash"] = json!(b.hash().to_hex());
    }
    let Some(to) = info.withdraw_to else {
        // A transfer is final once included.
        v["epoch"] = Value::Null;
        v["epoch_ends_at_ms"] = Value::Null;
        return Ok(v);
    };
    // Epoch closes are written after the other entries of their block, so the
    // first epoch closed at or after height h publishes this withdrawal.
    let closed = st
        .epoch_records()
        .filter(|r| r.close_height >= h)
        .map(|r| r.epoch)
        .min();
    if let Some(e) = closed {
        v["status"] = json!("claimable");
        v["epoch"] = json!(e);
        v["epoch_ends_at_ms"] = Value::Null;
        v["claimable_from_epoch"] = json!(e);
        // The newest root pays the most: the proof is of the last closed epoch.
        let proof = proof_for(core, &to, None)?;
        v["proof"] = serde_json::to_value(proof).map_err(internal)?;
    }
    Ok(v)
}

/// Finds the durable block holding `did`'s entry with `nonce`, newest first.
fn locate(core: &Core, did: &Did, nonce: u64) -> Result<Option<(u64, EntryInfo)>, ApiError> {
    let ledger = core.ledger();
    let events = ledger.history(did, STATUS_SCAN).map_err(internal)?;
    let mut seen = BTreeSet::new();
    for ev in events {
        if !matches!(
            ev.kind,
            EventKind::Sent { .. }
                | EventKind::Withdrawn { .. }
                | EventKind::Bonded { .. }
                | EventKind::UnbondStarted { .. }
                | EventKind::CommissionSet { .. }
                | EventKind::ProposalSubmitted { .. }
                | EventKind::Voted { .. }
                | EventKind::Unjailed { .. }
        ) || !seen.insert((ev.height, ev.index))
        {
            continue;
        }
        if seen.len() > STATUS_BLOCK_READS {
            return Err(ApiError::not_found(
                "entry_too_old",
                format!(
                    "nonce {nonce} of {did} is older than the newest {STATUS_BLOCK_READS} withdrawals and \
                     transfers of the account; find its block in the account's history (GET /v1/accounts/{did}/history)"
                ),
            ));
        }
        let Some(block) = ledger.block(ev.height).map_err(internal)? else {
            continue;
        };
        let Some(entry) = block.entries.get(ev.index as usize) else {
            continue;
        };
        let Ok(info) = EntryInfo::of(entry) else {
            continue;
        };
        if info.signer != *did {
            continue;
        }
        if info.nonce == nonce {
            return Ok(Some((ev.height, info)));
        }
        if info.nonce < nonce {
            // Newest first: older entries have smaller nonces.
            break;
        }
    }
    Ok(None)
}

async fn entry_status(
    State(app): State<App>,
    Path((did, nonce)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let did = parse_did(&did)?;
    let nonce: u64 = nonce.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_nonce",
            format!("{nonce:?} is not a nonce (an integer)"),
        )
    })?;
    let core = app.lock();
    let next = core.ledger().state().next_nonce(&did);
    if nonce >= next {
        return Err(ApiError::not_found(
            "unknown_entry",
            format!(
                "{did} has no entry with nonce {nonce} on this ledger; its next nonce is {next}"
            ),
        ));
    }
    match locate(&core, &did, nonce)? {
        Some((h, info)) => Ok(json_response(
            StatusCode::OK,
            &status_of(&core, &info, Some(h))?,
        )),
        None => Ok(json_response(
            StatusCode::OK,
            &json!({
                "account": did.to_string(),
                "nonce": nonce,
                "status": "pending",
                "note": "the nonce is used but no sealed account entry with it was found \
                         (it is in the open block, or it registered a node)",
            }),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(app): State<App>,
    Path(did): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let did = parse_did(&did)?;
    let limit = query(q)?.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and {MAX_HISTORY}"),
        ));
    }
    let core = app.lock();
    let events = core.ledger().history(&did, limit).map_err(internal)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "account": did.to_string(),
            "height": core.ledger().height(),
            "events": events,
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct ClaimQuery {
    epoch: Option<u64>,
}

fn claim_error(e: LedgerError, core: &Core) -> ApiError {
    match e {
        LedgerError::EpochNotClosed(epoch) => ApiError::conflict(
            "epoch_not_closed",
            format!(
                "epoch {epoch} is not closed yet (the open epoch {} ends at {} ms); its root and proofs exist once it closes",
                core.ledger().state().epoch(),
                core.ledger().state().epoch_end_ms()
            ),
        ),
        LedgerError::NoClaims(epoch) => ApiError::not_found(
            "no_claims",
            format!(
                "nothing had been withdrawn by the end of epoch {epoch}: its claims tree is empty"
            ),
        ),
        LedgerError::NoClaimFor { address, epoch } => ApiError::not_found(
            "no_claim",
            format!("nothing was withdrawn to {address} by the end of epoch {epoch}"),
        ),
        other => internal(other),
    }
}

async fn claim_proof(
    State(app): State<App>,
    Path(address): Path<String>,
    q: Result<Query<ClaimQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let address = parse_address(&address)?;
    let epoch = query(q)?.epoch;
    let core = app.lock();
    let p = proof_for(&core, &address, epoch)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::to_value(p).map_err(internal)?,
    ))
}

async fn address_summary(
    State(app): State<App>,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    let address = parse_address(&address)?;
    let core = app.lock();
    let ledger = core.ledger();
    let st = ledger.state();
    let withdrawn = st.claimed_total(&address);
    let last = st.epoch().checked_sub(1);
    let proof = match last {
        Some(e) => match proof_for(&core, &address, Some(e)) {
            Ok(p) => Some(p),
            Err(e) if e.code == "no_claims" || e.code == "no_claim" => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let published: u128 = proof
        .as_ref()
        .and_then(|p| p.amount.parse().ok())
        .unwrap_or(0);
    let nodes: Vec<String> = st
        .nodes()
        .filter(|(_, n)| n.payout == address)
        .take(MAX_NODES_LISTED)
        .map(|(d, _)| d.to_string())
        .collect();
    let v = json!({
        "address": address.to_checksummed(),
        "chain_id": ledger.chain_id().to_hex(),
        "withdrawn_cumulative": withdrawn.to_string(),
        "published_epoch": last,
        "claimable_cumulative": published.to_string(),
        "unpublished": withdrawn.saturating_sub(published).to_string(),
        "next_root_at_ms": st.epoch_end_ms(),
        "nodes": nodes,
        "proof": proof,
        "claim": {
            "function": "claim(address account, uint256 cumulative, bytes32[] proof)",
            "contract": "LodeDistributor (contracts/src/LodeDistributor.sol)",
            "pays": "cumulative minus what the contract already paid the account",
        },
    });
    Ok(json_response(StatusCode::OK, &v))
}
