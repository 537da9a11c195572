//! Beat classifiers (candle): the seed paper's networks, their parameters and
//! layers, training and metrics.
//!
//! - [`layers`]: max-pooling and the Keras-style LSTM that candle lacks;
//! - [`params`]: named parameters with Keras initialisation, saved as safetensors;
//! - [`cnn_lstm`]: the paper's CNN-LSTM and CNN-LSTM-with-dropout;
//! - [`context_mlp`]: the patient-adaptive five-class MLP on side features;
//! - [`transformer`]: the paper's transformer, and why it is an MLP;
//! - [`patch_transformer`]: a transformer that attends over patches of the beat;
//! - [`profile`]: the training beats' shape range, for abstaining on anything else;
//! - [`rr`]: a beat's timing against its neighbours, for the RR-aware model;
//! - [`metrics`]: accuracy, precision, recall, F1, kappa, ROC AUC;
//! - [`train`]: the paper's training recipe;
//! - [`recipe`]: a whole training run, from a built dataset to a shipped model directory;
//! - [`card`]: a shipped model's weights and model card.
//! - [`catalog`]: the shipped models offered by name to uploads and the models page.
//! - [`classifier`]: one model or an ensemble, ready to classify beats.
//! - [`cpu`]: the fast CPU inference path, computing the same networks without candle.

pub mod card;
pub mod catalog;
pub mod classifier;
pub mod cnn_lstm;
pub mod context_mlp;
pub mod cpu;
pub mod crossval;
pub mod decision;
pub mod layers;
pub mod metrics;
pub mod params;
pub mod patch_transformer;
pub mod profile;
pub mod recipe;
pub mod rr;
pub mod train;
pub mod transformer;

pub use cnn_lstm::{CnnLstm, CnnLstmConfig};
pub use params::{ModelError, Params, SplitMix64};
pub use transformer::PaperTransformer;

use candle_core::Tensor;
use std::path::{Path, PathBuf};

/// The model the daemon, `analyze` and the benchmarks use unless told
/// otherwise: the five-class, patient-adaptive one.
pub const DEFAULT_MODEL: &str = "models/context-mlp-beat-inter";

/// A model path as given when it exists; else, for a relative path such as the
/// default `models/context-mlp-beat-inter`, the same path in the source tree this
/// binary was built from, so that `cargo run` works from any directory.
pub fn locate(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if in_tree.exists() {
        in_tree
    } else {
        path.to_path_buf()
    }
}

/// Architectures by name.
pub const ARCHITECTURES: [&str; 8] = [
    "cnn-lstm",
    "cnn-lstm-dropout",
    "cnn-lstm-rr",
    "cnn-lstm-rr-aami",
    "transformer",
    "patch-transformer",
    "context-mlp",
    "context-mlp-beat",
];

/// A beat classifier network of any architecture.
#[derive(Debug, Clone)]
pub enum Network {
    CnnLstm(CnnLstm),
    Transformer(PaperTransformer),
    PatchTransformer(patch_transformer::PatchTransformer),
    ContextMlp(context_mlp::ContextMlp),
}

impl Network {
    /// Builds architecture `name` (one of [`ARCHITECTURES`]), registering its parameters.
    pub fn build(
        name: &str,
        params: &mut Params,
        rng: &mut SplitMix64,
    ) -> Result<Self, ModelError> {
        match name {
            "cnn-lstm" => Ok(Network::CnnLstm(CnnLstm::new(
                CnnLstmConfig::paper(),
                params,
                rng,
            )?)),
            "cnn-lstm-dropout" => Ok(Network::CnnLstm(CnnLstm::new(
                CnnLstmConfig::paper_dropout(),
                params,
                rng,
            )?)),
            "cnn-lstm-rr" => Ok(Network::CnnLstm(CnnLstm::new(
                CnnLstmConfig::rr_aware(),
                params,
                rng,
            )?)),
            "cnn-lstm-rr-aami" => Ok(Network::CnnLstm(CnnLstm::new(
                CnnLstmConfig::rr_aware_aami(),
                params,
                rng,
            )?)),
            "transformer" => Ok(Network::Transformer(PaperTransformer::new(params, rng, 2)?)),
            "patch-transformer" => Ok(Network::PatchTransformer(
                patch_transformer::PatchTransformer::new(params, rng, 2)?,
            )),
            "context-mlp" => Ok(Network::ContextMlp(context_mlp::ContextMlp::new(
                context_mlp::ContextMlpConfig::side_only(),
                params,
                rng,
            )?)),
            "context-mlp-beat" => Ok(Network::ContextMlp(context_mlp::ContextMlp::new(
                context_mlp::ContextMlpConfig::with_beat(),
                params,
                rng,
            )?)),
            other => Err(ModelError::Device(format!(
                "unknown model {other:?}: use one of {}",
                ARCHITECTURES.join(", ")
            ))),
        }
    }

    /// Output classes: 2 (normal, abnormal) or 5 (AAMI N, S, V, F, Q).
    pub fn classes(&self) -> usize {
        match self {
            Network::CnnLstm(m) => m.config().classes,
            Network::Transformer(m) => m.classes(),
            Network::PatchTransformer(m) => m.classes(),
            Network::ContextMlp(m) => m.config().classes,
        }
    }

    /// Side features the network reads per beat beside the samples (the
    /// first this many of [`rr::side_features`]; 0 for most).
    pub fn rr_features(&self) -> usize {
        match self {
            Network::CnnLstm(m) => m.config().rr_features,
            Network::Transformer(_) | Network::PatchTransformer(_) => 0,
            Network::ContextMlp(_) => rr::NETWORK_SIDE_FEATURES,
        }
    }

    /// Class logits (batch, classes) for beats (batch, 187) and, where the
    /// network needs them, their RR features (batch, 4); dropout masks from
    /// `dropout` when training.
    pub fn forward(
        &self,
        params: &Params,
        x: &Tensor,
        rr: Option<&Tensor>,
        dropout: Option<&mut SplitMix64>,
    ) -> Result<Tensor, ModelError> {
        match self {
            Network::CnnLstm(m) => m.forward(params, x, rr, dropout),
            Network::Transformer(m) => m.forward(params, x, dropout),
            Network::PatchTransformer(m) => m.forward(params, x, dropout),
            Network::ContextMlp(m) => m.forward(params, x, rr, dropout),
        }
    }
}

/// The compute device from a name: `cpu`, or `cuda` (with the `cuda` feature).
pub fn device(name: &str) -> Result<candle_core::Device, ModelError> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" if !cfg!(feature = "cuda") => Err(ModelError::Device(
            "cuda: this holterd was built without the `cuda` feature; \
             rebuild with `cargo build --release --features cuda`"
                .into(),
        )),
        "cuda" => candle_core::Device::new_cuda(0).map_err(|e| {
            ModelError::Device(format!(
                "cuda: no usable GPU ({e}); check nvidia-smi and that CUDA 13's \
                 libraries are on LD_LIBRARY_PATH"
            ))
        }),
        other => Err(ModelError::Device(format!(
            "unknown device {other:?}: use cpu or cuda"
        ))),
    }
}
