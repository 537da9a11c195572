//! A shipped model: `weights.safetensors` plus `card.json`, which says what the
//! model is, how it was trained and how well it did. The daemon and the
//! results view read the cards.

use super::Network;
use super::metrics::BinaryMetrics;
use super::params::{ModelError, Params, SplitMix64};
use super::profile::InputProfile;
use super::train::{EpochStats, TrainConfig};
use crate::dataset::Protocol;
use crate::formats::wfdb::AamiClass;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How beats of one AAMI class were classified.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ClassOutcome {
    /// Beats of the class scored.
    pub beats: usize,
    /// Of those, predicted abnormal.
    pub predicted_abnormal: usize,
    /// Sensitivity for S, V, F and Q (share predicted abnormal); specificity for N.
    pub rate: f64,
}

/// Scores on a protocol's test beats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub protocol: Protocol,
    /// Beats scored (unbalanced, as they come).
    pub beats: usize,
    #[serde(flatten)]
    pub metrics: BinaryMetrics,
    /// Per AAMI class, in the order N, S, V, F, Q.
    pub per_class: Vec<(AamiClass, ClassOutcome)>,
    /// Of the beats scored, those the model abstains on as unlike its training
    /// beats (the metrics above still count its probabilities for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstained: Option<usize>,
    /// For a five-class model: its AAMI classes against the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aami: Option<super::metrics::AamiConfusion>,
}

impl Evaluation {
    /// Scores probabilities `p_abnormal` of beats whose classes are `classes`.
    pub fn compute(protocol: Protocol, p_abnormal: &[f32], classes: &[AamiClass]) -> Self {
        let labels: Vec<u8> = classes.iter().map(|c| c.binary()).collect();
        let per_class = AamiClass::ALL
            .iter()
            .map(|&c| {
                let (mut beats, mut abnormal) = (0, 0);
                for (&p, &k) in p_abnormal.iter().zip(classes) {
                    if k == c {
                        beats += 1;
                        abnormal += usize::from(p >= 0.5);
                    }
                }
                let hits = if c == AamiClass::N {
                    beats - abnormal
                } else {
                    abnormal
                };
                let rate = if beats == 0 {
                    0.0
                } else {
                    hits as f64 / beats as f64
                };
                (
                    c,
                    ClassOutcome {
                        beats,
                        predicted_abnormal: abnormal,
                        rate,
                    },
                )
            })
            .collect();
        Evaluation {
            protocol,
            beats: classes.len(),
            metrics: BinaryMetrics::compute(p_abnormal, &labels),
            per_class,
            abstained: None,
            aami: None,
        }
    }
}

/// Everything known about a trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Directory name, e.g. `cnn-lstm-intra`.
    pub name: String,
    /// Architecture name, one of [`super::ARCHITECTURES`].
    pub architecture: String,
    pub parameters: usize,
    /// Protocol whose training part the model was trained on.
    pub protocol: Protocol,
    pub train_config: TrainConfig,
    /// Beats in the recipe's training, validation and test parts.
    pub split_sizes: [usize; 3],
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub training_seconds: f64,
    pub history: Vec<EpochStats>,
    /// On the recipe's balanced 10 % test part.
    pub recipe_test: BinaryMetrics,
    /// On the protocol's held-out beats.
    pub evaluation: Evaluation,
    /// holterd version that trained it.
    pub holterd_version: String,
    /// The range of the training beats' shapes; beats outside get no verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_profile: Option<InputProfile>,
    /// Extra training beats beyond the protocol's clean ones (noise augmentation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub augmentation: Vec<String>,
    /// Five-class models: the weight of N's probability in the decision rule
    /// (see [`super::decision`]), chosen by cross-validation inside DS1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_weight: Option<f32>,
    /// Five-class models: the rule that decides N or S by prematurity (see
    /// [`super::decision::PrematureRule`]), chosen by cross-validation inside DS1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premature_rule: Option<super::decision::PrematureRule>,
    /// Five-class models: the rule that calls a beat of an ectopic shape
    /// cluster V (see [`super::decision::ClusterRule`]), chosen by
    /// cross-validation inside DS1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_rule: Option<super::decision::ClusterRule>,
    /// Five-class models: N beats kept per epoch, as a multiple of the largest
    /// other class (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal_cap: Option<f32>,
    /// Further members of this model: subdirectories holding networks trained
    /// the same way with other seeds (`train --seed 1,2,3`). The model's class
    /// probabilities are the average of this directory's network and theirs,
    /// which varies less from training run to training run on new patients.
    /// Empty: a single network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ensemble: Vec<String>,
}

/// A model loaded from its directory.
pub struct LoadedModel {
    pub card: ModelCard,
    pub network: Network,
    pub params: Params,
}

/// Loads `dir/card.json` and `dir/weights.safetensors` onto `device`.
pub fn load_model(dir: &Path, device: &Device) -> Result<LoadedModel, ModelError> {
    let card_path = dir.join("card.json");
    let text = std::fs::read_to_string(&card_path).map_err(|e| ModelError::Weights {
        path: card_path.display().to_string(),
        message: match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "not found: {} is not a model directory; name one of models/ (e.g. models/cnn-lstm-rr-inter) with --model or pipeline.models",
                dir.display()
            ),
            _ => e.to_string(),
        },
    })?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|e| ModelError::Weights {
        path: card_path.display().to_string(),
        message: format!("not a model card: {e}"),
    })?;
    let mut params = Params::new(device);
    let network = Network::build(&card.architecture, &mut params, &mut SplitMix64::new(0))?;
    params.load(&dir.join("weights.safetensors"))?;
    Ok(LoadedModel {
        card,
        network,
        params,
    })
}
