//! The noise stress test (Moody, Muldrow and Mark 1984), built the way
//! PhysioNet's `nst` builds the `nstdb` records: recorded electrode noise is
//! added after the first 5 minutes in alternating 2-minute segments (noisy,
//! clean, ...), scaled to the requested signal-to-noise ratio.
//!
//! As in `nst`, the signal's size is its QRS amplitude (here the median
//! peak-to-peak amplitude of the reference beats; S = A²/8, the power of a sine
//! of that amplitude) and the noise's size is the trimmed mean (5 % off each
//! end) of its per-second RMS, each second's mean removed, over its first 5
//! minutes. Each noisy segment starts and ends at zero added noise (the noise
//! is offset by its value at the segment's start and faded over its last
//! second), so switching it on and off adds no step.
//!
//! Besides `nstdb`'s two recorded kinds, [`NoiseKind::Artefacts`] is made
//! here ([`synthetic_artefacts`]): the movement and electrode artefacts of
//! ambulatory recordings that `nstdb` lacks, so that the quality gate can be
//! judged on noise it was not tuned on.

use crate::formats::wfdb;
use crate::model::SplitMix64;
use std::path::Path;
use std::str::FromStr;

/// Which noise to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Baseline wander (`nstdb/bw`).
    BaselineWander,
    /// Muscle artefact (`nstdb/ma`).
    MuscleArtifact,
    /// Synthetic movement and electrode artefacts ([`synthetic_artefacts`]).
    Artefacts,
}

impl NoiseKind {
    /// The name on the command line (and of the record in `nstdb`).
    pub fn record(self) -> &'static str {
        match self {
            NoiseKind::BaselineWander => "bw",
            NoiseKind::MuscleArtifact => "ma",
            NoiseKind::Artefacts => "artefacts",
        }
    }

    /// The noise signal (mV) at `fs`, at least `len` samples long when
    /// synthetic: lead `channel` (modulo the leads there) of the record in
    /// `nstdb_dir`, or made here.
    pub fn signal(
        self,
        nstdb_dir: &Path,
        channel: usize,
        fs: f64,
        len: usize,
    ) -> Result<Vec<f32>, String> {
        if self == NoiseKind::Artefacts {
            return Ok(synthetic_artefacts(len, fs, ARTEFACT_SEED));
        }
        let path = nstdb_dir.join(self.record());
        let noise = wfdb::read_record(&path).map_err(|e| e.to_string())?;
        if noise.header.fs != fs {
            return Err(format!(
                "{}: noise is sampled at {} Hz, the record at {fs} Hz",
                path.display(),
                noise.header.fs
            ));
        }
        Ok(noise.physical(channel % noise.header.signals.len().max(1)))
    }
}

impl FromStr for NoiseKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bw" => Ok(NoiseKind::BaselineWander),
            "ma" => Ok(NoiseKind::MuscleArtifact),
            "artefacts" => Ok(NoiseKind::Artefacts),
            _ => Err(format!("unknown noise {s:?}: use bw, ma or artefacts")),
        }
    }
}

/// Seed of the synthetic artefacts, so that every run adds the same ones.
const ARTEFACT_SEED: u64 = 0x5EED_A27E;
/// Artefact events per second, on average.
const ARTEFACTS_PER_S: f64 = 0.5;

/// `len` samples at `fs` of the artefacts an ambulatory ECG picks up when
/// the patient moves, as events at random times (about one every 2 s), each
/// of a random size (0.3 to 1 unit, either sign; [`add_noise`] scales the
/// whole to the requested SNR):
///
/// - a **step** (electrode pop, a lead touched): the baseline jumps and
///   recovers exponentially (time constant 0.2 to 1.5 s, as an AC-coupled
///   amplifier's high-pass does);
/// - a **slow excursion** (a body movement pulling the skin): a half-cosine
///   bump of 0.3 to 1.5 s;
/// - a **cable tug**: a burst of 0.1 to 0.4 s of a 4 to 15 Hz oscillation,
///   damped, in the band where QRS complexes have their energy.
pub fn synthetic_artefacts(len: usize, fs: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.next_f32() as f64;
    let mut out = vec![0.0f32; len];
    let mut t = 0.0f64;
    let duration = len as f64 / fs;
    loop {
        // Exponential gaps: a Poisson process of events.
        t += -(1.0 - uniform(0.0, 0.999_999)).ln() / ARTEFACTS_PER_S;
        if t >= duration {
            break;
        }
        let size = uniform(0.3, 1.0) * if uniform(0.0, 1.0) < 0.5 { -1.0 } else { 1.0 };
        let start = (t * fs) as usize;
        let kind = uniform(0.0, 3.0);
        let (span_s, shape): (f64, Box<dyn Fn(f64) -> f64>) = if kind < 1.0 {
            let tau = uniform(0.2, 1.5);
            (6.0 * tau, Box::new(move |s| (-s / tau).exp()))
        } else if kind < 2.0 {
            let width = uniform(0.3, 1.5);
            (
                width,
                Box::new(move |s| 0.5 * (1.0 - (2.0 * std::f64::consts::PI * s / width).cos())),
            )
        } else {
            let (width, hz) = (uniform(0.1, 0.4), uniform(4.0, 15.0));
            (
                width,
                Box::new(move |s| (2.0 * std::f64::consts::PI * hz * s).sin() * (1.0 - s / width)),
            )
        };
        let span = ((span_s * fs) as usize).min(len - start);
        for (k, v) in out[start..start + span].iter_mut().enumerate() {
            *v += (size * shape(k as f64 / fs)) as f32;
        }
    }
    out
}

/// Trimmed mean of the per-second RMS (mean removed) over the first 300 s.
fn noise_rms(noise: &[f32], fs: f64) -> f64 {
    let second = (fs.round() as usize).max(1);
    let span = &noise[..noise.len().min((300.0 * fs) as usize)];
    let mut rms: Vec<f64> = span
        .chunks_exact(second)
        .map(|c| {
            let mean = c.iter().map(|&v| v as f64).sum::<f64>() / c.len() as f64;
            (c.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c.len() as f64).sqrt()
        })
        .collect();
    if rms.is_empty() {
        return 0.0;
    }
    rms.sort_by(f64::total_cmp);
    let trim = rms.len() / 20;
    let kept = &rms[trim..rms.len() - trim];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// Seconds of clean signal before the first noisy segment.
const CLEAN_START_S: f64 = 300.0;
/// Seconds per segment; noisy and clean segments alternate.
const SEGMENT_S: f64 = 120.0;

/// True when `sample` lies in a segment [`add_noise`] adds noise to.
pub fn in_noisy_segment(sample: u64, fs: f64) -> bool {
    let t = sample as f64 / fs;
    t >= CLEAN_START_S && (((t - CLEAN_START_S) / SEGMENT_S) as u64).is_multiple_of(2)
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
    let rms = noise_rms(noise, fs);
    if pp.is_empty() || rms <= 0.0 || !snr_db.is_finite() {
        return 0.0;
    }
    pp.sort_unstable_by(f32::total_cmp);
    let a = pp[pp.len() / 2] as f64;
    let signal_power = a * a / 8.0;
    let gain = (signal_power / (rms * rms * 10f64.powf(snr_db / 10.0))).sqrt();
    let start = (CLEAN_START_S * fs) as usize;
    let segment = (SEGMENT_S * fs) as usize;
    let fade = fs.round() as usize;
    let mut i = start;
    while i < signal.len() {
        let end = (i + segment).min(signal.len());
        let offset = noise[i % noise.len()] as f64;
        for (j, s) in signal[i..end].iter_mut().enumerate() {
            let left = segment - j;
            let taper = if left < fade {
                left as f64 / fade as f64
            } else {
                1.0
            };
            *s += (gain * taper * (noise[(i + j) % noise.len()] as f64 - offset)) as f32;
        }
        i += 2 * segment;
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
        // Unit-RMS square wave: every second's RMS is 1.
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
        // No step where the noise switches on or off.
        assert_eq!(signal[30_000], clean[30_000]);
        assert!((signal[30_000 + 11_999] - clean[30_000 + 11_999]).abs() < 0.01);
        assert!(!in_noisy_segment(29_999, fs) && in_noisy_segment(30_001, fs));
        assert!(!in_noisy_segment(30_000 + 12_000 + 1, fs));
        assert!(in_noisy_segment(30_000 + 24_000 + 1, fs));
        assert_eq!("ma".parse::<NoiseKind>(), Ok(NoiseKind::MuscleArtifact));
        assert!("xx".parse::<NoiseKind>().is_err());
    }

    #[test]
    fn synthetic_artefacts_are_repeatable_bounded_and_of_each_kind() {
        let fs = 360.0;
        let len = (600.0 * fs) as usize;
        let a = synthetic_artefacts(len, fs, ARTEFACT_SEED);
        assert_eq!(a, synthetic_artefacts(len, fs, ARTEFACT_SEED));
        assert_ne!(a, synthetic_artefacts(len, fs, 1));
        assert_eq!(a.len(), len);
        assert!(a.iter().all(|v| v.is_finite() && v.abs() < 5.0));
        // About one event every 2 s: most seconds hold some artefact, and
        // some are quiet.
        let busy = a
            .chunks_exact(fs as usize)
            .filter(|c| c.iter().any(|v| v.abs() > 0.05))
            .count();
        assert!((200..590).contains(&busy), "{busy} of 600 seconds");
        // Steps: sample-to-sample jumps far beyond any smooth artefact's.
        let jumps = a.windows(2).filter(|w| (w[1] - w[0]).abs() > 0.25).count();
        assert!(jumps > 50, "{jumps} steps");
        // Its size is measured like recorded noise's, so SNRs compare.
        assert!(noise_rms(&a, fs) > 0.05);
        assert_eq!("artefacts".parse::<NoiseKind>(), Ok(NoiseKind::Artefacts));
        let made = NoiseKind::Artefacts
            .signal(Path::new("/nonexistent"), 0, fs, len)
            .unwrap();
        assert_eq!(made, a);
    }

    #[test]
    fn noise_size_ignores_outlying_seconds() {
        let fs = 10.0;
        let mut noise: Vec<f32> = (0..3000)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        // One second of a huge artefact among 300 is trimmed away.
        noise[..10].fill(100.0);
        assert!((noise_rms(&noise, fs) - 1.0).abs() < 1e-9);
    }
}
