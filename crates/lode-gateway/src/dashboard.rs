//! The live web dashboard: a single page (HTML, CSS and JavaScript written for
//! Lode, embedded in the binary, no external requests), the JSON snapshot it
//! renders, and a Server-Sent Events stream that pushes a fresh snapshot when
//! something changed.
//!
//! * `GET /`, `/dashboard`: the page; `/assets/{file}`: its script, style, icon.
//!   Served with a strict `Content-Security-Policy` (`default-src 'self'`).
//! * `GET /v1/dashboard`: one snapshot (nodes, jobs, throughput, leaderboard,
//!   tokenomics, ledger head). `GET /v1/events`: the same, pushed.
//! * The block explorer and earnings endpoints are in [`crate::explorer`].
//!
//! A periodic task of the gateway ([`sample`]) samples the metrics counters every
//! [`SAMPLE_PERIOD`]: it keeps the throughput ring and bumps a change counter
//! when a counter moved. Event streams wait on that counter (so at most one
//! event per period per client), build the snapshot under the core lock (never
//! across an await) and end when the client goes away or the gateway stops.

use crate::api_error::ApiError;
use crate::explorer;
use crate::http::{App, now_ms};
use crate::metrics::Metrics;
use crate::ratelimit::ConnectionCounter;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const FAVICON_SVG: &str = include_str!("../assets/favicon.svg");

/// The XML namespace of SVG (the only URL-like text in the assets; never fetched).
pub const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// What the page may load: only its own origin, no inline code, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How often the metrics are sampled (and at most how often a stream sends).
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(500);
/// Concurrent event streams one client address may hold.
pub const MAX_EVENT_STREAMS_PER_IP: u32 = 8;
/// Seconds of throughput history in a snapshot.
pub const THROUGHPUT_WINDOW_S: u64 = 120;
/// Seconds kept in the throughput ring.
const THROUGHPUT_KEEP_S: usize = 600;
/// Newest jobs in a snapshot.
pub const RECENT_JOBS: usize = 20;
/// Most nodes listed in a snapshot (the count is always exact).
pub const MAX_NODES_SHOWN: usize = 200;
/// Keep-alive comment interval of event streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Verified units per second, from samples of the cumulative counter.
#[derive(Debug, Default)]
pub struct Throughput {
    /// (second, cumulative verified units at the last sample in that second).
    samples: VecDeque<(u64, u64)>,
}

impl Throughput {
    /// Records the cumulative count `total` at time `now_ms`.
    pub fn record(&mut self, now_ms: u64, total: u64) {
        let sec = now_ms / 1000;
        match self.samples.back_mut() {
            Some((s, c)) if *s == sec => *c = total,
            Some((s, _)) if *s > sec => {} // the clock went back: ignore
            _ => self.samples.push_back((sec, total)),
        }
        while self.samples.len() > THROUGHPUT_KEEP_S {
            self.samples.pop_front();
        }
    }

    /// Units verified in each of the `seconds` seconds up to `now_ms`, oldest
    /// first, as `[second, units]`. Units counted between two samples are
    /// attributed to the later sample's second.
    pub fn series(&self, now_ms: u64, seconds: u64) -> Vec<[u64; 2]> {
        let end = now_ms / 1000;
        let start = (end + 1).saturating_sub(seconds);
        let mut out: Vec<[u64; 2]> = (start..=end).map(|s| [s, 0]).collect();
        for (a, b) in self.samples.iter().zip(self.samples.iter().skip(1)) {
            if b.0 >= start
                && let Some(slot) = out.get_mut((b.0 - start) as usize)
            {
                slot[1] += b.1.saturating_sub(a.1);
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tick {
    version: u64,
    closing: bool,
}

#[derive(Debug, Default)]
struct Sampler {
    fingerprint: [u64; 10],
    pushed_sec: u64,
}

fn fingerprint(m: &Metrics) -> [u64; 10] {
    [
        m.jobs_submitted.get(),
        m.jobs_finished.get(),
        m.units_assigned.get(),
        m.units_verified.get(),
        m.units_failed.get(),
        m.results_received.get(),
        m.leases_lost.get(),
        m.flags_raised.get(),
        m.blocks_sealed.get(),
        m.nodes_online.get(),
    ]
}

/// The dashboard's live state: the throughput ring, change ticks and the
/// per-address count of open event streams.
#[derive(Debug)]
pub struct Dashboard {
    throughput: Mutex<Throughput>,
    sampler: Mutex<Sampler>,
    streams: Mutex<ConnectionCounter>,
    ticks: watch::Sender<Tick>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self {
            throughput: Mutex::default(),
            sampler: Mutex::default(),
            streams: Mutex::default(),
            ticks: watch::channel(Tick::default()).0,
        }
    }
}

impl Dashboard {
    /// Takes one sample; returns whether streams were told that something changed:
    /// a counter moved, or (once a second) the throughput window is not all zero.
    pub fn sample(&self, m: &Metrics, now_ms: u64) -> bool {
        let active = {
            let mut t = locked(&self.throughput);
            t.record(now_ms, m.units_verified.get());
            t.series(now_ms, THROUGHPUT_WINDOW_S)
                .iter()
                .any(|[_, n]| *n > 0)
        };
        let fp = fingerprint(m);
        let sec = now_ms / 1000;
        let mut s = locked(&self.sampler);
        let changed = fp != s.fingerprint || (active && sec != s.pushed_sec);
        if changed {
            s.fingerprint = fp;
            s.pushed_sec = sec;
            self.ticks
                .send_modify(|t| t.version = t.version.wrapping_add(1));
        }
        changed
    }

    /// Ends every event stream (at shutdown, so that open dashboards do not
    /// hold the graceful shutdown).
    pub fn close(&self) {
        self.ticks.send_modify(|t| t.closing = true);
    }

    pub fn throughput(&self, now_ms: u64) -> Vec<[u64; 2]> {
        locked(&self.throughput).series(now_ms, THROUGHPUT_WINDOW_S)
    }

    /// Open event streams from `ip`'s address group.
    pub fn streams_open(&self, ip: IpAddr) -> u32 {
        locked(&self.streams).open_for(ip)
    }
}

/// One throughput sample (the gateway takes one every [`SAMPLE_PERIOD`]).
pub fn sample(app: &App) {
    app.dashboard().sample(app.metrics(), now_ms());
}

/// The snapshot the page renders. Takes the core lock once, briefly.
pub fn snapshot(app: &App) -> Value {
    let now = now_ms();
    let m = app.metrics();
    let throughput = app.dashboard().throughput(now);
    let core = app.lock();
    let st = core.ledger().state();
    let mut nodes = core.nodes_view();
    let nodes_online = nodes.len();
    nodes.sort_by(|a, b| a["node"].as_str().cmp(&b["node"].as_str()));
    nodes.truncate(MAX_NODES_SHOWN);
    for n in &mut nodes {
        let did = n["node"].as_str().and_then(|s| s.parse().ok());
        let earned = did
            .and_then(|d| st.node(&d))
            .map_or(0, |x| x.fees_total.saturating_add(x.rewards_total));
        n["earned"] = json!(earned.to_string());
        n["reputation_max"] = json!(lode_sched::REPUTATION_MAX);
    }
    let storage = app.storage.as_ref().map(|s| {
        let (files, stored_bytes, audits_passed, audits_failed, repairs) = s.totals();
        json!({
            "files": files,
            "stored_bytes": stored_bytes,
            "audits_passed": audits_passed,
            "audits_failed": audits_failed,
            "repairs": repairs,
        })
    });
    let (jobs, _) = core.jobs_page(u64::MAX, RECENT_JOBS);
    let jobs_total = core.jobs_total();
    let l = core.ledger();
    json!({
        "now_ms": now,
        "version": env!("CARGO_PKG_VERSION"),
        "nodes_online": nodes_online,
        "nodes": nodes,
        "jobs_total": jobs_total,
        "jobs": jobs,
        "throughput": {
            "window_s": THROUGHPUT_WINDOW_S,
            "series": throughput,
        },
        "totals": {
            "jobs_submitted": m.jobs_submitted.get(),
            "jobs_finished": m.jobs_finished.get(),
            "units_verified": m.units_verified.get(),
            "units_failed": m.units_failed.get(),
            "results_received": m.results_received.get(),
            "earned": st.totals().fees_paid.saturating_add(st.totals().rewards_paid).to_string(),
        },
        "storage": storage,
        "leaderboard": explorer::leaderboard(st, explorer::LEADERBOARD_LEN),
        "tokenomics": explorer::tokenomics(st),
        "ledger": {
            "chain_id": l.chain_id().to_hex(),
            "validator": l.validator().to_string(),
            "height": l.height(),
            "head_hash": st.head_hash().to_hex(),
            "pending_entries": l.pending_len(),
            "epoch": st.epoch(),
            "epoch_ends_at_ms": st.epoch_end_ms(),
        },
    })
}

/// The dashboard's routes (merged into the gateway's router).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard", get(page))
        .route("/assets/{file}", get(asset))
        .route("/v1/dashboard", get(get_snapshot))
        .route("/v1/events", get(events))
        .route("/v1/ledger/blocks", get(blocks))
        .route("/v1/ledger/blocks/{height}", get(block))
        .route("/v1/accounts/{did}/earnings", get(earnings))
}

fn static_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    static_response("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (ct, body) = match file.as_str() {
        "dashboard.js" => ("text/javascript; charset=utf-8", DASHBOARD_JS),
        "dashboard.css" => ("text/css; charset=utf-8", DASHBOARD_CSS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => {
            return Err(ApiError::not_found(
                "unknown_asset",
                format!("no dashboard asset {file:?}"),
            ));
        }
    };
    Ok(static_response(ct, body))
}

async fn get_snapshot(State(app): State<App>) -> Response {
    axum::Json(snapshot(&app)).into_response()
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

/// A page of blocks: below `before` (explorer, newest first) or from `from`
/// (raw blocks, oldest first), at most `limit`.
#[derive(Debug, Deserialize)]
pub(crate) struct BlocksQuery {
    before: Option<u64>,
    pub(crate) from: Option<u64>,
    pub(crate) limit: Option<u64>,
}

async fn blocks(
    State(app): State<App>,
    q: Result<Query<BlocksQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    Ok(axum::Json(explorer::blocks_page(&app, q.before, q.limit)?).into_response())
}

#[derive(Debug, Deserialize)]
struct BlockQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn block(
    State(app): State<App>,
    Path(height): Path<String>,
    q: Result<Query<BlockQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    Ok(axum::Json(explorer::block_view(&app, &height, q.offset, q.limit)?).into_response())
}

async fn earnings(State(app): State<App>, Path(did): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(explorer::earnings(&app, &did)?).into_response())
}

/// One open event stream, counted against its client address until dropped.
struct StreamSlot {
    app: App,
    ip: IpAddr,
}

impl StreamSlot {
    fn open(app: &App, ip: IpAddr) -> Result<Self, ApiError> {
        let max = MAX_EVENT_STREAMS_PER_IP;
        if !locked(&app.dashboard().streams).try_open(ip, max) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!("at most {max} event streams per address; close a dashboard tab"),
            ));
        }
        Ok(Self {
            app: app.clone(),
            ip,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        locked(&self.app.dashboard().streams).close(self.ip);
    }
}

/// `GET /v1/events`: `event: snapshot` at once, then after each change (at
/// most one per [`SAMPLE_PERIOD`]); keep-alive comments in between.
async fn events(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiError> {
    let slot = StreamSlot::open(&app, peer.ip())?;
    let rx = app.dashboard().ticks.subscribe();
    let stream =
        futures_util::stream::unfold((slot, rx, true), |(slot, mut rx, first)| async move {
            if !first {
                tokio::time::sleep(SAMPLE_PERIOD).await;
                rx.changed().await.ok()?;
            }
            if rx.borrow_and_update().closing {
                return None;
            }
            let data = snapshot(&slot.app).to_string();
            let event = Event::default().event("snapshot").data(data);
            Some((Ok::<_, Infallible>(event), (slot, rx, false)))
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_counts_units_per_second() {
        let mut t = Throughput::default();
        t.record(10_000, 5);
        t.record(10_500, 7); // same second: replaces
        t.record(11_200, 10);
        t.record(13_900, 16); // seconds 12 missing: counted at 13
        let s = t.series(13_999, 5);
        assert_eq!(s, vec![[9, 0], [10, 0], [11, 3], [12, 0], [13, 6]]);
        // The clock going back is ignored.
        t.record(12_000, 100);
        assert_eq!(t.series(13_000, 1), vec![[13, 6]]);
        // Old samples fall out of the ring.
        for i in 0..2_000u64 {
            t.record(20_000 + i * 1000, 100 + i);
        }
        assert_eq!(t.samples.len(), THROUGHPUT_KEEP_S);
        assert_eq!(t.series(20_000 + 1_999_000, 2), vec![[2018, 1], [2019, 1]]);
    }

    #[test]
    fn sampling_ticks_only_on_change() {
        let d = Dashboard::default();
        let m = Metrics::default();
        let rx = d.ticks.subscribe();
        assert!(!d.sample(&m, 1_000), "nothing moved");
        m.results_received.inc();
        assert!(d.sample(&m, 2_000));
        assert!(!d.sample(&m, 2_500));
        // Verified work keeps the chart moving once a second while it is in the window.
        m.units_verified.add(3);
        assert!(d.sample(&m, 3_000));
        assert!(!d.sample(&m, 3_400));
        assert!(d.sample(&m, 4_000));
        assert!(!d.sample(&m, 4_100));
        assert!(d.sample(&m, (3 + THROUGHPUT_WINDOW_S - 1) * 1000));
        assert!(!d.sample(&m, (3 + THROUGHPUT_WINDOW_S) * 1000));
        assert_eq!(rx.borrow().version, 4);
        d.close();
        assert!(rx.borrow().closing);
    }

    #[test]
    fn assets_have_no_external_references() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("dashboard.css", DASHBOARD_CSS),
            ("dashboard.js", DASHBOARD_JS),
            ("favicon.svg", FAVICON_SVG),
        ] {
            // The SVG namespace is a name, not something the browser fetches.
            let lower = text.to_ascii_lowercase().replace(SVG_NAMESPACE, "");
            for bad in [
                "http:", "https:", "//cdn", "@import", "url(", "<script>", " style=",
            ] {
                assert!(!lower.contains(bad), "{name} contains {bad:?}");
            }
        }
    }
}
