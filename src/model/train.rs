//! The seed paper's training recipe: binary labels, classes balanced by
//! down-sampling the larger one, 10 % held out as test, the rest split 70/30
//! into training and validation, Adam at 1e-3, batches of 128, early stopping
//! with patience 10 on validation loss, keeping the weights of the best
//! validation accuracy. Deterministic for a given seed.

use super::Network;
use super::metrics::BinaryMetrics;
use super::params::{ModelError, Params, SplitMix64};
use super::rr::{RR_FEATURES, SIDE_FEATURES};
use crate::dsp::BEAT_LEN;
use crate::formats::wfdb::AamiClass;
use candle_core::{D, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;
use std::time::Instant;

/// Training settings.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Batch size.
    pub batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Hard limit on epochs.
    pub max_epochs: usize,
    /// Seed of every random choice (split, initialisation, shuffling, dropout).
    pub seed: u64,
    /// Draw the down-sampled class's training beats afresh each epoch from
    /// all of its training beats (`Split::spare` included), instead of once
    /// as the paper did: epochs stay balanced, but no training beat is wasted.
    #[serde(default)]
    pub redraw_each_epoch: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch: 128,
            learning_rate: 1e-3,
            patience: 10,
            max_epochs: 200,
            seed: 42,
            redraw_each_epoch: false,
        }
    }
}

/// Indices into a set of beats: the recipe's three parts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    /// Beats of the down-sampled class that balancing left out of all three
    /// parts: unused by the paper's recipe, drawn from by
    /// `TrainConfig::redraw_each_epoch`.
    pub spare: Vec<usize>,
}

/// The paper's split of `candidates` (indices into `labels`, 1 = abnormal):
/// balanced by down-sampling, 10 % test, then 70/30 train/validation.
pub fn paper_split(labels: &[u8], candidates: &[usize], seed: u64) -> Split {
    let mut rng = SplitMix64::new(seed ^ 0x5eed_5011);
    let (mut pos, mut neg): (Vec<usize>, Vec<usize>) =
        candidates.iter().partition(|&&i| labels[i] == 1);
    rng.shuffle(&mut pos);
    rng.shuffle(&mut neg);
    let n = pos.len().min(neg.len());
    let spare = if pos.len() > n { &pos[n..] } else { &neg[n..] };
    let all: Vec<usize> = pos[..n].iter().chain(&neg[..n]).copied().collect();
    three_parts(all, spare.to_vec(), &mut rng)
}

/// Shuffles `all` and cuts it 10 % test, then 70/30 train/validation.
fn three_parts(mut all: Vec<usize>, spare: Vec<usize>, rng: &mut SplitMix64) -> Split {
    rng.shuffle(&mut all);
    let test_len = all.len() / 10;
    let test = all[..test_len].to_vec();
    let rest = &all[test_len..];
    let train_len = rest.len() * 7 / 10;
    Split {
        train: rest[..train_len].to_vec(),
        validation: rest[train_len..].to_vec(),
        test,
        spare,
    }
}

/// The split for a five-class model (`labels` are AAMI class indices, 0 = N):
/// the paper's down-sampling would cut every class to the rarest one's size,
/// so only N is down-sampled, to `normal_cap` times the size of the largest
/// other class; then 10 % test and 70/30 train/validation as in the paper.
pub fn class_balanced_split(
    labels: &[u8],
    candidates: &[usize],
    seed: u64,
    normal_cap: f32,
) -> Split {
    let mut rng = SplitMix64::new(seed ^ 0x5eed_5011);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for &i in candidates {
        by_class[labels[i] as usize].push(i);
    }
    let cap = by_class[1..].iter().map(Vec::len).max().unwrap_or(0);
    rng.shuffle(&mut by_class[0]);
    let cap = (cap as f64 * f64::from(normal_cap.max(0.0))).round() as usize;
    let keep = cap.min(by_class[0].len());
    let spare = by_class[0].split_off(keep);
    let all: Vec<usize> = by_class.into_iter().flatten().collect();
    three_parts(all, spare, &mut rng)
}

/// Side-feature indices that say *when* a beat came (RR intervals and their
/// ratios to the patient's rhythm, see [`crate::dsp::context`]), as opposed to
/// what its QRS looks like.
const TIMING_SIDE_FEATURES: [usize; 13] = [
    0,
    1,
    2,
    3,
    RR_FEATURES,
    RR_FEATURES + 1,
    RR_FEATURES + 2,
    RR_FEATURES + 3,
    RR_FEATURES + 4,
    RR_FEATURES + 15,
    RR_FEATURES + 16,
    RR_FEATURES + 17,
    RR_FEATURES + 18,
];

/// Timing-swap augmentation: for every V beat in `split.train`, one more
/// training beat with its samples and morphology features but the timing
/// features of a normal beat of the same record, drawn at random (records
/// without normal beats give none). A ventricular beat is one of
/// ventricular origin, early or not; across patients the networks otherwise
/// lean on prematurity and call late or interpolated PVCs N. The copies are
/// appended to `values`, `side` and `labels` and their indices to
/// `split.train` only (validation stays real beats; the N cap is unchanged).
pub fn add_timing_swapped_v(
    values: &mut Vec<[f32; BEAT_LEN]>,
    side: &mut Vec<[f32; SIDE_FEATURES]>,
    labels: &mut Vec<u8>,
    records: &[String],
    split: &mut Split,
    seed: u64,
) -> usize {
    let (n, v) = (AamiClass::N.index() as u8, AamiClass::V.index() as u8);
    let mut normals: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for &i in split.train.iter().chain(&split.spare) {
        if labels[i] == n {
            normals.entry(records[i].as_str()).or_default().push(i);
        }
    }
    let mut rng = SplitMix64::new(seed ^ 0x7a11_5a4b);
    let mut added = Vec::new();
    for &i in &split.train {
        let Some(pool) = normals.get(records[i].as_str()).filter(|_| labels[i] == v) else {
            continue;
        };
        let donor = side[pool[rng.below(pool.len())]];
        let mut copy = side[i];
        for k in TIMING_SIDE_FEATURES {
            copy[k] = donor[k];
        }
        added.push(values.len());
        values.push(values[i]);
        side.push(copy);
        labels.push(v);
    }
    let count = added.len();
    split.train.extend(added);
    count
}

/// Each epoch's training beats under `TrainConfig::redraw_each_epoch`: the
/// beats of every class but the down-sampled one, plus as many of the
/// down-sampled class as `split.train` holds, drawn from its training beats
/// and the spare ones.
struct EpochDraw {
    kept: Vec<usize>,
    pool: Vec<usize>,
    draw: usize,
    rng: SplitMix64,
}

impl EpochDraw {
    fn new(split: &Split, labels: &[u8], seed: u64) -> Option<EpochDraw> {
        let class = labels[*split.spare.first()?];
        let (mut pool, kept): (Vec<usize>, Vec<usize>) =
            split.train.iter().partition(|&&i| labels[i] == class);
        let draw = pool.len();
        pool.extend(&split.spare);
        Some(EpochDraw {
            kept,
            pool,
            draw,
            rng: SplitMix64::new(seed ^ 0x0d0a_5a11),
        })
    }

    /// The next epoch's beats (a partial Fisher–Yates shuffle of the pool).
    fn next(&mut self) -> Vec<usize> {
        let n = self.pool.len();
        for i in 0..self.draw {
            let j = i + self.rng.below(n - i);
            self.pool.swap(i, j);
        }
        let mut epoch = self.kept.clone();
        epoch.extend(&self.pool[..self.draw]);
        epoch
    }
}

/// One epoch's numbers, kept next to the weights for the loss and accuracy curves.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
}

/// What training produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    pub history: Vec<EpochStats>,
    /// Epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
    /// Metrics on the recipe's balanced 10 % test part.
    pub test: BinaryMetrics,
}

fn batch_tensor(
    model_params: &Params,
    beats: &[[f32; BEAT_LEN]],
    idx: &[usize],
) -> Result<Tensor, ModelError> {
    let mut v = Vec::with_capacity(idx.len() * BEAT_LEN);
    for &i in idx {
        v.extend_from_slice(&beats[i]);
    }
    Ok(Tensor::from_vec(
        v,
        (idx.len(), BEAT_LEN),
        model_params.device(),
    )?)
}

/// Side features of beats `idx` as a (batch, k) tensor of the first `k` the
/// model reads, when it reads any.
fn rr_tensor(
    model: &Network,
    params: &Params,
    rr: Option<&[[f32; SIDE_FEATURES]]>,
    idx: &[usize],
) -> Result<Option<Tensor>, ModelError> {
    let k = model.rr_features();
    if k == 0 {
        return Ok(None);
    }
    let rr = rr.ok_or_else(|| {
        ModelError::Device("this model needs the beats' RR intervals, which were not given".into())
    })?;
    let v: Vec<f32> = idx
        .iter()
        .flat_map(|&i| rr[i][..k].iter().copied())
        .collect();
    Ok(Some(Tensor::from_vec(v, (idx.len(), k), params.device())?))
}

fn label_tensor(params: &Params, labels: &[u8], idx: &[usize]) -> Result<Tensor, ModelError> {
    let v: Vec<u32> = idx.iter().map(|&i| labels[i] as u32).collect();
    Ok(Tensor::from_vec(v, idx.len(), params.device())?)
}

/// Runs `model` over beats `idx` (with their RR features, for models that
/// need them) in batches of `batch`, without dropout, handing each batch's
/// indices and logits to `each`.
#[allow(clippy::too_many_arguments)]
fn for_each_batch(
    model: &Network,
    params: &Params,
    beats: &[[f32; BEAT_LEN]],
    rr: Option<&[[f32; SIDE_FEATURES]]>,
    idx: &[usize],
    batch: usize,
    mut each: impl FnMut(&[usize], &Tensor) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    for chunk in idx.chunks(batch.max(1)) {
        let x = batch_tensor(params, beats, chunk)?;
        let r = rr_tensor(model, params, rr, chunk)?;
        each(chunk, &model.forward(params, &x, r.as_ref(), None)?)?;
    }
    Ok(())
}

/// Probability of "abnormal" (every class but 0, normal) for beats `idx`
/// (with their RR features, for models that need them), in batches of `batch`.
pub fn predict(
    model: &Network,
    params: &Params,
    beats: &[[f32; BEAT_LEN]],
    rr: Option<&[[f32; SIDE_FEATURES]]>,
    idx: &[usize],
    batch: usize,
) -> Result<Vec<f32>, ModelError> {
    let p = predict_probabilities(model, params, beats, rr, idx, batch)?;
    Ok(p.chunks_exact(model.classes())
        .map(|q| 1.0 - q[0])
        .collect())
}

/// Class probabilities (softmax), `classes` per beat, for beats `idx`, in batches of `batch`.
pub fn predict_probabilities(
    model: &Network,
    params: &Params,
    beats: &[[f32; BEAT_LEN]],
    rr: Option<&[[f32; SIDE_FEATURES]]>,
    idx: &[usize],
    batch: usize,
) -> Result<Vec<f32>, ModelError> {
    let mut out = Vec::with_capacity(idx.len() * model.classes());
    for_each_batch(model, params, beats, rr, idx, batch, |_, logits| {
        let p = candle_nn::ops::softmax_last_dim(logits)?;
        out.extend(p.flatten_all()?.to_vec1::<f32>()?);
        Ok(())
    })?;
    Ok(out)
}

/// The most probable class of each beat `idx`, in batches of `batch`.
pub fn predict_classes(
    model: &Network,
    params: &Params,
    beats: &[[f32; BEAT_LEN]],
    rr: Option<&[[f32; SIDE_FEATURES]]>,
    idx: &[usize],
    batch: usize,
) -> Result<Vec<usize>, ModelError> {
    let mut out = Vec::with_capacity(idx.len());
    for_each_batch(model, params, beats, rr, idx, batch, |_, logits| {
        let classes: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
        out.extend(classes.into_iter().map(|c| c as usize));
        Ok(())
    })?;
    Ok(out)
}

/// How many of the beats `idx` the logits classify as `labels` says.
fn count_correct(logits: &Tensor, labels: &[u8], idx: &[usize]) -> Result<usize, ModelError> {
    let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    Ok(pred
        .iter()
        .zip(idx)
        .filter(|&(&p, &i)| p == labels[i] as u32)
        .count())
}

/// Mean cross-entropy and accuracy over `idx`, without dropout.
fn evaluate(
    model: &Network,
    params: &Params,
    beats: &[[f32; BEAT_LEN]],
    rr: Option<&[[f32; SIDE_FEATURES]]>,
    labels: &[u8],
    idx: &[usize],
    batch: usize,
) -> Result<(f64, f64), ModelError> {
    let (mut loss, mut correct) = (0.0, 0usize);
    for_each_batch(model, params, beats, rr, idx, batch, |chunk, logits| {
        let y = label_tensor(params, labels, chunk)?;
        loss += candle_nn::loss::cross_entropy(logits, &y)?.to_scalar::<f32>()? as f64
            * chunk.len() as f64;
        correct += count_correct(logits, labels, chunk)?;
        Ok(())
    })?;
    let n = idx.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Trains `model` on `split` (RR features `rr` for models that need them),
/// reporting each batch to `progress(epoch, batch, batches, loss)`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Network,
    params: &Params,
    beats: &[[f32; BEAT_LEN]],
    rr: Option<&[[f32; SIDE_FEATURES]]>,
    labels: &[u8],
    split: &Split,
    config: &TrainConfig,
    mut progress: impl FnMut(usize, usize, usize, f64),
) -> Result<TrainOutcome, ModelError> {
    let mut opt = AdamW::new(
        params.vars(),
        ParamsAdamW {
            lr: config.learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        },
    )?;
    let mut rng = SplitMix64::new(config.seed ^ 0x7a1d_c0de);
    let mut order = split.train.clone();
    let mut redraw = if config.redraw_each_epoch {
        EpochDraw::new(split, labels, config.seed)
    } else {
        None
    };
    let mut history = Vec::new();
    let (mut best_loss, mut best_acc, mut best_epoch, mut since_best) = (f64::INFINITY, -1.0, 0, 0);
    let mut best_weights = params.snapshot()?;
    let batches = order.len().div_ceil(config.batch.max(1));
    for epoch in 1..=config.max_epochs {
        let start = Instant::now();
        if let Some(draw) = redraw.as_mut() {
            order = draw.next();
        }
        rng.shuffle(&mut order);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for (b, chunk) in order.chunks(config.batch.max(1)).enumerate() {
            let x = batch_tensor(params, beats, chunk)?;
            let y = label_tensor(params, labels, chunk)?;
            let r = rr_tensor(model, params, rr, chunk)?;
            let logits = model.forward(params, &x, r.as_ref(), Some(&mut rng))?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            opt.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()? as f64;
            loss_sum += l * chunk.len() as f64;
            correct += count_correct(&logits, labels, chunk)?;
            progress(epoch, b + 1, batches, l);
        }
        let (val_loss, val_accuracy) =
            evaluate(model, params, beats, rr, labels, &split.validation, 1024)?;
        let n = order.len().max(1) as f64;
        history.push(EpochStats {
            epoch,
            loss: loss_sum / n,
            accuracy: correct as f64 / n,
            val_loss,
            val_accuracy,
            seconds: start.elapsed().as_secs_f64(),
        });
        if val_accuracy > best_acc {
            best_acc = val_accuracy;
            best_epoch = epoch;
            best_weights = params.snapshot()?;
        }
        if val_loss < best_loss {
            best_loss = val_loss;
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= config.patience {
                break;
            }
        }
    }
    params.restore(&best_weights)?;
    let p = predict(model, params, beats, rr, &split.test, 1024)?;
    let y: Vec<u8> = split
        .test
        .iter()
        .map(|&i| u8::from(labels[i] != 0))
        .collect();
    Ok(TrainOutcome {
        history,
        best_epoch,
        test: BinaryMetrics::compute(&p, &y),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use candle_core::Device;

    #[test]
    fn timing_swapped_v_copies_keep_the_shape_and_take_a_normal_beats_timing() {
        let (n, v) = (AamiClass::N.index() as u8, AamiClass::V.index() as u8);
        // Record a: two normal beats (timing 1.0) and a V beat (timing 0.5);
        // record b: a V beat and no normal beat; a V beat of a held-out part.
        let records: Vec<String> = ["a", "a", "a", "b", "a"].map(String::from).to_vec();
        let mut labels = vec![n, n, v, v, v];
        let mut side: Vec<[f32; SIDE_FEATURES]> = labels
            .iter()
            .map(|&l| [if l == n { 1.0 } else { 0.5 }; SIDE_FEATURES])
            .collect();
        let mut values: Vec<[f32; BEAT_LEN]> = (0..5).map(|i| [i as f32; BEAT_LEN]).collect();
        let mut split = Split {
            train: vec![0, 2, 3],
            validation: vec![4],
            test: vec![],
            spare: vec![1],
        };
        let added =
            add_timing_swapped_v(&mut values, &mut side, &mut labels, &records, &mut split, 7);
        assert_eq!(added, 1, "record b has no normal beat to lend its timing");
        assert_eq!(split.train, [0, 2, 3, 5]);
        assert_eq!(split.validation, [4], "validation keeps real beats only");
        assert_eq!((labels.len(), labels[5]), (6, v));
        assert_eq!(values[5], values[2]);
        for (k, &x) in side[5].iter().enumerate() {
            let want = if TIMING_SIDE_FEATURES.contains(&k) {
                1.0
            } else {
                0.5
            };
            assert_eq!(x, want, "side feature {k}");
        }
    }

    #[test]
    fn split_is_balanced_disjoint_and_deterministic() {
        let labels: Vec<u8> = (0..1000).map(|i| u8::from(i % 5 == 0)).collect();
        let all: Vec<usize> = (0..1000).collect();
        let s = paper_split(&labels, &all, 1);
        let total = s.train.len() + s.validation.len() + s.test.len();
        assert_eq!(total, 400);
        let pos = s
            .train
            .iter()
            .chain(&s.validation)
            .chain(&s.test)
            .filter(|&&i| labels[i] == 1)
            .count();
        assert_eq!(pos, 200);
        assert_eq!(s.test.len(), 40);
        let mut seen: Vec<usize> = s
            .train
            .iter()
            .chain(&s.validation)
            .chain(&s.test)
            .copied()
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 400);
        assert_eq!(paper_split(&labels, &all, 1).train, s.train);
        let mut spare = s.spare.clone();
        spare.sort();
        assert_eq!(spare.len(), 600);
        assert!(spare.iter().all(|&i| labels[i] == 0));
        assert!(
            s.train
                .iter()
                .chain(&s.validation)
                .chain(&s.test)
                .all(|i| spare.binary_search(i).is_err())
        );
    }

    #[test]
    fn five_class_split_keeps_n_at_the_cap_multiple() {
        // 800 N, 120 S, 80 V: N kept at 1 ×, 2.5 × and (all of them) 100 × the largest other class.
        let labels: Vec<u8> = (0..1000)
            .map(|i| match i % 25 {
                0..=2 => 1,
                3..=4 => 2,
                _ => 0,
            })
            .collect();
        let all: Vec<usize> = (0..1000).collect();
        let others = labels.iter().filter(|&&c| c != 0).count();
        for (cap, kept) in [(1.0, 120), (2.5, 300), (100.0, 800)] {
            let s = class_balanced_split(&labels, &all, 1, cap);
            let n = s
                .train
                .iter()
                .chain(&s.validation)
                .chain(&s.test)
                .filter(|&&i| labels[i] == 0)
                .count();
            assert_eq!(n, kept, "cap {cap}");
            assert_eq!(n + s.spare.len(), 1000 - others);
        }
    }

    #[test]
    fn redrawn_epochs_stay_balanced_and_reach_the_spare_beats() {
        let labels: Vec<u8> = (0..1000).map(|i| u8::from(i % 5 == 0)).collect();
        let all: Vec<usize> = (0..1000).collect();
        let s = paper_split(&labels, &all, 3);
        let held_out: std::collections::HashSet<usize> =
            s.validation.iter().chain(&s.test).copied().collect();
        let mut draw = EpochDraw::new(&s, &labels, 3).unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..30 {
            let epoch = draw.next();
            assert_eq!(epoch.len(), s.train.len());
            let abnormal = epoch.iter().filter(|&&i| labels[i] == 1).count();
            let expected = s.train.iter().filter(|&&i| labels[i] == 1).count();
            assert_eq!(abnormal, expected);
            let mut unique = epoch.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), epoch.len(), "a beat drawn twice in one epoch");
            assert!(epoch.iter().all(|i| !held_out.contains(i)));
            seen.extend(epoch);
        }
        let spare_seen = s.spare.iter().filter(|i| seen.contains(i)).count();
        assert!(
            spare_seen > s.spare.len() * 9 / 10,
            "only {spare_seen} of {} spare beats were ever drawn",
            s.spare.len()
        );
    }

    #[test]
    fn training_lowers_the_loss_on_a_learnable_task() {
        // Abnormal beats have a wide bump, normal ones a narrow spike.
        let mut rng = SplitMix64::new(5);
        let (mut beats, mut labels) = (Vec::new(), Vec::new());
        for i in 0..400 {
            let abnormal = i % 2 == 0;
            let width = if abnormal { 20.0 } else { 4.0 };
            let mut b = [0.0f32; BEAT_LEN];
            for (k, v) in b.iter_mut().enumerate() {
                let d = (k as f32 - 30.0) / width;
                *v = (-d * d).exp() + 0.05 * rng.next_f32();
            }
            beats.push(b);
            labels.push(u8::from(abnormal));
        }
        let all: Vec<usize> = (0..400).collect();
        let split = paper_split(&labels, &all, 2);
        let mut params = Params::new(&Device::Cpu);
        let model = Network::build("cnn-lstm", &mut params, &mut SplitMix64::new(9)).unwrap();
        let config = TrainConfig {
            max_epochs: 4,
            batch: 32,
            ..TrainConfig::default()
        };
        let out = train(
            &model,
            &params,
            &beats,
            None,
            &labels,
            &split,
            &config,
            |_, _, _, _| {},
        )
        .unwrap();
        let first = out.history.first().unwrap().loss;
        let last = out.history.last().unwrap().loss;
        assert!(last < first, "loss went from {first} to {last}");
    }
}
