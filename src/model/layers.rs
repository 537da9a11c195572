//! Layers candle does not provide as the seed paper's Keras models need them.
//!
//! candle 0.11 has no `max_pool1d`, and its `max_pool2d` refuses a stride other
//! than the kernel size and scales gradients by 1/k in backward; so
//! [`max_pool_3_2`] is built from `maximum` of shifted views, which
//! differentiates exactly. candle 0.11's `conv1d` computes the forward pass
//! right but its gradients wrong here (a finite-difference test of the whole
//! CNN-LSTM caught it: kernels got gradient where the loss did not depend on
//! them), so [`conv1d_valid`] builds the convolution from shifted views and
//! one matrix product. [`KerasLstm`] has one bias vector, like Keras, where
//! candle's LSTM has two (the parameter counts must match the paper).

use super::params::{ModelError, Params, SplitMix64};
use candle_core::{D, Tensor};

/// Layer normalisation over the last axis, as Keras' `LayerNormalization(epsilon=1e-6)`.
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred
        .broadcast_div(&(var + 1e-6)?.sqrt()?)?
        .broadcast_mul(gamma)?
        .broadcast_add(beta)
}

/// A 1-D convolution with stride 1 and no padding (Keras `Conv1D`, "valid"):
/// `x` (batch, channels, length), `kernel` (filters, channels, k) → (batch,
/// filters, length − k + 1). Built from `narrow`, `cat` and `matmul`, whose
/// gradients candle computes correctly.
pub fn conv1d_valid(x: &Tensor, kernel: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, channels, len) = x.dims3()?;
    let (filters, kc, k) = kernel.dims3()?;
    if kc != channels || len < k {
        candle_core::bail!(
            "conv1d_valid: input (…, {channels}, {len}) does not fit kernel ({filters}, {kc}, {k})"
        );
    }
    let out = len - k + 1;
    // Columns (batch, channels·k, out): row c·k + j holds x[c, j .. j + out].
    let shifted: Vec<Tensor> = (0..k)
        .map(|j| x.narrow(2, j, out))
        .collect::<candle_core::Result<_>>()?;
    let columns = Tensor::stack(&shifted, 2)?.reshape((batch, channels * k, out))?;
    let w = kernel.reshape((filters, channels * k))?;
    w.broadcast_left(batch)?.matmul(&columns)
}

/// Max-pooling over the last axis with window 3 and stride 2, no padding
/// (Keras `MaxPooling1D(3, 2)`): output length ⌊(L − 3) / 2⌋ + 1.
pub fn max_pool_3_2(x: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let len = dims[dims.len() - 1];
    if len < 3 {
        candle_core::bail!("max_pool_3_2 needs at least 3 values, got {len}");
    }
    let n = (len - 3) / 2 + 1;
    let axis = dims.len() - 1;
    // Pairs (x[2i], x[2i+1]) for i < n, and the evens shifted by one: x[2i+2].
    let mut pair_shape = dims[..axis].to_vec();
    pair_shape.extend([n, 2]);
    let pairs = x.narrow(axis, 0, 2 * n)?.reshape(pair_shape)?;
    let even = pairs.narrow(axis + 1, 0, 1)?.squeeze(axis + 1)?;
    let odd = pairs.narrow(axis + 1, 1, 1)?.squeeze(axis + 1)?;
    let last = x.narrow(axis, 2 * n, 1)?;
    let next_even = Tensor::cat(&[&even.narrow(axis, 1, n - 1)?, &last], axis)?;
    even.maximum(&odd)?.maximum(&next_even)
}

/// An LSTM layer as Keras builds it: gates in the order input, forget, cell,
/// output; kernel `(input, 4·units)`, recurrent kernel `(units, 4·units)`, one
/// bias `(4·units)` with the forget part initialised to 1; sigmoid gates, tanh
/// cell. Returns the last hidden state.
#[derive(Debug, Clone)]
pub struct KerasLstm {
    prefix: String,
    units: usize,
}

impl KerasLstm {
    /// Registers the layer's parameters under `prefix`.
    pub fn new(
        params: &mut Params,
        rng: &mut SplitMix64,
        prefix: &str,
        input: usize,
        units: usize,
    ) -> Result<Self, ModelError> {
        params.glorot(
            rng,
            &format!("{prefix}.kernel"),
            &[input, 4 * units],
            input,
            4 * units,
        )?;
        // Orthogonal, as Keras initialises the recurrent kernel.
        params.orthogonal(rng, &format!("{prefix}.recurrent_kernel"), units, 4 * units)?;
        params.constant(&format!("{prefix}.bias"), &[4 * units], 0.0)?;
        let mut bias = vec![0.0f32; 4 * units];
        bias[units..2 * units].fill(1.0);
        let b = Tensor::from_vec(bias, 4 * units, params.device())?;
        params.vars_set(&format!("{prefix}.bias"), &b)?;
        Ok(KerasLstm {
            prefix: prefix.to_string(),
            units,
        })
    }

    /// Runs over `x` of shape (batch, time, input) and returns (batch, units).
    pub fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor, ModelError> {
        let kernel = params.get(&format!("{}.kernel", self.prefix))?;
        let recurrent = params.get(&format!("{}.recurrent_kernel", self.prefix))?;
        let bias = params.get(&format!("{}.bias", self.prefix))?;
        let (batch, time, input) = x.dims3()?;
        let u = self.units;
        // All input projections in one matmul.
        let xw = x
            .reshape((batch * time, input))?
            .matmul(&kernel)?
            .broadcast_add(&bias)?
            .reshape((batch, time, 4 * u))?;
        let mut h = Tensor::zeros((batch, u), x.dtype(), x.device())?;
        let mut c = h.clone();
        for t in 0..time {
            let z = (xw.narrow(1, t, 1)?.squeeze(1)? + h.matmul(&recurrent)?)?;
            let i = candle_nn::ops::sigmoid(&z.narrow(D::Minus1, 0, u)?)?;
            let f = candle_nn::ops::sigmoid(&z.narrow(D::Minus1, u, u)?)?;
            let g = z.narrow(D::Minus1, 2 * u, u)?.tanh()?;
            let o = candle_nn::ops::sigmoid(&z.narrow(D::Minus1, 3 * u, u)?)?;
            c = ((f * &c)? + (i * g)?)?;
            h = (o * c.tanh()?)?;
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn max_pool_matches_the_definition() {
        let v: Vec<f32> = vec![1.0, 5.0, 2.0, 0.0, 3.0, 9.0, 4.0];
        let x = Tensor::from_vec(v.clone(), (1, 1, 7), &Device::Cpu).unwrap();
        let y: Vec<f32> = max_pool_3_2(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // windows [1,5,2] [2,0,3] [3,9,4]
        assert_eq!(y, vec![5.0, 3.0, 9.0]);
        let x = Tensor::from_vec(
            (0..183).map(|i| i as f32).collect::<Vec<_>>(),
            (1, 183),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(max_pool_3_2(&x).unwrap().dims(), &[1, 91]);
    }

    #[test]
    fn max_pool_gradient_matches_finite_differences() {
        let mut rng = SplitMix64::new(7);
        let len = 11;
        let v: Vec<f32> = (0..2 * len).map(|_| rng.next_f32()).collect();
        let w: Vec<f32> = (0..2 * 5).map(|_| rng.next_f32() - 0.5).collect();
        let weights = Tensor::from_vec(w.clone(), (2, 5), &Device::Cpu).unwrap();
        let loss = |x: &Tensor| -> Tensor {
            (max_pool_3_2(x).unwrap() * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let x = Var::from_vec(v.clone(), (2, len), &Device::Cpu).unwrap();
        let grads = loss(x.as_tensor()).backward().unwrap();
        let g: Vec<f32> = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let eps = 1e-3f32;
        for i in 0..v.len() {
            let mut plus = v.clone();
            plus[i] += eps;
            let mut minus = v.clone();
            minus[i] -= eps;
            let f = |p: Vec<f32>| {
                loss(&Tensor::from_vec(p, (2, len), &Device::Cpu).unwrap())
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let numeric = (f(plus) - f(minus)) / (2.0 * eps);
            assert!(
                (numeric - g[i]).abs() < 1e-2,
                "element {i}: analytic {} numeric {numeric}",
                g[i]
            );
        }
    }

    #[test]
    fn lstm_has_keras_parameter_count_and_shapes() {
        let mut p = Params::new(&Device::Cpu);
        let mut rng = SplitMix64::new(1);
        let lstm = KerasLstm::new(&mut p, &mut rng, "lstm", 32, 16).unwrap();
        assert_eq!(p.count(), 4 * (16 * (32 + 16) + 16));
        let x = Tensor::zeros((3, 43, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(lstm.forward(&p, &x).unwrap().dims(), &[3, 16]);
        let bias: Vec<f32> = p.get("lstm.bias").unwrap().to_vec1().unwrap();
        assert_eq!(&bias[16..32], &[1.0; 16]);
    }
}
