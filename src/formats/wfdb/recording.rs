//! One lead of a record as a wearable would send it: int16 ADC counts with
//! their gain and baseline. What `replay` publishes and `analyze` classifies.

use super::{LeadChoice, WfdbError, read_record};
use std::path::Path;

/// One recording to play: int16 counts with their gain, like a real wearable's ADC.
#[derive(Debug, Clone)]
pub struct Recording {
    pub name: String,
    pub fs: f64,
    pub lead: String,
    /// Counts per mV.
    pub gain: f64,
    pub baseline: i16,
    pub counts: Vec<i16>,
}

impl Recording {
    /// Reads one lead of a WFDB record.
    pub fn from_wfdb(path: &Path, lead: &LeadChoice) -> Result<Recording, WfdbError> {
        let record = read_record(path)?;
        let channel = lead.channel(&record.header, &record.header_path)?;
        let spec = &record.header.signals[channel];
        let clamp = |v: i32| v.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        Ok(Recording {
            name: record.header.record.clone(),
            fs: record.header.fs,
            lead: spec
                .description
                .chars()
                .take(crate::formats::wire::MAX_LEAD_LEN)
                .collect(),
            gain: spec.gain,
            baseline: clamp(spec.baseline),
            counts: record.samples[channel].iter().map(|&v| clamp(v)).collect(),
        })
    }

    /// The scale a binary frame of these counts carries (its gain is an `f32`).
    pub fn scale(&self) -> crate::formats::wire::Scale {
        crate::formats::wire::Scale {
            gain: self.gain as f32 as f64,
            baseline: self.baseline as f64,
        }
    }

    /// The samples in mV, exactly as the daemon decodes them from binary frames.
    pub fn millivolts(&self) -> Vec<f32> {
        let scale = self.scale();
        self.counts
            .iter()
            .map(|&c| scale.millivolts(c as f64))
            .collect()
    }
}
