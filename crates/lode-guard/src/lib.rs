//! `lode-guard`: the community scam and phishing URL classifier.
//!
//! - [`features`]: URL-only features (feature version 1), mirrored by `extension/guard.js`.
//! - [`model`]: the logistic-regression model, its self-hashed file format, scoring.
//! - [`train`]: deterministic seeded training.
//! - [`dataset`]: the labelled-URL dataset, its generator and the split by registrable domain.
//! - [`metrics`]: ROC-AUC, precision/recall at a threshold, recall at 1% FPR.
//! - [`fixture`]: the Rust/JS parity fixture.
//! - [`sources`]: the only IO, reading the pinned npm lists.
//!
//! Design: `docs/design/lode-guard.md`.

pub mod dataset;
pub mod features;
pub mod fixture;
pub mod metrics;
pub mod model;
pub mod sources;
pub mod train;
pub mod vocab;

pub use features::{MAX_URL_BYTES, UrlError, parse_url};
pub use model::{DEFAULT_MODEL, Model, ModelError, Verdict};
