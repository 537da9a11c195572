//! The whole of `holterd train`: load a dataset built by `holterd dataset
//! build`, take the protocol's training beats (plus any noisy copies of the
//! training records), balance and split them by the seed paper's recipe (or
//! by class for five-class models), train, evaluate on the held-out beats, fit
//! the input profile, and write the model directory (`weights.safetensors`
//! and `card.json`) that the daemon, `analyze` and uploads load.

use super::card::{Evaluation, ModelCard};
use super::profile::InputProfile;
use super::train::{EpochStats, TrainConfig, class_balanced_split, paper_split, train};
use super::{Network, Params, SplitMix64};
use crate::dataset::{self, Protocol, protocol_split};
use crate::formats::wfdb::AamiClass;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to train, on what, and where to write it.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Architecture name (see [`super::ARCHITECTURES`]).
    pub architecture: String,
    /// Directory written by `holterd dataset build`.
    pub data: PathBuf,
    /// Output directory (default: `models/<architecture>-<protocol>`).
    pub out: Option<PathBuf>,
    /// Which beats to train on: the protocol's training part.
    pub protocol: Protocol,
    /// Seed of the balancing, the split, the initial weights and the batch order.
    pub seed: u64,
    /// Upper limit on epochs.
    pub max_epochs: usize,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Redraw the down-sampled class every epoch instead of once.
    pub redraw_each_epoch: bool,
    /// Datasets (built with `dataset build --noise`) whose training records' beats are added; inter only.
    pub augment: Vec<PathBuf>,
    /// `cpu` or `cuda`.
    pub device: String,
    /// Five-class models: the weight of N in the decision rule (chosen by `eval cv`).
    pub normal_weight: Option<f32>,
    /// Five-class models: the premature rule for S (chosen by `eval cv`).
    pub premature_rule: Option<super::decision::PrematureRule>,
    /// Five-class models: the cluster rule for V (chosen by `eval cv`).
    pub cluster_rule: Option<super::decision::ClusterRule>,
    /// Five-class models: N beats kept per epoch, as a multiple of the largest
    /// other class (default 1).
    pub normal_cap: Option<f32>,
}

/// What a training run reports as it goes.
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// The run's plan: model, parameters and split sizes.
    Plan(String),
    /// One training batch done.
    Batch {
        epoch: usize,
        batch: usize,
        of: usize,
        loss: f64,
    },
    /// One epoch's statistics, after training.
    Epoch(&'a EpochStats),
}

/// A protocol's beats, with the noisy copies of its training beats added.
pub struct TrainingSet {
    pub set: dataset::BeatSet,
    /// Beats trained on (augmented copies included).
    pub train_idx: Vec<usize>,
    /// Beats held out for evaluation.
    pub test_idx: Vec<usize>,
    /// What each augmentation directory added, for the card.
    pub augmentation: Vec<String>,
}

/// Loads `data` and the augmentation directories `augment` and splits them
/// by `protocol`; training and refitting a card's input profile both use it,
/// so a profile is fitted on exactly the beats its model was trained on.
pub fn training_set(
    data: &std::path::Path,
    augment: &[PathBuf],
    protocol: dataset::Protocol,
) -> Result<TrainingSet> {
    let mut set = dataset::load(data)?;
    let (mut train_idx, test_idx) = protocol_split(&set, protocol);
    let mut augmentation = Vec::new();
    if !augment.is_empty() && protocol != dataset::Protocol::Inter {
        bail!(
            "augmentation (--augment) needs the inter protocol (--protocol inter): under intra, a noisy copy of a scored beat could be trained on"
        );
    }
    for dir in augment {
        let extra = dataset::load(dir)?;
        let (extra_train, _) = protocol_split(&extra, protocol);
        let offset = set.len();
        augmentation.push(format!(
            "{} readable beats of the training records: {}",
            extra_train.len(),
            dataset::source(dir)
        ));
        train_idx.extend(extra_train.iter().map(|&i| i + offset));
        set.append(extra);
    }
    Ok(TrainingSet {
        set,
        train_idx,
        test_idx,
        augmentation,
    })
}

/// Trains and writes one model; returns its directory and card.
pub fn train_model(
    a: &TrainRequest,
    mut progress: impl FnMut(TrainEvent),
) -> Result<(PathBuf, ModelCard)> {
    let device = crate::model::device(&a.device)?;
    let TrainingSet {
        set,
        train_idx,
        test_idx,
        augmentation,
    } = training_set(&a.data, &a.augment, a.protocol)?;
    let mut params = Params::new(&device);
    let network = Network::build(&a.architecture, &mut params, &mut SplitMix64::new(a.seed))?;
    // Binary models learn normal/abnormal with the paper's balancing; five-class
    // models learn the AAMI classes with N down-sampled only.
    let five_class = network.classes() == AamiClass::ALL.len();
    let (labels, split) = if five_class {
        let labels: Vec<u8> = set.class.iter().map(|c| c.index() as u8).collect();
        let split = class_balanced_split(&labels, &train_idx, a.seed, a.normal_cap.unwrap_or(1.0));
        (labels, split)
    } else {
        let labels = set.binary();
        let split = paper_split(&labels, &train_idx, a.seed);
        (labels, split)
    };
    let train_config = TrainConfig {
        seed: a.seed,
        max_epochs: a.max_epochs,
        patience: a.patience,
        redraw_each_epoch: a.redraw_each_epoch,
        ..TrainConfig::default()
    };
    // The card's name is its directory's, which the catalogue offers it by.
    let default_name = format!(
        "{}-{}",
        a.architecture,
        format!("{:?}", a.protocol).to_lowercase()
    );
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("models").join(&default_name));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or(default_name);
    progress(TrainEvent::Plan(format!(
        "{name}: {} parameters; {} beats for training ({} train / {} validation / {} test after balancing), {} held out for evaluation",
        params.count(),
        train_idx.len(),
        split.train.len(),
        split.validation.len(),
        split.test.len(),
        test_idx.len()
    )));
    let start = Instant::now();
    let rr = set.rr_features();
    let outcome = train(
        &network,
        &params,
        &set.values,
        Some(&rr),
        &labels,
        &split,
        &train_config,
        |epoch, batch, of, loss| {
            progress(TrainEvent::Batch {
                epoch,
                batch,
                of,
                loss,
            })
        },
    )?;
    for e in &outcome.history {
        progress(TrainEvent::Epoch(e));
    }
    let input_profile = InputProfile::fit(train_idx.iter().map(|&i| &set.values[i]));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    params.save(&out.join("weights.safetensors"))?;
    let mut card = ModelCard {
        name,
        architecture: a.architecture.clone(),
        parameters: params.count(),
        protocol: a.protocol,
        train_config,
        split_sizes: [split.train.len(), split.validation.len(), split.test.len()],
        epochs_run: outcome.history.len(),
        best_epoch: outcome.best_epoch,
        training_seconds: start.elapsed().as_secs_f64(),
        history: outcome.history,
        recipe_test: outcome.test,
        // Scored below, through the model as it is loaded from `out`.
        evaluation: Evaluation::compute(a.protocol, &[], &[]),
        holterd_version: env!("CARGO_PKG_VERSION").to_string(),
        input_profile: Some(input_profile),
        augmentation,
        normal_weight: a.normal_weight,
        premature_rule: a.premature_rule,
        cluster_rule: a.cluster_rule,
        normal_cap: a.normal_cap,
        ensemble: Vec::new(),
    };
    score_card(&out, &mut card, &set, &test_idx, &device)?;
    Ok((out, card))
}

/// Writes `card` into the model directory `out`, loads the model from there
/// as the daemon would (with any ensemble members), scores it on the
/// protocol's held-out beats `test_idx` of `set`, and writes the card again
/// with that evaluation: a card's numbers are those of the files beside it.
fn score_card(
    out: &Path,
    card: &mut ModelCard,
    set: &dataset::BeatSet,
    test_idx: &[usize],
    device: &candle_core::Device,
) -> Result<()> {
    let path = out.join("card.json");
    let write = |card: &ModelCard| {
        std::fs::write(&path, serde_json::to_string_pretty(card)?)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    write(card)?;
    let classifier = super::classifier::Classifier::load(&[out], device)?;
    card.evaluation = classifier.evaluate(set, test_idx, card.protocol)?;
    write(card)
}

/// Trains one network per seed of `seeds`, all with the settings of `a`, and
/// writes them as one model: the first seed's network in the model directory,
/// each other one in its subdirectory `seed-<K>`, listed in the card's
/// [`ensemble`](ModelCard::ensemble); the card's evaluation is then the
/// ensemble's (probabilities averaged). One seed is [`train_model`].
pub fn train_ensemble(
    a: &TrainRequest,
    seeds: &[u64],
    mut progress: impl FnMut(TrainEvent),
) -> Result<(PathBuf, ModelCard)> {
    let Some((&first, rest)) = seeds.split_first() else {
        bail!("no seed given: --seed takes one seed, or several (comma-separated) for an ensemble");
    };
    if let Some(s) = rest
        .iter()
        .find(|s| seeds.iter().filter(|t| t == s).count() > 1)
    {
        bail!("seed {s} is given twice: an ensemble's members need different seeds");
    }
    let (out, mut card) = train_model(
        &TrainRequest {
            seed: first,
            ..a.clone()
        },
        &mut progress,
    )?;
    for &seed in rest {
        let member = format!("seed-{seed}");
        let request = TrainRequest {
            seed,
            out: Some(out.join(&member)),
            ..a.clone()
        };
        train_model(&request, &mut progress)?;
        card.ensemble.push(member);
    }
    if !card.ensemble.is_empty() {
        let device = crate::model::device(&a.device)?;
        let set = dataset::load(&a.data)?;
        let (_, test_idx) = protocol_split(&set, a.protocol);
        score_card(&out, &mut card, &set, &test_idx, &device)?;
    }
    Ok((out, card))
}
