//! The patient-adaptive five-class classifier: a small MLP on a beat's side
//! features (RR against the local rhythm, and the patient context of
//! [`crate::dsp::context`]: timing and shape against the same patient's own
//! running rhythm and dominant beat), optionally with the 187 samples too.
//!
//! Small on purpose: what separates the classes *across patients* is in the
//! patient-relative features, and a network with few inputs and parameters
//! has little room to learn the training patients' own beat shapes (the
//! failure of the sample-only models on new patients). Which of the two
//! variants ships was chosen by leave-records-out validation inside DS1
//! (`holterd eval cv`, see `docs/accuracy.md`).

use super::params::{ModelError, Params, SplitMix64};
use super::rr::NETWORK_SIDE_FEATURES;
use super::transformer::{check_len, dropout_mask};
use crate::dsp::BEAT_LEN;
use candle_core::Tensor;

/// Dropout on the hidden layers while training.
const DROPOUT: f32 = 0.1;

/// The network's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextMlpConfig {
    /// Whether the 187 samples are inputs beside the side features.
    pub with_beat: bool,
    /// Units of the two hidden layers.
    pub hidden: [usize; 2],
    /// Output classes (5: AAMI N, S, V, F, Q).
    pub classes: usize,
}

impl ContextMlpConfig {
    /// Side features only (`context-mlp`).
    pub fn side_only() -> Self {
        ContextMlpConfig {
            with_beat: false,
            hidden: [32, 32],
            classes: 5,
        }
    }

    /// Side features and the samples (`context-mlp-beat`).
    pub fn with_beat() -> Self {
        ContextMlpConfig {
            with_beat: true,
            hidden: [64, 32],
            classes: 5,
        }
    }

    /// Inputs of the first layer.
    pub fn inputs(&self) -> usize {
        NETWORK_SIDE_FEATURES + if self.with_beat { BEAT_LEN } else { 0 }
    }
}

/// The MLP: `softmax(W3·relu(W2·relu(W1·[side, beat?] + b1) + b2) + b3)`.
#[derive(Debug, Clone)]
pub struct ContextMlp {
    config: ContextMlpConfig,
}

/// Names of the three dense layers' parameters.
pub(crate) const LAYERS: [&str; 3] = ["dense1", "dense2", "out"];

impl ContextMlp {
    /// Registers the parameters (Glorot-uniform kernels, zero biases).
    pub fn new(
        config: ContextMlpConfig,
        params: &mut Params,
        rng: &mut SplitMix64,
    ) -> Result<Self, ModelError> {
        let sizes = [
            config.inputs(),
            config.hidden[0],
            config.hidden[1],
            config.classes,
        ];
        for (l, name) in LAYERS.iter().enumerate() {
            let (i, o) = (sizes[l], sizes[l + 1]);
            params.glorot(rng, &format!("{name}.kernel"), &[i, o], i, o)?;
            params.constant(&format!("{name}.bias"), &[o], 0.0)?;
        }
        Ok(ContextMlp { config })
    }

    /// The network's shape.
    pub fn config(&self) -> &ContextMlpConfig {
        &self.config
    }

    /// Class logits (batch, classes) for beats (batch, 187) and their side
    /// features (batch, [`NETWORK_SIDE_FEATURES`]); dropout masks from `dropout` when training.
    pub fn forward(
        &self,
        params: &Params,
        x: &Tensor,
        side: Option<&Tensor>,
        mut dropout: Option<&mut SplitMix64>,
    ) -> Result<Tensor, ModelError> {
        check_len(x)?;
        let side = match side {
            Some(s) if s.dims() == [x.dims()[0], NETWORK_SIDE_FEATURES] => s,
            _ => {
                return Err(ModelError::Device(format!(
                    "this model needs {NETWORK_SIDE_FEATURES} side features per beat beside the samples"
                )));
            }
        };
        let mut h = if self.config.with_beat {
            Tensor::cat(&[side, x], 1)?
        } else {
            side.clone()
        };
        for (l, name) in LAYERS.iter().enumerate() {
            h = h
                .matmul(&params.get(&format!("{name}.kernel"))?)?
                .broadcast_add(&params.get(&format!("{name}.bias"))?)?;
            if l + 1 < LAYERS.len() {
                h = h.relu()?;
                if let Some(rng) = dropout.as_deref_mut() {
                    h = dropout_mask(&h, DROPOUT, rng)?;
                }
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shapes_parameters_and_missing_side_features() {
        for (config, inputs) in [
            (ContextMlpConfig::side_only(), NETWORK_SIDE_FEATURES),
            (
                ContextMlpConfig::with_beat(),
                NETWORK_SIDE_FEATURES + BEAT_LEN,
            ),
        ] {
            let mut p = Params::new(&Device::Cpu);
            let m = ContextMlp::new(config.clone(), &mut p, &mut SplitMix64::new(1)).unwrap();
            let [h1, h2] = config.hidden;
            assert_eq!(p.count(), inputs * h1 + h1 + h1 * h2 + h2 + h2 * 5 + 5);
            let x = Tensor::zeros((3, BEAT_LEN), candle_core::DType::F32, &Device::Cpu).unwrap();
            let s = Tensor::ones(
                (3, NETWORK_SIDE_FEATURES),
                candle_core::DType::F32,
                &Device::Cpu,
            )
            .unwrap();
            assert_eq!(m.forward(&p, &x, Some(&s), None).unwrap().dims(), [3, 5]);
            assert!(m.forward(&p, &x, None, None).is_err());
        }
    }
}
