//! The seed paper's CNN-LSTM (Keras):
//! Conv1D(16, 3, ReLU) → Conv1D(16, 3, ReLU) → MaxPool(3, 2) → Conv1D(32, 3, ReLU)
//! → Conv1D(32, 3, ReLU) → MaxPool(3, 2) → LSTM(16) → Dense(2, softmax):
//! 8,690 parameters. The dropout variant doubles the filters (32, 32, 64, 64)
//! and adds Dropout(0.3) after the first and third convolutions: 27,010.
//! The RR-aware variant (beyond the paper) feeds the beat's RR features
//! ([`super::rr`]) into the output layer beside the LSTM's state: 8,698.

use super::layers::{KerasLstm, conv1d_valid, max_pool_3_2};
use super::params::{ModelError, Params, SplitMix64};
use super::transformer::{check_len, dropout_mask};
use candle_core::Tensor;

/// Shape of a CNN-LSTM.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CnnLstmConfig {
    /// Filters of the four convolutions.
    pub filters: [usize; 4],
    /// Dropout rate after the first and third convolutions (training only).
    pub dropout: Option<f32>,
    /// LSTM units.
    pub lstm_units: usize,
    /// Output classes.
    pub classes: usize,
    /// RR features joined to the LSTM's output (0: the beat's shape only).
    #[serde(default)]
    pub rr_features: usize,
}

impl CnnLstmConfig {
    /// The paper's CNN-LSTM.
    pub fn paper() -> Self {
        CnnLstmConfig {
            filters: [16, 16, 32, 32],
            dropout: None,
            lstm_units: 16,
            classes: 2,
            rr_features: 0,
        }
    }

    /// The paper's CNN-LSTM, with the beat's RR features beside the LSTM's state.
    pub fn rr_aware() -> Self {
        CnnLstmConfig {
            rr_features: super::rr::RR_FEATURES,
            ..Self::paper()
        }
    }

    /// The RR-aware CNN-LSTM with the five AAMI classes (N, S, V, F, Q) as outputs.
    pub fn rr_aware_aami() -> Self {
        CnnLstmConfig {
            classes: 5,
            ..Self::rr_aware()
        }
    }

    /// The paper's CNN-LSTM with dropout.
    pub fn paper_dropout() -> Self {
        CnnLstmConfig {
            filters: [32, 32, 64, 64],
            dropout: Some(0.3),
            lstm_units: 16,
            classes: 2,
            rr_features: 0,
        }
    }
}

const KERNEL: usize = 3;

/// A CNN-LSTM whose weights live in a [`Params`].
#[derive(Debug, Clone)]
pub struct CnnLstm {
    config: CnnLstmConfig,
    lstm: KerasLstm,
}

impl CnnLstm {
    /// Registers the network's parameters, initialised as Keras does, from `rng`.
    pub fn new(
        config: CnnLstmConfig,
        params: &mut Params,
        rng: &mut SplitMix64,
    ) -> Result<Self, ModelError> {
        let mut input = 1;
        for (i, &f) in config.filters.iter().enumerate() {
            params.glorot(
                rng,
                &format!("conv{}.kernel", i + 1),
                &[f, input, KERNEL],
                KERNEL * input,
                KERNEL * f,
            )?;
            params.constant(&format!("conv{}.bias", i + 1), &[f], 0.0)?;
            input = f;
        }
        let lstm = KerasLstm::new(params, rng, "lstm", input, config.lstm_units)?;
        let dense_in = config.lstm_units + config.rr_features;
        params.glorot(
            rng,
            "dense.kernel",
            &[dense_in, config.classes],
            dense_in,
            config.classes,
        )?;
        params.constant("dense.bias", &[config.classes], 0.0)?;
        Ok(CnnLstm { config, lstm })
    }

    /// The network's shape.
    pub fn config(&self) -> &CnnLstmConfig {
        &self.config
    }

    /// Class logits (batch, classes) for beats `x` (batch, 187) and, for the
    /// RR-aware variant, their RR features `rr` (batch, 4). With `dropout`
    /// (training), dropout masks are drawn from it.
    pub fn forward(
        &self,
        params: &Params,
        x: &Tensor,
        rr: Option<&Tensor>,
        mut dropout: Option<&mut SplitMix64>,
    ) -> Result<Tensor, ModelError> {
        check_len(x)?;
        let mut h = x.unsqueeze(1)?;
        for i in 0..4 {
            let kernel = params.get(&format!("conv{}.kernel", i + 1))?;
            let bias = params.get(&format!("conv{}.bias", i + 1))?;
            h = conv1d_valid(&h, &kernel)?
                .broadcast_add(&bias.reshape((1, (), 1))?)?
                .relu()?;
            if let (Some(p), Some(rng), 0 | 2) = (self.config.dropout, dropout.as_deref_mut(), i) {
                h = dropout_mask(&h, p, rng)?;
            }
            if i == 1 || i == 3 {
                h = max_pool_3_2(&h)?;
            }
        }
        let last = self
            .lstm
            .forward(params, &h.transpose(1, 2)?.contiguous()?)?;
        let last = match (self.config.rr_features, rr) {
            (0, _) => last,
            (n, Some(rr)) if rr.dims() == [x.dims()[0], n] => Tensor::cat(&[&last, rr], 1)?,
            (n, _) => {
                return Err(ModelError::Device(format!(
                    "this model needs {n} RR features per beat beside the samples"
                )));
            }
        };
        let dense = params.get("dense.kernel")?;
        let bias = params.get("dense.bias")?;
        Ok(last.matmul(&dense)?.broadcast_add(&bias)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::BEAT_LEN;
    use candle_core::Device;

    #[test]
    fn parameter_counts_equal_the_papers() {
        for (config, want) in [
            (CnnLstmConfig::paper(), 8_690),
            (CnnLstmConfig::paper_dropout(), 27_010),
            (CnnLstmConfig::rr_aware(), 8_690 + 4 * 2),
            (
                CnnLstmConfig::rr_aware_aami(),
                8_690 + 4 * 2 + 3 * (16 + 4 + 1),
            ),
        ] {
            let mut p = Params::new(&Device::Cpu);
            CnnLstm::new(config, &mut p, &mut SplitMix64::new(0)).unwrap();
            assert_eq!(p.count(), want);
        }
    }

    #[test]
    fn forward_gives_logits_and_rejects_wrong_lengths() {
        let mut p = Params::new(&Device::Cpu);
        let mut rng = SplitMix64::new(3);
        let m = CnnLstm::new(CnnLstmConfig::paper_dropout(), &mut p, &mut rng).unwrap();
        let x = Tensor::ones((4, BEAT_LEN), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(m.forward(&p, &x, None, None).unwrap().dims(), &[4, 2]);
        assert_eq!(
            m.forward(&p, &x, None, Some(&mut rng)).unwrap().dims(),
            &[4, 2]
        );
        let bad = Tensor::ones((4, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(m.forward(&p, &bad, None, None).is_err());
        let mut p = Params::new(&Device::Cpu);
        let rr_model = CnnLstm::new(CnnLstmConfig::rr_aware(), &mut p, &mut rng).unwrap();
        let rr = Tensor::ones((4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            rr_model.forward(&p, &x, Some(&rr), None).unwrap().dims(),
            &[4, 2]
        );
        let e = rr_model
            .forward(&p, &x, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RR features"), "{e}");
    }

    #[test]
    fn gradients_of_every_parameter_match_finite_differences() {
        let mut p = Params::new(&Device::Cpu);
        let mut rng = SplitMix64::new(21);
        let m = CnnLstm::new(CnnLstmConfig::paper(), &mut p, &mut rng).unwrap();
        // Non-zero biases, as after training, so that ReLUs and gates are mixed.
        for (name, value) in p.snapshot().unwrap() {
            if name.ends_with("bias") {
                let noise: Vec<f32> = (0..value.elem_count())
                    .map(|_| rng.next_f32() * 0.2 - 0.1)
                    .collect();
                let t = (value.flatten_all().unwrap() + Tensor::new(noise, &Device::Cpu).unwrap())
                    .unwrap()
                    .reshape(value.dims())
                    .unwrap();
                p.vars_set(&name, &t).unwrap();
            }
        }
        let x: Vec<f32> = (0..4 * BEAT_LEN)
            .map(|k| ((k % BEAT_LEN) as f32 / 20.0).sin().abs() * rng.next_f32())
            .collect();
        let x = Tensor::from_vec(x, (4, BEAT_LEN), &Device::Cpu).unwrap();
        let y = Tensor::new(&[0u32, 1, 1, 0], &Device::Cpu).unwrap();
        let loss = |p: &Params| -> f64 {
            let logits = m.forward(p, &x, None, None).unwrap();
            candle_nn::loss::cross_entropy(&logits, &y)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let logits = m.forward(&p, &x, None, None).unwrap();
        let grads = candle_nn::loss::cross_entropy(&logits, &y)
            .unwrap()
            .backward()
            .unwrap();
        let (mut checked, mut total_err) = (0, 0.0f64);
        for (name, value) in p.snapshot().unwrap() {
            let analytic: Vec<f32> = grads
                .get(&p.get(&name).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f32> = value.flatten_all().unwrap().to_vec1().unwrap();
            // The largest gradient entries of each tensor: well above f32 noise.
            let mut order: Vec<usize> = (0..base.len()).collect();
            order.sort_by(|&a, &b| analytic[b].abs().total_cmp(&analytic[a].abs()));
            for &i in order.iter().take(3) {
                let eps = 1e-3f32;
                let at = |delta: f32| {
                    let mut v = base.clone();
                    v[i] += delta;
                    let t = Tensor::from_vec(v, value.dims(), &Device::Cpu).unwrap();
                    p.vars_set(&name, &t).unwrap();
                    let l = loss(&p);
                    p.vars_set(&name, &value).unwrap();
                    l
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                let a = analytic[i] as f64;
                let err = (numeric - a).abs() / a.abs().max(1e-3);
                total_err += err;
                // Central differences cross ReLU and max-pool kinks, most for
                // biases, which move every position: about 10 % at worst here;
                // candle's conv1d gradients were off by 50 to 100 %.
                assert!(err < 0.2, "{name}[{i}]: analytic {a} numeric {numeric}");
                checked += 1;
            }
        }
        assert_eq!(checked, 12 * 3 + 2); // 13 tensors; dense.bias has 2 values
        let mean = total_err / checked as f64;
        assert!(mean < 0.05, "mean relative error {mean}");
    }
}
