//! The noise stress test (Moody, Muldrow and Mark 1984), as PhysioNet's `nst`
//! builds the `nstdb` records: recorded electrode noise is added after the
//! first 5 minutes in alternating 2-minute segments (noisy, clean, ...), scaled
//! so that the signal-to-noise ratio is the requested one. The signal power is
//! that of a sine with the median peak-to-peak QRS amplitude (A²/8); the noise
//! power is the variance of the noise signal.

use std::str::FromStr;

/// Which noise record of `nstdb` to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Baseline wander (`bw`).
    BaselineWander,
    /// Muscle artefact (`ma`).
    MuscleArtifact,
}

impl NoiseKind {
    /// The record name in `nstdb`.
    pub fn record(self) -> &'static str {
        match self {
            NoiseKind::BaselineWander => "bw",
            NoiseKind::MuscleArtifact => "ma",
        }
    }
}

impl FromStr for NoiseKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bw" => Ok(NoiseKind::BaselineWander),
            "ma" => Ok(NoiseKind::MuscleArtifact),
            _ => Err(format!("unknown noise {s:?}: use bw or ma")),
        }
    }
}

/// Adds `noise` (mV, same rate) to `signal` (mV) at `snr_db`, using the reference
/// beats to measure QRS amplitude. Returns the gain applied to the noise.
pub fn add_noise(signal: &mut [f32], noise: &[f32], beats: &[u64], fs: f64, snr_db: f64) -> f64 {
    let half = (0.05 * fs) as usize;
    let mut pp: Vec<f32> = beats
        .iter()
        .filter_map(|&b| {
            let b = usize::try_from(b).ok()?;
            let w = signal.get(b.checked_sub(half)?..b + half)?;
            let (lo, hi) = w
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            Some(hi - lo)
        })
        .collect();
    if pp.is_empty() || noise.is_empty() {
        return 0.0;
    }
    pp.sort_unstable_by(f32::total_cmp);
    let a = pp[pp.len() / 2] as f64;
    let signal_power = a * a / 8.0;
    let mean = noise.iter().map(|&v| v as f64).sum::<f64>() / noise.len() as f64;
    let noise_power = noise
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / noise.len() as f64;
    if noise_power <= 0.0 {
        return 0.0;
    }
    let gain = (signal_power / (noise_power * 10f64.powf(snr_db / 10.0))).sqrt();
    let start = (300.0 * fs) as usize;
    let segment = (120.0 * fs) as usize;
    for (i, s) in signal.iter_mut().enumerate().skip(start) {
        if ((i - start) / segment).is_multiple_of(2) {
            *s += (gain * (noise[i % noise.len()] as f64 - mean)) as f32;
        }
    }
    gain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_is_as_requested_in_noisy_segments_only() {
        let fs = 100.0;
        let n = 100 * 600;
        let mut signal = vec![0.0f32; n];
        let beats: Vec<u64> = (1..600).map(|s| s * 100).collect();
        for &b in &beats {
            signal[b as usize] = 2.0; // p-p amplitude 2 mV → S = 0.5
        }
        let noise: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let clean = signal.clone();
        let gain = add_noise(&mut signal, &noise, &beats, fs, 6.0);
        let want = (0.5 / 10f64.powf(0.6)).sqrt();
        assert!((gain - want).abs() < 1e-9);
        assert_eq!(&signal[..30_000], &clean[..30_000]);
        assert_ne!(signal[30_001], clean[30_001]);
        assert_eq!(signal[30_000 + 12_000 + 1], clean[30_000 + 12_000 + 1]);
        assert_eq!("ma".parse::<NoiseKind>(), Ok(NoiseKind::MuscleArtifact));
        assert!("xx".parse::<NoiseKind>().is_err());
    }
}
