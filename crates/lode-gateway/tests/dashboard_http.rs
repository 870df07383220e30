//! The dashboard's HTTP surface on a real, in-process gateway: the page and its
//! headers, the snapshot, the event stream (delivery, per-address cap, shutdown
//! with a stream open), the explorer on a fresh chain, and error shapes.
//! (The same views after a job ran: `crates/lode/tests/dashboard.rs`.)

use lode_gateway::GatewayConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Gateway {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), lode_gateway::GatewayError>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis =
        lode_gateway::devnet::genesis(&[], 60_000, lode_gateway::http::now_ms()).expect("genesis");
    let cfg = GatewayConfig::new(dir.path().join("gw"), "127.0.0.1:0", genesis);
    let (stop, stopped) = oneshot::channel::<()>();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(lode_gateway::serve(
        cfg,
        async move {
            let _ = stopped.await;
        },
        move |addr| {
            let _ = tx.send(addr);
        },
    ));
    let addr = rx.await.expect("gateway listening");
    Gateway {
        addr,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

impl Gateway {
    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Bounded only so that a hang fails the test instead of stalling it.
        let r = tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the gateway shuts down with event streams open");
        r.expect("join").expect("serve");
    }
}

struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn error_code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "error shape: {v}");
        v["error"]["code"].as_str().expect("code").to_string()
    }
}

fn split_head(buf: &[u8]) -> Option<(u16, HashMap<String, String>, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("utf-8 head");
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((status, headers, end + 4))
}

/// Decodes as many complete chunks of a chunked body as `raw` holds.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..nl])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size else { break };
        let start = nl + 2;
        if size == 0 || rest.len() < start + size + 2 {
            break;
        }
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    out
}

async fn get(addr: SocketAddr, path: &str) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let (status, headers, at) = split_head(&buf).expect("an HTTP response");
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        dechunk(&buf[at..])
    } else {
        buf[at..].to_vec()
    };
    Resp {
        status,
        headers,
        body: String::from_utf8(body).expect("utf-8 body"),
    }
}

/// Opens `/v1/events`; returns the stream and the status (and, when 200, the
/// first event's name and data).
async fn open_events(addr: SocketAddr) -> (TcpStream, u16, Option<(String, Value)>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk).await.expect("read");
        assert!(
            n > 0,
            "stream closed early: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let Some((status, headers, at)) = split_head(&buf) else {
            continue;
        };
        if status != 200 {
            return (s, status, None);
        }
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("text/event-stream")
        );
        let body = String::from_utf8_lossy(&dechunk(&buf[at..])).into_owned();
        if let Some(end) = body.find("\n\n") {
            let mut name = String::new();
            let mut data = String::new();
            for line in body[..end].lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            let v = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
            return (s, 200, Some((name, v)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_is_served_self_contained_with_a_strict_csp() {
    let gw = start().await;
    for path in ["/", "/dashboard"] {
        let r = get(gw.addr, path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
        let csp = &r.headers["content-security-policy"];
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert!(r.body.contains("/assets/dashboard.js"));
        let lower = r.body.to_ascii_lowercase();
        assert!(!lower.contains("http://") && !lower.contains("https://"));
    }
    for (file, ct) in [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = get(gw.addr, &format!("/assets/{file}")).await;
        assert_eq!((r.status, r.headers["content-type"].as_str()), (200, ct));
        assert!(r.headers.contains_key("content-security-policy"));
        let lower = r
            .body
            .to_ascii_lowercase()
            .replace(lode_gateway::dashboard::SVG_NAMESPACE, "");
        assert!(
            !lower.contains("http:") && !lower.contains("https:"),
            "{file} refers to another origin"
        );
    }
    let r = get(gw.addr, "/assets/../Cargo.toml").await;
    assert_eq!(r.status, 404);
    let r = get(gw.addr, "/assets/secret.js").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "unknown_asset"));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_of_a_fresh_chain() {
    let gw = start().await;
    let r = get(gw.addr, "/v1/dashboard").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["nodes_online"], 0);
    assert_eq!(v["nodes"], serde_json::json!([]));
    assert_eq!(v["jobs_total"], 0);
    assert_eq!(
        v["throughput"]["series"].as_array().map(Vec::len),
        Some(120)
    );
    assert_eq!(v["leaderboard"], serde_json::json!([]));
    let t = &v["tokenomics"];
    let g = lode_ledger::Genesis::default_genesis();
    assert_eq!(t["total_supply"], g.token.total_supply.to_string());
    assert_eq!(t["emission"]["pool"], g.contributors_pool().to_string());
    assert_eq!(t["emission"]["emitted"], "0");
    assert_eq!(
        t["emission"]["this_epoch"],
        g.emission.initial_per_epoch.to_string()
    );
    assert_eq!(t["gini"], "0.0000");
    assert_eq!(t["allocations"][0]["name"], "contributors");
    // Issued so far: the treasury's launch unlock only, so contributors hold 0 ppm.
    assert_eq!(t["contributors_share_ppm"], 0);
    assert_eq!(
        v["ledger"]["height"], 1,
        "a new chain holds its genesis block and the block publishing the classifier's hash"
    );
    assert_eq!(v["ledger"]["head_hash"].as_str().map(str::len), Some(64));
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_delivers_snapshots_and_is_capped_per_address() {
    let gw = start().await;
    let (first, status, ev) = open_events(gw.addr).await;
    assert_eq!(status, 200);
    let (name, v) = ev.expect("an event");
    assert_eq!(name, "snapshot");
    assert_eq!(v["tokenomics"]["gini"], "0.0000");
    let mut open = vec![first];
    for _ in 1..lode_gateway::dashboard::MAX_EVENT_STREAMS_PER_IP {
        let (s, status, _) = open_events(gw.addr).await;
        assert_eq!(status, 200);
        open.push(s);
    }
    let (_, status, _) = open_events(gw.addr).await;
    assert_eq!(status, 429, "one stream over the per-address cap");
    let r = get(gw.addr, "/v1/events").await;
    assert_eq!(r.error_code(), "too_many_streams");
    // Closed streams give their slot back (the server notices the disconnect).
    open.clear();
    for _ in 0..300 {
        let (s, status, _) = open_events(gw.addr).await;
        if status == 200 {
            open.push(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        open.len(),
        1,
        "slots were not released after the clients left"
    );
    // Shutting down with a stream open completes.
    gw.shutdown().await;
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_checks_the_genesis_chain() {
    let gw = start().await;
    let r = get(gw.addr, "/v1/ledger/blocks").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let head = v["head"].as_u64().expect("head");
    let blocks = v["blocks"].as_array().expect("blocks");
    assert_eq!(
        blocks.len() as u64,
        head + 1,
        "newest first, down to genesis"
    );
    assert_eq!(blocks[0]["height"], head);
    assert_eq!(blocks.last().expect("genesis")["height"], 0);
    for b in blocks {
        assert_eq!(b["verification"]["ok"], true, "{b}");
    }
    assert_eq!(v["next_before"], Value::Null);
    // Links: each block's prev_hash is the hash of the one below.
    for w in blocks.windows(2) {
        assert_eq!(w[0]["prev_hash"], w[1]["hash"]);
    }
    let r = get(gw.addr, "/v1/ledger/blocks?before=1&limit=5").await;
    let page = r.json();
    assert_eq!(page["blocks"].as_array().map(Vec::len), Some(1));

    let r = get(gw.addr, "/v1/ledger/blocks/0").await;
    assert_eq!(r.status, 200);
    let b = r.json();
    assert_eq!(b["block"]["verification"]["entries_root"], true);
    assert_eq!(b["block"]["verification"]["ok"], true);
    assert_eq!(b["entries"][0]["kind"], "genesis");
    assert_eq!(b["entries"][0]["authority"], "validator");
    assert_eq!(b["entries"][0]["verified"], true);
    let g = lode_ledger::Genesis::default_genesis();
    assert_eq!(b["entries"][0]["amount"], g.token.total_supply.to_string());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_json_error_shape() {
    let gw = start().await;
    for (path, status, code) in [
        ("/v1/ledger/blocks/abc", 400, "bad_height"),
        ("/v1/ledger/blocks/-1", 400, "bad_height"),
        ("/v1/ledger/blocks/18446744073709551616", 400, "bad_height"),
        ("/v1/ledger/blocks/999999", 404, "unknown_block"),
        ("/v1/ledger/blocks?limit=x", 400, "bad_query"),
        ("/v1/ledger/blocks/0?offset=-3", 400, "bad_query"),
        ("/v1/accounts/did:key:nope/earnings", 400, "bad_did"),
    ] {
        let r = get(gw.addr, path).await;
        assert_eq!(r.headers["content-type"], "application/json", "{path}");
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{path}"
        );
    }
    let stranger = lode_proto::Keypair::from_secret_bytes(&[9; 32]).did();
    let r = get(gw.addr, &format!("/v1/accounts/{stranger}/earnings")).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "unknown_node"));
    gw.shutdown().await;
}

#[test]
fn openapi_describes_the_dashboard_and_data_routes() {
    let doc: Value =
        serde_json::from_str(lode_gateway::openapi::OPENAPI_JSON).expect("openapi.json is JSON");
    for path in [
        "/",
        "/dashboard",
        "/assets/{file}",
        "/v1/dashboard",
        "/v1/validators",
        "/v1/events",
        "/v1/ledger/blocks",
        "/v1/ledger/blocks/{height}",
        "/v1/accounts/{did}/earnings",
        "/v1/data/reports",
        "/v1/data/heartbeat",
        "/v1/data/mine",
        "/v1/data/feed",
        "/v1/data/feed/{prefix}",
        "/v1/data/stats",
        "/v1/data/labels.tsv",
        "/v1/guard/model",
        "/v1/staking",
        "/v1/staking/{did}",
        "/v1/gov/proposals",
        "/v1/gov/proposals/{id}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} is not in openapi.json"
        );
    }
}
