//! Deterministic training: logistic regression by AdaGrad over the examples in a seeded
//! (ChaCha8) order, class-balanced, with L2 on the touched weights. No hash-map iteration,
//! no threads, no clock: the same data and config give the same bytes of model.

use crate::dataset::{Example, in_share};
use crate::features::{DENSE_LEN, DENSE_NAMES, FEATURE_VERSION, Features, UrlError};
use crate::metrics;
use crate::model::{MODEL_FORMAT, Model, Training, sigmoid};
use crate::vocab::Vocab;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

/// Why training cannot run.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error("example {index} ({url}): {source}")]
    Url {
        index: usize,
        url: String,
        source: UrlError,
    },
    #[error(
        "training needs both classes in the training part: {positives} phishing, {negatives} benign"
    )]
    OneClass { positives: usize, negatives: usize },
    #[error("bad training config: {0}")]
    Config(String),
}

/// Training settings; `Default` is what the shipped model uses.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub seed: u64,
    pub epochs: u32,
    pub learning_rate: f64,
    pub l2: f64,
    pub buckets: u32,
    /// Share of registrable domains held out of training to choose the threshold.
    pub validation_share: f64,
    /// The shipped threshold is the lowest with this precision on the validation part.
    pub min_precision: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 17,
            epochs: 6,
            learning_rate: 0.2,
            l2: 1e-6,
            buckets: 8192,
            validation_share: 0.15,
            min_precision: 0.98,
        }
    }
}

/// Weights are rounded to this grid so the JSON is short and parses to the same doubles
/// in every language.
const GRID: f64 = 1e6;

fn round_weight(w: f64) -> f64 {
    (w * GRID).round() / GRID
}

/// Trains a model on `examples`; `data_sha256` is the hash of the file they came from.
pub fn train(
    examples: &[Example],
    data_sha256: &str,
    cfg: &TrainConfig,
) -> Result<Model, TrainError> {
    if !cfg.buckets.is_power_of_two() || cfg.epochs == 0 || cfg.learning_rate <= 0.0 {
        return Err(TrainError::Config(format!("{cfg:?}")));
    }
    if !(0.0..1.0).contains(&cfg.validation_share) {
        return Err(TrainError::Config(
            "validation_share must be in [0, 1)".into(),
        ));
    }
    let vocab = Vocab::default_v1();
    let mut fit: Vec<(Features, bool)> = Vec::new();
    let mut val: Vec<(Features, bool)> = Vec::new();
    for (index, ex) in examples.iter().enumerate() {
        let parts = crate::features::parse_url(&ex.url).map_err(|source| TrainError::Url {
            index,
            url: ex.url.clone(),
            source,
        })?;
        let f = crate::features::extract(&parts, &vocab, cfg.buckets);
        if in_share(
            "lode-guard-validation",
            &parts.registrable,
            cfg.validation_share,
        ) {
            val.push((f, ex.phishing));
        } else {
            fit.push((f, ex.phishing));
        }
    }
    let positives = fit.iter().filter(|(_, l)| *l).count();
    let negatives = fit.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(TrainError::OneClass {
            positives,
            negatives,
        });
    }
    let n = fit.len() as f64;
    let w_pos = n / (2.0 * positives as f64);
    let w_neg = n / (2.0 * negatives as f64);

    let mut bias = 0.0;
    let mut g_bias = 0.0;
    let mut dense = [0.0f64; DENSE_LEN];
    let mut g_dense = [0.0f64; DENSE_LEN];
    let mut ngram = vec![0.0f64; cfg.buckets as usize];
    let mut g_ngram = vec![0.0f64; cfg.buckets as usize];
    let eps = 1e-8;
    let lr = cfg.learning_rate;
    let mut order: Vec<usize> = (0..fit.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    for _ in 0..cfg.epochs {
        // Fisher-Yates with the seeded generator.
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        for &i in &order {
            let (f, label) = &fit[i];
            let mut z = bias;
            for (w, x) in dense.iter().zip(f.dense.iter()) {
                z += w * x;
            }
            for &b in &f.buckets {
                z += ngram[b as usize];
            }
            let (y, cw) = if *label { (1.0, w_pos) } else { (0.0, w_neg) };
            let g = (sigmoid(z) - y) * cw;
            g_bias += g * g;
            bias -= lr * g / (g_bias.sqrt() + eps);
            for k in 0..DENSE_LEN {
                let x = f.dense[k];
                if x != 0.0 {
                    let gk = g * x + cfg.l2 * dense[k];
                    g_dense[k] += gk * gk;
                    dense[k] -= lr * gk / (g_dense[k].sqrt() + eps);
                }
            }
            for &b in &f.buckets {
                let b = b as usize;
                let gk = g + cfg.l2 * ngram[b];
                g_ngram[b] += gk * gk;
                ngram[b] -= lr * gk / (g_ngram[b].sqrt() + eps);
            }
        }
    }

    let mut model = Model {
        format: MODEL_FORMAT.to_string(),
        feature_version: FEATURE_VERSION,
        dense_names: DENSE_NAMES.iter().map(|s| (*s).to_string()).collect(),
        vocab,
        buckets: cfg.buckets,
        threshold: 0.5,
        bias: round_weight(bias),
        dense: dense.iter().map(|&w| round_weight(w)).collect(),
        ngram: ngram.iter().map(|&w| round_weight(w)).collect(),
        training: Training {
            data_sha256: data_sha256.to_string(),
            examples: examples.len(),
            positives: examples.iter().filter(|e| e.phishing).count(),
            seed: cfg.seed,
            epochs: cfg.epochs,
            learning_rate: cfg.learning_rate,
            l2: cfg.l2,
            threshold_rule: format!(
                "lowest validation score with precision >= {}",
                cfg.min_precision
            ),
            validation: metrics::evaluate(&[], &[], 0.5),
        },
    };
    // Threshold and validation metrics from the rounded model, as shipped.
    let (scores, labels): (Vec<f64>, Vec<bool>) = if val.is_empty() { &fit } else { &val }
        .iter()
        .map(|(f, l)| (sigmoid(model.logit(f)), *l))
        .unzip();
    // On the weight grid (rounded up), so it prints and parses back exactly.
    let threshold =
        (metrics::threshold_for_precision(&scores, &labels, cfg.min_precision, 0.5) * GRID).ceil()
            / GRID;
    model.threshold = threshold;
    model.training.validation = metrics::evaluate(&scores, &labels, threshold).rounded();
    Ok(model)
}

/// Scores each example with `model` (errors as `None`), for evaluation.
pub fn score_examples(model: &Model, examples: &[Example]) -> Vec<Option<f64>> {
    examples.iter().map(|e| model.score(&e.url).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::parse_tsv;

    fn sample() -> Vec<Example> {
        parse_tsv(include_str!("../tests/data/sample.tsv")).unwrap()
    }

    #[test]
    fn training_is_deterministic_and_learns() {
        let ex = sample();
        let cfg = TrainConfig {
            epochs: 3,
            buckets: 1024,
            ..TrainConfig::default()
        };
        let a = train(&ex, "hash", &cfg).unwrap();
        let b = train(&ex, "hash", &cfg).unwrap();
        assert_eq!(a.to_file_text().unwrap(), b.to_file_text().unwrap());
        a.validate().unwrap();
        assert_eq!(a.training.data_sha256, "hash");
        assert_eq!(a.training.examples, ex.len());
        let v = &a.training.validation;
        assert!(v.examples > 100 && v.roc_auc > 0.9, "{v:?}");
        // The threshold is on the weight grid and reproduces the recorded precision.
        assert_eq!((a.threshold * GRID).round() / GRID, a.threshold);
        let c = train(
            &ex,
            "hash",
            &TrainConfig {
                seed: 5,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_ne!(a.ngram, c.ngram);
    }

    #[test]
    fn training_refuses_bad_input() {
        let ex: Vec<Example> = sample().into_iter().filter(|e| e.phishing).collect();
        assert!(matches!(
            train(&ex, "h", &TrainConfig::default()),
            Err(TrainError::OneClass { negatives: 0, .. })
        ));
        let bad = vec![Example {
            phishing: true,
            source: "s".into(),
            url: "ftp://x.com/".into(),
        }];
        assert!(matches!(
            train(&bad, "h", &TrainConfig::default()),
            Err(TrainError::Url { index: 0, .. })
        ));
        let cfg = TrainConfig {
            buckets: 1000,
            ..TrainConfig::default()
        };
        assert!(matches!(
            train(&sample(), "h", &cfg),
            Err(TrainError::Config(_))
        ));
    }
}
