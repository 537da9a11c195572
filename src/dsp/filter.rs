//! The filter bank, built from `biquad` sections (Butterworth, direct form 2
//! transposed, in `f64` because the 0.5 Hz high-pass has poles within 0.3 % of
//! the unit circle at 1 kHz).
//!
//! - **Beat signal**: high-pass 0.5 Hz (baseline wander), notch at the
//!   powerline frequency, 4th-order low-pass at 40 Hz. It keeps the QRS, P and
//!   T morphology and is what beats are cut from and R peaks are located on.
//! - **Detection signal**: the beat signal through a further 5 Hz high-pass and
//!   4th-order 15 Hz low-pass, the band where QRS energy dominates P and T waves
//!   (Pan and Tompkins 1985). Only the QRS detector sees it.
//! - **High band**: the notched signal through a 45 Hz high-pass: muscle noise
//!   that the quality gate measures.

use super::DspError;
use biquad::{Biquad, Coefficients, DirectForm2Transposed, ToHertz, Type, Q_BUTTERWORTH_F64};

type Section = DirectForm2Transposed<f64>;

/// Q values of the two sections of a 4th-order Butterworth filter.
const Q_BUTTERWORTH_4: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_7];

/// One filtered sample on each of the three outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilteredSample {
    /// Beat signal, mV.
    pub beat: f32,
    /// Detection signal, mV.
    pub detect: f32,
    /// High-frequency band (noise), mV.
    pub high: f32,
}

/// Per-stream filter state.
#[derive(Debug, Clone)]
pub struct FilterBank {
    baseline: Section,
    notch: Option<Section>,
    lowpass: [Section; 2],
    detect_hp: Section,
    detect_lp: [Section; 2],
    high: Section,
}

fn section(kind: Type<f64>, fs: f64, f0: f64, q: f64) -> Section {
    // Callers keep f0 below Nyquist and q positive, so this cannot fail;
    // fall back to a pass-through section rather than panic regardless.
    let coeffs = Coefficients::<f64>::from_params(kind, fs.hz(), f0.hz(), q).unwrap_or(
        Coefficients {
            a1: 0.0,
            a2: 0.0,
            b0: 1.0,
            b1: 0.0,
            b2: 0.0,
        },
    );
    DirectForm2Transposed::<f64>::new(coeffs)
}

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
        let nyquist = fs / 2.0;
        // The notch is only needed (and only realisable) below Nyquist.
        let notch = powerline_hz
            .filter(|&p| p < 0.95 * nyquist)
            .map(|p| section(Type::Notch, fs, p, 10.0));
        let lp = 40.0f64.min(0.4 * fs);
        let high = 45.0f64.min(0.42 * fs);
        Ok(FilterBank {
            baseline: section(Type::HighPass, fs, 0.5, Q_BUTTERWORTH_F64),
            notch,
            lowpass: Q_BUTTERWORTH_4.map(|q| section(Type::LowPass, fs, lp, q)),
            detect_hp: section(Type::HighPass, fs, 5.0, Q_BUTTERWORTH_F64),
            detect_lp: Q_BUTTERWORTH_4.map(|q| section(Type::LowPass, fs, 15.0, q)),
            high: section(Type::HighPass, fs, high, Q_BUTTERWORTH_F64),
        })
    }

    /// Filters one sample (mV).
    #[inline]
    pub fn process(&mut self, x: f32) -> FilteredSample {
        let mut v = self.baseline.run(x as f64);
        if let Some(n) = &mut self.notch {
            v = n.run(v);
        }
        let high = self.high.run(v);
        let lp = self.lowpass[0].run(v);
        let beat = self.lowpass[1].run(lp);
        let d = self.detect_hp.run(beat);
        let d = self.detect_lp[0].run(d);
        let detect = self.detect_lp[1].run(d);
        FilteredSample {
            beat: beat as f32,
            detect: detect as f32,
            high: high as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady-state amplitude gain of `pick(filter)` for a sine at `f` Hz.
    fn gain(fs: f64, powerline: Option<f64>, f: f64, pick: fn(FilteredSample) -> f32) -> f64 {
        let mut fb = FilterBank::new(fs, powerline).unwrap();
        let n = (fs * 20.0) as usize;
        let mut peak = 0.0f64;
        for i in 0..n {
            let x = (2.0 * std::f64::consts::PI * f * i as f64 / fs).sin() as f32;
            let y = pick(fb.process(x)) as f64;
            if i > n / 2 {
                peak = peak.max(y.abs());
            }
        }
        peak
    }

    #[test]
    fn beat_signal_passes_ecg_band_and_rejects_wander_and_mains() {
        for fs in [250.0, 360.0, 1000.0] {
            let beat = |f| gain(fs, Some(60.0), f, |s| s.beat);
            assert!(beat(0.05) < 0.02, "fs {fs}: wander 0.05 Hz gain {}", beat(0.05));
            assert!((beat(5.0) - 1.0).abs() < 0.05, "fs {fs}: 5 Hz gain {}", beat(5.0));
            assert!((beat(20.0) - 1.0).abs() < 0.05, "fs {fs}: 20 Hz gain {}", beat(20.0));
            assert!(beat(60.0) < 0.01, "fs {fs}: 60 Hz gain {}", beat(60.0));
        }
        let fifty = gain(500.0, Some(50.0), 50.0, |s| s.beat);
        assert!(fifty < 0.01, "50 Hz notch gain {fifty}");
    }

    #[test]
    fn detection_signal_is_the_qrs_band() {
        let det = |f| gain(360.0, Some(60.0), f, |s| s.detect);
        assert!(det(10.0) > 0.6, "10 Hz {}", det(10.0));
        assert!(det(1.0) < 0.05, "1 Hz {}", det(1.0));
        assert!(det(40.0) < 0.05, "40 Hz {}", det(40.0));
    }

    #[test]
    fn high_band_sees_muscle_noise_not_qrs() {
        let high = |f| gain(360.0, Some(60.0), f, |s| s.high);
        assert!(high(100.0) > 0.8 && high(5.0) < 0.02);
    }

    #[test]
    fn rejects_bad_configuration() {
        assert_eq!(FilterBank::new(99.0, None).unwrap_err(), DspError::SamplingRate(99.0));
        assert!(FilterBank::new(f64::NAN, None).is_err());
        assert_eq!(FilterBank::new(360.0, Some(55.0)).unwrap_err(), DspError::Powerline(55.0));
        assert!(FilterBank::new(100.0, Some(60.0)).is_ok());
    }
}
