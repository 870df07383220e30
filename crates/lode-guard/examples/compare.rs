//! Side-by-side benchmark: lode-guard's default model and phishnano (crates.io, an
//! embedded tree-ensemble URL model) on the same held-out URLs.
//!
//! ```sh
//! (cd guard && npm ci --ignore-scripts)
//! cargo run --release -p lode --bin lode -- guard dataset --out target/guard-data
//! cargo run --release -p lode-guard --example compare -- target/guard-data/test.tsv
//! ```
//! Prints one JSON object: per model ROC-AUC, precision/recall/FPR at the model's own
//! threshold, recall at 1% FPR, best precision at recall ≥ 0.85, and scoring time.

use anyhow::{Context, Result};
use lode_guard::dataset::parse_tsv;
use lode_guard::metrics::evaluate;
use lode_guard::model::{DEFAULT_MODEL, Model};
use std::time::Instant;

/// phishnano's documented decision threshold (README: "score >= 0.20").
const PHISHNANO_THRESHOLD: f64 = 0.20;

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/guard-data/test.tsv".into());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let examples = parse_tsv(&text)?;
    let labels: Vec<bool> = examples.iter().map(|e| e.phishing).collect();

    let (ours, hash) = Model::from_file_text(DEFAULT_MODEL)?;
    let t = Instant::now();
    let our_scores = examples
        .iter()
        .map(|e| ours.score(&e.url))
        .collect::<Result<Vec<f64>, _>>()?;
    let our_us = t.elapsed().as_secs_f64() * 1e6 / examples.len() as f64;

    let pn = phishnano::load_default_model()?;
    let t = Instant::now();
    let pn_scores: Vec<f64> = examples
        .iter()
        .map(|e| f64::from(phishnano::predict_url(&e.url, &pn)))
        .collect();
    let pn_us = t.elapsed().as_secs_f64() * 1e6 / examples.len() as f64;

    // The same metrics on the URLs of listed domains only (no generated URL), where
    // neither model benefits from knowing the generator's shapes.
    let listed: Vec<usize> = (0..examples.len())
        .filter(|&i| !examples[i].source.starts_with("generated"))
        .collect();
    let subset = |scores: &[f64], threshold: f64| {
        let s: Vec<f64> = listed.iter().map(|&i| scores[i]).collect();
        let l: Vec<bool> = listed.iter().map(|&i| labels[i]).collect();
        evaluate(&s, &l, threshold)
    };

    let report = serde_json::json!({
        "test_file": path,
        "test_sha256": lode_guard::dataset::sha256_hex(text.as_bytes()),
        "urls": examples.len(),
        "phishing": labels.iter().filter(|&&l| l).count(),
        "lode_guard": {
            "model_sha256": hash,
            "metrics": evaluate(&our_scores, &labels, ours.threshold),
            "listed_domains_only": subset(&our_scores, ours.threshold),
            "microseconds_per_url": our_us,
        },
        "phishnano": {
            "version": "0.1.10",
            "metrics": evaluate(&pn_scores, &labels, PHISHNANO_THRESHOLD),
            "listed_domains_only": subset(&pn_scores, PHISHNANO_THRESHOLD),
            "microseconds_per_url": pn_us,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
