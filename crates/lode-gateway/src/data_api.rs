//! Browser nodes over HTTP: signed reports in, the k-anonymous threat feed out.
//!
//! * `POST /v1/data/reports` — a signed [`DataReport`] (JSON envelope). Checked in
//!   this order, nothing stored before the last check: size → envelope and
//!   signature → freshness and replay → chain → domain (shape, then registrable
//!   domain by the Public Suffix List) → URL (only if sent: parses, its host is
//!   under the domain) → the node is registered on the ledger → rate limits (per
//!   node, per IP group or operator) → the book's rules ([`crate::data`]). The
//!   domain's record is committed (fsync) before the answer; credits and
//!   penalties then go to the ledger through the gateway's outbox.
//! * `POST /v1/data/heartbeat` — a signed [`DataHeartbeat`]: the node is online.
//! * `POST /v1/data/mine` — a signed [`ReadReports`]: the signer's own reports and
//!   their fate. Nobody else can list what a node reported.
//! * `GET /v1/data/feed` — listed (corroborated or confirmed) domains as 4-byte
//!   SHA-256 prefixes, as Safe Browsing does: a checking browser reveals nothing
//!   it visits, and asks for the full hashes of a prefix only on a match.
//! * `GET /v1/data/feed/{prefix}` — the full hashes (and status) under a prefix.
//! * `GET /v1/data/stats` — for the dashboard's Data view.
//! * `GET /v1/guard/model` — the classifier's model file, for browsers that score
//!   locally (opt-in); its hash is published on the ledger (`PublishModel`).
//! * `GET /v1/data/labels.tsv` — confirmed and rejected domains as labelled URLs,
//!   the network's contribution to `lode guard dataset --reports URL`.
//!
//! CORS: browsers may call these (and the few read endpoints the extension
//! needs) only from `chrome-extension://` origins; web pages get no CORS grant.

use crate::api_error::ApiError;
use crate::core::Core;
use crate::data::{Book, BookError, Change, Classifier, DataConfig, DomainRec, ReportRec};
use crate::http::{App, now_ms, open_json};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lode_ledger::entry::{Penalty, PenaltyReason, ReportCredit};
use lode_ledger::{ContributionKind, Entry};
use lode_proto::data::{
    DataHeartbeat, DataReport, MAX_REPORT_BODY_BYTES, MAX_REPORT_URL_BYTES, ReadReports,
    check_domain, domain_hash,
};
use lode_proto::{Did, Hash32};
use lode_sched::IpGroup;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Browser nodes tracked as online at once (oldest forgotten beyond).
const MAX_BROWSERS: usize = 100_000;
/// A browser node is online when its last heartbeat is this recent (the
/// extension sends one every two hours: this allows one to be missed).
pub const BROWSER_ONLINE_MS: u64 = 5 * 3_600_000;
/// Most reports `POST /v1/data/mine` returns.
const MAX_MINE: usize = 500;
/// Bytes of hash prefix in the feed.
pub const PREFIX_BYTES: usize = 4;
/// How often pending domains are checked for expiry.
const EXPIRE_EVERY_MS: u64 = 60_000;

/// The community classifier the gateway confirms with: `lode-guard`'s model.
#[derive(Debug)]
pub struct GuardClassifier(pub lode_guard::model::Model);

impl Classifier for GuardClassifier {
    /// The highest score of the domain's home page and the URLs reporters sent.
    fn score(&self, domain: &str, urls: &[&str]) -> f64 {
        let home = format!("https://{domain}/");
        std::iter::once(home.as_str())
            .chain(urls.iter().copied())
            .filter_map(|u| self.0.score(u).ok())
            .fold(0.0, f64::max)
    }
    fn threshold(&self) -> f64 {
        self.0.threshold
    }
}

/// The gateway's data side: the report book, online browser nodes, the model.
pub struct DataState {
    pub book: Book,
    browsers: HashMap<Did, (u64, u32)>,
    classifier: GuardClassifier,
    last_expire_ms: u64,
}

impl std::fmt::Debug for DataState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataState")
            .field("browsers", &self.browsers.len())
            .finish()
    }
}

impl DataState {
    pub fn new(cfg: DataConfig) -> Self {
        Self {
            book: Book::new(cfg),
            browsers: HashMap::new(),
            classifier: GuardClassifier(lode_guard::model::Model::default_model()),
            last_expire_ms: 0,
        }
    }

    /// Browser nodes seen within [`BROWSER_ONLINE_MS`].
    pub fn online(&self, now: u64) -> usize {
        self.browsers
            .values()
            .filter(|(t, _)| now.saturating_sub(*t) <= BROWSER_ONLINE_MS)
            .count()
    }
}

pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/v1/data/reports",
            post(submit_report).layer(DefaultBodyLimit::max(MAX_REPORT_BODY_BYTES)),
        )
        .route(
            "/v1/data/heartbeat",
            post(heartbeat).layer(DefaultBodyLimit::max(MAX_REPORT_BODY_BYTES)),
        )
        .route(
            "/v1/data/mine",
            post(mine).layer(DefaultBodyLimit::max(MAX_REPORT_BODY_BYTES)),
        )
        .route("/v1/data/feed", get(feed))
        .route("/v1/data/feed/{prefix}", get(feed_prefix))
        .route("/v1/data/stats", get(stats))
        .route("/v1/guard/model", get(guard_model))
        .route("/v1/data/labels.tsv", get(labels))
}

/// The network's labels for retraining the classifier, in `lode guard`'s dataset
/// format: confirmed domains as phishing, domains judged benign (false positives
/// users flagged) as benign. Only decided domains, which k groups reported.
async fn labels(State(app): State<App>) -> Response {
    let core = app.lock();
    let (confirmed, rejected) = core.data.book.labels();
    let mut out = String::from(lode_guard::dataset::HEADER);
    out.push('\n');
    for (label, source, list) in [
        ("phishing", "lode-confirmed-reports", &confirmed),
        ("benign", "lode-false-positives", &rejected),
    ] {
        for d in list.iter() {
            out.push_str(&format!("{label}\t{source}\thttps://{d}/\n"));
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/tab-separated-values; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The community classifier's model file (self-hashed: `lode guard` and the
/// extension's `loadModel` refuse a file whose recorded SHA-256 does not match).
async fn guard_model() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        lode_guard::model::DEFAULT_MODEL,
    )
        .into_response()
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "a signed data message is at most {MAX_REPORT_BODY_BYTES} bytes: {e}"
            ))
        } else {
            ApiError::bad_request("bad_body", e.to_string())
        }
    })
}

fn wrong_chain(found: &Hash32, core: &Core) -> Result<(), ApiError> {
    let expected = core.ledger().chain_id();
    if *found != expected {
        return Err(ApiError::bad_request(
            "wrong_chain",
            format!(
                "the message is signed for chain {found}; this gateway's chain is {expected} (GET /v1/ledger)"
            ),
        ));
    }
    Ok(())
}

/// The reporter's IP group, by the rule compute nodes are grouped by.
fn ip_group(core: &Core, ip: IpAddr, node: &Did) -> u128 {
    let g = if core.cfg.loopback_distinct && ip.is_loopback() {
        IpGroup::from_u64(u64::from_be_bytes(
            node.public_key_bytes()[..8].try_into().unwrap_or_default(),
        ))
    } else {
        IpGroup::from_ip(ip)
    };
    g.0
}

/// Checks the domain and the optional URL of a report.
fn check_target(domain: &str, url: Option<&str>) -> Result<(), ApiError> {
    check_domain(domain).map_err(|e| ApiError::bad_request("bad_domain", e.to_string()))?;
    let registrable = lode_guard::features::registrable_domain(domain);
    // A public suffix (`co.uk`) is its own "registrable domain" to the PSL lookup;
    // a name under it then is registrable, which a registrable domain's is not.
    let suffix = lode_guard::features::registrable_domain(&format!("a.{domain}")) != domain;
    if suffix {
        return Err(ApiError::bad_request(
            "not_registrable_domain",
            format!(
                "{domain:?} is a public suffix, not a site: report the site's registrable domain"
            ),
        ));
    }
    if registrable != domain {
        return Err(ApiError::bad_request(
            "not_registrable_domain",
            format!(
                "report the registrable domain (eTLD+1): {domain:?} is not one; its registrable domain is {registrable:?}"
            ),
        ));
    }
    if let Some(u) = url {
        if u.len() > MAX_REPORT_URL_BYTES {
            return Err(ApiError::bad_request(
                "bad_url",
                format!(
                    "the URL is {} bytes, the limit is {MAX_REPORT_URL_BYTES}",
                    u.len()
                ),
            ));
        }
        let parts = lode_guard::features::parse_url(u).map_err(|e| {
            ApiError::bad_request("bad_url", format!("the URL does not parse: {e}"))
        })?;
        if lode_guard::features::registrable_domain(&parts.host) != domain {
            return Err(ApiError::bad_request(
                "bad_url",
                format!("the URL's host {:?} is not under {domain:?}", parts.host),
            ));
        }
    }
    Ok(())
}

async fn submit_report(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(b)?;
    let (_, o) = open_json::<DataReport>(&bytes)?;
    let now = now_ms();
    let mut core = app.lock();
    core.check_replay(&o, now)?;
    let m = &o.message;
    wrong_chain(&m.chain, &core)?;
    check_target(&m.domain, m.url.as_deref())?;
    let node = o.signer;
    let operator = core
        .ledger()
        .state()
        .node(&node)
        .map(|n| n.operator)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "not_registered",
                format!(
                    "{node} is not a registered node: register it first (a signed register_node entry to POST /v1/entries) so that confirmed reports can be paid"
                ),
            )
        })?;
    let rec = ReportRec {
        node,
        group: ip_group(&core, peer.ip(), &node),
        operator,
        ts_ms: now,
        category: m.category,
        source: m.source,
        verdict: m.verdict,
        url: m.url.clone(),
    };
    let domain = m.domain.clone();
    let before = core.data.book.get(&domain).cloned();
    let st = &mut core.data;
    let added = st
        .book
        .add(&domain, rec, now, &st.classifier)
        .map_err(|e| match e {
            BookError::NodeRate(_) | BookError::GroupRate(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
            }
            BookError::Full(_) | BookError::NodeFull(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
            }
        })?;
    if !added.duplicate {
        let after = core.data.book.get(&domain).cloned();
        if let Err(e) = core.db().data_put(&[(domain.as_str(), after.as_ref())]) {
            // Not durable: undo in memory and say so.
            core.data.book.restore(&domain, before);
            return Err(ApiError::internal(format!(
                "the report could not be stored: {e}"
            )));
        }
        core.metrics.data_reports.inc();
        apply_changes(&mut core, &added.changes);
    }
    let status = added.status.as_str();
    let v = json!({
        "domain": domain,
        "domain_hash": domain_hash(&domain).to_hex(),
        "status": status,
        "duplicate": added.duplicate,
        "listed": added.status.listed(),
    });
    Ok((
        if added.duplicate {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        axum::Json(v),
    )
        .into_response())
}

/// Turns the book's decisions into ledger entries (kept in the outbox until sealed).
fn apply_changes(core: &mut Core, changes: &[Change]) {
    let units = core.data.book.config().report_units.max(1);
    let weight = core
        .ledger()
        .state()
        .genesis()
        .weight(ContributionKind::Report);
    for c in changes {
        match c {
            Change::Credit {
                domain,
                nodes,
                groups,
                rule,
            } => {
                if weight.is_none() {
                    tracing::warn!(%domain, "the genesis gives reports no weight: confirmed reports are not credited");
                    continue;
                }
                for n in nodes {
                    let h = domain_hash(domain);
                    if core.ledger().state().is_report_credited(&h, n) {
                        continue;
                    }
                    let mut detail = format!("{domain} confirmed: {rule}");
                    detail.truncate(lode_ledger::entry::MAX_TEXT_LEN);
                    core.submit_gateway_entry(Entry::ReportCredit(ReportCredit {
                        domain: h,
                        node: *n,
                        amount: units,
                        groups: *groups,
                        detail,
                    }));
                }
            }
            Change::Penalize {
                domain,
                nodes,
                evidence,
            } => {
                let forfeit = u128::from(units) * u128::from(weight.unwrap_or(0));
                for n in nodes {
                    if core.ledger().state().node(n).is_none() {
                        continue;
                    }
                    let mut detail = evidence.clone();
                    detail.truncate(lode_ledger::entry::MAX_TEXT_LEN);
                    core.submit_gateway_entry(Entry::Penalty(Penalty {
                        node: *n,
                        reason: PenaltyReason::BenignReport,
                        job: None,
                        unit: None,
                        forfeit_weight: forfeit,
                        detail,
                    }));
                    tracing::info!(node = %n, %domain, "report judged benign: penalized");
                }
            }
        }
    }
}

/// The ledger name of the scam classifier's model.
pub const GUARD_MODEL_NAME: &str = "scam-classifier";

/// Publishes the hash of the model this gateway serves (`GET /v1/guard/model`)
/// on the ledger when the ledger's record differs, so browsers can check it.
fn publish_model(core: &mut Core) {
    let model = &core.data.classifier.0;
    let Ok((_, sha)) = lode_guard::model::Model::from_file_text(lode_guard::model::DEFAULT_MODEL)
    else {
        return;
    };
    let Ok(sha256) = sha.parse::<Hash32>() else {
        return;
    };
    let published = core
        .ledger()
        .state()
        .published_model(GUARD_MODEL_NAME)
        .map(|r| r.sha256);
    if published == Some(sha256) {
        return;
    }
    let entry = Entry::PublishModel(lode_ledger::entry::PublishModel {
        name: GUARD_MODEL_NAME.into(),
        sha256,
        feature_version: model.feature_version,
        detail: format!(
            "lode-guard model served at GET /v1/guard/model (threshold {:.3})",
            model.threshold
        ),
    });
    tracing::info!(%sha256, "publishing the scam classifier's hash on the ledger");
    core.submit_gateway_entry(entry);
}

/// The published model as `GET /v1/ledger` shows it.
pub fn published_model_json(core: &Core) -> Value {
    match core.ledger().state().published_model(GUARD_MODEL_NAME) {
        Some(r) => json!({
            "name": GUARD_MODEL_NAME,
            "sha256": r.sha256.to_hex(),
            "feature_version": r.feature_version,
            "height": r.height,
        }),
        None => Value::Null,
    }
}

/// Loads the stored book (at start); a record that does not decode is skipped with a warning.
pub fn recover(core: &mut Core) -> Result<(), crate::GatewayError> {
    publish_model(core);
    let (recs, bad) = core.db().data_domains()?;
    for d in bad {
        tracing::warn!(domain = %d, "reported-domain record does not decode; skipped");
    }
    let n = recs.len();
    // A crash between storing a confirmation and handing its credits to the
    // ledger's outbox: credit what the ledger does not have yet.
    let owed: Vec<Change> = recs
        .iter()
        .filter_map(|r| match &r.status {
            crate::data::DomainStatus::Confirmed { rule, .. } => Some(Change::Credit {
                domain: r.domain.clone(),
                nodes: r.credited.clone(),
                groups: r.credited.len() as u32,
                rule: rule.clone(),
            }),
            _ => None,
        })
        .collect();
    core.data.book.load(recs);
    apply_changes(core, &owed);
    if n > 0 {
        tracing::info!(domains = n, "report book loaded");
    }
    Ok(())
}

/// Periodic: drops expired pending domains (memory and store).
pub fn tick(core: &mut Core, now: u64) {
    if now.saturating_sub(core.data.last_expire_ms) < EXPIRE_EVERY_MS {
        return;
    }
    core.data.last_expire_ms = now;
    let gone = core.data.book.expire(now);
    if gone.is_empty() {
        return;
    }
    let rows: Vec<(&str, Option<&DomainRec>)> = gone.iter().map(|d| (d.as_str(), None)).collect();
    if let Err(e) = core.db().data_put(&rows) {
        tracing::error!(error = %e, "expired reports not deleted from the store");
    }
}

async fn heartbeat(
    State(app): State<App>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(b)?;
    let (_, o) = open_json::<DataHeartbeat>(&bytes)?;
    let now = now_ms();
    let mut core = app.lock();
    core.check_replay(&o, now)?;
    wrong_chain(&o.message.chain, &core)?;
    let registered = core.ledger().state().node(&o.signer).is_some();
    let st = &mut core.data;
    if st.browsers.len() >= MAX_BROWSERS && !st.browsers.contains_key(&o.signer) {
        let oldest = st
            .browsers
            .iter()
            .min_by_key(|(_, (t, _))| *t)
            .map(|(d, _)| *d);
        if let Some(d) = oldest {
            st.browsers.remove(&d);
        }
    }
    st.browsers
        .insert(o.signer, (now, o.message.categories & 0b111));
    let online = st.online(now);
    Ok(axum::Json(json!({
        "node": o.signer.to_string(),
        "online": true,
        "registered": registered,
        "browser_nodes_online": online,
        "next_heartbeat_ms": 7_200_000u64,
    }))
    .into_response())
}

async fn mine(
    State(app): State<App>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(b)?;
    let (_, o) = open_json::<ReadReports>(&bytes)?;
    let now = now_ms();
    let mut core = app.lock();
    core.check_replay(&o, now)?;
    wrong_chain(&o.message.chain, &core)?;
    let reports = core.data.book.mine(&o.signer, MAX_MINE);
    let k = core.data.book.config().k;
    Ok(axum::Json(json!({
        "node": o.signer.to_string(),
        "k": k,
        "reports": reports,
    }))
    .into_response())
}

async fn feed(State(app): State<App>) -> Response {
    let core = app.lock();
    let book = &core.data.book;
    let mut prefixes: Vec<String> = book
        .listed()
        .keys()
        .map(|h| hex::encode(&h.0[..PREFIX_BYTES]))
        .collect();
    prefixes.dedup();
    axum::Json(json!({
        "version": book.feed_version(),
        "hash": "sha256",
        "prefix_bytes": PREFIX_BYTES,
        "count": book.listed().len(),
        "prefixes": prefixes,
    }))
    .into_response()
}

async fn feed_prefix(
    State(app): State<App>,
    Path(prefix): Path<String>,
) -> Result<Response, ApiError> {
    let bytes = hex::decode(&prefix)
        .ok()
        .filter(|b| b.len() == PREFIX_BYTES)
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_prefix",
                format!("a feed prefix is {} hex digits", PREFIX_BYTES * 2),
            )
        })?;
    let mut lo = [0u8; 32];
    lo[..PREFIX_BYTES].copy_from_slice(&bytes);
    let mut hi = [0xffu8; 32];
    hi[..PREFIX_BYTES].copy_from_slice(&bytes);
    let core = app.lock();
    let book = &core.data.book;
    let hashes: Vec<Value> = book
        .listed()
        .range(Hash32(lo)..=Hash32(hi))
        .filter_map(|(h, d)| {
            book.get(d)
                .map(|r| json!({ "hash": h.to_hex(), "status": r.status.as_str() }))
        })
        .collect();
    Ok(axum::Json(json!({ "prefix": prefix.to_lowercase(), "hashes": hashes })).into_response())
}

async fn stats(State(app): State<App>) -> Response {
    let now = now_ms();
    let core = app.lock();
    let book = &core.data.book;
    let (pending, corroborated, confirmed, rejected) = book.counts();
    let today = now / 86_400_000;
    let counted = book.per_day();
    // Every one of the last 14 days, quiet ones as 0.
    let per_day: Vec<Value> = (today.saturating_sub(13)..=today)
        .map(|d| {
            let n = counted.get(&d).copied().unwrap_or(0);
            json!({ "day_ms": d * 86_400_000, "reports": n })
        })
        .collect();
    let top: Vec<Value> = book
        .top_contributors(10)
        .into_iter()
        .map(|(d, n)| json!({ "node": d.to_string(), "confirmed_reports": n }))
        .collect();
    axum::Json(json!({
        "k": book.config().k,
        "window_ms": book.config().window_ms,
        "feed_size": corroborated + confirmed,
        "domains": {
            "pending": pending,
            "corroborated": corroborated,
            "confirmed": confirmed,
            "rejected": rejected,
        },
        "reports_per_day": per_day,
        "top_contributors": top,
        "browser_nodes_online": core.data.online(now),
    }))
    .into_response()
}
