//! Signal processing for one ECG stream: filtering, QRS detection, the
//! signal-quality gate, anti-aliased resampling, and the beat extractor that
//! ties them together into 187-sample beats.
//!
//! Data flow, one sample at a time (so the output never depends on how the
//! stream is chunked):
//!
//! ```text
//! raw mV ─► FilterBank ─┬─ beat signal (0.5–40 Hz, notch) ─► R-peak location, beat cutting, resampling
//!     │                 └─ detection signal (5–20 Hz) ─► QrsDetector
//!     └──────────────────────── raw and beat signal ─► QualityMonitor
//! ```

mod beat;
pub mod context;
mod detect;
mod filter;
mod quality;
mod resample;

pub use beat::{
    BEAT_LEN, BEAT_RATE_HZ, BEAT_STEPS, Beat, BeatExtractor, ExtractorConfig, beat_step,
};
pub use detect::{QrsDetection, QrsDetector};
pub use filter::{FilterBank, decimation_for};
pub use quality::{Quality, QualityMonitor};
pub use resample::Resampler;

/// Lowest and highest sampling rates the extractor accepts, in Hz.
pub const FS_RANGE: (f64, f64) = (100.0, 1000.0);

/// An invalid extractor configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DspError {
    /// The sampling rate is outside [`FS_RANGE`] or not a number.
    #[error("sampling rate {0} Hz is not supported: it must be between 100 and 1000 Hz")]
    SamplingRate(f64),
    /// The powerline frequency is neither 50 nor 60 Hz.
    #[error("powerline frequency {0} Hz is not supported: use 50 or 60")]
    Powerline(f64),
}
