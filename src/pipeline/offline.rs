//! A whole recording through the daemon's own analysis and inference code,
//! without broker or store: `holterd analyze`, uploads, and the reference the
//! end-to-end tests compare the daemon against.

use super::analysis::Analyzer;
use super::inference::classify;
use super::{Batch, Item};
use crate::metrics::Metrics;
use crate::model::ModelError;
use crate::model::classifier::Classifier;
use crate::store::beat_block;
use crate::store::{BeatRow, SegmentKey, SegmentRow};

/// The verdict for every beat of `samples` (mV at `fs` Hz, first sample at `t0_us`),
/// as the daemon stores them for a device streaming the same samples.
pub fn analyze_recording(
    device: &str,
    t0_us: i64,
    fs: f64,
    samples: &[f32],
    powerline_hz: Option<f64>,
    classifier: &Classifier,
    threshold: f32,
) -> Result<Vec<BeatRow>, ModelError> {
    let key = SegmentKey {
        device: device.to_string(),
        stream: 0,
        first_seq: 0,
    };
    let row = SegmentRow {
        key: key.clone(),
        t0_us,
        fs,
        lead: String::new(),
        after_gap: false,
    };
    let mut analyzer = Analyzer::new(powerline_hz);
    let mut items = Vec::new();
    analyzer.start(row, None, &mut items);
    analyzer.push(&key, samples, std::time::Instant::now(), &mut items);
    analyzer.close(&key, &mut items);
    let metrics = Metrics::new();
    let mut rows = Vec::with_capacity(items.len());
    let mut batch = Vec::new();
    let mut id = 0;
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        batch.extend(
            items
                .by_ref()
                .take(256)
                .filter(|i| matches!(i, Item::Beat(_))),
        );
        let c = classify(
            classifier,
            Batch {
                id,
                items: std::mem::take(&mut batch),
            },
            &metrics,
            threshold,
        )
        .map_err(|(_, e)| e)?;
        rows.extend(c.rows.into_iter().map(|(r, _)| r));
        id += 1;
    }
    Ok(rows)
}

/// How stored beats differ from the offline analysis of the same recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub stored: usize,
    pub offline: usize,
    /// Beats whose time, sample, quality, verdict, model or values differ
    /// (values may also be exactly as a beat block keeps them, at 10 bits),
    /// or whose probability differs by more than 1e-5.
    pub mismatched: usize,
    /// The first difference, described.
    pub first_mismatch: Option<String>,
    /// Largest probability difference among matching beats.
    pub max_p_difference: f32,
}

impl Comparison {
    /// Same beats, same verdicts.
    pub fn is_exact(&self) -> bool {
        self.stored == self.offline && self.mismatched == 0
    }
}

/// Compares beats stored by the daemon with [`analyze_recording`]'s, in time order.
/// Probabilities may differ in the last bits (batches of other sizes sum in another order).
pub fn compare(stored: &[BeatRow], offline: &[BeatRow]) -> Comparison {
    let mut c = Comparison {
        stored: stored.len(),
        offline: offline.len(),
        ..Comparison::default()
    };
    for (i, (s, o)) in stored.iter().zip(offline).enumerate() {
        let dp = match (s.p_abnormal, o.p_abnormal) {
            (Some(a), Some(b)) => (a - b).abs(),
            (None, None) => 0.0,
            _ => f32::INFINITY,
        };
        let same = (s.r_time_us, s.sample, s.quality, s.verdict, &s.model)
            == (o.r_time_us, o.sample, o.quality, o.verdict, &o.model)
            && (s.values == o.values || s.values == beat_block::packed_vector(&o.values))
            && dp <= 1e-5;
        if same {
            c.max_p_difference = c.max_p_difference.max(dp);
        } else {
            c.mismatched += 1;
            if c.first_mismatch.is_none() {
                c.first_mismatch = Some(format!(
                    "beat {i}: stored {} µs sample {} {} {:?}, offline {} µs sample {} {} {:?}",
                    s.r_time_us,
                    s.sample,
                    s.verdict.as_str(),
                    s.p_abnormal,
                    o.r_time_us,
                    o.sample,
                    o.verdict.as_str(),
                    o.p_abnormal
                ));
            }
        }
    }
    c
}
