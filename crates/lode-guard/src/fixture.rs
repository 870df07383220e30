//! The parity fixture: for a list of URLs, what the Rust scorer computes (features, score,
//! or the error kind). `extension/test/guard.test.mjs` checks that `guard.js` computes the
//! same within 1e-9; a test here checks that the committed fixture is current.

use crate::features::{self, UrlError};
use crate::model::{Model, sigmoid};
use serde::{Deserialize, Serialize};

/// One URL's expected result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrable: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// The fixture file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fixture {
    /// SHA-256 of the model the scores come from (the default model).
    pub model_sha256: String,
    pub cases: Vec<Case>,
}

/// The short, stable name of an error kind, shared with `guard.js`.
pub fn error_code(e: &UrlError) -> &'static str {
    match e {
        UrlError::Empty => "empty",
        UrlError::TooLong { .. } => "too_long",
        UrlError::Malformed(_) => "malformed",
        UrlError::UnsupportedScheme(_) => "unsupported_scheme",
        UrlError::NoHost => "no_host",
    }
}

/// Computes the fixture for `urls` with `model` (whose verified hash is `model_sha256`).
pub fn build(model: &Model, model_sha256: &str, urls: &[String]) -> Fixture {
    let cases = urls
        .iter()
        .map(|url| match features::parse_url(url) {
            Err(e) => Case {
                url: url.clone(),
                error: Some(error_code(&e).to_string()),
                registrable: None,
                dense: None,
                buckets: None,
                score: None,
            },
            Ok(parts) => {
                let f = features::extract(&parts, &model.vocab, model.buckets);
                let score = sigmoid(model.logit(&f));
                Case {
                    url: url.clone(),
                    error: None,
                    registrable: Some(parts.registrable),
                    dense: Some(f.dense.to_vec()),
                    buckets: Some(f.buckets),
                    score: Some(score),
                }
            }
        })
        .collect();
    Fixture {
        model_sha256: model_sha256.to_string(),
        cases,
    }
}
