//! Beat classifiers (candle): the seed paper's networks, their parameters and
//! layers, training and metrics.
//!
//! - [`layers`]: max-pooling and the Keras-style LSTM that candle lacks;
//! - [`params`]: named parameters with Keras initialisation, saved as safetensors;
//! - [`cnn_lstm`]: the paper's CNN-LSTM and CNN-LSTM-with-dropout;
//! - [`metrics`]: accuracy, precision, recall, F1, kappa, ROC AUC;
//! - [`train`]: the paper's training recipe;
//! - [`card`]: a shipped model's weights and model card.

pub mod card;
pub mod cnn_lstm;
pub mod layers;
pub mod metrics;
pub mod params;
pub mod train;

pub use cnn_lstm::{CnnLstm, CnnLstmConfig};
pub use params::{ModelError, Params, SplitMix64};

/// The compute device from a name: `cpu`, or `cuda` (with the `cuda` feature).
pub fn device(name: &str) -> Result<candle_core::Device, ModelError> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => candle_core::Device::new_cuda(0).map_err(|e| {
            ModelError::Device(format!(
                "cuda: {e} (was holterd built with --features cuda?)"
            ))
        }),
        other => Err(ModelError::Device(format!(
            "unknown device {other:?}: use cpu or cuda"
        ))),
    }
}
