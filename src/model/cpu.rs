//! A dedicated CPU inference path for the shipped networks.
//!
//! (One file of about 700 lines on purpose: the networks share its kernels and
//! buffer layout, and each is checked against candle in its tests below.)
//!
//! candle's CPU kernels are general: a convolution becomes an im2col copy per
//! beat, and the LSTM is dozens of small tensor operations per time step, each
//! allocating. On these small networks that overhead dominates (candle runs the
//! CNN-LSTM at a fraction of the seed system's TensorFlow speed). This module
//! computes the same functions from the same safetensors with a few large
//! matrix products:
//!
//! - activations are kept channels-last, so the im2col matrix of a kernel-3
//!   convolution is the activation buffer itself read with a row stride of one
//!   position (overlapping rows): one matrix product per convolution for a whole
//!   tile of beats, with no copy;
//! - the LSTM's input projections for every time step are one product, and each
//!   step adds `h · R` into its slice in place;
//! - gate non-linearities use a vectorisable `exp` (Cephes' polynomial,
//!   relative error below 2e-7) instead of libm's scalar one.
//!
//! Products go through the `gemm` crate (the kernels candle itself uses, with
//! run-time AVX2/AVX-512 selection), called single-threaded: the daemon runs
//! one inference worker per core. Tests check every network against candle's
//! output within 1e-5. candle stays the path for training and for the GPU.

use super::Network;
use super::cnn_lstm::{CnnLstm, CnnLstmConfig};
use super::context_mlp::ContextMlp;
use super::params::{ModelError, Params};
use super::transformer::PaperTransformer;
use crate::dsp::BEAT_LEN;

/// Beats processed together: small enough that a tile's activations stay in L2.
const TILE: usize = 32;
/// Convolution kernel size of the CNN-LSTM.
const KERNEL: usize = 3;

/// A network ready for CPU inference: plain `f32` weights in the layouts used here.
#[derive(Debug, Clone)]
pub enum CpuNetwork {
    /// CNN-LSTM (either width).
    CnnLstm(Box<CpuCnnLstm>),
    /// The paper's transformer in its closed form: an MLP on the shifted beat.
    Mlp(CpuMlp),
    /// The patient-adaptive MLP on side features.
    ContextMlp(CpuContextMlp),
}

impl CpuNetwork {
    /// Copies the weights of `network` out of `params`; `None` for a network
    /// this path does not compute (the patch transformer runs on candle).
    pub fn from_network(network: &Network, params: &Params) -> Result<Option<Self>, ModelError> {
        Ok(Some(match network {
            Network::CnnLstm(m) => CpuNetwork::CnnLstm(Box::new(CpuCnnLstm::new(m, params)?)),
            Network::Transformer(m) => CpuNetwork::Mlp(CpuMlp::new(m, params)?),
            Network::PatchTransformer(_) => return Ok(None),
            Network::ContextMlp(m) => CpuNetwork::ContextMlp(CpuContextMlp::new(m, params)?),
        }))
    }

    /// Side features read per beat (the first this many of each beat's).
    pub fn side_features(&self) -> usize {
        match self {
            CpuNetwork::CnnLstm(m) => m.rr_features,
            CpuNetwork::Mlp(_) => 0,
            CpuNetwork::ContextMlp(_) => super::rr::NETWORK_SIDE_FEATURES,
        }
    }

    /// Class probabilities (softmax), `classes` per beat, for `beats` laid end
    /// to end, with their RR features `rr` (4 per beat) for a network that needs them.
    pub fn probabilities(&self, beats: &[f32], rr: Option<&[f32]>) -> Result<Vec<f32>, ModelError> {
        if !beats.len().is_multiple_of(BEAT_LEN) {
            return Err(ModelError::Device(format!(
                "beats must have {BEAT_LEN} values each, got {} values in all",
                beats.len()
            )));
        }
        let n = beats.len() / BEAT_LEN;
        let mut logits = match self {
            CpuNetwork::CnnLstm(m) => {
                let rr = match (m.rr_features, rr) {
                    (0, _) => None,
                    (k, Some(rr)) if rr.len() == n * k => Some(rr),
                    (k, _) => {
                        return Err(ModelError::Device(format!(
                            "this model needs {k} RR features per beat beside the samples"
                        )));
                    }
                };
                m.logits(beats, rr)
            }
            CpuNetwork::Mlp(m) => m.logits(beats),
            CpuNetwork::ContextMlp(m) => match rr {
                Some(side) if side.len() == n * super::rr::NETWORK_SIDE_FEATURES => {
                    m.logits(beats, side)
                }
                _ => {
                    return Err(ModelError::Device(format!(
                        "this model needs {} side features per beat beside the samples",
                        super::rr::NETWORK_SIDE_FEATURES
                    )));
                }
            },
        };
        let classes = self.classes();
        for row in logits.chunks_mut(classes) {
            softmax_in_place(row);
        }
        Ok(logits)
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        match self {
            CpuNetwork::CnnLstm(m) => m.classes,
            CpuNetwork::Mlp(m) => m.classes,
            CpuNetwork::ContextMlp(m) => m.classes,
        }
    }
}

/// A convolution's weights as an im2col matrix: `(KERNEL · input) × filters`.
#[derive(Debug, Clone)]
struct Conv {
    input: usize,
    filters: usize,
    /// Row `k · input + c`, column `f` = candle's `kernel[f][c][k]`.
    matrix: Vec<f32>,
    bias: Vec<f32>,
}

impl Conv {
    fn load(params: &Params, name: &str) -> Result<Conv, ModelError> {
        let kernel = params.get(&format!("{name}.kernel"))?;
        let (filters, input, k) = kernel.dims3()?;
        if k != KERNEL {
            return Err(ModelError::Device(format!(
                "{name}.kernel: kernel size {k}, expected {KERNEL}"
            )));
        }
        let w: Vec<f32> = kernel.flatten_all()?.to_vec1()?;
        let mut matrix = vec![0.0; KERNEL * input * filters];
        for f in 0..filters {
            for c in 0..input {
                for k in 0..KERNEL {
                    matrix[(k * input + c) * filters + f] = w[(f * input + c) * KERNEL + k];
                }
            }
        }
        Ok(Conv {
            input,
            filters,
            matrix,
            bias: params.get(&format!("{name}.bias"))?.to_vec1()?,
        })
    }

    #[inline(always)]
    /// Convolves `rows` channels-last positions of `x` (the last valid window
    /// ends at the buffer's end), then adds the bias and applies ReLU. Windows
    /// that straddle two beats produce values that later layers never read.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        let positions = x.len() / self.input;
        let rows = positions - (KERNEL - 1);
        matmul(
            rows,
            self.filters,
            KERNEL * self.input,
            x,
            self.input,
            &self.matrix,
            &mut out[..rows * self.filters],
            false,
        );
        for row in out[..rows * self.filters].chunks_exact_mut(self.filters) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v = (*v + b).max(0.0);
            }
        }
        out[rows * self.filters..positions * self.filters].fill(0.0);
    }
}

/// The CNN-LSTM on the CPU.
#[derive(Debug, Clone)]
pub struct CpuCnnLstm {
    convs: [Conv; 4],
    units: usize,
    /// `(input, 4·units)`, gates i, f, g, o as Keras orders them.
    lstm_kernel: Vec<f32>,
    /// `(units, 4·units)`.
    lstm_recurrent: Vec<f32>,
    lstm_bias: Vec<f32>,
    /// RR features joined to the LSTM's output.
    rr_features: usize,
    /// `(units + rr_features, classes)`.
    dense: Vec<f32>,
    dense_bias: Vec<f32>,
    classes: usize,
}

/// Positions after a kernel-3 convolution and a MaxPool(3, 2).
const fn pooled(len: usize) -> usize {
    (len - 3) / 2 + 1
}
/// Positions per beat in each stage.
const L0: usize = BEAT_LEN;
const L1: usize = pooled(L0 - 4);
const L2: usize = pooled(L1 - 4);

impl CpuCnnLstm {
    fn new(model: &CnnLstm, params: &Params) -> Result<Self, ModelError> {
        let CnnLstmConfig {
            lstm_units: units,
            classes,
            rr_features,
            ..
        } = *model.config();
        let convs = [
            Conv::load(params, "conv1")?,
            Conv::load(params, "conv2")?,
            Conv::load(params, "conv3")?,
            Conv::load(params, "conv4")?,
        ];
        let vec = |name: &str| -> Result<Vec<f32>, ModelError> {
            Ok(params.get(name)?.flatten_all()?.to_vec1()?)
        };
        Ok(CpuCnnLstm {
            units,
            lstm_kernel: vec("lstm.kernel")?,
            lstm_recurrent: vec("lstm.recurrent_kernel")?,
            lstm_bias: vec("lstm.bias")?,
            rr_features,
            dense: vec("dense.kernel")?,
            dense_bias: vec("dense.bias")?,
            classes,
            convs,
        })
    }

    fn logits(&self, beats: &[f32], rr: Option<&[f32]>) -> Vec<f32> {
        let n = beats.len() / BEAT_LEN;
        let k = self.rr_features;
        let mut out = vec![0.0; n * self.classes];
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            for (t, (tile, logits)) in beats
                .chunks(TILE * BEAT_LEN)
                .zip(out.chunks_mut(TILE * self.classes))
                .enumerate()
            {
                let beats_here = tile.len() / BEAT_LEN;
                let rr = rr.map(|rr| &rr[t * TILE * k..(t * TILE + beats_here) * k]);
                #[cfg(target_arch = "x86_64")]
                if *AVX512 {
                    // SAFETY: the CPU was checked to have these features.
                    unsafe { self.tile_logits_avx512(tile, rr, logits, &mut scratch) };
                    continue;
                }
                self.tile_logits(tile, rr, logits, &mut scratch);
            }
        });
        out
    }

    /// [`tile_logits`](Self::tile_logits) compiled for AVX-512, so that the
    /// element-wise loops (gates, bias, ReLU, pooling) use 16-wide vectors.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    fn tile_logits_avx512(
        &self,
        x: &[f32],
        rr: Option<&[f32]>,
        logits: &mut [f32],
        s: &mut Scratch,
    ) {
        self.tile_logits(x, rr, logits, s)
    }

    #[inline(always)]
    fn tile_logits(&self, x: &[f32], rr: Option<&[f32]>, logits: &mut [f32], s: &mut Scratch) {
        let n = x.len() / BEAT_LEN;
        let [c1, c2, c3, c4] = &self.convs;
        s.a.resize(n * L0 * c1.filters.max(c2.filters), 0.0);
        s.b.resize(n * L0 * c2.filters.max(c1.filters), 0.0);
        c1.forward(x, &mut s.a[..n * L0 * c1.filters]);
        c2.forward(&s.a[..n * L0 * c1.filters], &mut s.b[..n * L0 * c2.filters]);
        s.pool.resize(n * L1 * c2.filters.max(c4.filters), 0.0);
        max_pool_3_2(&s.b, L0, L1, c2.filters, n, &mut s.pool);
        s.a.resize(s.a.len().max(n * L1 * c3.filters), 0.0);
        c3.forward(
            &s.pool[..n * L1 * c2.filters],
            &mut s.a[..n * L1 * c3.filters],
        );
        s.b.resize(s.b.len().max(n * L1 * c4.filters), 0.0);
        c4.forward(&s.a[..n * L1 * c3.filters], &mut s.b[..n * L1 * c4.filters]);
        max_pool_3_2(&s.b, L1, L2, c4.filters, n, &mut s.pool);
        let pool = std::mem::take(&mut s.pool);
        self.lstm(&pool[..n * L2 * c4.filters], n, c4.filters, s);
        s.pool = pool;
        for (b, (h, out)) in
            s.h.chunks_exact(self.units)
                .zip(logits.chunks_mut(self.classes))
                .enumerate()
        {
            let k = self.rr_features;
            let rr = rr.map_or(&[][..], |rr| &rr[b * k..(b + 1) * k]);
            out.copy_from_slice(&self.dense_bias);
            for (hu, w) in h
                .iter()
                .chain(rr)
                .zip(self.dense.chunks_exact(self.classes))
            {
                for (o, w) in out.iter_mut().zip(w) {
                    *o += hu * w;
                }
            }
        }
    }

    #[inline(always)]
    /// Runs the LSTM over `seq` ((beat, time, input), channels-last), leaving
    /// the last hidden states in `s.h` (beat, units).
    fn lstm(&self, seq: &[f32], n: usize, input: usize, s: &mut Scratch) {
        let u = self.units;
        let g = 4 * u;
        s.z.resize(n * L2 * g, 0.0);
        matmul(
            n * L2,
            g,
            input,
            seq,
            input,
            &self.lstm_kernel,
            &mut s.z[..n * L2 * g],
            false,
        );
        s.h.clear();
        s.h.resize(n * u, 0.0);
        s.c.clear();
        s.c.resize(n * u, 0.0);
        s.step.resize(n * g, 0.0);
        for t in 0..L2 {
            // z_t = x_t·W + b + h·R, gathered into one contiguous (beat, 4u) block.
            for (b, step) in s.step.chunks_exact_mut(g).enumerate() {
                let at = (b * L2 + t) * g;
                for ((v, z), bias) in step.iter_mut().zip(&s.z[at..at + g]).zip(&self.lstm_bias) {
                    *v = z + bias;
                }
            }
            if t > 0 {
                matmul(n, g, u, &s.h, u, &self.lstm_recurrent, &mut s.step, true);
            }
            for ((z, h), c) in s
                .step
                .chunks_exact_mut(g)
                .zip(s.h.chunks_exact_mut(u))
                .zip(s.c.chunks_exact_mut(u))
            {
                lstm_cell(z, h, c, u);
            }
        }
    }
}

thread_local! {
    /// Each inference thread's buffers, kept between calls: allocating them per
    /// call costs page faults comparable to the arithmetic.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Whether this CPU runs AVX-512 (checked once).
#[cfg(target_arch = "x86_64")]
static AVX512: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
});

/// Buffers reused across tiles and calls.
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    pool: Vec<f32>,
    z: Vec<f32>,
    step: Vec<f32>,
    h: Vec<f32>,
    c: Vec<f32>,
}

/// One LSTM step for one beat: `z` holds the pre-activations (i, f, g, o).
#[inline(always)]
fn lstm_cell(z: &mut [f32], h: &mut [f32], c: &mut [f32], u: usize) {
    // sigmoid on i, f (z[0..2u]) and o (z[3u..4u]); tanh(x) = 2·sigmoid(2x) − 1 on g.
    let (ifg, o) = z.split_at_mut(3 * u);
    let (if_, g) = ifg.split_at_mut(2 * u);
    for v in if_.iter_mut() {
        *v = sigmoid(*v);
    }
    for v in o.iter_mut() {
        *v = sigmoid(*v);
    }
    for v in g.iter_mut() {
        *v = 2.0 * sigmoid(2.0 * *v) - 1.0;
    }
    let (i, f) = if_.split_at(u);
    for k in 0..u {
        c[k] = f[k] * c[k] + i[k] * g[k];
        h[k] = o[k] * (2.0 * sigmoid(2.0 * c[k]) - 1.0);
    }
}

#[inline(always)]
/// MaxPool(3, 2) over each beat's first `pooled_len` windows of a
/// channels-last buffer with `stride_in` positions per beat.
fn max_pool_3_2(
    x: &[f32],
    stride_in: usize,
    pooled_len: usize,
    channels: usize,
    beats: usize,
    out: &mut [f32],
) {
    for b in 0..beats {
        for t in 0..pooled_len {
            let at = (b * stride_in + 2 * t) * channels;
            let o = (b * pooled_len + t) * channels;
            for ch in 0..channels {
                out[o + ch] = x[at + ch]
                    .max(x[at + channels + ch])
                    .max(x[at + 2 * channels + ch]);
            }
        }
    }
}

/// The patient-adaptive MLP ([`ContextMlp`]): three dense layers, ReLU between.
#[derive(Debug, Clone)]
pub struct CpuContextMlp {
    with_beat: bool,
    /// `(inputs, outputs)` kernel and bias of each layer.
    layers: Vec<(usize, usize, Vec<f32>, Vec<f32>)>,
    classes: usize,
}

impl CpuContextMlp {
    fn new(model: &ContextMlp, params: &Params) -> Result<Self, ModelError> {
        let layers = super::context_mlp::LAYERS
            .iter()
            .map(|name| {
                let kernel = params.get(&format!("{name}.kernel"))?;
                let (i, o) = kernel.dims2()?;
                Ok((
                    i,
                    o,
                    kernel.flatten_all()?.to_vec1()?,
                    params.get(&format!("{name}.bias"))?.to_vec1()?,
                ))
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(CpuContextMlp {
            with_beat: model.config().with_beat,
            layers,
            classes: model.config().classes,
        })
    }

    fn logits(&self, beats: &[f32], side: &[f32]) -> Vec<f32> {
        use super::rr::NETWORK_SIDE_FEATURES as K;
        let n = beats.len() / BEAT_LEN;
        let width = K + if self.with_beat { BEAT_LEN } else { 0 };
        let mut h = Vec::with_capacity(n * width);
        for b in 0..n {
            h.extend_from_slice(&side[b * K..(b + 1) * K]);
            if self.with_beat {
                h.extend_from_slice(&beats[b * BEAT_LEN..(b + 1) * BEAT_LEN]);
            }
        }
        let last = self.layers.len() - 1;
        for (l, (i, o, w, bias)) in self.layers.iter().enumerate() {
            let mut out = vec![0.0; n * o];
            matmul(n, *o, *i, &h, *i, w, &mut out, false);
            for row in out.chunks_exact_mut(*o) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                    if l < last {
                        *v = v.max(0.0);
                    }
                }
            }
            h = out;
        }
        h
    }
}

/// The paper's transformer in closed form: `softmax(relu((x + K)·W1 + b1)·W2 + b2)`,
/// with the shift `K` folded into the hidden bias.
#[derive(Debug, Clone)]
pub struct CpuMlp {
    hidden: usize,
    /// `(187, hidden)`.
    w1: Vec<f32>,
    /// `b1 + K · Σ_rows W1`.
    b1: Vec<f32>,
    /// `(hidden, classes)`.
    w2: Vec<f32>,
    b2: Vec<f32>,
    classes: usize,
}

impl CpuMlp {
    fn new(model: &PaperTransformer, params: &Params) -> Result<Self, ModelError> {
        let shift = model.shift(params)?;
        let head = params.get("head.kernel")?;
        let (_, hidden) = head.dims2()?;
        let w1: Vec<f32> = head.flatten_all()?.to_vec1()?;
        let mut b1: Vec<f32> = params.get("head.bias")?.to_vec1()?;
        for row in w1.chunks_exact(hidden) {
            for (b, w) in b1.iter_mut().zip(row) {
                *b += shift * w;
            }
        }
        Ok(CpuMlp {
            hidden,
            w1,
            b1,
            w2: params.get("out.kernel")?.flatten_all()?.to_vec1()?,
            b2: params.get("out.bias")?.to_vec1()?,
            classes: model.classes(),
        })
    }

    fn logits(&self, beats: &[f32]) -> Vec<f32> {
        let n = beats.len() / BEAT_LEN;
        let mut hidden = vec![0.0; n * self.hidden];
        matmul(
            n,
            self.hidden,
            BEAT_LEN,
            beats,
            BEAT_LEN,
            &self.w1,
            &mut hidden,
            false,
        );
        let mut out = vec![0.0; n * self.classes];
        for (h, o) in hidden
            .chunks_exact_mut(self.hidden)
            .zip(out.chunks_exact_mut(self.classes))
        {
            for (v, b) in h.iter_mut().zip(&self.b1) {
                *v = (*v + b).max(0.0);
            }
            o.copy_from_slice(&self.b2);
            for (hv, w) in h.iter().zip(self.w2.chunks_exact(self.classes)) {
                for (o, w) in o.iter_mut().zip(w) {
                    *o += hv * w;
                }
            }
        }
        out
    }
}

/// `c (m×n) = [c +] a · b`, where row `i` of `a` starts at `i · a_row_stride`
/// and has `k` contiguous values (rows may overlap), and `b` is `k×n` row-major.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_row_stride: usize,
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    if m == 0 {
        return;
    }
    // The bounds the unchecked product below relies on.
    assert!((m - 1) * a_row_stride + k <= a.len(), "matmul: a too short");
    assert!(k * n <= b.len(), "matmul: b too short");
    assert!(m * n <= c.len(), "matmul: c too short");
    // SAFETY: the assertions above keep every index the product touches
    // inside `a`, `b` and `c`; `c` is exclusively borrowed and does not alias
    // `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            a_row_stride as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `exp(x)` by Cephes' `expf` method: range reduction to `|r| ≤ ln 2 / 2` and a
/// degree-6 polynomial; relative error below 2e-7; branch-free so loops vectorise.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to the nearest integer, which then sits in the
    // low mantissa bits: no float-to-integer conversion, so loops vectorise.
    const ROUND: f32 = 12_582_912.0;
    // max/min rather than clamp: clamp's NaN handling keeps the loop scalar.
    #[allow(clippy::manual_clamp)]
    let x = x.max(-87.0).min(88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let exponent = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    y * f32::from_bits(exponent << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SplitMix64;
    use candle_core::{Device, Tensor};

    #[test]
    fn exp_is_accurate_over_the_range_used() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

    /// Random beats, and a few shaped like a beat (a spike on a baseline).
    fn beats(n: usize, rng: &mut SplitMix64) -> Vec<f32> {
        let mut v = Vec::with_capacity(n * BEAT_LEN);
        for i in 0..n {
            for k in 0..BEAT_LEN {
                let spike = if i % 2 == 0 {
                    (-((k as f32 - 20.0) / 4.0).powi(2)).exp()
                } else {
                    0.0
                };
                v.push(spike + 0.3 * rng.next_f32());
            }
        }
        v
    }

    fn candle_probabilities(network: &Network, params: &Params, x: &[f32], rr: &[f32]) -> Vec<f32> {
        let n = x.len() / BEAT_LEN;
        let t = Tensor::from_vec(x.to_vec(), (n, BEAT_LEN), &Device::Cpu).unwrap();
        let k = rr.len() / n;
        let rr = Tensor::from_vec(rr.to_vec(), (n, k), &Device::Cpu).unwrap();
        let logits = network.forward(params, &t, Some(&rr), None).unwrap();
        candle_nn::ops::softmax_last_dim(&logits)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn every_architecture_agrees_with_candle() {
        for name in super::super::ARCHITECTURES {
            if name == "patch-transformer" {
                continue;
            }
            let mut params = Params::new(&Device::Cpu);
            let mut rng = SplitMix64::new(17);
            let network = Network::build(name, &mut params, &mut rng).unwrap();
            // Sizes that fill, split and undershoot a tile.
            for n in [1, 7, TILE, TILE + 5, 3 * TILE] {
                let x = beats(n, &mut rng);
                // Every network gets the side features it reads (at least one
                // column, which the networks that read none ignore).
                let k = network.rr_features().max(1);
                let rr: Vec<f32> = (0..n * k).map(|_| 0.5 + rng.next_f32()).collect();
                let want = candle_probabilities(&network, &params, &x, &rr);
                let cpu = CpuNetwork::from_network(&network, &params)
                    .unwrap()
                    .unwrap();
                let got = cpu.probabilities(&x, Some(&rr)).unwrap();
                assert_eq!(got.len(), want.len());
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "{name} n={n} [{i}]: {a} vs candle {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_a_ragged_batch() {
        let mut params = Params::new(&Device::Cpu);
        let network = Network::build("cnn-lstm", &mut params, &mut SplitMix64::new(1)).unwrap();
        let cpu = CpuNetwork::from_network(&network, &params)
            .unwrap()
            .unwrap();
        assert!(cpu.probabilities(&[0.0; BEAT_LEN + 1], None).is_err());
        assert!(cpu.probabilities(&[], None).unwrap().is_empty());
        let mut params = Params::new(&Device::Cpu);
        let network = Network::build("cnn-lstm-rr", &mut params, &mut SplitMix64::new(1)).unwrap();
        let cpu = CpuNetwork::from_network(&network, &params)
            .unwrap()
            .unwrap();
        let e = cpu
            .probabilities(&[0.0; BEAT_LEN], None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RR features"), "{e}");
        assert!(
            cpu.probabilities(&[0.0; BEAT_LEN], Some(&[1.0; 3]))
                .is_err()
        );
    }
}
