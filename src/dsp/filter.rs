//! The filter bank, built from `biquad` sections (Butterworth, direct form 2
//! transposed, in `f64` because the 0.5 Hz high-pass has poles close to the
//! unit circle).
//!
//! Two rates: the input rate `fs`, and a working rate `fs / k` of 150 to
//! 300 Hz (k = [`FilterBank::decimation`]; the input rate itself below 150 Hz)
//! at which everything after the
//! anti-aliasing low-pass runs. ECG content worth keeping ends near 40 Hz, so
//! filtering 360 Hz input at 180 Hz loses nothing and halves the cost.
//!
//! - **Anti-aliasing** (input rate): 4th-order low-pass at 40 Hz, then every
//!   k-th sample is kept.
//! - **Beat signal** (working rate): high-pass 0.5 Hz (baseline wander) and a
//!   notch at the powerline frequency. It keeps the QRS, P and T morphology; R
//!   peaks are located on it and beats are cut from it.
//! - **Detection signal** (working rate): the beat signal through a 5 Hz
//!   high-pass and a 4th-order 20 Hz low-pass, the band where QRS energy
//!   dominates P and T waves (Pan and Tompkins 1985). Only the QRS detector sees it.

use super::DspError;
use biquad::{Biquad, Coefficients, DirectForm2Transposed, Q_BUTTERWORTH_F64, ToHertz, Type};

type Section = DirectForm2Transposed<f64>;

/// Q values of the two sections of a 4th-order Butterworth filter.
const Q_BUTTERWORTH_4: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_7];

/// Input samples [`FilterBank::process_block`] works through at a time.
pub const MAX_BLOCK: usize = 128;

/// Lowest working rate, Hz: keeps a 60 Hz notch well inside Nyquist.
const MIN_WORKING_RATE: f64 = 150.0;

/// Decimation factor from input rate `fs` to the working rate: the largest
/// integer keeping the working rate at 150 Hz or more (1 below 300 Hz).
pub fn decimation_for(fs: f64) -> u64 {
    (fs / MIN_WORKING_RATE).floor().max(1.0) as u64
}

const PASS_THROUGH_COEFFS: Coefficients<f64> = Coefficients {
    a1: 0.0,
    a2: 0.0,
    b0: 1.0,
    b1: 0.0,
    b2: 0.0,
};

fn coefficients(kind: Type<f64>, fs: f64, f0: f64, q: f64) -> Coefficients<f64> {
    // Callers keep f0 below Nyquist and q positive, so this cannot fail;
    // fall back to a pass-through section rather than panic regardless.
    Coefficients::<f64>::from_params(kind, fs.hz(), f0.hz(), q).unwrap_or(PASS_THROUGH_COEFFS)
}

fn section(kind: Type<f64>, fs: f64, f0: f64, q: f64) -> Section {
    DirectForm2Transposed::<f64>::new(coefficients(kind, fs, f0, q))
}

/// Group delay of one section at `f` Hz, in seconds, for a section running at `fs`.
fn group_delay(c: &Coefficients<f64>, fs: f64, f: f64) -> f64 {
    // For a polynomial P(z) = Σ p_k z^-k, its delay at ω is Re(Σ k p_k e^-jωk / Σ p_k e^-jωk).
    let w = 2.0 * std::f64::consts::PI * f / fs;
    let poly_delay = |p: [f64; 3]| {
        let (mut re, mut im, mut kre, mut kim) = (0.0, 0.0, 0.0, 0.0);
        for (k, &pk) in p.iter().enumerate() {
            let (s, c) = (w * k as f64).sin_cos();
            re += pk * c;
            im -= pk * s;
            kre += k as f64 * pk * c;
            kim -= k as f64 * pk * s;
        }
        (kre * re + kim * im) / (re * re + im * im)
    };
    (poly_delay([c.b0, c.b1, c.b2]) - poly_delay([1.0, c.a1, c.a2])) / fs
}

/// Per-stream filter state.
#[derive(Debug, Clone, Copy)]
pub struct FilterBank {
    anti_alias: [Section; 2],
    baseline: Section,
    /// A pass-through section when no notch is wanted.
    notch: Section,
    detect_hp: Section,
    detect_lp: [Section; 2],
    decimation: u64,
    beat_delay_s: f64,
}

/// Frequency at which the beat signal's delay is compensated: the core of the QRS spectrum.
const QRS_HZ: f64 = 10.0;

/// Output of [`FilterBank::process_block`]: how many working-rate samples were written.
pub type WorkingSamples = usize;

impl FilterBank {
    /// Builds the filters for sampling rate `fs` (Hz) and an optional powerline notch (50 or 60 Hz).
    pub fn new(fs: f64, powerline_hz: Option<f64>) -> Result<Self, DspError> {
        if !(super::FS_RANGE.0..=super::FS_RANGE.1).contains(&fs) {
            return Err(DspError::SamplingRate(fs));
        }
        if let Some(p) = powerline_hz
            && p != 50.0
            && p != 60.0
        {
            return Err(DspError::Powerline(p));
        }
        let decimation = decimation_for(fs);
        let fw = fs / decimation as f64;
        // The notch is only needed (and only realisable) below Nyquist.
        let notch = powerline_hz
            .filter(|&p| p < 0.95 * fw / 2.0)
            .map_or(PASS_THROUGH_COEFFS, |p| {
                coefficients(Type::Notch, fw, p, 10.0)
            });
        let lp = 40.0f64.min(0.4 * fw);
        let anti_alias = Q_BUTTERWORTH_4.map(|q| coefficients(Type::LowPass, fs, lp, q));
        let baseline = coefficients(Type::HighPass, fw, 0.5, Q_BUTTERWORTH_F64);
        let beat_delay = anti_alias
            .iter()
            .map(|c| group_delay(c, fs, QRS_HZ))
            .sum::<f64>()
            + group_delay(&baseline, fw, QRS_HZ)
            + group_delay(&notch, fw, QRS_HZ);
        Ok(FilterBank {
            anti_alias: anti_alias.map(DirectForm2Transposed::<f64>::new),
            baseline: DirectForm2Transposed::<f64>::new(baseline),
            notch: DirectForm2Transposed::<f64>::new(notch),
            beat_delay_s: beat_delay,
            detect_hp: section(Type::HighPass, fw, 5.0, Q_BUTTERWORTH_F64),
            detect_lp: Q_BUTTERWORTH_4.map(|q| section(Type::LowPass, fw, 20.0, q)),
            decimation,
        })
    }

    /// Input samples per working-rate sample. Working-rate sample `m` is input sample `m * k`.
    pub fn decimation(&self) -> u64 {
        self.decimation
    }

    /// Delay of the beat signal behind the input for QRS frequencies, seconds.
    /// R-peak times are corrected by it, so they refer to the original stream.
    pub fn beat_delay_s(&self) -> f64 {
        self.beat_delay_s
    }

    /// Filters a block of input samples whose first has stream index `start`.
    /// `beat` and `detect` get one value per input sample whose index is a
    /// multiple of the decimation factor.
    /// Returns the number of working-rate samples written.
    pub fn process_block(
        &mut self,
        start: u64,
        x: &[f32],
        beat: &mut [f32],
        detect: &mut [f32],
    ) -> WorkingSamples {
        let mut written = 0;
        for (i, part) in x.chunks(MAX_BLOCK).enumerate() {
            let at = start + (i * MAX_BLOCK) as u64;
            written += self.process_short(at, part, &mut beat[written..], &mut detect[written..]);
        }
        written
    }

    /// [`process_block`](Self::process_block) for at most [`MAX_BLOCK`] samples.
    fn process_short(
        &mut self,
        start: u64,
        x: &[f32],
        beat: &mut [f32],
        detect: &mut [f32],
    ) -> WorkingSamples {
        // Two tight loops (input rate, then working rate) on a local copy, which
        // lets the compiler keep the filter state in registers.
        let mut bank = *self;
        let k = self.decimation as usize;
        let first = ((self.decimation - start % self.decimation) % self.decimation) as usize;
        let mut aa = [0.0f64; MAX_BLOCK];
        let n = x.len().min(MAX_BLOCK);
        let [mut s0, mut s1] = bank.anti_alias;
        for (a, &v) in aa[..n].iter_mut().zip(x) {
            *a = s1.run(s0.run(v as f64));
        }
        bank.anti_alias = [s0, s1];
        let mut written = 0;
        for &a in aa[..n].iter().skip(first).step_by(k) {
            let b = bank.notch.run(bank.baseline.run(a));
            let d = bank.detect_hp.run(b);
            let d = bank.detect_lp[0].run(d);
            beat[written] = b as f32;
            detect[written] = bank.detect_lp[1].run(d) as f32;
            written += 1;
        }
        *self = bank;
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady-state amplitude gains (beat, detect) for a sine at `f` Hz.
    fn gains(fs: f64, powerline: Option<f64>, f: f64) -> (f64, f64) {
        let mut fb = FilterBank::new(fs, powerline).unwrap();
        let n = (fs * 20.0) as usize;
        let x: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / fs).sin() as f32)
            .collect();
        let (mut beat, mut det) = (vec![0.0; n], vec![0.0; n]);
        // Odd block sizes exercise the decimation phase across blocks.
        let (mut at, mut w) = (0, 0);
        for part in x.chunks(37) {
            w += fb.process_block(at as u64, part, &mut beat[w..], &mut det[w..]);
            at += part.len();
        }
        let peak = |v: &[f32]| {
            v[v.len() / 2..]
                .iter()
                .fold(0.0f64, |m, &y| m.max((y as f64).abs()))
        };
        (peak(&beat[..w]), peak(&det[..w]))
    }

    #[test]
    fn beat_signal_passes_ecg_band_and_rejects_wander_and_mains() {
        for fs in [125.0, 250.0, 360.0, 500.0, 1000.0] {
            let beat = |f| gains(fs, Some(60.0), f).0;
            assert!(
                beat(0.05) < 0.02,
                "fs {fs}: wander 0.05 Hz gain {}",
                beat(0.05)
            );
            assert!(
                (beat(5.0) - 1.0).abs() < 0.05,
                "fs {fs}: 5 Hz gain {}",
                beat(5.0)
            );
            assert!(
                (beat(20.0) - 1.0).abs() < 0.05,
                "fs {fs}: 20 Hz gain {}",
                beat(20.0)
            );
            if fs > 130.0 {
                assert!(beat(60.0) < 0.02, "fs {fs}: 60 Hz gain {}", beat(60.0));
            }
        }
        let fifty = gains(500.0, Some(50.0), 50.0).0;
        assert!(fifty < 0.02, "50 Hz notch gain {fifty}");
    }

    #[test]
    fn detection_signal_is_the_qrs_band() {
        for fs in [125.0, 360.0, 1000.0] {
            let det = |f| gains(fs, Some(60.0), f).1;
            assert!(det(10.0) > 0.6, "fs {fs}: 10 Hz {}", det(10.0));
            assert!(det(1.0) < 0.05, "fs {fs}: 1 Hz {}", det(1.0));
            assert!(det(50.0) < 0.05, "fs {fs}: 50 Hz {}", det(50.0));
        }
    }

    #[test]
    fn beat_delay_matches_a_measured_pulse_delay() {
        // A 10 Hz Gaussian-windowed burst: its envelope peak leaves the filter late by the group delay.
        let fs = 360.0;
        let mut fb = FilterBank::new(fs, Some(60.0)).unwrap();
        let n = 3600;
        let centre = 1800.0;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let t = (i as f64 - centre) / fs;
                ((-t * t / (2.0 * 0.05f64.powi(2))).exp()
                    * (2.0 * std::f64::consts::PI * 10.0 * t).cos()) as f32
            })
            .collect();
        let (mut beat, mut det) = (vec![0.0; n], vec![0.0; n]);
        let w = fb.process_block(0, &x, &mut beat, &mut det);
        let k = fb.decimation() as f64;
        let peak = (0..w)
            .max_by(|&a, &b| beat[a].abs().total_cmp(&beat[b].abs()))
            .unwrap();
        let measured = (peak as f64 * k - centre) / fs;
        let predicted = fb.beat_delay_s();
        assert!(
            predicted > 0.005 && predicted < 0.02,
            "predicted {predicted}"
        );
        assert!(
            (measured - predicted).abs() < 1.5 * k / fs,
            "measured {measured}, predicted {predicted}"
        );
    }

    #[test]
    fn working_rate_stays_between_150_and_300_hz() {
        assert_eq!(decimation_for(360.0), 2);
        assert_eq!(decimation_for(1000.0), 6);
        assert_eq!(decimation_for(250.0), 1);
        for fs in 100..=1000 {
            let fw = fs as f64 / decimation_for(fs as f64) as f64;
            assert!(fw < 300.0 && (fw >= 150.0 || fs < 150), "fs {fs} → {fw}");
        }
    }

    #[test]
    fn rejects_bad_configuration() {
        assert_eq!(
            FilterBank::new(99.0, None).unwrap_err(),
            DspError::SamplingRate(99.0)
        );
        assert!(FilterBank::new(f64::NAN, None).is_err());
        assert_eq!(
            FilterBank::new(360.0, Some(55.0)).unwrap_err(),
            DspError::Powerline(55.0)
        );
        assert!(FilterBank::new(100.0, Some(60.0)).is_ok());
    }
}
