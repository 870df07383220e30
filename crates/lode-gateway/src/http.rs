//! HTTP routes: requester API (JSON), node channel (binary canonical), operations.

use crate::api_error::ApiError;
use crate::core::Core;
use crate::ratelimit::{ConnectionCounter, RateLimiter};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lode_proto::envelope::Opened;
use lode_proto::wire::{
    self, BINARY_CONTENT_TYPE, CancelJob, NodeAuth, NodeHello, NodePoll, ReadJob, SubmitJob,
    UploadModule,
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
    /// Body of a module upload (`PUT /v1/modules/{hash}`).
    pub max_module_bytes: usize,
    /// Body of a job submission (`POST /v1/jobs`): the units' inputs are inline.
    pub max_job_bytes: usize,
    /// Body of a node-channel message (a poll carries finished units' outputs).
    pub max_node_bytes: usize,
    /// Body of any other request.
    pub max_body_bytes: usize,
    /// Request bodies buffered at once, in all: past it a request waits up to
    /// `body_wait`, then gets `503 busy` (so concurrent large bodies cannot
    /// exhaust memory).
    pub body_budget_bytes: usize,
    pub body_wait: Duration,
    /// Longest pause between two pieces of a request body.
    pub body_timeout: Duration,
    pub requests_per_second: u32,
    pub burst: u32,
    pub max_concurrent_per_ip: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_module_bytes: 16 << 20,
            max_job_bytes: 32 << 20,
            max_node_bytes: 32 << 20,
            max_body_bytes: 1 << 20,
            body_budget_bytes: 256 << 20,
            body_wait: Duration::from_secs(5),
            body_timeout: Duration::from_secs(15),
            requests_per_second: 2_000,
            burst: 4_000,
            max_concurrent_per_ip: 256,
        }
    }
}

/// Granularity of the body budget's permits.
const BUDGET_UNIT: usize = 64 << 10;

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
    budget: Arc<tokio::sync::Semaphore>,
    /// Storage contribution (`None`: this gateway offers none).
    pub storage: Option<Arc<crate::storage::Storage>>,
    /// The validators' status, on a replicated chain (`None`: this gateway
    /// seals the blocks itself); see [`crate::validators_api`].
    pub validators: Option<Arc<crate::validators_api::ValidatorsView>>,
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
            limits: limits.clone(),
            metrics,
            modules,
            poll_timeout,
            dashboard: Arc::default(),
            budget: Arc::new(tokio::sync::Semaphore::new(
                (limits.body_budget_bytes / BUDGET_UNIT).max(1),
            )),
            storage: None,
            validators: None,
        }
    }

    /// A follower of a replicated chain: `GET /v1/validators` asks these
    /// validators (base URLs) for their status.
    pub fn with_validators(mut self, urls: Vec<String>) -> Self {
        self.validators = Some(crate::validators_api::ValidatorsView::new(urls));
        self
    }

    /// Offers storage ([`crate::storage`]).
    pub fn with_storage(mut self, storage: crate::storage::Storage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
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
    let l = &app.limits;
    let body_timeout = l.body_timeout;
    Router::new()
        .route(
            wire::paths::NODE_HELLO,
            post(node_hello).layer(DefaultBodyLimit::max(l.max_body_bytes)),
        )
        .route(
            wire::paths::NODE_AUTH,
            post(node_auth).layer(DefaultBodyLimit::max(l.max_body_bytes)),
        )
        .route(
            wire::paths::NODE_POLL,
            post(node_poll).layer(DefaultBodyLimit::max(l.max_node_bytes)),
        )
        .route("/v1/modules/{hash}", get(get_module).put(put_module))
        .route(
            "/v1/jobs",
            post(submit_job)
                .layer(DefaultBodyLimit::max(l.max_job_bytes))
                .get(list_jobs),
        )
        .route("/v1/jobs/{id}", get(job_status))
        .route("/v1/jobs/{id}/results", get(job_results))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/accounts/{did}", get(account))
        .route("/v1/ledger", get(ledger_info))
        .route("/v1/ledger/raw", get(ledger_raw))
        .route("/v1/limits", get(limits))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(crate::dashboard::routes())
        .merge(crate::wallet_api::routes())
        .merge(crate::staking_api::routes())
        .merge(crate::data_api::routes())
        .merge(crate::validators_api::routes())
        .merge(crate::storage_api::routes(&app))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(l.max_body_bytes))
        .layer(middleware::map_request(move |req: Request| async move {
            req.map(|b| {
                axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, b))
            })
        }))
        .layer(middleware::from_fn_with_state(app.clone(), body_budget))
        .layer(middleware::from_fn_with_state(app.clone(), guard_ip))
        .layer(extension_cors())
        .with_state(app)
}

/// Cross-origin access for browser extensions only (the browser node calls the
/// gateway from its `chrome-extension://` origin, with no host permission);
/// web pages get no CORS grant, so no site can drive a visitor's gateway calls.
pub fn extension_cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(|origin, _| {
            let o = origin.as_bytes();
            o.starts_with(b"chrome-extension://") || o.starts_with(b"moz-extension://")
        }))
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600))
}

/// The most body bytes a route reads.
fn route_body_limit(app: &App, req: &Request) -> usize {
    let l = &app.limits;
    let p = req.uri().path();
    if p == lode_storage::wire::NODE_STORAGE_PATH {
        crate::storage_api::max_node_storage_bytes(app)
    } else if p.starts_with("/v1/storage/") && req.method() == axum::http::Method::PUT {
        app.storage
            .as_ref()
            .map_or(l.max_body_bytes, |s| s.cfg.max_file_bytes as usize)
    } else if p.starts_with("/v1/modules/") {
        l.max_module_bytes
    } else if p == wire::paths::NODE_POLL {
        l.max_node_bytes
    } else if p == "/v1/jobs" {
        l.max_job_bytes
    } else {
        l.max_body_bytes
    }
}

/// Request bodies share one memory budget: a request announcing (or, without a
/// length, allowed) more than 64 KiB holds its share of the budget while it is
/// handled, waits for it at most `body_wait`, and is refused with `503 busy`
/// when it cannot get it. Bodies larger than the route allows are refused
/// before a byte of them is read.
async fn body_budget(State(app): State<App>, req: Request, next: Next) -> Response {
    let limit = route_body_limit(&app, &req);
    let announced = match req.headers().get(header::CONTENT_LENGTH) {
        Some(v) => match v.to_str().ok().and_then(|s| s.parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => {
                return ApiError::bad_request(
                    "bad_content_length",
                    "Content-Length is not a number",
                )
                .into_response();
            }
        },
        None => None,
    };
    if let Some(n) = announced
        && n > limit
    {
        return ApiError::too_large(format!(
            "request body is {n} bytes; this route takes at most {limit}"
        ))
        .into_response();
    }
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let size = match announced {
        Some(n) => n,
        None if chunked => limit,
        None => 0,
    };
    if size <= BUDGET_UNIT {
        return next.run(req).await;
    }
    let total = (app.limits.body_budget_bytes / BUDGET_UNIT).max(1);
    let permits = size.div_ceil(BUDGET_UNIT).min(total) as u32;
    let got = tokio::time::timeout(
        app.limits.body_wait,
        app.budget.clone().acquire_many_owned(permits),
    )
    .await;
    match got {
        Ok(Ok(permit)) => {
            let r = next.run(req).await;
            drop(permit);
            r
        }
        _ => {
            app.metrics.bodies_refused.inc();
            let mut r = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many large requests in flight; retry shortly",
            )
            .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
    }
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

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
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
pub(crate) fn open_json<T: Message>(bytes: &[u8]) -> Result<(Envelope, Opened<T>), ApiError> {
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
    body: axum::body::Body,
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
    // Signature, freshness, funds and quota are checked before the body is read.
    let stored = {
        let mut core = app.lock();
        let now = now_ms();
        core.check_replay(&o, now)?;
        core.reserve_module(&o.signer, &h, o.message.size, now)?
    };
    if stored {
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "module": h.to_hex(), "size": o.message.size, "stored": true }),
        ));
    }
    let result = async {
        let bytes = axum::body::to_bytes(body, o.message.size as usize)
            .await
            .map_err(|e| {
                ApiError::bad_request(
                    "module_size_mismatch",
                    format!("body differs from the signed size or could not be read: {e}"),
                )
            })?;
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
        Ok(bytes.len())
    }
    .await;
    match result {
        Ok(size) => Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({ "module": h.to_hex(), "size": size }),
        )),
        Err(e) => {
            app.lock().release_module(&h);
            Err(e)
        }
    }
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

/// Cursor and page size of a list (`?before=`/`?after=`/`?from=` and `?limit=`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    before: Option<u64>,
    after: Option<String>,
    from: Option<u32>,
    limit: Option<u32>,
}

fn page_query(
    q: Result<Query<PageQuery>, QueryRejection>,
    default: u32,
    max: u32,
) -> Result<(PageQuery, usize), ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = check_limit(q.limit.map(u64::from), u64::from(default), u64::from(max))?;
    Ok((q, limit as usize))
}

/// A page size: `default` when absent, refused outside `1..=max`.
fn check_limit(limit: Option<u64>, default: u64, max: u64) -> Result<u64, ApiError> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}

/// Most jobs in one page of `GET /v1/jobs`.
pub const MAX_JOBS_PAGE: u32 = 1_000;
/// Most units in one page of results (a page also stops at [`RESULTS_PAGE_BYTES`]).
pub const MAX_RESULTS_PAGE: u32 = 10_000;
/// Output bytes after which a results page ends (at least one unit per page).
pub const RESULTS_PAGE_BYTES: usize = 4 << 20;
/// Most nodes in one page of `GET /v1/nodes`.
pub const MAX_NODES_PAGE: u32 = 5_000;

async fn list_jobs(
    State(app): State<App>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (q, limit) = page_query(q, 100, MAX_JOBS_PAGE)?;
    let (jobs, next) = app.lock().jobs_page(q.before.unwrap_or(u64::MAX), limit);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "jobs": jobs, "next": next }),
    ))
}

async fn job_status(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_hash(&id, "bad_job_id")?;
    let v = app.lock().job_view(&id).ok_or_else(|| {
        ApiError::not_found("unknown_job", format!("no job {id} on this gateway"))
    })?;
    Ok(json(StatusCode::OK, &v))
}

/// A results read by anyone but the job's requester gets exactly this.
fn results_not_found(id: &Hash32) -> ApiError {
    ApiError::not_found(
        "unknown_job",
        format!(
            "no job {id} whose results you may read here (results are readable only by the job's requester, with a signed {} header)",
            wire::READ_HEADER
        ),
    )
}

/// Results of a job, one page (`?from=UNIT&limit=N`; `next` is the next page's
/// `from`), readable only by the job's requester. The page is read from the store
/// and serialised outside the core lock, so large downloads do not stall others.
async fn job_results(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_hash(&id, "bad_job_id")?;
    let (q, limit) = page_query(q, 1_000, MAX_RESULTS_PAGE)?;
    let Some(read) = headers.get(wire::READ_HEADER) else {
        return Err(results_not_found(&id));
    };
    let (_, o) = open_json::<ReadJob>(read.as_bytes())?;
    let now = now_ms();
    let (seq, units, cancelled, db) = {
        let core = app.lock();
        core.check_fresh(o.timestamp_ms, now)?;
        match core.results_target(&id) {
            Some((seq, units, cancelled, requester))
                if requester == o.signer && o.message.job == id =>
            {
                (seq, units, cancelled, core.db())
            }
            _ => return Err(results_not_found(&id)),
        }
    };
    let from = q.from.unwrap_or(0).min(units);
    let to = from.saturating_add(limit as u32).min(units);
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let rows = db
            .outcomes_range(seq, from, to)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut by_unit: std::collections::HashMap<u32, crate::db::UnitOutcomeRecord> =
            rows.into_iter().collect();
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut bytes = 0usize;
        let mut end = from;
        for u in from..to {
            let o = by_unit.remove(&u);
            if let Some(crate::db::UnitOutcomeRecord::Verified { output, .. }) = &o {
                bytes = bytes.saturating_add(output.len());
            }
            out.push(crate::core::unit_result(u, o.as_ref(), cancelled));
            end = u + 1;
            if bytes > RESULTS_PAGE_BYTES {
                break;
            }
        }
        let next = (end < units).then_some(end);
        serde_json::to_vec(&serde_json::json!({
            "job": id.to_hex(),
            "units": out,
            "next": next,
        }))
        .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
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

/// Online nodes by did (`?after=DID&limit=N`; `next` is the next page's `after`).
async fn list_nodes(
    State(app): State<App>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (q, limit) = page_query(q, 1_000, MAX_NODES_PAGE)?;
    let mut nodes = app.lock().nodes_view();
    let key = |n: &serde_json::Value| n["node"].as_str().unwrap_or_default().to_string();
    nodes.sort_unstable_by_key(key);
    if let Some(after) = &q.after {
        nodes.retain(|n| key(n).as_str() > after.as_str());
    }
    let next = (nodes.len() > limit).then(|| key(&nodes[limit - 1]));
    nodes.truncate(limit);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "nodes": nodes, "next": next }),
    ))
}

/// The bounds every job submission is checked against, and the HTTP limits.
async fn limits(State(app): State<App>) -> Response {
    let knobs = app.lock().live_knobs();
    let ceiling = knobs.speed_ceiling;
    let l = &app.limits;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "job": lode_proto::limits::LimitsView::new(ceiling),
            // Governable defaults for jobs that do not set them (null: the
            // client's own default); see GET /v1/staking.
            "defaults": {
                "quorum": knobs.default_quorum,
                "max_replicas": knobs.default_replicas,
            },
            "http": {
                "max_module_bytes": l.max_module_bytes,
                "max_job_bytes": l.max_job_bytes,
                "max_node_bytes": l.max_node_bytes,
                "max_body_bytes": l.max_body_bytes,
                "body_timeout_ms": l.body_timeout.as_millis() as u64,
                "requests_per_second": l.requests_per_second,
                "burst": l.burst,
                "max_jobs_page": MAX_JOBS_PAGE,
                "max_results_page": MAX_RESULTS_PAGE,
                "max_nodes_page": MAX_NODES_PAGE,
            },
        }),
    )
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
            "guard_model": crate::data_api::published_model_json(&core),
        }),
    )
}

/// Most blocks in one page of `GET /v1/ledger/raw`.
pub const MAX_BLOCKS_PAGE: u64 = 256;
/// Bytes after which a page of blocks ends (at least one block per page).
pub const BLOCKS_PAGE_BYTES: usize = 8 << 20;

/// Raw blocks for anyone to replay (`lode ledger verify --from URL`): from
/// height `from` (default 0), at most `limit` (default and most 256) and about
/// 8 MiB; framed as `lode_ledger::raw` says (with each block's commit
/// certificate on a replicated chain). `X-Lode-Head` is the head height.
async fn ledger_raw(
    State(app): State<App>,
    q: Result<Query<crate::dashboard::BlocksQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = crate::dashboard::query(q)?;
    let limit = check_limit(q.limit, MAX_BLOCKS_PAGE, MAX_BLOCKS_PAGE)?;
    let from = q.from.unwrap_or(0);
    let core = app.lock();
    let l = core.ledger();
    let head = l.height();
    if from > head {
        return Err(ApiError::not_found(
            "unknown_block",
            format!("no block {from}: the head is {head}"),
        ));
    }
    let mut body = Vec::new();
    for h in from..=head.min(from.saturating_add(limit - 1)) {
        let block = l
            .block(h)
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(|| ApiError::internal(format!("block {h} missing from the store")))?;
        let bytes = block
            .to_bytes()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let cert = l
            .store()
            .certificate_bytes(h)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        lode_ledger::raw::push_frame(&mut body, &bytes, cert.as_deref());
        if body.len() >= BLOCKS_PAGE_BYTES {
            break;
        }
    }
    drop(core);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static("x-lode-head"),
                head.to_string(),
            ),
        ],
        body,
    )
        .into_response())
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
            "quarantined_jobs": core.quarantined().len(),
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

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method; see /openapi.json",
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no_such_route", "no such API route; see /openapi.json")
}
