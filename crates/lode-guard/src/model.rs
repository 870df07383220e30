//! The model artifact: a logistic regression over the features, its vocabulary,
//! provenance and metrics, and the file format that carries its own SHA-256.
//!
//! File layout (exactly; the JS scorer checks it the same way):
//! `{"sha256":"<64 hex>","model":<body>}` and a newline, where `<body>` is the model's
//! compact JSON and the hash is SHA-256 of `<body>`'s bytes.

use crate::features::{self, DENSE_LEN, DENSE_NAMES, FEATURE_VERSION, Features, UrlError};
use crate::metrics::Metrics;
use crate::vocab::Vocab;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The `format` field of every model.
pub const MODEL_FORMAT: &str = "lode-guard-model";

/// The trained default model, embedded in the binary.
pub const DEFAULT_MODEL: &str = include_str!("../model/default.json");

const PREFIX: &str = "{\"sha256\":\"";
const MIDDLE: &str = "\",\"model\":";

/// Why a model file cannot be used.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("not a lode-guard model file: expected {{\"sha256\":\"<64 hex>\",\"model\":{{...}}}}")]
    Layout,
    #[error(
        "model hash mismatch: the file says sha256 {recorded} but its model hashes to {actual}; the file was altered or corrupted"
    )]
    HashMismatch { recorded: String, actual: String },
    #[error("model JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model format {0:?} is not {MODEL_FORMAT:?}")]
    Format(String),
    #[error("model uses feature version {found}; this build computes version {supported}")]
    FeatureVersion { found: u32, supported: u32 },
    #[error("model shape: {0}")]
    Shape(String),
}

/// Where the training data came from and how training ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// SHA-256 of the training file's bytes.
    pub data_sha256: String,
    pub examples: usize,
    pub positives: usize,
    pub seed: u64,
    pub epochs: u32,
    pub learning_rate: f64,
    pub l2: f64,
    /// How the threshold was chosen.
    pub threshold_rule: String,
    /// Metrics on the validation part of the training file (held out by domain).
    pub validation: Metrics,
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: String,
    pub feature_version: u32,
    pub dense_names: Vec<String>,
    pub vocab: Vocab,
    /// Number of hashed buckets (a power of two).
    pub buckets: u32,
    /// Score at or above which a URL is called phishing.
    pub threshold: f64,
    pub bias: f64,
    pub dense: Vec<f64>,
    pub ngram: Vec<f64>,
    pub training: Training,
}

/// A verdict for one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Phishing,
    Benign,
}

impl Model {
    /// Checks the model's own consistency (what a corrupt or foreign file might break).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.format != MODEL_FORMAT {
            return Err(ModelError::Format(self.format.clone()));
        }
        if self.feature_version != FEATURE_VERSION {
            return Err(ModelError::FeatureVersion {
                found: self.feature_version,
                supported: FEATURE_VERSION,
            });
        }
        if self.dense.len() != DENSE_LEN || self.dense_names != DENSE_NAMES {
            return Err(ModelError::Shape(format!(
                "{} dense weights named {:?}; expected {DENSE_LEN} named {DENSE_NAMES:?}",
                self.dense.len(),
                self.dense_names
            )));
        }
        if !self.buckets.is_power_of_two() || self.ngram.len() != self.buckets as usize {
            return Err(ModelError::Shape(format!(
                "{} n-gram weights for {} buckets (a power of two)",
                self.ngram.len(),
                self.buckets
            )));
        }
        let finite = self.bias.is_finite()
            && self.threshold.is_finite()
            && self.dense.iter().chain(&self.ngram).all(|w| w.is_finite());
        if !finite {
            return Err(ModelError::Shape("non-finite weight or threshold".into()));
        }
        Ok(())
    }

    /// The file text: the compact body prefixed by its own hash.
    pub fn to_file_text(&self) -> Result<String, ModelError> {
        let body = serde_json::to_string(self)?;
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        Ok(format!("{PREFIX}{hash}{MIDDLE}{body}}}\n"))
    }

    /// Parses a model file, checking its layout, its recorded hash and its shape.
    /// Returns the model and the verified hash.
    pub fn from_file_text(text: &str) -> Result<(Model, String), ModelError> {
        let rest = text.strip_prefix(PREFIX).ok_or(ModelError::Layout)?;
        if rest.len() < 64 || !rest.is_char_boundary(64) {
            return Err(ModelError::Layout);
        }
        let (recorded, rest) = rest.split_at(64);
        let body = rest.strip_prefix(MIDDLE).ok_or(ModelError::Layout)?;
        let body = body.strip_suffix('\n').unwrap_or(body);
        let body = body.strip_suffix('}').ok_or(ModelError::Layout)?;
        let actual = hex::encode(Sha256::digest(body.as_bytes()));
        if recorded != actual {
            return Err(ModelError::HashMismatch {
                recorded: recorded.to_string(),
                actual,
            });
        }
        let model: Model = serde_json::from_str(body)?;
        model.validate()?;
        Ok((model, actual))
    }

    /// The embedded default model.
    pub fn default_model() -> Model {
        // The embedded file is checked by a test; a broken build would fail there first.
        match Model::from_file_text(DEFAULT_MODEL) {
            Ok((m, _)) => m,
            Err(e) => panic!("embedded default model is invalid: {e}"),
        }
    }

    /// Linear score (log-odds) of a feature vector: bias, dense weights in order, then the
    /// active buckets in ascending order. The JS scorer sums in the same order.
    pub fn logit(&self, f: &Features) -> f64 {
        let mut z = self.bias;
        for (w, x) in self.dense.iter().zip(f.dense.iter()) {
            z += w * x;
        }
        for &b in &f.buckets {
            z += self.ngram[b as usize];
        }
        z
    }

    /// Features of a URL under this model's vocabulary.
    pub fn features(&self, url: &str) -> Result<Features, UrlError> {
        let parts = features::parse_url(url)?;
        Ok(features::extract(&parts, &self.vocab, self.buckets))
    }

    /// Probability-like score in [0, 1] that `url` is phishing.
    pub fn score(&self, url: &str) -> Result<f64, UrlError> {
        Ok(sigmoid(self.logit(&self.features(url)?)))
    }

    /// Verdict for a score at this model's threshold.
    pub fn verdict(&self, score: f64) -> Verdict {
        if score >= self.threshold {
            Verdict::Phishing
        } else {
            Verdict::Benign
        }
    }
}

/// The logistic function, `1 / (1 + e^-z)`.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_loads_and_separates_obvious_cases() {
        let (m, hash) = Model::from_file_text(DEFAULT_MODEL).unwrap();
        assert_eq!(hash.len(), 64);
        assert!(DEFAULT_MODEL.len() <= 500 * 1024, "model over 500 KB");
        let bad = m
            .score("http://paypal.com.account-verify.secure-login.xyz/signin/update.php")
            .unwrap();
        let good = m.score("https://www.wikipedia.org/wiki/Lode").unwrap();
        assert!(bad > m.threshold && good < m.threshold, "{bad} {good}");
        assert_eq!(m.verdict(bad), Verdict::Phishing);
        assert_eq!(m.verdict(good), Verdict::Benign);
    }

    #[test]
    fn file_round_trip_and_tampering() {
        let m = Model::default_model();
        let text = m.to_file_text().unwrap();
        assert_eq!(
            text, DEFAULT_MODEL,
            "default model is not in canonical form"
        );
        let (back, _) = Model::from_file_text(&text).unwrap();
        assert_eq!(back, m);

        // One weight changed, hash left as it was.
        let tampered = text.replacen("\"bias\":", "\"bias\":1", 1);
        assert!(matches!(
            Model::from_file_text(&tampered),
            Err(ModelError::HashMismatch { .. })
        ));
        // Not the layout at all.
        assert!(matches!(
            Model::from_file_text("{\"model\":{}}"),
            Err(ModelError::Layout)
        ));
        assert!(matches!(Model::from_file_text(""), Err(ModelError::Layout)));
        assert!(matches!(
            Model::from_file_text("{\"sha256\":\"é"),
            Err(ModelError::Layout)
        ));

        // A consistent file (hash matches) with a wrong shape or version.
        let mut short = m.clone();
        short.dense.pop();
        let t = short.to_file_text().unwrap();
        assert!(matches!(
            Model::from_file_text(&t),
            Err(ModelError::Shape(_))
        ));
        let mut v2 = m.clone();
        v2.feature_version = 99;
        let t = v2.to_file_text().unwrap();
        assert!(matches!(
            Model::from_file_text(&t),
            Err(ModelError::FeatureVersion { found: 99, .. })
        ));
        let mut odd = m;
        odd.buckets = 3;
        odd.ngram.truncate(3);
        let t = odd.to_file_text().unwrap();
        assert!(matches!(
            Model::from_file_text(&t),
            Err(ModelError::Shape(_))
        ));
    }
}
