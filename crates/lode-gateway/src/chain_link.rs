//! A gateway on a replicated chain is a client of the validators (issue 14).
//! Two threads link its ledger (a follower, see `Ledger::open_follower`) to
//! them:
//!
//! * **follow**: pulls the decided blocks after its head from a validator
//!   (`GET /v1/ledger/raw?from=H&wait_ms=…`, which answers as soon as the
//!   block exists), and hands each with its certificate to
//!   [`crate::core::Core::apply_remote_block`], which checks the certificate
//!   against the validator set in force before anything is written;
//! * **submit**: sends every batch the ledger holds in flight to every
//!   validator's mempool (`POST /v1/mempool`, the entry's canonical bytes),
//!   again after [`RESEND_AFTER`] until a decided block includes it.
//!   Inclusion is idempotent: a batch is sequenced by the gateway's nonce.
//!
//! The follower moves to the next validator in the list when one fails.

use crate::http::App;
use lode_ledger::Block;
use lode_ledger::consensus::CommitCertificate;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Resend a batch not yet in a block after this long.
pub const RESEND_AFTER: Duration = Duration::from_secs(2);
/// How long a validator may hold a request for the next block.
const WAIT_MS: u64 = 1_000;
/// Blocks asked for per request.
const PAGE: u64 = 64;
/// Largest page of blocks read from a validator.
const MAX_PAGE_BYTES: u64 = 64 << 20;

/// The validators a gateway talks to.
#[derive(Debug, Clone)]
pub struct Validators {
    urls: Vec<String>,
}

impl Validators {
    /// Base URLs (`http://host:port`), tried in order.
    pub fn new(urls: Vec<String>) -> Option<Validators> {
        let urls: Vec<String> = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .collect();
        (!urls.is_empty()).then_some(Validators { urls })
    }
}

/// Starts both threads; they end when `stop` is set.
pub fn spawn(
    app: App,
    validators: Validators,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    // Blocking clients are built on their own threads (never inside the
    // async runtime, which may not drop one).
    fn client() -> Option<reqwest::blocking::Client> {
        match reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(WAIT_MS + 10_000))
            .connect_timeout(Duration::from_secs(2))
            .build()
        {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for the validators");
                None
            }
        }
    }
    let follow = {
        let (app, v, stop) = (app.clone(), validators.clone(), stop.clone());
        std::thread::spawn(move || {
            if let Some(http) = client() {
                follow(app, v, http, stop)
            }
        })
    };
    let submit = std::thread::spawn(move || {
        if let Some(http) = client() {
            submit(app, validators, http, stop)
        }
    });
    vec![follow, submit]
}

/// Why a page of blocks could not be used.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(String),
    #[error("bad page: {0}")]
    Page(String),
}

fn fetch(
    http: &reqwest::blocking::Client,
    base: &str,
    from: u64,
) -> Result<Vec<(Block, CommitCertificate)>, FetchError> {
    let url = format!("{base}/v1/ledger/raw?from={from}&limit={PAGE}&wait_ms={WAIT_MS}");
    let resp = http
        .get(&url)
        .send()
        .map_err(|e| FetchError::Http(format!("{url}: {e}")))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        // Nothing after our head yet.
        return Ok(Vec::new());
    }
    if !status.is_success() {
        return Err(FetchError::Http(format!("{url}: HTTP {status}")));
    }
    if resp.content_length().is_some_and(|n| n > MAX_PAGE_BYTES) {
        return Err(FetchError::Page("too large".into()));
    }
    let mut body = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(resp, MAX_PAGE_BYTES + 1),
        &mut body,
    )
    .map_err(|e| FetchError::Http(format!("{url}: {e}")))?;
    let frames =
        lode_ledger::raw::split_frames(&body).map_err(|e| FetchError::Page(e.to_string()))?;
    let mut out = Vec::with_capacity(frames.len());
    for (i, (block, cert)) in frames.into_iter().enumerate() {
        let h = from + i as u64;
        let block =
            Block::from_bytes(&block).map_err(|e| FetchError::Page(format!("block {h}: {e}")))?;
        let cert = cert.ok_or_else(|| FetchError::Page(format!("block {h} has no certificate")))?;
        let cert: CommitCertificate = lode_proto::canonical::decode(&cert)
            .map_err(|e| FetchError::Page(format!("certificate {h}: {e}")))?;
        out.push((block, cert));
    }
    Ok(out)
}

fn follow(app: App, v: Validators, http: reqwest::blocking::Client, stop: Arc<AtomicBool>) {
    let mut at = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let base = &v.urls[at % v.urls.len()];
        let from = app.lock().ledger().height() + 1;
        let blocks = match fetch(&http, base, from) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(validator = %base, error = %e, "cannot follow the chain here; trying the next validator");
                at += 1;
                std::thread::sleep(Duration::from_millis(300));
                continue;
            }
        };
        if blocks.is_empty() {
            continue;
        }
        let mut advanced = false;
        for (block, cert) in blocks {
            let h = block.header.height;
            let r = app.lock().apply_remote_block(block, &cert);
            match r {
                Ok(_) => advanced = true,
                Err(e) => {
                    tracing::error!(validator = %base, height = h, error = %e, "a block from this validator does not apply; trying the next");
                    at += 1;
                    std::thread::sleep(Duration::from_millis(300));
                    break;
                }
            }
        }
        if advanced {
            app.signal_work();
        }
    }
}

fn submit(app: App, v: Validators, http: reqwest::blocking::Client, stop: Arc<AtomicBool>) {
    // nonce → (hash of what was sent, when)
    let mut sent: BTreeMap<u64, (lode_proto::Hash32, Instant)> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let batches = app.lock().ledger().inflight_from(0);
        let live: std::collections::BTreeSet<u64> = batches.iter().map(|(n, _)| *n).collect();
        sent.retain(|n, _| live.contains(n));
        let mut idle = true;
        for (nonce, bytes) in batches {
            let hash = lode_proto::Hash32::sha256(&bytes);
            if sent
                .get(&nonce)
                .is_some_and(|(h, t)| *h == hash && t.elapsed() < RESEND_AFTER)
            {
                continue;
            }
            idle = false;
            // To every validator: whichever proposes next includes it (their
            // mempools are not gossiped), and one that is down costs nothing.
            let mut taken = false;
            for base in &v.urls {
                let url = format!("{base}/v1/mempool");
                let r = http
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes.as_ref().clone())
                    .send();
                match r {
                    Ok(resp) if resp.status().is_success() => taken = true,
                    // Its nonce is used: the chain has it (the next block
                    // here shows it) or passed it (then the rebase re-sends).
                    Ok(resp) if resp.status() == reqwest::StatusCode::CONFLICT => taken = true,
                    Ok(resp) if resp.status().is_client_error() => {
                        // Refused (e.g. no longer applies): the next block
                        // shows whether the chain passed it; do not hammer.
                        let status = resp.status();
                        let text = resp.text().unwrap_or_default();
                        app.metrics().batches_refused.inc();
                        tracing::warn!(validator = %base, nonce, %status, reason = %text.chars().take(300).collect::<String>(), "a validator refused a batch");
                        taken = true;
                    }
                    Ok(resp) => {
                        tracing::debug!(validator = %base, status = %resp.status(), "mempool unavailable");
                    }
                    Err(e) => {
                        tracing::debug!(validator = %base, error = %e, "cannot reach the validator");
                    }
                }
            }
            if taken {
                sent.insert(nonce, (hash, Instant::now()));
            } else {
                tracing::warn!(nonce, "no validator took the batch; retrying");
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
