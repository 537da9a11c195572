//! RR features: the timing of a beat against its neighbours.
//!
//! A premature supraventricular beat can look exactly like a normal one; what
//! gives it away is that it came early. The RR-aware model therefore sees,
//! beside the 187 samples, the previous and next RR intervals (seconds) and
//! their ratios to the local RR (the median of the last 10 s, as the beat
//! extractor keeps it). The daemon, the dataset and training all compute them
//! here, from the same three numbers every [`crate::dsp::Beat`] carries.
//!
//! Models see a beat's *side features*: these four, then the patient-context
//! features the extractor computed ([`crate::dsp::context`]). Each network
//! reads the first [`super::Network::rr_features`] of them, so the RR-aware
//! CNN-LSTMs read exactly the four they were trained on.

use crate::dsp::Beat;
use crate::dsp::context::{CONTEXT_FEATURES, NETWORK_CONTEXT_FEATURES};

/// RR values per beat.
pub const RR_FEATURES: usize = 4;
/// Side features per beat: the RR values, then the patient context.
pub const SIDE_FEATURES: usize = RR_FEATURES + CONTEXT_FEATURES;
/// Side features the context networks read: the first this many.
pub const NETWORK_SIDE_FEATURES: usize = RR_FEATURES + NETWORK_CONTEXT_FEATURES;

/// A beat's side features: [`features`] then its patient context.
pub fn side_features(
    rr_prev_ms: Option<f64>,
    rr_next_ms: Option<f64>,
    rr_local_ms: Option<f64>,
    context: &[f32; CONTEXT_FEATURES],
) -> [f32; SIDE_FEATURES] {
    let mut side = [0.0f32; SIDE_FEATURES];
    side[..RR_FEATURES].copy_from_slice(&features(rr_prev_ms, rr_next_ms, rr_local_ms));
    side[RR_FEATURES..].copy_from_slice(context);
    side
}

/// [`side_features`] of an extracted beat.
pub fn side_of(beat: &Beat) -> [f32; SIDE_FEATURES] {
    side_features(
        beat.rr_prev_ms,
        beat.rr_next_ms,
        beat.rr_local_ms,
        &beat.context,
    )
}

/// Typical RR interval, ms, used when no interval is known yet.
const DEFAULT_RR_MS: f64 = 800.0;
/// Upper bound of intervals (s) and ratios, so that a long pause stays in range.
const MAX_FEATURE: f64 = 5.0;

/// `[rr_prev s, rr_next s, rr_prev / local, rr_next / local]`; a missing
/// interval is taken as the local one (ratio 1), a missing local RR as the
/// nearest known interval.
pub fn features(
    rr_prev_ms: Option<f64>,
    rr_next_ms: Option<f64>,
    rr_local_ms: Option<f64>,
) -> [f32; RR_FEATURES] {
    let valid = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
    let (prev, next) = (valid(rr_prev_ms), valid(rr_next_ms));
    let local = valid(rr_local_ms)
        .or(prev)
        .or(next)
        .unwrap_or(DEFAULT_RR_MS);
    let (prev, next) = (prev.unwrap_or(local), next.unwrap_or(local));
    let bound = |v: f64| v.clamp(0.0, MAX_FEATURE) as f32;
    [
        bound(prev / 1000.0),
        bound(next / 1000.0),
        bound(prev / local),
        bound(next / local),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_premature_beat_shows_in_its_ratios() {
        let f = features(Some(480.0), Some(1120.0), Some(800.0));
        assert_eq!(f, [0.48, 1.12, 0.6, 1.4]);
    }

    #[test]
    fn missing_and_hostile_values_stay_in_range() {
        assert_eq!(features(None, None, None), [0.8, 0.8, 1.0, 1.0]);
        assert_eq!(features(Some(600.0), None, None), [0.6, 0.6, 1.0, 1.0]);
        let f = features(Some(f64::NAN), Some(-3.0), Some(1e12));
        assert!(
            f.iter()
                .all(|v| v.is_finite() && (0.0..=MAX_FEATURE as f32).contains(v))
        );
        let pause = features(Some(9000.0), Some(700.0), Some(700.0));
        assert_eq!(pause[0], 5.0);
        assert_eq!(pause[2], 5.0);
    }
}
