//! A transformer that attends over the beat's shape (beyond the paper).
//!
//! The paper's transformer sees the beat as 187 one-dimensional tokens, which
//! its layer normalisation flattens to a constant (see [`super::transformer`]).
//! Here the beat is cut into 17 patches of 11 samples (17 × 11 = 187), each
//! projected to 64 dimensions with a learned position embedding, then 2
//! pre-norm encoder layers of 4-head self-attention and a 128-wide ReLU
//! feed-forward block, a final layer norm, the mean over patches and a dense
//! output: 69,058 parameters. Attention now compares parts of the beat (the
//! QRS with the P and T waves) with each other.

use super::layers::layer_norm;
use super::params::{ModelError, Params, SplitMix64};
use super::transformer::{check_len, dropout_mask};
use crate::dsp::BEAT_LEN;
use candle_core::{D, Tensor};

const PATCH: usize = 11;
const PATCHES: usize = BEAT_LEN / PATCH;
const DIM: usize = 64;
const HEADS: usize = 4;
const HEAD_DIM: usize = DIM / HEADS;
const FF: usize = 128;
const LAYERS: usize = 2;
/// Dropout on attention and feed-forward outputs while training.
const DROPOUT: f32 = 0.1;

/// The patch transformer; weights live in a [`Params`].
#[derive(Debug, Clone)]
pub struct PatchTransformer {
    classes: usize,
}

impl PatchTransformer {
    /// Registers the parameters (Glorot-uniform weights, zero biases, unit
    /// layer-norm gains, small random position embeddings).
    pub fn new(
        params: &mut Params,
        rng: &mut SplitMix64,
        classes: usize,
    ) -> Result<Self, ModelError> {
        params.glorot(rng, "patch.kernel", &[PATCH, DIM], PATCH, DIM)?;
        params.constant("patch.bias", &[DIM], 0.0)?;
        params.glorot(rng, "position", &[PATCHES, DIM], PATCHES, DIM)?;
        for l in 0..LAYERS {
            let p = |n: &str| format!("layer{l}.{n}");
            for ln in ["ln1", "ln2"] {
                params.constant(&p(&format!("{ln}.gamma")), &[DIM], 1.0)?;
                params.constant(&p(&format!("{ln}.beta")), &[DIM], 0.0)?;
            }
            params.glorot(rng, &p("qkv.kernel"), &[DIM, 3 * DIM], DIM, 3 * DIM)?;
            params.constant(&p("qkv.bias"), &[3 * DIM], 0.0)?;
            params.glorot(rng, &p("attn_out.kernel"), &[DIM, DIM], DIM, DIM)?;
            params.constant(&p("attn_out.bias"), &[DIM], 0.0)?;
            params.glorot(rng, &p("ff1.kernel"), &[DIM, FF], DIM, FF)?;
            params.constant(&p("ff1.bias"), &[FF], 0.0)?;
            params.glorot(rng, &p("ff2.kernel"), &[FF, DIM], FF, DIM)?;
            params.constant(&p("ff2.bias"), &[DIM], 0.0)?;
        }
        params.constant("ln.gamma", &[DIM], 1.0)?;
        params.constant("ln.beta", &[DIM], 0.0)?;
        params.glorot(rng, "out.kernel", &[DIM, classes], DIM, classes)?;
        params.constant("out.bias", &[classes], 0.0)?;
        Ok(PatchTransformer { classes })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Class logits (batch, classes) for beats (batch, 187); dropout masks
    /// from `dropout` when training.
    pub fn forward(
        &self,
        params: &Params,
        x: &Tensor,
        mut dropout: Option<&mut SplitMix64>,
    ) -> Result<Tensor, ModelError> {
        check_len(x)?;
        let batch = x.dims()[0];
        // (batch·17, 11) → (batch, 17, 64) + positions.
        let mut h = dense(
            &x.reshape((batch * PATCHES, PATCH))?,
            &params.get("patch.kernel")?,
            &params.get("patch.bias")?,
        )?
        .reshape((batch, PATCHES, DIM))?
        .broadcast_add(&params.get("position")?)?;
        for l in 0..LAYERS {
            let p = |n: &str| params.get(&format!("layer{l}.{n}"));
            let n1 = layer_norm(&h, &p("ln1.gamma")?, &p("ln1.beta")?)?;
            let a = self.attention(&n1, &p("qkv.kernel")?, &p("qkv.bias")?, batch)?;
            let a = dense_3d(&a, &p("attn_out.kernel")?, &p("attn_out.bias")?)?;
            let a = match dropout.as_deref_mut() {
                Some(rng) => dropout_mask(&a, DROPOUT, rng)?,
                None => a,
            };
            h = (h + a)?;
            let n2 = layer_norm(&h, &p("ln2.gamma")?, &p("ln2.beta")?)?;
            let f = dense_3d(&n2, &p("ff1.kernel")?, &p("ff1.bias")?)?.relu()?;
            let f = dense_3d(&f, &p("ff2.kernel")?, &p("ff2.bias")?)?;
            let f = match dropout.as_deref_mut() {
                Some(rng) => dropout_mask(&f, DROPOUT, rng)?,
                None => f,
            };
            h = (h + f)?;
        }
        let h = layer_norm(&h, &params.get("ln.gamma")?, &params.get("ln.beta")?)?;
        let pooled = h.mean(1)?;
        dense(
            &pooled,
            &params.get("out.kernel")?,
            &params.get("out.bias")?,
        )
    }

    /// Multi-head self-attention of `x` (batch, 17, 64) before the output projection.
    fn attention(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        bias: &Tensor,
        batch: usize,
    ) -> Result<Tensor, ModelError> {
        let qkv = dense_3d(x, kernel, bias)?; // (batch, 17, 3·64)
        let split = |k: usize| -> Result<Tensor, ModelError> {
            Ok(qkv
                .narrow(D::Minus1, k * DIM, DIM)?
                .reshape((batch, PATCHES, HEADS, HEAD_DIM))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / (HEAD_DIM as f64).sqrt())?;
        // Composed of differentiable operations (candle's fused softmax has no gradient).
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        Ok(weights
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, PATCHES, DIM))?)
    }
}

fn dense(x: &Tensor, kernel: &Tensor, bias: &Tensor) -> Result<Tensor, ModelError> {
    Ok(x.matmul(kernel)?.broadcast_add(bias)?)
}

/// [`dense`] over the last axis of a (batch, tokens, features) tensor.
fn dense_3d(x: &Tensor, kernel: &Tensor, bias: &Tensor) -> Result<Tensor, ModelError> {
    let (b, t, f) = x.dims3()?;
    Ok(dense(&x.reshape((b * t, f))?, kernel, bias)?.reshape((b, t, kernel.dims()[1]))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn shapes_parameters_and_gradients() {
        let mut p = Params::new(&Device::Cpu);
        let mut rng = SplitMix64::new(2);
        let m = PatchTransformer::new(&mut p, &mut rng, 2).unwrap();
        assert_eq!(PATCHES * PATCH, BEAT_LEN);
        let per_layer = 4 * DIM
            + (DIM * 3 * DIM + 3 * DIM)
            + (DIM * DIM + DIM)
            + (DIM * FF + FF)
            + (FF * DIM + DIM);
        let want = PATCH * DIM + DIM + PATCHES * DIM + LAYERS * per_layer + 2 * DIM + DIM * 2 + 2;
        assert_eq!(p.count(), want);
        assert_eq!(want, 69_058);
        let x = Var::from_vec(
            (0..3 * BEAT_LEN)
                .map(|_| rng.next_f32())
                .collect::<Vec<_>>(),
            (3, BEAT_LEN),
            &Device::Cpu,
        )
        .unwrap();
        let logits = m.forward(&p, x.as_tensor(), Some(&mut rng)).unwrap();
        assert_eq!(logits.dims(), &[3, 2]);
        // Every parameter receives a gradient.
        let grads = logits.sum_all().unwrap().backward().unwrap();
        for v in p.vars() {
            assert!(grads.get(v.as_tensor()).is_some());
        }
    }
}
