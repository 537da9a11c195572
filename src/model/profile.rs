//! Abstention on inputs unlike any training beat.
//!
//! A classifier outputs a probability for anything it is given: the seed
//! paper's model called a flat line "normal". An [`InputProfile`] records the
//! range of a few simple shape features over a model's training beats; a beat
//! outside that range gets the verdict "unreadable" instead of a guess. The
//! features are chosen so that what a broken electrode or a wrong file
//! produces is plainly outside: a flat line has no amplitude range, noise is
//! rough and crosses its mean constantly, a square wave sits on flat steps,
//! and anything not min-max normalised like the extractor's beats has the
//! wrong range.

use crate::dsp::{BEAT_LEN, BEAT_STEPS, beat_step};
use serde::{Deserialize, Serialize};

/// Names of the features, in the order of [`features`].
pub const FEATURES: [&str; 6] = [
    "range",
    "active_share",
    "mean",
    "roughness",
    "flat_share",
    "crossing_share",
];

/// Share of training beats allowed below the low and above the high quantile.
const TAIL: f64 = 0.0005;
/// Widening of the quantile interval, as a share of its width.
const MARGIN_SHARE: f64 = 0.25;
/// Widening of the quantile interval, absolute (the features are all of order 1).
const MARGIN_ABS: f64 = 0.01;

/// Shape features of one beat in the extractor's layout (values in [0, 1]
/// from the R peak, zero-padded): see [`FEATURES`].
pub fn features(beat: &[f32; BEAT_LEN]) -> [f64; 6] {
    let range = {
        let (lo, hi) = beat
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        (hi - lo) as f64
    };
    // The beat proper ends at its last value that is not zero at the precision
    // beats are stored at (so a stored beat ends where it did); the rest is
    // padding. NaN counts as a value.
    let active = beat
        .iter()
        .rposition(|&v| v.is_nan() || v.abs() >= 0.5 / BEAT_STEPS)
        .map_or(0, |i| i + 1);
    let x: Vec<f64> = beat[..active].iter().map(|&v| v as f64).collect();
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let roughness = if x.len() >= 3 {
        x.windows(3)
            .map(|w| (w[2] - 2.0 * w[1] + w[0]).abs())
            .sum::<f64>()
            / (x.len() - 2) as f64
    } else {
        0.0
    };
    let steps = (x.len().max(2) - 1) as f64;
    let flat = plateau_steps(&beat[..active]) as f64 / steps;
    let crossings = x
        .windows(2)
        .filter(|w| (w[0] - mean) * (w[1] - mean) < 0.0)
        .count() as f64
        / steps;
    [
        range,
        active as f64 / BEAT_LEN as f64,
        mean,
        roughness,
        flat,
        crossings,
    ]
}

/// Equal neighbouring steps that make a plateau: runs of at least this many.
/// Values are compared at the precision beats are stored at, so a beat read
/// back from the store has the flat share it had live; at that precision a
/// clean baseline ties now and then, singly or in pairs, while a square wave,
/// a clipped signal or a dead electrode holds a value for tens of
/// milliseconds (4 steps: 32 ms at 125 Hz).
const PLATEAU_STEPS: usize = 4;

/// Steps of `x` that lie on plateaus ([`PLATEAU_STEPS`]).
fn plateau_steps(x: &[f32]) -> usize {
    let (mut total, mut run) = (0, 0);
    for w in x.windows(2) {
        if beat_step(w[0]) == beat_step(w[1]) {
            run += 1;
        } else {
            total += if run >= PLATEAU_STEPS { run } else { 0 };
            run = 0;
        }
    }
    total + if run >= PLATEAU_STEPS { run } else { 0 }
}

/// Per-feature bounds of the beats a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputProfile {
    /// Feature names, as [`FEATURES`].
    pub features: Vec<String>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
    /// Beats the bounds were fitted on.
    pub fitted_on: usize,
}

impl InputProfile {
    /// Fits bounds on `beats`: each feature's 0.05 % and 99.95 % quantiles,
    /// widened by a quarter of their distance plus 0.01.
    pub fn fit<'a>(beats: impl IntoIterator<Item = &'a [f32; BEAT_LEN]>) -> InputProfile {
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); FEATURES.len()];
        for b in beats {
            for (col, v) in columns.iter_mut().zip(features(b)) {
                if v.is_finite() {
                    col.push(v);
                }
            }
        }
        let fitted_on = columns[0].len();
        let (mut low, mut high) = (Vec::new(), Vec::new());
        for col in &mut columns {
            col.sort_by(f64::total_cmp);
            let q = |p: f64| -> f64 {
                if col.is_empty() {
                    f64::NAN
                } else {
                    col[((col.len() - 1) as f64 * p).round() as usize]
                }
            };
            let (lo, hi) = (q(TAIL), q(1.0 - TAIL));
            let margin = MARGIN_SHARE * (hi - lo) + MARGIN_ABS;
            low.push(lo - margin);
            high.push(hi + margin);
        }
        InputProfile {
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            low,
            high,
            fitted_on,
        }
    }

    /// How many of the beats `idx` of `values` the model would abstain on.
    pub fn count_outliers(&self, values: &[[f32; BEAT_LEN]], idx: &[usize]) -> usize {
        idx.iter()
            .filter(|&&i| self.outlier(&values[i]).is_some())
            .count()
    }

    /// The first feature of `beat` outside the bounds, with its value, or `None`
    /// when the beat looks like the training beats. Non-finite values are outside.
    pub fn outlier(&self, beat: &[f32; BEAT_LEN]) -> Option<(&'static str, f64)> {
        if beat.iter().any(|v| !v.is_finite()) {
            return Some(("finite", f64::NAN));
        }
        features(beat)
            .into_iter()
            .zip(FEATURES)
            .zip(self.low.iter().zip(&self.high))
            .find(|((v, _), (lo, hi))| !(**lo <= *v && *v <= **hi))
            .map(|((v, name), _)| (name, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SplitMix64;

    /// Beat-like vectors: a sharp R wave at 0, a T wave, normalised, padded.
    fn beat_like(rng: &mut SplitMix64) -> [f32; BEAT_LEN] {
        let len = 90 + rng.below(90);
        let mut b = [0.0f32; BEAT_LEN];
        for (k, v) in b[..len].iter_mut().enumerate() {
            let t = k as f32;
            *v = 0.3
                + 0.7 * (-(t / 3.0).powi(2)).exp()
                + 0.15 * (-((t - len as f32 * 0.45) / 10.0).powi(2)).exp()
                + 0.01 * rng.next_f32();
        }
        let (lo, hi) = b[..len]
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        for v in &mut b[..len] {
            *v = (*v - lo) / (hi - lo);
        }
        b
    }

    #[test]
    fn flat_noise_and_square_inputs_are_outliers_and_beats_are_not() {
        let mut rng = SplitMix64::new(3);
        let training: Vec<_> = (0..2000).map(|_| beat_like(&mut rng)).collect();
        let profile = InputProfile::fit(&training);
        assert_eq!(profile.fitted_on, 2000);
        let fresh = (0..500)
            .filter(|_| profile.outlier(&beat_like(&mut rng)).is_some())
            .count();
        assert!(fresh <= 5, "{fresh} of 500 fresh beats refused");

        let flat_zero = [0.0f32; BEAT_LEN];
        let flat_half = [0.5f32; BEAT_LEN];
        let mut noise = [0.0f32; BEAT_LEN];
        noise.iter_mut().for_each(|v| *v = rng.next_f32());
        let mut square = [0.0f32; BEAT_LEN];
        for (k, v) in square.iter_mut().enumerate() {
            *v = if (k / 20) % 2 == 0 { 1.0 } else { 0.0 };
        }
        let mut nan = beat_like(&mut rng);
        nan[10] = f32::NAN;
        let mut millivolts = beat_like(&mut rng);
        millivolts.iter_mut().for_each(|v| *v = *v * 2.5 - 0.4);
        for (name, x) in [
            ("flat zero", flat_zero),
            ("flat half", flat_half),
            ("noise", noise),
            ("square", square),
            ("NaN", nan),
            ("not normalised", millivolts),
        ] {
            assert!(profile.outlier(&x).is_some(), "{name} accepted");
        }
    }

    #[test]
    fn plateaus_are_runs_of_ties_not_single_ties() {
        let step = 1.0 / BEAT_STEPS;
        // Ties singly and in pairs (a clean baseline at storage precision).
        let ties: Vec<f32> = [0, 0, 1, 2, 2, 2, 3, 4, 4, 5]
            .iter()
            .map(|&k| k as f32 * step)
            .collect();
        assert_eq!(plateau_steps(&ties), 0);
        // Values within half a step of each other are one step.
        let at = 300.0 * step;
        let near = [at, at + 0.2 * step, at - 0.3 * step, at, at, 0.9];
        assert_eq!(plateau_steps(&near), 4);
        // A held value (a square wave's top) and a run at the end.
        let held = [
            0.1, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3,
        ];
        assert_eq!(plateau_steps(&held), 5 + 4);
    }

    #[test]
    fn a_beat_at_storage_precision_is_judged_as_the_beat_was() {
        let mut rng = SplitMix64::new(5);
        let training: Vec<_> = (0..2000).map(|_| beat_like(&mut rng)).collect();
        let profile = InputProfile::fit(&training);
        let stored = |b: &[f32; BEAT_LEN]| b.map(|v| beat_step(v) as f32 / BEAT_STEPS);
        // Smooth beats whose slow parts tie at the storage step, and the
        // noisy beats of the profile.
        let mut beats: Vec<_> = (0..200).map(|_| beat_like(&mut rng)).collect();
        for b in beats.iter_mut().take(100) {
            for (k, v) in b.iter_mut().enumerate() {
                *v = if *v == 0.0 {
                    0.0
                } else {
                    0.2 + 0.3 * (k as f32 / 60.0).sin().abs()
                };
            }
        }
        for b in &beats {
            let (a, q) = (features(b), features(&stored(b)));
            assert_eq!(a[4], q[4], "flat share moved");
            for (x, y) in a.iter().zip(q) {
                assert!((x - y).abs() < 2e-3, "{a:?} vs {q:?}");
            }
        }
        for b in &beats[100..] {
            assert_eq!(
                profile.outlier(b).is_some(),
                profile.outlier(&stored(b)).is_some()
            );
        }
    }

    #[test]
    fn profile_round_trips_through_json() {
        let mut rng = SplitMix64::new(1);
        let training: Vec<_> = (0..50).map(|_| beat_like(&mut rng)).collect();
        let p = InputProfile::fit(&training);
        let back: InputProfile = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
