//! Every API error is a JSON body `{ "error": { "code", "message" } }` with a stable,
//! machine-readable `code` and a human message that says what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error returned by the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: u16,
    /// Stable code, e.g. `bad_signature`, `payload_too_large`, `unknown_job`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: status.as_u16(),
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from this address; retry in {retry_after_ms} ms"),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        })
        .unwrap_or_else(|_| "{\"error\":{\"code\":\"internal\",\"message\":\"\"}}".into())
    }
}

impl From<lode_proto::VerifyError> for ApiError {
    fn from(e: lode_proto::VerifyError) -> Self {
        use lode_proto::VerifyError as V;
        let code = match &e {
            V::Decode(_) => "malformed_envelope",
            V::UnexpectedKind { .. } => "wrong_message_kind",
            V::BadSignature { .. } => "bad_signature",
            V::Stale { .. } => "stale_message",
            V::FromFuture { .. } => "future_message",
            V::Replayed { .. } => "replayed_message",
            V::GuardFull { .. } => "overloaded",
        };
        let status = match &e {
            V::Decode(_) | V::UnexpectedKind { .. } => StatusCode::BAD_REQUEST,
            V::GuardFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.to_json(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_is_stable() {
        let e = ApiError::not_found("unknown_job", "no job \"x\"");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "unknown_job");
        assert_eq!(v["error"]["message"], "no job \"x\"");
        assert_eq!(e.status, 404);
    }

    #[test]
    fn verify_errors_map_to_codes() {
        let e: ApiError = lode_proto::VerifyError::Stale {
            age_ms: 1,
            max_age_ms: 0,
        }
        .into();
        assert_eq!((e.status, e.code), (401, "stale_message"));
        let e: ApiError =
            lode_proto::VerifyError::Decode(lode_proto::CanonicalError::Truncated).into();
        assert_eq!((e.status, e.code), (400, "malformed_envelope"));
    }
}
