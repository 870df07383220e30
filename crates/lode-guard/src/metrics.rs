//! Classifier metrics: ROC-AUC (Mann-Whitney, ties counted half), precision and recall at
//! a threshold, recall at a false-positive-rate budget, best precision at a recall floor.

use serde::{Deserialize, Serialize};

/// Metrics of scores against labels at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub examples: usize,
    pub positives: usize,
    pub roc_auc: f64,
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub false_positive_rate: f64,
    /// Recall at the strictest threshold that keeps the false-positive rate ≤ 1%.
    pub recall_at_1pct_fpr: f64,
    /// Best precision among thresholds whose recall is ≥ 0.85.
    pub precision_at_recall_085: f64,
}

impl Metrics {
    /// The same metrics with every ratio rounded to 1e-6, as stored in a model file (short,
    /// and parsed back to the same doubles by any JSON reader).
    pub fn rounded(&self) -> Metrics {
        let r = |x: f64| (x * 1e6).round() / 1e6;
        Metrics {
            roc_auc: r(self.roc_auc),
            threshold: r(self.threshold),
            precision: r(self.precision),
            recall: r(self.recall),
            false_positive_rate: r(self.false_positive_rate),
            recall_at_1pct_fpr: r(self.recall_at_1pct_fpr),
            precision_at_recall_085: r(self.precision_at_recall_085),
            ..self.clone()
        }
    }
}

/// ROC-AUC of `scores` (higher = more positive) for `labels`; 0.5 when a class is empty.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    // Sum of the (average, 1-based) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// (precision, recall, false-positive rate) when `score >= threshold` means positive.
pub fn at_threshold(scores: &[f64], labels: &[bool], threshold: f64) -> (f64, f64, f64) {
    let (mut tp, mut fp) = (0, 0);
    for (s, &l) in scores.iter().zip(labels) {
        if *s >= threshold {
            if l {
                tp += 1;
            } else {
                fp += 1;
            }
        }
    }
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    // Precision with nothing flagged is 1 (no false alarm was raised).
    let precision = if tp + fp == 0 {
        1.0
    } else {
        ratio(tp, tp + fp)
    };
    (precision, ratio(tp, pos), ratio(fp, neg))
}

/// Recall at the lowest threshold whose false-positive rate stays ≤ `max_fpr`; a URL is
/// flagged only when its score is strictly above the first negative score left unflagged.
pub fn recall_at_fpr(scores: &[f64], labels: &[bool], max_fpr: f64) -> f64 {
    let mut neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !**l)
        .map(|(s, _)| *s)
        .collect();
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(s, _)| *s)
        .collect();
    if pos.is_empty() {
        return 0.0;
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * neg.len() as f64).floor() as usize;
    if allowed >= neg.len() {
        return 1.0;
    }
    let cut = neg[allowed];
    ratio(pos.iter().filter(|&&s| s > cut).count(), pos.len())
}

/// Candidate thresholds: every distinct score, descending, with (precision, recall) at it.
fn curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64, f64)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let pos = labels.iter().filter(|&&l| l).count();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push((s, ratio(tp, tp + fp), ratio(tp, pos)));
    }
    out
}

/// Best precision among thresholds with recall ≥ `min_recall` (0 when none reaches it).
pub fn precision_at_recall(scores: &[f64], labels: &[bool], min_recall: f64) -> f64 {
    curve(scores, labels)
        .into_iter()
        .filter(|&(_, _, r)| r >= min_recall)
        .map(|(_, p, _)| p)
        .fold(0.0, f64::max)
}

/// The lowest threshold whose precision is ≥ `min_precision` and that flags at least one
/// URL (`fallback` when none does).
pub fn threshold_for_precision(
    scores: &[f64],
    labels: &[bool],
    min_precision: f64,
    fallback: f64,
) -> f64 {
    curve(scores, labels)
        .into_iter()
        .filter(|&(_, p, _)| p >= min_precision)
        .map(|(s, _, _)| s)
        .reduce(f64::min)
        .unwrap_or(fallback)
}

/// All metrics at `threshold`.
pub fn evaluate(scores: &[f64], labels: &[bool], threshold: f64) -> Metrics {
    let (precision, recall, fpr) = at_threshold(scores, labels, threshold);
    Metrics {
        examples: scores.len(),
        positives: labels.iter().filter(|&&l| l).count(),
        roc_auc: roc_auc(scores, labels),
        threshold,
        precision,
        recall,
        false_positive_rate: fpr,
        recall_at_1pct_fpr: recall_at_fpr(scores, labels, 0.01),
        precision_at_recall_085: precision_at_recall(scores, labels, 0.85),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_known_values() {
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            1.0
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            0.0
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
        // One inversion out of four pairs.
        assert_eq!(
            roc_auc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]),
            0.75
        );
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), 0.5);
    }

    #[test]
    fn threshold_metrics() {
        let s = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2];
        let l = [false, false, true, true, true, false];
        let (p, r, f) = at_threshold(&s, &l, 0.35);
        assert_eq!((p, r), (0.75, 1.0));
        assert!((f - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(at_threshold(&s, &l, 0.9), (1.0, 0.0, 0.0));
        // 3 negatives: 1% allows none, so the cut is the top negative (0.4).
        assert!((recall_at_fpr(&s, &l, 0.01) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(recall_at_fpr(&s, &l, 0.34), 1.0);
        assert_eq!(precision_at_recall(&s, &l, 0.85), 0.75);
        assert_eq!(threshold_for_precision(&s, &l, 1.0, 0.5), 0.7);
        assert_eq!(threshold_for_precision(&s, &l, 0.75, 0.5), 0.35);
        let m = evaluate(&s, &l, 0.5);
        assert_eq!((m.examples, m.positives), (6, 3));
        assert_eq!(m.recall, 2.0 / 3.0);
    }
}
