//! The node side of the gateway's HTTP contract (`lode_proto::wire::paths`).
//!
//! Requests on `/v1/node/*` are `Envelope::to_bytes()` of a signed message; answers
//! are `canonical::encode` of the response type. Errors are JSON
//! `{"error":{"code","message"}}` with a non-2xx status.

use crate::clock::{GatewayClock, local_now_ms};
use lode_proto::wire::{
    AuthResponse, BINARY_CONTENT_TYPE, HelloResponse, NodeAuth, NodeHello, NodePoll, PollResponse,
    paths,
};
use lode_proto::{Envelope, Hash32, Keypair, Message, canonical};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Most bytes accepted in a node-channel answer.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// A request to the gateway failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer: connection refused or reset, timeout, DNS.
    #[error("cannot reach the gateway: {0}")]
    Transport(String),
    /// The gateway answered with an error.
    #[error("gateway refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
        /// The answer's `Date` header, if any (to correct the clock).
        date: Option<String>,
    },
    /// The answer could not be read or decoded.
    #[error("unreadable answer from the gateway: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The gateway forgot this session (restart, heartbeat timeout): say hello again.
    pub fn is_unknown_session(&self) -> bool {
        matches!(self, ClientError::Refused { code, .. } if code == "unknown_session")
    }

    /// The message's timestamp was refused: the clocks disagree.
    pub fn is_clock_skew(&self) -> bool {
        matches!(self, ClientError::Refused { code, .. }
            if code == "stale_message" || code == "future_message")
    }

    /// The body was too large for the gateway.
    pub fn is_too_large(&self) -> bool {
        matches!(self, ClientError::Refused { status: 413, .. })
    }

    /// Worth retrying the same request later unchanged: no answer, overload, or a
    /// server-side error.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Protocol(_) => true,
            ClientError::Refused { status, .. } => *status >= 500 || *status == 429,
        }
    }
}

/// An HTTP client bound to one gateway.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    base: String,
    request_timeout: Duration,
}

impl GatewayClient {
    /// `base`: gateway URL without trailing slash.
    pub fn new(
        base: String,
        connect_timeout: Duration,
        request_timeout: Duration,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .local_address(source_ip)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(2)
            .pool_idle_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .user_agent(concat!("lode-node/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            http,
            base,
            request_timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Signs `msg` with a gateway-time timestamp and POSTs it to `path`.
    async fn post<M: Message, R: DeserializeOwned + serde::Serialize>(
        &self,
        key: &Keypair,
        clock: &GatewayClock,
        path: &str,
        msg: &M,
        timeout: Duration,
    ) -> Result<Reply<R>, ClientError> {
        let env = Envelope::seal_fresh(key, msg, clock.now_ms())
            .map_err(|e| ClientError::Protocol(format!("cannot sign: {e}")))?;
        let sent_ms = local_now_ms();
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, BINARY_CONTENT_TYPE)
            .timeout(timeout)
            .body(env.to_bytes())
            .send()
            .await
            .map_err(transport)?;
        let body = read_body(resp, MAX_RESPONSE_BYTES).await?;
        let value = canonical::decode::<R>(&body)
            .map_err(|e| ClientError::Protocol(format!("{path}: {e}")))?;
        Ok(Reply {
            value,
            sent_ms,
            received_ms: local_now_ms(),
        })
    }

    pub async fn hello(
        &self,
        key: &Keypair,
        clock: &GatewayClock,
        hello: &NodeHello,
    ) -> Result<Reply<HelloResponse>, ClientError> {
        self.post(key, clock, paths::NODE_HELLO, hello, self.request_timeout)
            .await
    }

    pub async fn auth(
        &self,
        key: &Keypair,
        clock: &GatewayClock,
        auth: &NodeAuth,
    ) -> Result<Reply<AuthResponse>, ClientError> {
        self.post(key, clock, paths::NODE_AUTH, auth, self.request_timeout)
            .await
    }

    /// A poll may wait up to the gateway's poll timeout: `timeout` must exceed it.
    pub async fn poll(
        &self,
        key: &Keypair,
        clock: &GatewayClock,
        poll: &NodePoll,
        timeout: Duration,
    ) -> Result<Reply<PollResponse>, ClientError> {
        self.post(key, clock, paths::NODE_POLL, poll, timeout).await
    }

    /// A storage poll (`lode_storage::wire`); may wait up to the gateway's
    /// storage poll timeout: `timeout` must exceed it.
    pub async fn storage_poll(
        &self,
        key: &Keypair,
        clock: &GatewayClock,
        poll: &lode_storage::wire::StoragePoll,
        timeout: Duration,
    ) -> Result<Reply<lode_storage::wire::StorageTasks>, ClientError> {
        self.post(
            key,
            clock,
            lode_storage::wire::NODE_STORAGE_PATH,
            poll,
            timeout,
        )
        .await
    }

    /// Downloads module bytes. The caller re-hashes them.
    pub async fn module(&self, hash: &Hash32, max_bytes: u64) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .http
            .get(format!("{}{}/{}", self.base, paths::MODULES, hash.to_hex()))
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(transport)?;
        read_body(resp, usize::try_from(max_bytes).unwrap_or(usize::MAX)).await
    }
}

/// A decoded answer and when the request went out and came back (local clock).
#[derive(Debug, Clone)]
pub struct Reply<R> {
    pub value: R,
    pub sent_ms: u64,
    pub received_ms: u64,
}

fn transport(e: reqwest::Error) -> ClientError {
    // The whole chain: reqwest's top-level message rarely says what went wrong.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    ClientError::Transport(msg)
}

/// Reads a successful body (at most `max` bytes) or turns an error answer into
/// [`ClientError::Refused`].
async fn read_body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ClientError> {
    let status = resp.status();
    if !status.is_success() {
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        let (code, message) = parse_error_body(&text)
            .unwrap_or_else(|| (format!("http_{}", status.as_u16()), truncate(&text, 200)));
        return Err(ClientError::Refused {
            status: status.as_u16(),
            code,
            message,
            date,
        });
    }
    if let Some(len) = resp.content_length()
        && len > max as u64
    {
        return Err(ClientError::Protocol(format!(
            "answer of {len} bytes is above the limit of {max} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > max {
            return Err(ClientError::Protocol(format!(
                "answer is above the limit of {max} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `(code, message)` of a JSON error body `{"error":{"code","message"}}`.
pub fn parse_error_body(text: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let e = v.get("error")?;
    let code = e.get("code")?.as_str()?.to_string();
    let message = e
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        assert_eq!(
            parse_error_body(r#"{"error":{"code":"unknown_session","message":"hello again"}}"#),
            Some(("unknown_session".into(), "hello again".into()))
        );
        assert_eq!(parse_error_body("<html>"), None);
        assert_eq!(parse_error_body(r#"{"error":{}}"#), None);
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ab", 3), "ab");
    }

    #[test]
    fn error_classes() {
        let refused = |status: u16, code: &str| ClientError::Refused {
            status,
            code: code.into(),
            message: String::new(),
            date: None,
        };
        assert!(refused(404, "unknown_session").is_unknown_session());
        assert!(refused(401, "stale_message").is_clock_skew());
        assert!(refused(401, "future_message").is_clock_skew());
        assert!(refused(503, "overloaded").is_transient());
        assert!(refused(429, "rate_limited").is_transient());
        assert!(!refused(401, "bad_signature").is_transient());
        assert!(refused(413, "payload_too_large").is_too_large());
        assert!(ClientError::Transport("refused".into()).is_transient());
    }
}
