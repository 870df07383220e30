//! `GET /v1/validators`: who decides this chain's blocks, for the dashboard.
//!
//! * On a replicated chain (genesis `[consensus]`, the gateway is a follower)
//!   the gateway asks each validator it knows (`GatewayConfig::validators`)
//!   for `GET /v1/status`, concurrently and with a short timeout, and merges
//!   the answers: the chain height (the highest reported), each validator's
//!   power and last signed height, whether it is online (its status endpoint
//!   answered *and* it signed one of the last [`ONLINE_WITHIN`] blocks), the
//!   finality latency the answering validators measured, and the recent
//!   blocks with their signers (from the freshest answer). The merged view is
//!   cached for [`CACHE_FOR`], and concurrent requests share one round of
//!   fetches, so polling dashboards do not multiply the validators' load.
//! * On a chain this gateway seals itself it answers
//!   `{"replicated": false, "validators": [the gateway's signer]}`.

use crate::http::App;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one validator may take to answer its status.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a merged view is served before the validators are asked again.
pub const CACHE_FOR: Duration = Duration::from_millis(1_000);
/// A validator is online when it signed one of this many newest blocks.
pub const ONLINE_WITHIN: u64 = 5;
/// Recent blocks listed.
pub const RECENT_BLOCKS: usize = 10;
/// Largest status body read from a validator.
const MAX_STATUS_BYTES: usize = 1 << 20;

/// The validators' status endpoints and the cached merged view.
#[derive(Debug)]
pub struct ValidatorsView {
    urls: Vec<String>,
    http: Option<reqwest::Client>,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    at: Option<Instant>,
    view: Value,
    /// Which validator (did) each URL turned out to be, from earlier answers:
    /// a validator that stops answering keeps its URL in the view.
    did_of: BTreeMap<String, String>,
}

impl ValidatorsView {
    /// Base URLs (`http://host:port`) of the validators.
    pub fn new(urls: Vec<String>) -> Arc<ValidatorsView> {
        let urls: Vec<String> = urls
            .into_iter()
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        // The async client: built here, used by the handlers on the runtime.
        let http = match reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
        {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for the validators' status");
                None
            }
        };
        Arc::new(ValidatorsView {
            urls,
            http,
            cache: tokio::sync::Mutex::default(),
        })
    }

    /// The merged view, from the cache when it is fresh enough.
    pub async fn view(&self) -> Value {
        // Held across the fetches: concurrent requests wait for one round.
        let mut cache = self.cache.lock().await;
        if let Some(at) = cache.at
            && at.elapsed() < CACHE_FOR
        {
            return cache.view.clone();
        }
        let answers = self.fetch_all().await;
        for (url, a) in &answers {
            if let Ok(status) = a
                && let Some(did) = status.get("validator").and_then(Value::as_str)
            {
                cache.did_of.insert(url.clone(), did.to_string());
            }
        }
        let view = merge(&answers, &cache.did_of);
        cache.view = view.clone();
        cache.at = Some(Instant::now());
        view
    }

    async fn fetch_all(&self) -> Vec<(String, Result<Value, String>)> {
        let Some(http) = &self.http else {
            return self
                .urls
                .iter()
                .map(|u| (u.clone(), Err("no HTTP client".to_string())))
                .collect();
        };
        let asks = self
            .urls
            .iter()
            .map(|base| async move { (base.clone(), fetch_status(http, base).await) });
        futures_util::future::join_all(asks).await
    }
}

fn why(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.without_url().to_string()
    }
}

async fn fetch_status(http: &reqwest::Client, base: &str) -> Result<Value, String> {
    let resp = http
        .get(format!("{base}/v1/status"))
        .send()
        .await
        .map_err(why)?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_STATUS_BYTES as u64)
    {
        return Err("status too large".into());
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if body.len() > MAX_STATUS_BYTES {
        return Err("status too large".into());
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("status is not an object".into());
    }
    Ok(v)
}

/// Merges the validators' status answers (`(url, answer)`) into one view.
/// `did_of` names the validator behind each URL (from this or earlier rounds).
pub fn merge(
    answers: &[(String, Result<Value, String>)],
    did_of: &BTreeMap<String, String>,
) -> Value {
    let ok: Vec<(&String, &Value)> = answers
        .iter()
        .filter_map(|(u, a)| a.as_ref().ok().map(|v| (u, v)))
        .collect();
    let height = ok
        .iter()
        .filter_map(|(_, v)| v.get("height").and_then(Value::as_u64))
        .max();
    // The freshest answer: the highest height (the first such in list order).
    let freshest = ok
        .iter()
        .filter(|(_, v)| v.get("height").and_then(Value::as_u64) == height)
        .map(|(_, v)| *v)
        .next();

    // The validator set, as the freshest answer sees it (power, order); any
    // validator only another answer lists is added after it.
    let mut order: Vec<String> = Vec::new();
    let mut power: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_signed: BTreeMap<String, u64> = BTreeMap::new();
    for v in freshest.into_iter().chain(ok.iter().map(|(_, v)| *v)) {
        for e in v
            .get("validators")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(did) = e.get("did").and_then(Value::as_str) else {
                continue;
            };
            if !power.contains_key(did) {
                order.push(did.to_string());
                power.insert(
                    did.to_string(),
                    e.get("power").and_then(Value::as_u64).unwrap_or(0),
                );
            }
            if let Some(l) = e.get("last_signed_height").and_then(Value::as_u64) {
                let slot = last_signed.entry(did.to_string()).or_insert(l);
                *slot = (*slot).max(l);
            }
        }
    }
    // A URL whose validator is not in the set (yet): still listed.
    for did in did_of.values() {
        if !power.contains_key(did) {
            order.push(did.clone());
            power.insert(did.clone(), 0);
        }
    }

    let answered: BTreeMap<&str, (&String, &Value)> = ok
        .iter()
        .filter_map(|(u, v)| {
            v.get("validator")
                .and_then(Value::as_str)
                .map(|d| (d, (*u, *v)))
        })
        .collect();
    let url_of: BTreeMap<&str, &String> = did_of.iter().map(|(u, d)| (d.as_str(), u)).collect();
    let h = height.unwrap_or(0);
    let validators: Vec<Value> = order
        .iter()
        .map(|did| {
            let last = last_signed.get(did).copied();
            let me = answered.get(did.as_str());
            let signed_recently = last.is_some_and(|l| l + ONLINE_WITHIN >= h);
            json!({
                "did": did,
                "power": power.get(did).copied().unwrap_or(0),
                "last_signed_height": last,
                "online": me.is_some() && signed_recently,
                "answered": me.is_some(),
                "signed_recently": signed_recently,
                "url": me.map(|(u, _)| u.as_str()).or(url_of.get(did.as_str()).map(|u| u.as_str())),
                "height": me.and_then(|(_, v)| v.get("height").and_then(Value::as_u64)),
            })
        })
        .collect();

    // Finality latency: the answering validators' percentiles, weighted by
    // their sample counts for p50; the worst for p99.
    let mut samples = 0u64;
    let mut p50_weighted = 0u128;
    let mut p99: Option<u64> = None;
    for (_, v) in &ok {
        let f = &v["finality_ms"];
        let n = f.get("samples").and_then(Value::as_u64).unwrap_or(0);
        if n == 0 {
            continue;
        }
        if let Some(p) = f.get("p50").and_then(Value::as_u64) {
            samples += n;
            p50_weighted += p as u128 * n as u128;
        }
        if let Some(p) = f.get("p99").and_then(Value::as_u64) {
            p99 = Some(p99.map_or(p, |q| q.max(p)));
        }
    }
    let p50 = (samples > 0).then(|| (p50_weighted / samples as u128) as u64);

    let recent: Vec<Value> = freshest
        .and_then(|v| v.get("recent_blocks"))
        .and_then(Value::as_array)
        .map(|a| a.iter().take(RECENT_BLOCKS).cloned().collect())
        .unwrap_or_default();

    let sources: Vec<Value> = answers
        .iter()
        .map(|(u, a)| match a {
            Ok(v) => json!({ "url": u, "ok": true, "validator": v.get("validator"), "height": v.get("height") }),
            Err(e) => json!({ "url": u, "ok": false, "error": e }),
        })
        .collect();

    json!({
        "replicated": true,
        "height": height,
        "chain_id": freshest.and_then(|v| v.get("chain_id")),
        "head_hash": freshest.and_then(|v| v.get("head_hash")),
        "head_time_ms": freshest.and_then(|v| v.get("head_time_ms")),
        "total_power": freshest
            .and_then(|v| v.get("total_power").and_then(Value::as_u64))
            .unwrap_or_else(|| power.values().sum()),
        "validators": validators,
        "online": validators.iter().filter(|v| v["online"] == true).count(),
        "answered": ok.len(),
        "asked": answers.len(),
        "finality_ms": { "samples": samples, "p50": p50, "p99": p99 },
        "recent_blocks": recent,
        "sources": sources,
    })
}

/// The route (merged into the gateway's router).
pub fn routes() -> Router<App> {
    Router::new().route("/v1/validators", get(validators))
}

async fn validators(State(app): State<App>) -> Response {
    let view = app.validators.clone();
    if let Some(view) = view {
        let mut v = view.view().await;
        let gateway_height = app.lock().ledger().height();
        v["gateway_height"] = json!(gateway_height);
        // The gateway holds only certified blocks: it may be a step ahead of
        // a cached answer.
        if v["height"].as_u64().is_some_and(|h| h < gateway_height) {
            v["height"] = json!(gateway_height);
        }
        return axum::Json(v).into_response();
    }
    let (did, height) = {
        let core = app.lock();
        (core.validator().to_string(), core.ledger().height())
    };
    axum::Json(json!({
        "replicated": false,
        "height": height,
        "gateway_height": height,
        // This gateway seals and signs every block itself.
        "validators": [{
            "did": did,
            "power": 1,
            "last_signed_height": height,
            "online": true,
            "url": null,
            "height": height,
            "me": true,
        }],
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(me: &str, height: u64, signed: &[(&str, u64)], p50: u64, p99: u64) -> Value {
        json!({
            "validator": me,
            "height": height,
            "total_power": 10,
            "validators": signed.iter().map(|(d, l)| json!({"did": d, "power": 5, "last_signed_height": l})).collect::<Vec<_>>(),
            "finality_ms": {"samples": 10, "p50": p50, "p99": p99},
            "recent_blocks": [{"height": height, "signers": [me]}],
        })
    }

    #[test]
    fn merges_answers_and_marks_silent_validators_offline() {
        let a = status("did:a", 20, &[("did:a", 20), ("did:b", 19)], 100, 300);
        let b = status("did:b", 19, &[("did:a", 19), ("did:b", 19)], 200, 500);
        let answers = vec![
            ("http://a".to_string(), Ok(a)),
            ("http://b".to_string(), Ok(b)),
            ("http://c".to_string(), Err("refused".to_string())),
        ];
        let mut did_of = BTreeMap::new();
        did_of.insert("http://a".to_string(), "did:a".to_string());
        did_of.insert("http://b".to_string(), "did:b".to_string());
        did_of.insert("http://c".to_string(), "did:c".to_string());
        let v = merge(&answers, &did_of);
        assert_eq!(v["height"], 20);
        assert_eq!(v["answered"], 2);
        assert_eq!(v["finality_ms"]["p50"], 150);
        assert_eq!(v["finality_ms"]["p99"], 500);
        assert_eq!(v["recent_blocks"][0]["height"], 20);
        let vals = v["validators"].as_array().unwrap();
        assert_eq!(vals.len(), 3);
        assert_eq!(vals[0]["did"], "did:a");
        assert_eq!(vals[0]["online"], true);
        assert_eq!(vals[1]["last_signed_height"], 19);
        assert_eq!(vals[1]["height"], 19);
        assert_eq!(vals[2]["did"], "did:c");
        assert_eq!(vals[2]["online"], false);
        assert_eq!(vals[2]["url"], "http://c");
    }

    #[test]
    fn nobody_answering_is_an_empty_offline_view() {
        let answers = vec![("http://a".to_string(), Err("timeout".to_string()))];
        let v = merge(&answers, &BTreeMap::new());
        assert_eq!(v["height"], Value::Null);
        assert_eq!(v["answered"], 0);
        assert_eq!(v["validators"].as_array().unwrap().len(), 0);
        assert_eq!(v["sources"][0]["ok"], false);
    }
}
