//! The seed paper's "transformer": the Keras example "Timeseries classification
//! with a Transformer model" on beats shaped (187, 1): 4 encoder blocks of
//! [LayerNormalization(ε 1e-6), MultiHeadAttention(4 heads, key size 256,
//! dropout 0.25), dropout, residual; LayerNormalization, Conv1D(4, 1, ReLU),
//! dropout, Conv1D(1, 1), residual], then GlobalAveragePooling1D(channels_first),
//! Dense(128, ReLU), Dropout(0.4), Dense(2, softmax): 53,066 parameters.
//!
//! Looked at closely, it is degenerate. LayerNormalization normalises over the
//! last axis, which has size 1, so it outputs its bias β at every time step;
//! attention over 187 identical tokens returns their common value; so each
//! block adds a learned constant to the beat (per time step only through
//! dropout while training). The network computes `MLP(beat + K)`: a
//! one-hidden-layer perceptron on the shifted beat. [`PaperTransformer::forward`]
//! computes exactly that, for almost nothing; [`PaperTransformer::forward_naive`]
//! computes every attention product (about 0.6 GFLOP per beat) and a test
//! shows the two agree.

use super::layers::layer_norm;
use super::params::{ModelError, Params, SplitMix64};
use crate::dsp::BEAT_LEN;
use candle_core::{D, Tensor};

const BLOCKS: usize = 4;
const HEADS: usize = 4;
const KEY: usize = 256;
const FF: usize = 4;
const HIDDEN: usize = 128;
/// Dropout after attention and feed-forward.
const BLOCK_DROPOUT: f32 = 0.25;
/// Dropout before the output layer.
const HEAD_DROPOUT: f32 = 0.4;

/// The paper's transformer; weights live in a [`Params`].
#[derive(Debug, Clone)]
pub struct PaperTransformer {
    classes: usize,
}

impl PaperTransformer {
    /// Registers the parameters with Keras' initialisation (Glorot-uniform kernels,
    /// zero biases, LayerNorm γ = 1 and β = 0).
    pub fn new(
        params: &mut Params,
        rng: &mut SplitMix64,
        classes: usize,
    ) -> Result<Self, ModelError> {
        for b in 0..BLOCKS {
            let p = |n: &str| format!("block{b}.{n}");
            for ln in ["ln1", "ln2"] {
                params.constant(&p(&format!("{ln}.gamma")), &[1], 1.0)?;
                params.constant(&p(&format!("{ln}.beta")), &[1], 0.0)?;
            }
            for proj in ["query", "key", "value"] {
                params.glorot(
                    rng,
                    &p(&format!("{proj}.kernel")),
                    &[1, HEADS, KEY],
                    1,
                    HEADS * KEY,
                )?;
                params.constant(&p(&format!("{proj}.bias")), &[HEADS, KEY], 0.0)?;
            }
            params.glorot(rng, &p("output.kernel"), &[HEADS, KEY, 1], HEADS * KEY, 1)?;
            params.constant(&p("output.bias"), &[1], 0.0)?;
            params.glorot(rng, &p("ff1.kernel"), &[1, FF], 1, FF)?;
            params.constant(&p("ff1.bias"), &[FF], 0.0)?;
            params.glorot(rng, &p("ff2.kernel"), &[FF, 1], FF, 1)?;
            params.constant(&p("ff2.bias"), &[1], 0.0)?;
        }
        params.glorot(rng, "head.kernel", &[BEAT_LEN, HIDDEN], BEAT_LEN, HIDDEN)?;
        params.constant("head.bias", &[HIDDEN], 0.0)?;
        params.glorot(rng, "out.kernel", &[HIDDEN, classes], HIDDEN, classes)?;
        params.constant("out.bias", &[classes], 0.0)?;
        Ok(PaperTransformer { classes })
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// What one block adds to the beat, in closed form: (attention constant, feed-forward constant).
    fn block_constants(params: &Params, b: usize) -> Result<(Tensor, Tensor), ModelError> {
        let p = |n: &str| params.get(&format!("block{b}.{n}"));
        // LayerNorm of a size-1 axis is its β; attention over identical tokens returns the value.
        let beta1 = p("ln1.beta")?;
        let value = p("value.kernel")?
            .reshape((HEADS * KEY,))?
            .broadcast_mul(&beta1)?
            .add(&p("value.bias")?.reshape((HEADS * KEY,))?)?;
        let attn = value
            .unsqueeze(0)?
            .matmul(&p("output.kernel")?.reshape((HEADS * KEY, 1))?)?
            .reshape((1,))?
            .add(&p("output.bias")?)?;
        let beta2 = p("ln2.beta")?;
        let hidden = p("ff1.kernel")?
            .reshape((FF,))?
            .broadcast_mul(&beta2)?
            .add(&p("ff1.bias")?)?
            .relu()?;
        let ff = hidden
            .unsqueeze(0)?
            .matmul(&p("ff2.kernel")?)?
            .reshape((1,))?
            .add(&p("ff2.bias")?)?;
        Ok((attn, ff))
    }

    /// The constant all blocks add to every sample of the beat, at inference.
    pub fn shift(&self, params: &Params) -> Result<f32, ModelError> {
        let mut total = 0.0;
        for b in 0..BLOCKS {
            let (attn, ff) = Self::block_constants(params, b)?;
            total += attn.to_vec1::<f32>()?[0] + ff.to_vec1::<f32>()?[0];
        }
        Ok(total)
    }

    /// Class logits (batch, classes) for beats (batch, 187), in closed form.
    pub fn forward(
        &self,
        params: &Params,
        x: &Tensor,
        mut dropout: Option<&mut SplitMix64>,
    ) -> Result<Tensor, ModelError> {
        check_len(x)?;
        let mut h = x.clone();
        for b in 0..BLOCKS {
            let (attn, ff) = Self::block_constants(params, b)?;
            for c in [attn, ff] {
                let added = c.broadcast_as(h.shape())?;
                let added = match dropout.as_deref_mut() {
                    Some(rng) => dropout_mask(&added, BLOCK_DROPOUT, rng)?,
                    None => added,
                };
                h = (h + added)?;
            }
        }
        self.head(params, &h, dropout)
    }

    /// The same function computed as Keras does, every attention product included
    /// (about 0.6 GFLOP per beat): the reference for [`forward`](Self::forward).
    pub fn forward_naive(&self, params: &Params, x: &Tensor) -> Result<Tensor, ModelError> {
        check_len(x)?;
        let (batch, t) = x.dims2()?;
        let mut h = x.unsqueeze(D::Minus1)?; // (batch, T, 1)
        for b in 0..BLOCKS {
            let p = |n: &str| params.get(&format!("block{b}.{n}"));
            let n1 = layer_norm(&h, &p("ln1.gamma")?, &p("ln1.beta")?)?;
            let project = |name: &str| -> Result<Tensor, ModelError> {
                let w = p(&format!("{name}.kernel"))?.reshape((1, HEADS * KEY))?;
                let bias = p(&format!("{name}.bias"))?.reshape((HEADS * KEY,))?;
                Ok(n1
                    .reshape((batch * t, 1))?
                    .matmul(&w)?
                    .broadcast_add(&bias)?
                    .reshape((batch, t, HEADS, KEY))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, k, v) = (project("query")?, project("key")?, project("value")?);
            let scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / (KEY as f64).sqrt())?;
            let weights = candle_nn::ops::softmax_last_dim(&scores)?;
            let attended = weights.matmul(&v)?.transpose(1, 2)?.contiguous()?; // (batch, T, H, K)
            let out = attended
                .reshape((batch * t, HEADS * KEY))?
                .matmul(&p("output.kernel")?.reshape((HEADS * KEY, 1))?)?
                .broadcast_add(&p("output.bias")?)?
                .reshape((batch, t, 1))?;
            h = (h + out)?;
            let n2 = layer_norm(&h, &p("ln2.gamma")?, &p("ln2.beta")?)?;
            let f = n2
                .reshape((batch * t, 1))?
                .matmul(&p("ff1.kernel")?)?
                .broadcast_add(&p("ff1.bias")?)?
                .relu()?
                .matmul(&p("ff2.kernel")?)?
                .broadcast_add(&p("ff2.bias")?)?
                .reshape((batch, t, 1))?;
            h = (h + f)?;
        }
        // GlobalAveragePooling1D(channels_first) averages the size-1 channel axis.
        let pooled = h.mean(D::Minus1)?;
        self.head(params, &pooled, None)
    }

    fn head(
        &self,
        params: &Params,
        h: &Tensor,
        dropout: Option<&mut SplitMix64>,
    ) -> Result<Tensor, ModelError> {
        let hidden = h
            .matmul(&params.get("head.kernel")?)?
            .broadcast_add(&params.get("head.bias")?)?
            .relu()?;
        let hidden = match dropout {
            Some(rng) => dropout_mask(&hidden, HEAD_DROPOUT, rng)?,
            None => hidden,
        };
        Ok(hidden
            .matmul(&params.get("out.kernel")?)?
            .broadcast_add(&params.get("out.bias")?)?)
    }
}

/// Fails unless `x` holds beats of [`BEAT_LEN`] values.
pub(crate) fn check_len(x: &Tensor) -> Result<(), ModelError> {
    let (_, len) = x.dims2()?;
    if len != BEAT_LEN {
        return Err(ModelError::Device(format!(
            "beats must have {BEAT_LEN} values, got {len}"
        )));
    }
    Ok(())
}

/// Inverted dropout with a mask drawn from `rng`: reproducible, unlike candle's.
pub(crate) fn dropout_mask(x: &Tensor, p: f32, rng: &mut SplitMix64) -> Result<Tensor, ModelError> {
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.next_f32() < p { 0.0 } else { scale })
        .collect();
    Ok((x * Tensor::from_vec(mask, x.dims(), x.device())?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn model(seed: u64) -> (PaperTransformer, Params) {
        let mut p = Params::new(&Device::Cpu);
        let m = PaperTransformer::new(&mut p, &mut SplitMix64::new(seed), 2).unwrap();
        (m, p)
    }

    #[test]
    fn parameter_count_is_the_keras_models() {
        // Per block: 2 + (3 × (256·4 + 4·256) + 4·256 + 1) + 2 + (4 + 4) + (4 + 1) = 7,186.
        let (_, p) = model(0);
        assert_eq!(p.count(), 4 * 7_186 + 187 * 128 + 128 + 128 * 2 + 2);
        assert_eq!(p.count(), 53_066);
    }

    #[test]
    fn closed_form_equals_the_naive_attention() {
        let (m, p) = model(11);
        // Non-trivial LayerNorm parameters and biases, as after training.
        let mut rng = SplitMix64::new(4);
        for b in 0..BLOCKS {
            for name in [
                "ln1.beta",
                "ln2.beta",
                "ln1.gamma",
                "ln2.gamma",
                "output.bias",
                "ff2.bias",
            ] {
                let full = format!("block{b}.{name}");
                let t =
                    Tensor::from_vec(vec![rng.next_f32() * 2.0 - 1.0], 1, &Device::Cpu).unwrap();
                p.vars_set(&full, &t).unwrap();
            }
            for name in ["value.bias", "query.bias", "key.bias"] {
                let full = format!("block{b}.{name}");
                let v: Vec<f32> = (0..HEADS * KEY).map(|_| rng.next_f32() - 0.5).collect();
                p.vars_set(
                    &full,
                    &Tensor::from_vec(v, (HEADS, KEY), &Device::Cpu).unwrap(),
                )
                .unwrap();
            }
        }
        let beats: Vec<f32> = (0..3 * BEAT_LEN).map(|_| rng.next_f32()).collect();
        let x = Tensor::from_vec(beats, (3, BEAT_LEN), &Device::Cpu).unwrap();
        let fast: Vec<Vec<f32>> = m.forward(&p, &x, None).unwrap().to_vec2().unwrap();
        let naive: Vec<Vec<f32>> = m.forward_naive(&p, &x).unwrap().to_vec2().unwrap();
        for (a, b) in fast.iter().flatten().zip(naive.iter().flatten()) {
            assert!((a - b).abs() < 1e-4, "closed form {a} vs naive {b}");
        }
    }
}
