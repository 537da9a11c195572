//! The filter bank, built from `biquad` sections (Butterworth, direct form 2
//! transposed, in `f64` because the 0.5 Hz high-pass has poles within 0.3 % of
//! the unit circle at 1 kHz).
//!
//! - **Beat signal**: high-pass 0.5 Hz (baseline wander), notch at the
//!   powerline frequency, 4th-order low-pass at 40 Hz. It keeps the QRS, P and
//!   T morphology and is what beats are cut from and R peaks are located on.
//! - **Detection signal**: the beat signal, taken at a decimated rate of 125 to
//!   250 Hz (every [`FilterBank::decimation`]th sample; the 40 Hz low-pass
//!   already band-limits it), through a further 5 Hz high-pass and 4th-order
//!   15 Hz low-pass: the band where QRS energy dominates P and T waves (Pan and
//!   Tompkins 1985). Only the QRS detector sees it. Running it at ~180 Hz
//!   instead of 360 Hz halves its cost and loses nothing the detector needs,
//!   since R peaks are then located on the full-rate beat signal.
//! - **High band**: the notched signal through a 45 Hz high-pass: muscle noise
//!   that the quality gate measures.

use super::DspError;
use biquad::{Biquad, Coefficients, DirectForm2Transposed, ToHertz, Type, Q_BUTTERWORTH_F64};

type Section = DirectForm2Transposed<f64>;

/// Q values of the two sections of a 4th-order Butterworth filter.
const Q_BUTTERWORTH_4: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_7];

/// Decimation factor of the detection signal for sampling rate `fs`:
/// the largest integer keeping the detection rate at 125 Hz or more.
pub fn detection_decimation(fs: f64) -> u64 {
    (fs / 125.0).floor().max(1.0) as u64
}

/// One filtered sample of the full-rate outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilteredSample {
    /// Beat signal, mV.
    pub beat: f32,
    /// High-frequency band (noise), mV.
    pub high: f32,
}

/// Per-stream filter state.
#[derive(Debug, Clone, Copy)]
pub struct FilterBank {
    baseline: Section,
    /// A pass-through section when no notch is wanted.
    notch: Section,
    lowpass: [Section; 2],
    detect_hp: Section,
    detect_lp: [Section; 2],
    high: Section,
    /// Detection-signal decimation factor.
    decimation: u64,
}

const PASS_THROUGH: Section = DirectForm2Transposed::<f64>::new(Coefficients {
    a1: 0.0,
    a2: 0.0,
    b0: 1.0,
    b1: 0.0,
    b2: 0.0,
});

fn section(kind: Type<f64>, fs: f64, f0: f64, q: f64) -> Section {
    // Callers keep f0 below Nyquist and q positive, so this cannot fail;
    // fall back to a pass-through section rather than panic regardless.
    Coefficients::<f64>::from_params(kind, fs.hz(), f0.hz(), q)
        .map_or(PASS_THROUGH, DirectForm2Transposed::<f64>::new)
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
            .map_or(PASS_THROUGH, |p| section(Type::Notch, fs, p, 10.0));
        let lp = 40.0f64.min(0.4 * fs);
        let decimation = detection_decimation(fs);
        let fs_detect = fs / decimation as f64;
        let high = 45.0f64.min(0.42 * fs);
        Ok(FilterBank {
            baseline: section(Type::HighPass, fs, 0.5, Q_BUTTERWORTH_F64),
            notch,
            lowpass: Q_BUTTERWORTH_4.map(|q| section(Type::LowPass, fs, lp, q)),
            detect_hp: section(Type::HighPass, fs_detect, 5.0, Q_BUTTERWORTH_F64),
            detect_lp: Q_BUTTERWORTH_4.map(|q| section(Type::LowPass, fs_detect, 15.0, q)),
            high: section(Type::HighPass, fs, high, Q_BUTTERWORTH_F64),
            decimation,
        })
    }

    /// Decimation factor of the detection signal: it has one sample for every
    /// stream sample whose index is a multiple of this.
    pub fn decimation(&self) -> u64 {
        self.decimation
    }

    /// Beat signal and high band of one sample.
    #[inline]
    fn front(&mut self, x: f32) -> (f64, f64) {
        let v = self.baseline.run(x as f64);
        let v = self.notch.run(v);
        let high = self.high.run(v);
        let lp = self.lowpass[0].run(v);
        (self.lowpass[1].run(lp), high)
    }

    /// Detection signal from a beat-signal sample (call on decimated samples only).
    #[inline]
    fn detection(&mut self, beat: f64) -> f64 {
        let d = self.detect_hp.run(beat);
        let d = self.detect_lp[0].run(d);
        self.detect_lp[1].run(d)
    }

    /// Filters a block of samples whose first has stream index `start`: `beat` and
    /// `high` get one value per input sample, `detect` one per decimated sample
    /// (stream indices that are multiples of [`decimation`](Self::decimation)).
    /// Returns the number of detection samples written.
    pub fn process_block(
        &mut self,
        start: u64,
        x: &[f32],
        beat: &mut [f32],
        high: &mut [f32],
        detect: &mut [f32],
    ) -> usize {
        // Working on a local copy lets the compiler keep the filter state in registers.
        let mut bank = *self;
        let k = self.decimation as usize;
        let mut phase = (start % self.decimation) as usize;
        let mut written = 0;
        for (i, &v) in x.iter().enumerate() {
            let (b, h) = bank.front(v);
            beat[i] = b as f32;
            high[i] = h as f32;
            if phase == 0 {
                detect[written] = bank.detection(b) as f32;
                written += 1;
            }
            phase += 1;
            if phase == k {
                phase = 0;
            }
        }
        *self = bank;
        written
    }

    /// Filters one sample with stream index `n`; the detection output is `None`
    /// for samples that the decimation skips.
    pub fn process(&mut self, n: u64, x: f32) -> (FilteredSample, Option<f32>) {
        let (b, h) = self.front(x);
        let d = (n % self.decimation == 0).then(|| self.detection(b) as f32);
        (
            FilteredSample {
                beat: b as f32,
                high: h as f32,
            },
            d,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady-state amplitude gain of `pick(filter)` for a sine at `f` Hz.
    fn gain(fs: f64, powerline: Option<f64>, f: f64, pick: fn((FilteredSample, Option<f32>)) -> Option<f32>) -> f64 {
        let mut fb = FilterBank::new(fs, powerline).unwrap();
        let n = (fs * 20.0) as usize;
        let mut peak = 0.0f64;
        for i in 0..n {
            let x = (2.0 * std::f64::consts::PI * f * i as f64 / fs).sin() as f32;
            if let Some(y) = pick(fb.process(i as u64, x))
                && i > n / 2
            {
                peak = peak.max((y as f64).abs());
            }
        }
        peak
    }

    #[test]
    fn beat_signal_passes_ecg_band_and_rejects_wander_and_mains() {
        for fs in [250.0, 360.0, 1000.0] {
            let beat = |f| gain(fs, Some(60.0), f, |(s, _)| Some(s.beat));
            assert!(beat(0.05) < 0.02, "fs {fs}: wander 0.05 Hz gain {}", beat(0.05));
            assert!((beat(5.0) - 1.0).abs() < 0.05, "fs {fs}: 5 Hz gain {}", beat(5.0));
            assert!((beat(20.0) - 1.0).abs() < 0.05, "fs {fs}: 20 Hz gain {}", beat(20.0));
            assert!(beat(60.0) < 0.01, "fs {fs}: 60 Hz gain {}", beat(60.0));
        }
        let fifty = gain(500.0, Some(50.0), 50.0, |(s, _)| Some(s.beat));
        assert!(fifty < 0.01, "50 Hz notch gain {fifty}");
    }

    #[test]
    fn detection_signal_is_the_qrs_band() {
        for fs in [125.0, 360.0, 1000.0] {
            let det = |f| gain(fs, Some(60.0), f, |(_, d)| d);
            assert!(det(10.0) > 0.6, "fs {fs}: 10 Hz {}", det(10.0));
            assert!(det(1.0) < 0.05, "fs {fs}: 1 Hz {}", det(1.0));
            assert!(det(40.0) < 0.05, "fs {fs}: 40 Hz {}", det(40.0));
        }
        assert_eq!(detection_decimation(360.0), 2);
        assert_eq!(detection_decimation(1000.0), 8);
        assert_eq!(detection_decimation(100.0), 1);
    }

    #[test]
    fn block_and_sample_processing_agree() {
        let x: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 30.0).collect();
        let mut a = FilterBank::new(360.0, Some(50.0)).unwrap();
        let mut b = a;
        let (mut beat, mut high, mut det) = (vec![0.0; 997], vec![0.0; 997], vec![0.0; 997]);
        let written = a.process_block(3, &x[3..], &mut beat, &mut high, &mut det);
        let mut dets = Vec::new();
        for (i, &v) in x[3..].iter().enumerate() {
            let (s, d) = b.process(3 + i as u64, v);
            assert_eq!((s.beat, s.high), (beat[i], high[i]));
            dets.extend(d);
        }
        assert_eq!(&det[..written], &dets[..]);
    }

    #[test]
    fn high_band_sees_muscle_noise_not_qrs() {
        let high = |f| gain(360.0, Some(60.0), f, |(s, _)| Some(s.high));
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
