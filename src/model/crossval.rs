//! Leave-records-out cross-validation inside a training set (DS1): how model
//! choices are made without looking at the test patients.
//!
//! The training records are dealt round-robin into folds; for each fold and
//! seed a model is trained on the other folds' records (the recipe of
//! [`super::recipe`]: five classes, N down-sampled, redrawn each epoch) and
//! scored on the held-out records' beats with the EC57 beat statistics, for
//! every candidate decision rule ([`super::decision`]: a weight on the normal
//! class, and optionally the premature rule for S and the cluster rule for
//! V). Scores are pooled over
//! folds (gross) per seed, then summarised over seeds; with several seeds,
//! the ensemble that averages their probabilities is scored too.
//!
//! Beats are scored as the dataset holds them (detected, matched to a
//! reference beat, readable), over whole records: close to, not the same as,
//! `holterd eval ec57`, which streams records and skips their first 5 minutes.

use super::decision::{ClusterRule, DecisionRule, PrematureRule};
use super::train::{
    TrainConfig, add_timing_swapped_v, class_balanced_split, predict_probabilities, train,
};
use super::{Network, Params, SplitMix64};
use crate::dataset::BeatSet;
use crate::eval::{AlgorithmLabel, Confusion, Ec57Stats};
use crate::formats::wfdb::AamiClass;
use anyhow::{Result, bail};

/// What to cross-validate.
#[derive(Debug, Clone)]
pub struct CvRequest {
    /// Architecture name (see [`super::ARCHITECTURES`]); five-class only.
    pub architecture: String,
    /// The records to validate within (e.g. DS1).
    pub records: Vec<String>,
    /// Number of folds.
    pub folds: usize,
    /// One full cross-validation per seed.
    pub seeds: Vec<u64>,
    /// Candidate weights of the normal class in the decision rule.
    pub normal_weights: Vec<f32>,
    /// Candidate premature rules (`None`: the network's N/S call stands).
    pub premature_rules: Vec<Option<PrematureRule>>,
    /// Candidate cluster rules for V (`None`: none).
    pub cluster_rules: Vec<Option<ClusterRule>>,
    /// Upper limit on epochs per training run.
    pub max_epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// N beats kept per epoch, as a multiple of the largest other class.
    pub normal_cap: f32,
    /// Train on timing-swapped copies of the V beats too
    /// ([`add_timing_swapped_v`]).
    pub v_timing_swap: bool,
}

/// The pooled held-out result of one seed (`None`: the ensemble averaging
/// every seed's probabilities) under one decision rule.
#[derive(Debug, Clone)]
pub struct CvResult {
    pub seed: Option<u64>,
    pub normal_weight: f32,
    pub premature: Option<PrematureRule>,
    pub cluster: Option<ClusterRule>,
    pub confusion: Confusion,
    pub stats: Ec57Stats,
}

/// The records of `records` in each of `folds` folds, dealt round-robin.
pub fn folds_of(records: &[String], folds: usize) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); folds.max(1)];
    for (i, r) in records.iter().enumerate() {
        out[i % folds.max(1)].push(r.clone());
    }
    out
}

/// Runs the cross-validation; `progress` hears one line per training run.
pub fn cross_validate(
    set: &BeatSet,
    req: &CvRequest,
    mut progress: impl FnMut(String),
) -> Result<Vec<CvResult>> {
    if req.folds < 2 || req.folds > req.records.len() {
        bail!(
            "--folds must be between 2 and the number of records ({})",
            req.records.len()
        );
    }
    let labels: Vec<u8> = set.class.iter().map(|c| c.index() as u8).collect();
    let side = set.rr_features();
    let folds = folds_of(&req.records, req.folds);
    let mut results = Vec::new();
    let rules: Vec<DecisionRule> = req
        .normal_weights
        .iter()
        .flat_map(|&normal_weight| {
            req.premature_rules.iter().flat_map(move |&premature| {
                req.cluster_rules.iter().map(move |&cluster| DecisionRule {
                    normal_weight,
                    premature,
                    cluster,
                })
            })
        })
        .collect();
    // Per fold: the held-out beats and the sum of every seed's probabilities.
    let mut ensemble: Vec<(Vec<usize>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); folds.len()];
    for &seed in &req.seeds {
        let mut pooled = vec![Confusion::default(); rules.len()];
        for (f, held_out) in folds.iter().enumerate() {
            let in_records = |i: &usize, rs: &[String]| {
                set.readable[*i] && rs.iter().any(|r| *r == set.record[*i])
            };
            let train_records: Vec<String> = req
                .records
                .iter()
                .filter(|r| !held_out.contains(r))
                .cloned()
                .collect();
            let train_idx: Vec<usize> = (0..set.len())
                .filter(|i| in_records(i, &train_records))
                .collect();
            let test_idx: Vec<usize> = (0..set.len()).filter(|i| in_records(i, held_out)).collect();
            let mut params = Params::new(&candle_core::Device::Cpu);
            let network =
                Network::build(&req.architecture, &mut params, &mut SplitMix64::new(seed))?;
            if network.classes() != AamiClass::ALL.len() {
                bail!("{} is not a five-class architecture", req.architecture);
            }
            let mut split = class_balanced_split(&labels, &train_idx, seed, req.normal_cap);
            let augmented;
            let (values, side_all, labels_all) = if req.v_timing_swap {
                let (mut v, mut s, mut l) = (set.values.clone(), side.clone(), labels.clone());
                add_timing_swapped_v(&mut v, &mut s, &mut l, &set.record, &mut split, seed);
                augmented = (v, s, l);
                (&augmented.0, &augmented.1, &augmented.2)
            } else {
                (&set.values, &side, &labels)
            };
            let config = TrainConfig {
                seed,
                max_epochs: req.max_epochs,
                patience: req.patience,
                redraw_each_epoch: true,
                ..TrainConfig::default()
            };
            let outcome = train(
                &network,
                &params,
                values,
                Some(side_all),
                labels_all,
                &split,
                &config,
                |_, _, _, _| {},
            )?;
            let q = predict_probabilities(
                &network,
                &params,
                &set.values,
                Some(&side),
                &test_idx,
                1024,
            )?;
            tally_fold(&rules, &mut pooled, &test_idx, &q, set, &side);
            let (idx, sum) = &mut ensemble[f];
            if sum.is_empty() {
                *idx = test_idx.clone();
                *sum = vec![0.0; q.len()];
            }
            for (s, p) in sum.iter_mut().zip(&q) {
                *s += p;
            }
            progress(format!(
                "seed {seed} fold {}/{} (held out {}): {} epochs, best {}",
                f + 1,
                folds.len(),
                held_out.join(","),
                outcome.history.len(),
                outcome.best_epoch
            ));
        }
        for (rule, confusion) in rules.iter().zip(pooled) {
            results.push(CvResult {
                seed: Some(seed),
                normal_weight: rule.normal_weight,
                premature: rule.premature,
                cluster: rule.cluster,
                stats: Ec57Stats::from_confusion(&confusion, 0.0),
                confusion,
            });
        }
    }
    if req.seeds.len() > 1 {
        let mut pooled = vec![Confusion::default(); rules.len()];
        for (idx, sum) in &ensemble {
            let mean: Vec<f32> = sum.iter().map(|s| s / req.seeds.len() as f32).collect();
            tally_fold(&rules, &mut pooled, idx, &mean, set, &side);
        }
        for (rule, confusion) in rules.iter().zip(pooled) {
            results.push(CvResult {
                seed: None,
                normal_weight: rule.normal_weight,
                premature: rule.premature,
                cluster: rule.cluster,
                stats: Ec57Stats::from_confusion(&confusion, 0.0),
                confusion,
            });
        }
    }
    Ok(results)
}

/// Tallies one fold's held-out beats `idx`, with class probabilities `q`
/// (five per beat), under every rule.
fn tally_fold(
    rules: &[DecisionRule],
    pooled: &mut [Confusion],
    idx: &[usize],
    q: &[f32],
    set: &BeatSet,
    side: &[[f32; super::rr::SIDE_FEATURES]],
) {
    for (rule, c) in rules.iter().zip(pooled.iter_mut()) {
        for (&i, q) in idx.iter().zip(q.chunks_exact(AamiClass::ALL.len())) {
            let class = rule.decide(q, Some(&side[i]));
            c.tally(Some(set.class[i]), Some(AlgorithmLabel::Class(class)), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_hold_every_record_once() {
        let records: Vec<String> = (0..22).map(|i| i.to_string()).collect();
        let folds = folds_of(&records, 4);
        assert_eq!(folds.iter().map(Vec::len).sum::<usize>(), 22);
        assert_eq!(folds[0][..2], ["0".to_string(), "4".to_string()]);
    }
}
