//! A validator's HTTP API: submissions in, the chain and its state out (so
//! that wallets, explorers and gateways need no ledger directory).
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/mempool` | one entry's canonical bytes (a gateway's signed batch, or any signed account entry); 202 queued, 200 already queued, 409 `stale_nonce` (its sequence number is used: usually it was just included), 400 with a typed error, 503 full |
//! | `GET /v1/ledger/raw?from=&limit=&wait_ms=` | committed blocks with their certificates (`lode_ledger::raw` frames, `X-Lode-Head`); with `wait_ms` a request past the head waits for the next block |
//! | `GET /v1/status` | chain, head, validators (power, last signed height), mempool, finality latency, recent blocks and their signers, equivocations seen |
//! | `GET /v1/ledger/info` | head, state root, epoch, supply |
//! | `GET /v1/accounts/{did}` | balance and next nonce |
//! | `GET /v1/claims/{address}?epoch=` | the OpenZeppelin claim proof of a payout address |
//! | `GET /healthz` | liveness |

use super::{Shared, may_apply_later};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lode_ledger::{Entry, EntryError, Genesis};
use lode_proto::{Did, EvmAddress, Hash32, canonical};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Largest submission (one entry: a gateway batch of up to
/// `MAX_BATCH_ENTRIES` receipts fits).
pub const MAX_SUBMISSION_BYTES: usize = 16 << 20;
/// Most blocks in one page of `/v1/ledger/raw`.
pub const MAX_BLOCKS_PAGE: u64 = 256;
/// Bytes after which a page of blocks ends (at least one block per page).
pub const BLOCKS_PAGE_BYTES: usize = 8 << 20;
/// Longest a block request may wait for the next block.
pub const MAX_WAIT_MS: u64 = 5_000;

#[derive(Clone)]
struct Api {
    shared: Arc<Shared>,
    genesis: Arc<Genesis>,
}

/// The routes.
pub fn router(shared: Arc<Shared>, genesis: Genesis) -> Router {
    Router::new()
        .route(
            "/v1/mempool",
            post(submit).layer(DefaultBodyLimit::max(MAX_SUBMISSION_BYTES)),
        )
        .route("/v1/ledger/raw", get(raw))
        .route("/v1/ledger/info", get(info))
        .route("/v1/status", get(status))
        .route("/v1/accounts/{did}", get(account))
        .route("/v1/claims/{address}", get(claim))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Api {
            shared,
            genesis: Arc::new(genesis),
        })
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "message": message.to_string() })),
    )
        .into_response()
}

/// A short stable code for an entry's rejection (the innermost one in a batch).
pub fn entry_error_code(e: &EntryError) -> &'static str {
    match e {
        EntryError::InBatch { error, .. } => entry_error_code(error),
        EntryError::BadSignature { .. } => "bad_signature",
        EntryError::WrongChain { .. } => "wrong_chain",
        EntryError::BadNonce { .. } => "bad_nonce",
        EntryError::GatewayOnly(_) => "gateway_only",
        EntryError::NotAGateway(_) => "not_a_gateway",
        EntryError::NotJobHolder { .. } => "not_job_holder",
        _ => "entry_rejected",
    }
}

async fn submit(State(api): State<Api>, body: Bytes) -> Response {
    let entry: Entry = match canonical::decode(&body) {
        Ok(e) => e,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("not a canonical ledger entry: {e}"),
            );
        }
    };
    if matches!(entry, Entry::Genesis(_) | Entry::EpochClose(_)) {
        return error(
            StatusCode::BAD_REQUEST,
            "not_submittable",
            format!("{} entries are made by the chain itself", entry.kind_name()),
        );
    }
    let hash = Hash32::sha256(&body);
    if api.shared.mempool().contains(&hash) {
        return (
            StatusCode::OK,
            axum::Json(json!({ "status": "queued", "hash": hash.to_hex() })),
        )
            .into_response();
    }
    // Signatures (a batch's and those inside it) off the async threads.
    let (entry, sig_ok) = match tokio::task::spawn_blocking(move || {
        let ok = entry.signature_valid();
        (entry, ok)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    };
    if !sig_ok {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_signature",
            format!(
                "a signature of this {} entry does not verify",
                entry.kind_name()
            ),
        );
    }
    // Validate before queueing: it must apply on the head (or wait for a
    // predecessor of the same signer).
    let trial = api.shared.replica().admit(&entry);
    if let Err(e) = &trial
        && !may_apply_later(e)
    {
        // A sequence number already used: usually this very entry, included
        // since it was sent (a gateway sends to every validator).
        if let EntryError::BadNonce {
            expected, found, ..
        } = e
            && found < expected
        {
            return error(StatusCode::CONFLICT, "stale_nonce", e);
        }
        return error(StatusCode::BAD_REQUEST, entry_error_code(e), e);
    }
    let added = api.shared.mempool().add(hash, entry, body.len());
    match added {
        Ok(super::mempool::Added::New) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "queued", "hash": hash.to_hex() })),
        )
            .into_response(),
        Ok(super::mempool::Added::Known) => (
            StatusCode::OK,
            axum::Json(json!({ "status": "queued", "hash": hash.to_hex() })),
        )
            .into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "mempool_full", e),
    }
}

#[derive(Debug, Deserialize)]
struct RawQuery {
    from: Option<u64>,
    limit: Option<u64>,
    wait_ms: Option<u64>,
}

async fn raw(State(api): State<Api>, q: Result<Query<RawQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "from, limit and wait_ms are integers",
        );
    };
    let limit = q.limit.unwrap_or(MAX_BLOCKS_PAGE);
    if limit == 0 || limit > MAX_BLOCKS_PAGE {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_limit",
            format!("limit is 1..={MAX_BLOCKS_PAGE}"),
        );
    }
    let from = q.from.unwrap_or(0);
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    let mut head = api.shared.head();
    if *head.borrow() < from && !wait.is_zero() {
        let _ = tokio::time::timeout(wait, head.wait_for(|h| *h >= from)).await;
    }
    let shared = api.shared.clone();
    let page = tokio::task::spawn_blocking(move || {
        let r = shared.replica();
        let head = r.height();
        if from > head {
            return Err(head);
        }
        let mut body = Vec::new();
        for h in from..=head.min(from.saturating_add(limit - 1)) {
            match r.decided(h) {
                Ok(Some((block, cert))) => {
                    lode_ledger::raw::push_frame(&mut body, &block, cert.as_deref())
                }
                _ => break,
            }
            if body.len() >= BLOCKS_PAGE_BYTES {
                break;
            }
        }
        Ok((head, body))
    })
    .await;
    match page {
        Ok(Ok((head, body))) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::HeaderName::from_static("x-lode-head"),
                    head.to_string(),
                ),
            ],
            body,
        )
            .into_response(),
        Ok(Err(head)) => {
            let mut h = HeaderMap::new();
            if let Ok(v) = head.to_string().parse() {
                h.insert(header::HeaderName::from_static("x-lode-head"), v);
            }
            (
                h,
                error(
                    StatusCode::NOT_FOUND,
                    "unknown_block",
                    format!("no block {from}: the head is {head}"),
                ),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    (!sorted.is_empty()).then(|| sorted[(sorted.len() - 1) * p / 100])
}

async fn status(State(api): State<Api>) -> Response {
    let (height, set, head_hash) = {
        let r = api.shared.replica();
        (r.height(), r.validator_set().clone(), r.head_hash())
    };
    let (mempool_entries, mempool_bytes) = {
        let m = api.shared.mempool();
        (m.len(), m.bytes())
    };
    let st = api.shared.stats();
    let mut lat: Vec<u64> = st.finality_ms.iter().copied().collect();
    lat.sort_unstable();
    let last_time = st.recent.back().map(|b| b.timestamp_ms);
    let validators: Vec<Value> = set
        .validators()
        .iter()
        .map(|v| {
            let last = st.last_signed.get(&v.did).copied();
            json!({
                "did": v.did.to_string(),
                "power": v.power,
                "last_signed_height": last,
                // Signed one of the last few blocks.
                "online": last.is_some_and(|l| l + 5 >= height),
                "me": v.did == api.shared.me,
            })
        })
        .collect();
    let recent: Vec<Value> = st
        .recent
        .iter()
        .rev()
        .take(20)
        .map(|b| serde_json::to_value(b).unwrap_or_default())
        .collect();
    axum::Json(json!({
        "chain_id": api.shared.chain_id.to_hex(),
        "chain_name": api.genesis.chain_id,
        "validator": api.shared.me.to_string(),
        "height": height,
        "head_hash": head_hash.to_hex(),
        "head_time_ms": last_time,
        "total_power": set.total_power(),
        "validators": validators,
        "mempool": { "entries": mempool_entries, "bytes": mempool_bytes },
        "finality_ms": {
            "samples": lat.len(),
            "p50": percentile(&lat, 50),
            "p99": percentile(&lat, 99),
        },
        "committed_entries": st.committed_entries,
        "recent_blocks": recent,
        "equivocations": st.evidence.iter().map(|e| json!({
            "validator": e.validator.to_string(),
            "height": e.height,
            "round": e.round,
            "kind": format!("{:?}", e.kind),
        })).collect::<Vec<_>>(),
        "rejected_recently": st.rejected.iter().rev().take(20).map(|(h, why)| json!({"hash": h.to_hex(), "reason": why})).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn info(State(api): State<Api>) -> Response {
    let mut r = api.shared.replica();
    let height = r.height();
    let s = r.state();
    axum::Json(json!({
        "chain_id": s.chain_id().to_hex(),
        "height": height,
        "head_hash": s.head_hash().to_hex(),
        "state_root": s.state_root().to_hex(),
        "epoch": s.epoch(),
        "epoch_ends_at_ms": s.epoch_end_ms(),
        "supply": s.supply(),
    }))
    .into_response()
}

async fn account(State(api): State<Api>, Path(did): Path<String>) -> Response {
    let Ok(did) = did.parse::<Did>() else {
        return error(StatusCode::BAD_REQUEST, "bad_did", "not a did:key");
    };
    let mut r = api.shared.replica();
    let height = r.height();
    let s = r.state();
    axum::Json(json!({
        "did": did.to_string(),
        "height": height,
        "balance": s.balance(&did).to_string(),
        "next_nonce": s.next_nonce(&did),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ClaimQuery {
    epoch: Option<u64>,
}

async fn claim(
    State(api): State<Api>,
    Path(address): Path<String>,
    q: Result<Query<ClaimQuery>, QueryRejection>,
) -> Response {
    let Ok(address) = address.parse::<EvmAddress>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_address",
            "not a 0x EVM address",
        );
    };
    let Ok(Query(q)) = q else {
        return error(StatusCode::BAD_REQUEST, "bad_query", "epoch is an integer");
    };
    let epoch = q.epoch;
    let r = api.shared.replica().claim_proof(&address, epoch);
    match r {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, "no_claim", e),
    }
}
