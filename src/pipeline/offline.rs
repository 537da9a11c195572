//! A whole recording through the daemon's own analysis and inference code,
//! without broker or store: `holterd analyze`, uploads, and the reference the
//! end-to-end tests compare the daemon against.

use super::analysis::Analyzer;
use super::inference::classify;
use super::{Batch, Item};
use crate::metrics::Metrics;
use crate::model::ModelError;
use crate::model::classifier::Classifier;
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
