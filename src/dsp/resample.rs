//! Arbitrary-ratio resampling by windowed-sinc interpolation.
//!
//! Each output sample is a weighted sum of the input samples within
//! [`HALF_WIDTH`] periods of the lower of the two rates, with a Kaiser-windowed
//! sinc whose cutoff sits at 45 % of that lower rate: an anti-aliasing low-pass
//! and an interpolator in one, valid for any ratio (360 → 125 Hz is 2.88:1).
//! Weights are normalised to sum to one so that DC passes exactly.

use std::sync::{Arc, LazyLock};

/// Half-width of the kernel, in periods of the lower rate.
const HALF_WIDTH: usize = 6;
/// Kernel table resolution, entries per period of the lower rate.
const TABLE_STEPS: usize = 256;
/// Cutoff as a fraction of the lower rate (0.5 would be its Nyquist frequency).
const CUTOFF: f64 = 0.45;
/// Kaiser window shape parameter (about 80 dB side-lobe attenuation).
const KAISER_BETA: f64 = 8.0;

/// The kernel sampled at `TABLE_STEPS` points per lower-rate period, shared by all resamplers.
static KERNEL: LazyLock<Vec<f32>> = LazyLock::new(|| {
    let n = HALF_WIDTH * TABLE_STEPS + 2;
    (0..n)
        .map(|i| {
            let u = i as f64 / TABLE_STEPS as f64;
            let x = 2.0 * CUTOFF * u;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let r = u / HALF_WIDTH as f64;
            let window = if r >= 1.0 {
                0.0
            } else {
                bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA)
            };
            (sinc * window) as f32
        })
        .collect()
});

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

/// Fractional positions are quantised to this many phases per input sample
/// (at 360 Hz a timing error of at most 7 µs).
const PHASES: usize = 64;

/// Normalised weights for every phase: `taps` weights per phase, contiguous.
#[derive(Debug)]
struct PhaseTable {
    taps: usize,
    weights: Vec<f32>,
}

/// Input and output rates, as `f64` bits.
type RatePair = (u64, u64);

/// Phase tables are shared by all resamplers of the same rate pair, so a
/// stream's state stays small.
static TABLES: std::sync::Mutex<Vec<(RatePair, Arc<PhaseTable>)>> =
    std::sync::Mutex::new(Vec::new());

/// A resampler from `fs_in` to `fs_out`.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Input samples per output sample.
    step: f64,
    /// Input samples left of the output position covered by the kernel.
    left: usize,
    table: Arc<PhaseTable>,
}

impl Resampler {
    /// A resampler from `fs_in` Hz to `fs_out` Hz (both positive).
    pub fn new(fs_in: f64, fs_out: f64) -> Self {
        let step = fs_in / fs_out;
        let scale = step.max(1.0);
        let reach = HALF_WIDTH as f64 * scale;
        let left = reach.floor() as usize;
        let key = (fs_in.to_bits(), fs_out.to_bits());
        let table = {
            let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
            match tables.iter().find(|(k, _)| *k == key) {
                Some((_, t)) => t.clone(),
                None => {
                    let t = Arc::new(Self::build_table(scale, left));
                    tables.push((key, t.clone()));
                    t
                }
            }
        };
        Resampler { step, left, table }
    }

    fn build_table(scale: f64, left: usize) -> PhaseTable {
        let taps = 2 * left + 2;
        let mut weights = Vec::with_capacity(PHASES * taps);
        for phase in 0..PHASES {
            let frac = phase as f64 / PHASES as f64;
            let start = weights.len();
            // Tap j sits at input offset (j - left) from floor(t); t = floor(t) + frac.
            weights
                .extend((0..taps).map(|j| kernel(((j as f64 - left as f64) - frac).abs() / scale)));
            let sum: f32 = weights[start..].iter().sum();
            for w in &mut weights[start..] {
                *w /= sum;
            }
        }
        PhaseTable { taps, weights }
    }

    /// Input samples needed on each side of an output position.
    pub fn margin(&self) -> usize {
        self.left + 2
    }

    /// Input samples per output sample.
    pub fn step(&self) -> f64 {
        self.step
    }

    /// Fills `out[k]` with the signal at input position `start + k * step`.
    /// Positions whose kernel reaches outside `input` read the nearest edge sample.
    pub fn resample(&self, input: &[f32], start: f64, out: &mut [f32]) {
        if input.is_empty() {
            out.fill(0.0);
            return;
        }
        let taps = self.table.taps;
        let last = input.len() as i64 - 1;
        for (k, o) in out.iter_mut().enumerate() {
            let t = start + k as f64 * self.step;
            // One rounding to 1/PHASES of a sample gives both the base sample and the phase.
            // `t` is never negative, so truncation after adding ½ rounds (and avoids a libm call).
            let q = (t * PHASES as f64 + 0.5) as i64;
            let (base, phase) = (
                q.div_euclid(PHASES as i64),
                q.rem_euclid(PHASES as i64) as usize,
            );
            let w = &self.table.weights[phase * taps..(phase + 1) * taps];
            let first = base - self.left as i64;
            *o = if first >= 0 && first + taps as i64 - 1 <= last {
                dot(w, &input[first as usize..first as usize + taps])
            } else {
                w.iter()
                    .enumerate()
                    .map(|(j, a)| a * input[(first + j as i64).clamp(0, last) as usize])
                    .sum()
            };
        }
    }
}

/// Dot product with eight independent accumulators, so that it vectorises.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The windowed-sinc kernel at `u` lower-rate periods from its centre.
fn kernel(u: f64) -> f32 {
    let pos = u * TABLE_STEPS as f64;
    let idx = pos as usize;
    let frac = (pos - idx as f64) as f32;
    match (KERNEL.get(idx), KERNEL.get(idx + 1)) {
        (Some(&a), Some(&b)) => a + (b - a) * frac,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn sine(fs: f64, f: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * PI * f * i as f64 / fs).sin() as f32)
            .collect()
    }

    #[test]
    fn in_band_sine_is_preserved_at_the_new_rate() {
        let input = sine(360.0, 10.0, 3600);
        let r = Resampler::new(360.0, 125.0);
        let mut out = vec![0.0; 1000];
        r.resample(&input, 0.0, &mut out);
        for (k, &y) in out.iter().enumerate().skip(20).take(900) {
            let want = (2.0 * PI * 10.0 * k as f64 / 125.0).sin() as f32;
            assert!((y - want).abs() < 0.01, "k {k}: {y} vs {want}");
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed_not_aliased() {
        // 100 Hz at 360 Hz would alias to 25 Hz at 125 Hz under plain decimation.
        let input = sine(360.0, 100.0, 3600);
        let r = Resampler::new(360.0, 125.0);
        let mut out = vec![0.0; 1000];
        r.resample(&input, 0.0, &mut out);
        let peak = out[20..980].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak < 0.01, "aliased residue {peak}");
    }

    #[test]
    fn upsampling_and_dc() {
        let input = sine(100.0, 5.0, 1000);
        let r = Resampler::new(100.0, 125.0);
        let mut out = vec![0.0; 1000];
        r.resample(&input, 0.0, &mut out);
        for (k, &y) in out.iter().enumerate().skip(20).take(900) {
            let want = (2.0 * PI * 5.0 * k as f64 / 125.0).sin() as f32;
            assert!((y - want).abs() < 0.01);
        }
        let dc = vec![0.7f32; 50];
        let mut out = vec![0.0; 10];
        Resampler::new(1000.0, 125.0).resample(&dc, 0.0, &mut out);
        assert!(out.iter().all(|v| (v - 0.7).abs() < 1e-5));
    }
}
