//! HTTP routes of storage (see `lode_storage::wire` for the contract).
//!
//! * `PUT /v1/storage/{file}` — header `x-lode-envelope`: the requester's
//!   signed `StorageContract` ledger entry (JSON envelope); body: the file.
//!   Checked before anything is written: signature, freshness, chain, id,
//!   manifest bounds, exact escrow, balance, enough storage nodes in distinct
//!   groups, then the body's content hash and every share root (the gateway
//!   encodes the file again). Then the shares are staged, the record written,
//!   and the contract sealed into a ledger block before the answer.
//! * `POST /v1/storage/{file}/check` — the same header, no body: every
//!   check of the upload that does not need its bytes, so a refusal comes
//!   before the client sends them.
//! * `GET /v1/storage/{file}` — public status.
//! * `GET /v1/storage/{file}/contract` — the requester's signed contract as
//!   the ledger holds it (block, index, envelope): readers check the manifest
//!   against it rather than trust this gateway's copy.
//! * `GET /v1/storage?requester=did` — the files of a requester.
//! * `GET /v1/storage/{file}/shares/{i}` — one share (header `x-lode-read`:
//!   a signed `ReadFile` of the requester); the reader checks it.
//! * `POST /v1/storage/{file}/delete` — a signed `DeleteFile`: ends the
//!   contract, refunds the unspent escrow.
//! * `POST /v1/node/storage` — the node storage channel (binary, signed).

use crate::api_error::ApiError;
use crate::http::{App, body_bytes, now_ms, open_json};
use crate::storage::{Storage, unknown_file};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lode_ledger::Amount;
use lode_ledger::{Entry, StorageContract};
use lode_proto::wire::{BINARY_CONTENT_TYPE, READ_HEADER, UPLOAD_HEADER};
use lode_proto::{Did, Envelope, Hash32, canonical};
use lode_storage::wire::{DeleteFile, NODE_STORAGE_PATH, ReadFile, StoragePoll, StorageTasks};
use std::sync::Arc;

/// Largest body of a node storage poll (answers carry at most one share per
/// fetch; shares are at most the largest file).
pub fn max_node_storage_bytes(app: &App) -> usize {
    app.storage
        .as_ref()
        .map(|s| s.cfg.max_file_bytes as usize + (1 << 20))
        .unwrap_or(1 << 20)
}

/// Share bytes handed to a node in one poll answer.
const MAX_TASK_BYTES: usize = 64 << 20;

/// Largest share accepted: a share travels whole in one node-channel answer,
/// and nodes read answers of at most 64 MiB.
pub const MAX_SHARE_BYTES: u64 = 48 << 20;

pub fn routes(app: &App) -> Router<App> {
    let put_limit = app
        .storage
        .as_ref()
        .map(|s| s.cfg.max_file_bytes as usize)
        .unwrap_or(1 << 20);
    Router::new()
        .route("/v1/storage", get(list_files))
        .route(
            "/v1/storage/{file}",
            get(file_status)
                .put(put_file)
                .layer(DefaultBodyLimit::max(put_limit)),
        )
        .route("/v1/storage/{file}/contract", get(file_contract))
        .route("/v1/storage/{file}/check", post(check_upload))
        .route("/v1/storage/{file}/shares/{share}", get(read_share))
        .route("/v1/storage/{file}/delete", post(delete_file))
        .route(
            NODE_STORAGE_PATH,
            post(node_storage).layer(DefaultBodyLimit::max(max_node_storage_bytes(app))),
        )
}

fn storage(app: &App) -> Result<Arc<Storage>, ApiError> {
    app.storage.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_disabled",
            "this gateway does not offer storage",
        )
    })
}

fn parse_file(s: &str) -> Result<Hash32, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request("bad_file_id", format!("{s:?} is not a 64-hex-digit id"))
    })
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// Every check of an upload that does not need its bytes: signature,
/// freshness, chain, id, manifest bounds, exact escrow, balance, duplicate,
/// enough storage nodes with room. Run by `POST …/check` (so a client learns
/// of a refusal before it sends the body) and again by the `PUT` itself.
fn precheck(
    app: &App,
    st: &Storage,
    id: Hash32,
    headers: &HeaderMap,
) -> Result<(Envelope, StorageContract, Did, u64, Amount), ApiError> {
    let env_json = headers.get(UPLOAD_HEADER).ok_or_else(|| {
        ApiError::unauthorized(
            "unsigned_upload",
            format!(
                "a file upload needs the signed storage contract in the {UPLOAD_HEADER} header"
            ),
        )
    })?;
    let (env, o) = open_json::<StorageContract>(env_json.as_bytes())?;
    let c = &o.message;
    let m = &c.manifest;
    if m.file != id {
        return Err(ApiError::bad_request(
            "file_mismatch",
            "the signed contract names another file",
        ));
    }
    let bad = |e: lode_storage::ManifestError| ApiError::bad_request("bad_manifest", e.to_string());
    let layout = m.validate(st.cfg.max_file_bytes).map_err(|e| match e {
        lode_storage::ManifestError::TooLarge { .. } => ApiError::too_large(e.to_string()),
        e => bad(e),
    })?;
    if layout.share_len() > MAX_SHARE_BYTES {
        return Err(ApiError::bad_request(
            "bad_manifest",
            format!(
                "shares of {} bytes are above the limit of {MAX_SHARE_BYTES}; raise k",
                layout.share_len()
            ),
        ));
    }
    let need = m
        .required_escrow(c.term_hours, c.price_per_byte_hour)
        .map_err(bad)?;
    if c.amount != need {
        return Err(ApiError::bad_request(
            "bad_escrow",
            format!(
                "the contract locks {} base units; its term needs exactly {need}",
                c.amount
            ),
        ));
    }
    {
        let now = now_ms();
        let core = app.lock();
        core.check_fresh(o.timestamp_ms, now)?;
        let state = core.ledger().state();
        if c.chain != state.chain_id() {
            return Err(ApiError::bad_request(
                "wrong_chain",
                "the contract is signed for another chain",
            ));
        }
        if st.file(&id).is_some() || state.job(&id).is_some() {
            return Err(ApiError::conflict(
                "duplicate_file",
                format!("file {id} already exists"),
            ));
        }
        let balance = state.balance(&o.signer);
        if balance < need {
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_funds",
                format!(
                    "{} has {balance} base units; the storage term needs {need}",
                    o.signer
                ),
            ));
        }
        let groups = core.online_groups();
        let places = st.placeable(&groups, layout.share_len(), now);
        if places < usize::from(m.n) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_enough_storage_nodes",
                format!(
                    "{} shares need {} storage nodes in distinct IP groups and operators with {} bytes free; {places} are online",
                    m.n,
                    m.n,
                    layout.share_len()
                ),
            ));
        }
    }
    Ok((env, o.message, o.signer, layout.share_len(), need))
}

async fn check_upload(
    State(app): State<App>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let id = parse_file(&file)?;
    let (_, c, _, share_len, need) = precheck(&app, &st, id, &headers)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "file": id.to_hex(),
            "size": c.manifest.size,
            "k": c.manifest.k,
            "n": c.manifest.n,
            "share_bytes": share_len,
            "escrow": need.to_string(),
        }),
    ))
}

async fn put_file(
    State(app): State<App>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let id = parse_file(&file)?;
    let (env, contract, signer, share_len, need) = precheck(&app, &st, id, &headers)?;
    let (c, m) = (&contract, &contract.manifest);
    let bytes = axum::body::to_bytes(body, m.size as usize)
        .await
        .map_err(|e| {
            ApiError::bad_request(
                "file_size_mismatch",
                format!("body differs from the contract's size or could not be read: {e}"),
            )
        })?;
    if bytes.len() as u64 != m.size {
        return Err(ApiError::bad_request(
            "file_size_mismatch",
            "body size differs from the contract's size",
        ));
    }
    let manifest = m.clone();
    let shares = tokio::task::spawn_blocking(move || manifest.check_data(&bytes))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::bad_request("manifest_mismatch", e.to_string()))?;
    let now = now_ms();
    st.create(c, signer, &shares, now)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut core = app.lock();
    if let Err(e) = core.submit_entry(Entry::StorageContract(env)) {
        st.abandon(&id, shares.len());
        return Err(ApiError::bad_request("ledger_rejected", e.to_string()));
    }
    let height = core
        .seal_durably(now)
        .map_err(|e| ApiError::internal(format!("the contract's block could not be written: {e}")))?
        .map(|b| b.height);
    drop(core);
    if let Some(h) = height
        && let Err(e) = st.set_contract_block(&id, h)
    {
        // Readers then find the contract from the requester's history.
        tracing::warn!(file = %id, error = %e, "the contract's block height was not recorded");
    }
    tracing::info!(file = %id, size = m.size, k = m.k, n = m.n, "storage contract accepted");
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({
            "file": id.to_hex(),
            "size": m.size,
            "k": m.k,
            "n": m.n,
            "share_bytes": share_len,
            "escrow": need.to_string(),
            "block": height,
        }),
    ))
}

async fn file_status(
    State(app): State<App>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let id = parse_file(&file)?;
    let groups = app.lock().online_groups();
    let v = st.view(&id, &groups).ok_or_else(|| unknown_file(&id))?;
    Ok(json(StatusCode::OK, &v))
}

/// Events of the requester scanned for a contract whose block was not recorded.
const CONTRACT_HISTORY_SCAN: usize = 10_000;

async fn file_contract(
    State(app): State<App>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let id = parse_file(&file)?;
    let rec = st.file(&id).ok_or_else(|| unknown_file(&id))?;
    let core = app.lock();
    let ledger = core.ledger();
    let internal = |e: lode_ledger::LedgerError| ApiError::internal(e.to_string());
    let heights: Vec<u64> = match rec.contract_block {
        Some(h) => vec![h],
        None => ledger
            .history(&rec.requester, CONTRACT_HISTORY_SCAN)
            .map_err(internal)?
            .into_iter()
            .filter(|ev| {
                matches!(&ev.kind, lode_ledger::EventKind::EscrowLocked { job, .. } if *job == id)
            })
            .map(|ev| ev.height)
            .collect(),
    };
    for h in heights {
        let Some(block) = ledger.block(h).map_err(internal)? else {
            continue;
        };
        for (index, e) in block.entries.iter().enumerate() {
            let Entry::StorageContract(env) = e else {
                continue;
            };
            let Ok(o) = env.open_signed::<StorageContract>() else {
                continue;
            };
            if o.message.manifest.file == id {
                return Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "file": id.to_hex(),
                        "block": h,
                        "index": index,
                        "envelope": env,
                    }),
                ));
            }
        }
    }
    Err(ApiError::not_found(
        "contract_not_sealed",
        format!("the contract of file {id} is not in a sealed block of this ledger yet"),
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    requester: String,
}

async fn list_files(
    State(app): State<App>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let who: Did = q
        .requester
        .parse()
        .map_err(|_| ApiError::bad_request("bad_did", "requester must be a did:key"))?;
    let files: Vec<serde_json::Value> = st
        .files_of(&who)
        .into_iter()
        .map(|(id, f)| {
            serde_json::json!({
                "file": id.to_hex(),
                "size": f.manifest.size,
                "k": f.manifest.k,
                "n": f.manifest.n,
                "live_shares": f.shares.iter().filter(|s| s.state == crate::storage::ShareState::Held).count(),
                "term_end_ms": f.term_end_ms,
                "closed": f.closed,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "files": files })))
}

async fn read_share(
    State(app): State<App>,
    Path((file, share)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let id = parse_file(&file)?;
    let i: usize = share.parse().map_err(|_| {
        ApiError::bad_request("bad_share", format!("{share:?} is not a share index"))
    })?;
    let Some(read) = headers.get(READ_HEADER) else {
        return Err(unknown_file(&id));
    };
    let (_, o) = open_json::<ReadFile>(read.as_bytes())?;
    app.lock().check_fresh(o.timestamp_ms, now_ms())?;
    match st.file(&id) {
        Some(f) if f.requester == o.signer && o.message.file == id && !f.closed => {}
        _ => return Err(unknown_file(&id)),
    }
    let bytes = st.fetch(&id, i, st.cfg.answer_timeout_ms).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn delete_file(
    State(app): State<App>,
    Path(file): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let id = parse_file(&file)?;
    let bytes = body_bytes(body)?;
    let (_, o) = open_json::<DeleteFile>(&bytes)?;
    if o.message.file != id {
        return Err(ApiError::bad_request(
            "file_mismatch",
            "the signed delete names another file",
        ));
    }
    let now = now_ms();
    let mut core = app.lock();
    core.check_replay(&o, now)?;
    let entries = st.delete(&id, &o.signer, core.ledger().state())?;
    submit_all(&mut core, entries);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "file": id.to_hex(), "closed": true }),
    ))
}

/// Submits validator entries; one the ledger refuses is logged and dropped.
pub fn submit_all(core: &mut crate::core::Core, entries: Vec<Entry>) {
    for e in entries {
        let kind = e.kind_name();
        if let Err(err) = core.submit_entry(e) {
            tracing::warn!(kind, error = %err, "storage entry refused by the ledger");
        }
    }
}

fn binary<T: serde::Serialize>(v: &T) -> Response {
    match canonical::encode(v) {
        Ok(b) => ([(header::CONTENT_TYPE, BINARY_CONTENT_TYPE)], b).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

async fn node_storage(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let st = storage(&app)?;
    let bytes = body_bytes(body)?;
    let env = Envelope::from_bytes(&bytes)
        .map_err(|e| ApiError::bad_request("malformed_envelope", e.to_string()))?;
    let o = env.open_signed::<StoragePoll>()?;
    let node = o.signer;
    let mut rx = st.subscribe();
    // A waiting poll must come back well within the offline grace period.
    let poll_ms = st
        .cfg
        .poll_timeout_ms
        .min(st.cfg.offline_grace_ms / 3)
        .max(50);
    let first = {
        let now = now_ms();
        let mut core = app.lock();
        core.check_replay(&o, now)?;
        if !core.online_groups().contains_key(&node) {
            return Err(ApiError::not_found(
                "unknown_session",
                "storage needs a node-channel session: say hello first",
            ));
        }
        let (tasks, entries) =
            st.node_poll(node, &o.message, core.ledger().state(), now, MAX_TASK_BYTES);
        submit_all(&mut core, entries);
        tasks
    };
    let mut tasks = first;
    if tasks.is_empty() && o.message.answers.is_empty() {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(poll_ms);
        while !st.has_tasks(&node) {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        if st.has_tasks(&node) {
            let empty = StoragePoll {
                capacity_bytes: o.message.capacity_bytes,
                free_bytes: o.message.free_bytes,
                answers: vec![],
            };
            let core = app.lock();
            tasks = st
                .node_poll(
                    node,
                    &empty,
                    core.ledger().state(),
                    now_ms(),
                    MAX_TASK_BYTES,
                )
                .0;
        } else {
            st.touch(&node, now_ms());
        }
    }
    Ok(binary(&StorageTasks {
        tasks,
        now_ms: now_ms(),
        poll_ms,
    }))
}

/// One storage tick: runs [`Storage::tick`], submits its entries and starts
/// the repairs it asks for.
pub fn tick(app: &App) {
    let Some(st) = app.storage.clone() else {
        return;
    };
    let repairs = {
        let now = now_ms();
        let mut core = app.lock();
        let groups = core.online_groups();
        let (entries, repairs) = st.tick(&groups, core.ledger().state(), now);
        submit_all(&mut core, entries);
        repairs
    };
    for file in repairs {
        tokio::spawn(st.clone().repair(file));
    }
}
