//! HTTP routes: requester API (JSON), node channel (binary canonical), operations.

use crate::api_error::ApiError;
use crate::core::Core;
use crate::ratelimit::{ConnectionCounter, RateLimiter};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lode_proto::envelope::Opened;
use lode_proto::wire::{
    self, BINARY_CONTENT_TYPE, CancelJob, NodeAuth, NodeHello, NodePoll, SubmitJob, UploadModule,
};
use lode_proto::{Did, Envelope, Hash32, Message, canonical};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Limits of the HTTP edge.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_module_bytes: usize,
    pub max_body_bytes: usize,
    pub requests_per_second: u32,
    pub burst: u32,
    pub max_concurrent_per_ip: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_module_bytes: 16 << 20,
            max_body_bytes: 64 << 20,
            requests_per_second: 2_000,
            burst: 4_000,
            max_concurrent_per_ip: 256,
        }
    }
}

#[derive(Clone)]
pub struct App {
    pub core: Arc<Mutex<Core>>,
    pub work: Arc<watch::Sender<u64>>,
    pub limits: HttpLimits,
    limiter: Arc<Mutex<RateLimiter>>,
    conns: Arc<Mutex<ConnectionCounter>>,
    metrics: Arc<crate::metrics::Metrics>,
    modules: crate::modules::ModuleStore,
    poll_timeout: Duration,
    dashboard: Arc<crate::dashboard::Dashboard>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("limits", &self.limits).finish()
    }
}

impl App {
    pub fn new(core: Core, limits: HttpLimits) -> Self {
        let metrics = core.metrics.clone();
        let modules = core.modules.clone();
        let poll_timeout = Duration::from_millis(core.cfg.poll_timeout_ms);
        let (tx, _) = watch::channel(0u64);
        Self {
            limiter: Arc::new(Mutex::new(RateLimiter::new(
                limits.requests_per_second,
                limits.burst,
            ))),
            conns: Arc::new(Mutex::new(ConnectionCounter::default())),
            core: Arc::new(Mutex::new(core)),
            work: Arc::new(tx),
            limits,
            metrics,
            modules,
            poll_timeout,
            dashboard: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The web dashboard's live state (throughput ring, event streams).
    pub fn dashboard(&self) -> &Arc<crate::dashboard::Dashboard> {
        &self.dashboard
    }

    pub fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock would be a bug; keep serving the data.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes long-polling nodes: there may be work.
    pub fn signal_work(&self) {
        self.work.send_modify(|v| *v = v.wrapping_add(1));
    }
}

pub fn router(app: App) -> Router {
    let max_module = app.limits.max_module_bytes;
    let max_body = app.limits.max_body_bytes;
    Router::new()
        .route(wire::paths::NODE_HELLO, post(node_hello))
        .route(wire::paths::NODE_AUTH, post(node_auth))
        .route(wire::paths::NODE_POLL, post(node_poll))
        .route(
            "/v1/modules/{hash}",
            get(get_module)
                .put(put_module)
                .layer(DefaultBodyLimit::max(max_module)),
        )
        .route("/v1/jobs", post(submit_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(job_status))
        .route("/v1/jobs/{id}/results", get(job_results))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/accounts/{did}", get(account))
        .route("/v1/ledger", get(ledger_info))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(crate::dashboard::routes())
        .merge(crate::wallet_api::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(app.clone(), guard_ip))
        .with_state(app)
}

/// Per-IP request rate and concurrency limits; counts refusals.
async fn guard_ip(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let ip = peer.ip();
    let now = now_ms();
    let limited = app
        .limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check(ip, now);
    if let Err(retry) = limited {
        app.metrics.requests_rejected.inc();
        let mut r = ApiError::rate_limited(retry).into_response();
        if let Ok(v) = header::HeaderValue::from_str(&retry.div_ceil(1000).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let max = app.limits.max_concurrent_per_ip;
    if !app
        .conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .try_open(ip, max)
    {
        app.metrics.requests_rejected.inc();
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!("more than {max} concurrent requests from this address"),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    app.conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .close(ip);
    if !resp.status().is_success() {
        app.metrics.requests_rejected.inc();
    }
    resp
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("request body is too large: {e}"))
        } else {
            ApiError::bad_request("bad_body", e.to_string())
        }
    })
}

/// A binary envelope from the node channel, signature-checked (not yet replay-checked).
fn open_binary<T: Message>(body: Result<Bytes, BytesRejection>) -> Result<Opened<T>, ApiError> {
    let bytes = body_bytes(body)?;
    let env = Envelope::from_bytes(&bytes)
        .map_err(|e| ApiError::bad_request("malformed_envelope", e.to_string()))?;
    Ok(env.open_signed::<T>()?)
}

/// A JSON envelope from the requester API, signature-checked.
fn open_json<T: Message>(bytes: &[u8]) -> Result<(Envelope, Opened<T>), ApiError> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("body is not a JSON envelope: {e}"),
        )
    })?;
    let opened = env.open_signed::<T>()?;
    Ok((env, opened))
}

fn binary<T: Serialize>(v: &T) -> Response {
    match canonical::encode(v) {
        Ok(b) => ([(header::CONTENT_TYPE, BINARY_CONTENT_TYPE)], b).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    (status, axum::Json(v)).into_response()
}

fn parse_hash(s: &str, what: &'static str) -> Result<Hash32, ApiError> {
    s.parse()
        .map_err(|_| ApiError::bad_request(what, format!("{s:?} is not a 64-hex-digit id")))
}

async fn node_hello(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let o = open_binary::<NodeHello>(body)?;
    let now = now_ms();
    let mut core = app.lock();
    core.check_replay(&o, now)?;
    Ok(binary(&core.hello(o, peer.ip(), now)?))
}

async fn node_auth(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let o = open_binary::<NodeAuth>(body)?;
    let now = now_ms();
    let resp = {
        let mut core = app.lock();
        core.check_replay(&o, now)?;
        core.auth(o, now)?
    };
    app.signal_work();
    Ok(binary(&resp))
}

async fn node_poll(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let o = open_binary::<NodePoll>(body)?;
    let mut rx = app.work.subscribe();
    let now = now_ms();
    let mut resp = {
        let mut core = app.lock();
        core.check_replay(&o, now)?;
        core.poll(&o, now)?
    };
    // Reports free the node's slots and may call for more replicas; hand-backs make
    // units ready again: either way a waiting long poll may now get work.
    if !o.message.handed_back.is_empty() || !o.message.reports.is_empty() {
        app.signal_work();
    }
    let want = o.message.want;
    // Hold only a pure request for work: a poll that carried reports or hand-backs
    // is answered at once, so the node learns promptly that they are recorded (and
    // does not send them again if it stops while the poll would be waiting).
    let carried = !o.message.reports.is_empty() || !o.message.handed_back.is_empty();
    if resp.assignments.is_empty() && want > 0 && resp.cancel.is_empty() && !carried {
        let deadline = tokio::time::Instant::now() + app.poll_timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
            let now = now_ms();
            let mut core = app.lock();
            match core.take_work(&o.signer, want, now) {
                Ok(a) if !a.is_empty() => {
                    resp.assignments = a;
                    resp.now_ms = now;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    Ok(binary(&resp))
}

async fn get_module(
    State(app): State<App>,
    Path(hash): Path<String>,
) -> Result<Response, ApiError> {
    let h = parse_hash(&hash, "bad_module_id")?;
    match app.modules.get(&h) {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response()),
        Err(crate::modules::ModuleStoreError::NotFound(_)) => Err(ApiError::not_found(
            "unknown_module",
            format!("module {h} is not stored here"),
        )),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

async fn put_module(
    State(app): State<App>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let h = parse_hash(&hash, "bad_module_id")?;
    let env_json = headers.get(wire::UPLOAD_HEADER).ok_or_else(|| {
        ApiError::unauthorized(
            "unsigned_upload",
            format!(
                "module uploads need a signed {} header",
                wire::UPLOAD_HEADER
            ),
        )
    })?;
    let (_, o) = open_json::<UploadModule>(env_json.as_bytes())?;
    if o.message.sha256 != h {
        return Err(ApiError::bad_request(
            "module_hash_mismatch",
            "the signed upload names another module",
        ));
    }
    if o.message.size > app.limits.max_module_bytes as u64 {
        return Err(ApiError::too_large(format!(
            "module is {} bytes; the limit is {} bytes",
            o.message.size, app.limits.max_module_bytes
        )));
    }
    {
        let mut core = app.lock();
        core.check_replay(&o, now_ms())?;
    }
    let bytes = body_bytes(body)?;
    if bytes.len() as u64 != o.message.size {
        return Err(ApiError::bad_request(
            "module_size_mismatch",
            "body size differs from the signed size",
        ));
    }
    app.modules.put(&h, &bytes).map_err(|e| match e {
        crate::modules::ModuleStoreError::HashMismatch { .. } => {
            ApiError::bad_request("module_hash_mismatch", e.to_string())
        }
        crate::modules::ModuleStoreError::TooLarge { .. } => ApiError::too_large(e.to_string()),
        other => ApiError::internal(other.to_string()),
    })?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "module": h.to_hex(), "size": bytes.len() }),
    ))
}

async fn submit_job(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body)?;
    let (env, o) = open_json::<SubmitJob>(&bytes)?;
    let now = now_ms();
    let view = {
        let mut core = app.lock();
        core.check_replay(&o, now)?;
        core.submit_job(env, o, now)?
    };
    app.signal_work();
    Ok(json(StatusCode::CREATED, &view))
}

async fn list_jobs(State(app): State<App>) -> Response {
    let jobs = app.lock().jobs_list();
    json(StatusCode::OK, &serde_json::json!({ "jobs": jobs }))
}

async fn job_status(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_hash(&id, "bad_job_id")?;
    let v = app.lock().job_view(&id).ok_or_else(|| {
        ApiError::not_found("unknown_job", format!("no job {id} on this gateway"))
    })?;
    Ok(json(StatusCode::OK, &v))
}

async fn job_results(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_hash(&id, "bad_job_id")?;
    let r = app.lock().job_results(&id)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "job": id.to_hex(), "units": r }),
    ))
}

async fn cancel_job(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = parse_hash(&id, "bad_job_id")?;
    let bytes = body_bytes(body)?;
    let (_, o) = open_json::<CancelJob>(&bytes)?;
    if o.message.job != id {
        return Err(ApiError::bad_request(
            "job_mismatch",
            "the signed cancel names another job",
        ));
    }
    let now = now_ms();
    let v = {
        let mut core = app.lock();
        core.check_replay(&o, now)?;
        core.cancel_job(o.signer, id, now)?
    };
    Ok(json(StatusCode::OK, &v))
}

async fn list_nodes(State(app): State<App>) -> Response {
    let nodes = app.lock().nodes_view();
    json(StatusCode::OK, &serde_json::json!({ "nodes": nodes }))
}

async fn account(State(app): State<App>, Path(did): Path<String>) -> Result<Response, ApiError> {
    let did: Did = did
        .parse()
        .map_err(|e: lode_proto::DidError| ApiError::bad_request("bad_did", e.to_string()))?;
    let core = app.lock();
    let st = core.ledger().state();
    let v = serde_json::json!({
        "account": did.to_string(),
        "balance": st.balance(&did).to_string(),
        "next_nonce": st.next_nonce(&did),
        "node": st.node(&did).is_some(),
        "pending": st.pending_earnings(&did),
    });
    Ok(json(StatusCode::OK, &v))
}

async fn ledger_info(State(app): State<App>) -> Response {
    let core = app.lock();
    let l = core.ledger();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "chain_id": l.chain_id().to_hex(),
            "validator": l.validator().to_string(),
            "height": l.height(),
            "epoch": l.state().epoch(),
            "epoch_ends_at_ms": l.state().epoch_end_ms(),
            "supply": l.state().supply(),
        }),
    )
}

async fn healthz(State(app): State<App>) -> Response {
    let core = app.lock();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "nodes_online": core.node_session_count(),
            "ledger_height": core.ledger().height(),
        }),
    )
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::OPENAPI_JSON,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no_such_route", "no such API route; see /openapi.json")
}
