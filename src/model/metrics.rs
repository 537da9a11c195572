//! Binary classification metrics with abnormal as the positive class, as the
//! seed paper reports them, and the AAMI five-class confusion matrix.

use serde::{Deserialize, Serialize};

/// Confusion counts and the paper's six metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub kappa: f64,
    pub roc_auc: f64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tn: u64,
}

/// A five-class model's AAMI classes (N, S, V, F, Q) against the reference:
/// the confusion matrix and each class's sensitivity and positive predictivity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AamiConfusion {
    /// `confusion[reference][predicted]`, classes in the order N, S, V, F, Q.
    pub confusion: [[u64; 5]; 5],
    /// Per class: share of its beats predicted as it (Se).
    pub sensitivity: [f64; 5],
    /// Per class: share of the beats predicted as it that are it (+P).
    pub positive_predictivity: [f64; 5],
}

impl AamiConfusion {
    /// Scores predicted class indices against reference ones (both 0..5; others ignored).
    pub fn compute(predicted: &[usize], reference: &[usize]) -> Self {
        let mut confusion = [[0u64; 5]; 5];
        for (&p, &r) in predicted.iter().zip(reference) {
            if p < 5 && r < 5 {
                confusion[r][p] += 1;
            }
        }
        let mut sensitivity = [0.0; 5];
        let mut positive_predictivity = [0.0; 5];
        for c in 0..5 {
            let row: u64 = confusion[c].iter().sum();
            let col: u64 = confusion.iter().map(|r| r[c]).sum();
            sensitivity[c] = ratio(confusion[c][c] as f64, row as f64);
            positive_predictivity[c] = ratio(confusion[c][c] as f64, col as f64);
        }
        AamiConfusion {
            confusion,
            sensitivity,
            positive_predictivity,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

impl BinaryMetrics {
    /// Metrics of probabilities `p_abnormal` against `labels` (1 abnormal), thresholded at 0.5.
    pub fn compute(p_abnormal: &[f32], labels: &[u8]) -> Self {
        let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for (&p, &l) in p_abnormal.iter().zip(labels) {
            match (p >= 0.5, l == 1) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
        let n = (tp + fp + fn_ + tn) as f64;
        let (tpf, fpf, fnf, tnf) = (tp as f64, fp as f64, fn_ as f64, tn as f64);
        let accuracy = ratio(tpf + tnf, n);
        let precision = ratio(tpf, tpf + fpf);
        let recall = ratio(tpf, tpf + fnf);
        let f1 = ratio(2.0 * precision * recall, precision + recall);
        let expected = ratio((tpf + fpf) * (tpf + fnf) + (fnf + tnf) * (fpf + tnf), n * n);
        let kappa = ratio(accuracy - expected, 1.0 - expected);
        BinaryMetrics {
            accuracy,
            precision,
            recall,
            f1,
            kappa,
            roc_auc: roc_auc(p_abnormal, labels),
            tp,
            fp,
            fn_,
            tn,
        }
    }
}

/// Area under the ROC curve: the probability that a random abnormal beat scores
/// above a random normal one (ties count half), by ranks (Mann–Whitney).
pub fn roc_auc(scores: &[f32], labels: &[u8]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += order[i..=j].iter().filter(|&&k| labels[k] == 1).count() as f64 * mean_rank;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l == 1).count() as f64;
    let neg = labels.len() as f64 - pos;
    ratio(rank_sum_pos - pos * (pos + 1.0) / 2.0, pos * neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aami_confusion_counts_rows_as_reference() {
        // Reference N N S V V; predicted N S S V N.
        let m = AamiConfusion::compute(&[0, 1, 1, 2, 0], &[0, 0, 1, 2, 2]);
        assert_eq!(m.confusion[0], [1, 1, 0, 0, 0]);
        assert_eq!(m.confusion[2], [1, 0, 1, 0, 0]);
        assert_eq!(m.sensitivity[..3], [0.5, 1.0, 0.5]);
        assert_eq!(m.positive_predictivity[..3], [0.5, 0.5, 1.0]);
        assert_eq!(m.sensitivity[3], 0.0);
    }

    #[test]
    fn confusion_and_metrics() {
        let p = [0.9, 0.8, 0.3, 0.2, 0.6, 0.1];
        let y = [1, 1, 1, 0, 0, 0];
        let m = BinaryMetrics::compute(&p, &y);
        assert_eq!((m.tp, m.fn_, m.fp, m.tn), (2, 1, 1, 2));
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.kappa - 1.0 / 3.0).abs() < 1e-12);
        // Pairs (pos, neg) ranked correctly: 0.9 > all 3; 0.8 > all 3; 0.3 > 0.2, 0.1 → 8 of 9.
        assert!((m.roc_auc - 8.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn auc_handles_ties_and_perfect_separation() {
        assert!((roc_auc(&[0.5, 0.5], &[1, 0]) - 0.5).abs() < 1e-12);
        assert!((roc_auc(&[0.1, 0.2, 0.8, 0.9], &[0, 0, 1, 1]) - 1.0).abs() < 1e-12);
    }
}
