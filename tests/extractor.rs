//! The streaming beat extractor on real and synthetic ECG:
//!
//! - chunk invariance: the beats are identical however the stream is chunked;
//! - beat format: 187 values in [0, 1] starting at the R peak, RR intervals,
//!   times and emission latency consistent with the beats' sample indices;
//! - causality: a prefix of the stream yields exactly the beats the whole
//!   stream had emitted by then;
//! - detection accuracy against the cardiologists' annotations of the fixtures;
//! - the signal-quality gate: flat line, clipping, invalid samples, heavy
//!   noise and lead-off steps must not pass as readable beats, and clean ECG
//!   after them must be readable again;
//! - sampling rates: a synthetic ECG at 100 to 1000 Hz, and rejection of
//!   rates outside that range.

mod common;

use common::{FIXTURES, Lcg, extract, load, match_beats};
use holterd::dsp::{
    BEAT_LEN, BEAT_RATE_HZ, Beat, BeatExtractor, DspError, ExtractorConfig, Quality,
};

/// Runs `signal` through a new extractor fed with the given chunk sizes (cycled).
fn extract_chunked(fs: f64, signal: &[f32], sizes: &mut dyn Iterator<Item = usize>) -> Vec<Beat> {
    let mut e = BeatExtractor::new(ExtractorConfig::new(fs)).unwrap();
    let mut beats = Vec::new();
    let mut at = 0;
    while at < signal.len() {
        let n = sizes.next().unwrap().min(signal.len() - at);
        e.push(&signal[at..at + n], &mut beats);
        at += n;
    }
    assert_eq!(e.next_sample(), signal.len() as u64);
    e.finish(&mut beats);
    beats
}

fn min_max(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

#[test]
fn beats_do_not_depend_on_chunking() {
    for name in FIXTURES {
        let f = load(name);
        let reference = extract(f.fs, &f.signal, f.signal.len());
        assert!(reference.len() > 150, "{name}: {} beats", reference.len());
        for chunk in [1, 7, 360, 100_000] {
            let beats = extract_chunked(f.fs, &f.signal, &mut std::iter::repeat(chunk));
            assert!(
                beats == reference,
                "{name}: chunks of {chunk} give different beats"
            );
        }
        let mut rng = Lcg(0x5eed ^ f.signal.len() as u64);
        let beats = extract_chunked(
            f.fs,
            &f.signal,
            &mut std::iter::from_fn(|| Some(rng.range(1, 1000))),
        );
        assert!(
            beats == reference,
            "{name}: random chunk sizes give different beats"
        );
        // Empty chunks change nothing either.
        let mut flip = false;
        let beats = extract_chunked(
            f.fs,
            &f.signal,
            &mut std::iter::from_fn(|| {
                flip = !flip;
                Some(if flip { 0 } else { 250 })
            }),
        );
        assert!(beats == reference, "{name}: empty chunks change the beats");
    }
}

#[test]
fn beats_do_not_depend_on_chunking_at_other_rates() {
    // The fixtures resampled: at rates under 300 Hz the working rate is the
    // input rate, so detector and ring buffers see whole blocks written ahead.
    for name in FIXTURES {
        let f = load(name);
        for rate in [128.0, 250.0, 300.0, 450.0, 1000.0] {
            let r = holterd::dsp::Resampler::new(f.fs, rate);
            let mut x = vec![0.0; (f.signal.len() as f64 / r.step()) as usize - 2];
            r.resample(&f.signal, 0.0, &mut x);
            let reference = extract(rate, &x, x.len());
            assert!(
                reference.len() > 150,
                "{name} at {rate} Hz: {} beats",
                reference.len()
            );
            for chunk in [1, 97, 1000] {
                let beats = extract_chunked(rate, &x, &mut std::iter::repeat(chunk));
                assert!(
                    beats == reference,
                    "{name} at {rate} Hz: chunks of {chunk} give different beats"
                );
            }
        }
    }
}

#[test]
fn beat_format_times_and_latency() {
    for name in FIXTURES {
        let f = load(name);
        let fs = f.fs;
        let beats = extract(fs, &f.signal, 256);
        let n = beats.len();
        let (mut at_extreme, mut own_extreme) = (0, 0);
        let mut latencies = Vec::with_capacity(n);
        for (i, b) in beats.iter().enumerate() {
            assert_eq!(b.values.len(), BEAT_LEN);
            assert!(
                b.values.iter().all(|v| (0.0..=1.0).contains(v)),
                "{name}: beat {i} has values outside [0, 1]"
            );
            // Min-max normalised: the beat reaches both 0 and 1. `used` excludes the
            // zero padding (and the beat's last values if they are its minimum).
            let used = BEAT_LEN - b.values.iter().rev().take_while(|&&v| v == 0.0).count();
            assert!(used > 40, "{name}: beat {i} has only {used} values");
            assert!(
                b.values[..used].contains(&1.0),
                "{name}: beat {i} never reaches 1"
            );
            assert!(b.values.contains(&0.0), "{name}: beat {i} never reaches 0");
            // The beat starts at the R peak, the largest deflection of the beat:
            // values[0] is the maximum or minimum of the beat's own span (up to
            // 0.8 RR; the window runs on to 1.2 RR and may include the next R peak,
            // which can be taller)...
            let own = match b.rr_next_ms {
                Some(rr) => ((0.8 * rr / 1000.0 * BEAT_RATE_HZ) as usize).clamp(1, used),
                None => used,
            };
            let (lo, hi) = min_max(&b.values[..own]);
            if b.values[0] == hi || b.values[0] == lo {
                own_extreme += 1;
            }
            // ...and, for most beats, of the whole window.
            if b.values[0] == 1.0 || b.values[0] == 0.0 {
                at_extreme += 1;
            }
            assert_eq!(b.time_s, b.sample as f64 / fs);
            assert!(
                b.emitted_at > b.sample,
                "{name}: beat {i} emitted before its R peak"
            );
            assert!(b.emitted_at <= f.signal.len() as u64);
            latencies.push((b.emitted_at - b.sample) as f64 / fs);
            if i + 1 < n {
                let next = &beats[i + 1];
                assert!(
                    next.sample > b.sample,
                    "{name}: beats {i} and {} out of order",
                    i + 1
                );
                let rr = (next.sample - b.sample) as f64 * 1000.0 / fs;
                assert_eq!(
                    next.rr_prev_ms,
                    Some(rr),
                    "{name}: rr_prev of beat {}",
                    i + 1
                );
                match b.rr_next_ms {
                    Some(v) => assert_eq!(v, rr, "{name}: rr_next of beat {i}"),
                    // Emitted without waiting for the next R peak: it came late.
                    None => assert!(
                        rr > 1500.0,
                        "{name}: beat {i} has no rr_next but the next beat is {rr} ms later"
                    ),
                }
            }
        }
        assert_eq!(beats[0].rr_prev_ms, None);
        let own_fraction = own_extreme as f64 / n as f64;
        let fraction = at_extreme as f64 / n as f64;
        let mean = latencies.iter().sum::<f64>() / n as f64;
        let max = latencies.iter().copied().fold(0.0, f64::max);
        eprintln!(
            "{name}: {n} beats; first value the extreme of its own span in {:.1} %, of the whole window in {:.1} %; latency mean {mean:.3} s, max {max:.3} s",
            100.0 * own_fraction,
            100.0 * fraction
        );
        assert!(
            own_fraction >= 0.98,
            "{name}: only {:.1} % of beats start at their extreme",
            100.0 * own_fraction
        );
        assert!(
            fraction > 0.5,
            "{name}: only {:.1} % of beats start at 0 or 1",
            100.0 * fraction
        );
        assert!(max < 3.0, "{name}: latency up to {max:.2} s");
        assert!(mean < 2.0, "{name}: mean latency {mean:.2} s");
    }
}

#[test]
fn a_prefix_gives_the_beats_emitted_so_far() {
    for name in FIXTURES {
        let f = load(name);
        let full = extract(f.fs, &f.signal, 500);
        for cut in [3_000, 10_799, 21_601, 45_000, 64_799] {
            let mut e = BeatExtractor::new(ExtractorConfig::new(f.fs)).unwrap();
            let mut beats = Vec::new();
            for part in f.signal[..cut].chunks(333) {
                e.push(part, &mut beats);
            }
            // Before `finish`: exactly the beats the full run had emitted by sample `cut`.
            let so_far: Vec<&Beat> = full.iter().filter(|b| b.emitted_at <= cut as u64).collect();
            assert_eq!(beats.len(), so_far.len(), "{name}: cut at {cut}");
            for (a, b) in beats.iter().zip(&so_far) {
                assert!(
                    a == *b,
                    "{name}: cut at {cut}: beat at {} differs",
                    a.sample
                );
            }
            // `finish` flushes the pending beats: same R peaks as the full run.
            let emitted = beats.len();
            e.finish(&mut beats);
            assert!(beats.len() >= emitted);
            for (a, b) in beats.iter().zip(&full).skip(emitted) {
                assert_eq!(a.sample, b.sample, "{name}: cut at {cut}: flushed beat");
                assert!(a.emitted_at == cut as u64 && a.sample < cut as u64);
            }
        }
    }
}

#[test]
fn detection_matches_the_reference_annotations() {
    for name in FIXTURES {
        let f = load(name);
        let beats = extract(f.fs, &f.signal, 256);
        let detections: Vec<u64> = beats.iter().map(|b| b.sample).collect();
        let tol = (0.15 * f.fs).round() as u64;
        let m = match_beats(
            &f.reference,
            &detections,
            tol,
            (10.0 * f.fs) as u64,
            f.signal.len() as u64,
        );
        eprintln!(
            "{name}: TP {} FN {} FP {}: Se {:.2} % +P {:.2} %",
            m.tp,
            m.fn_,
            m.fp,
            m.se(),
            m.ppv()
        );
        assert!(m.tp > 150);
        assert!(m.se() >= 99.0, "{name}: Se {:.2} %", m.se());
        assert!(m.ppv() >= 99.0, "{name}: +P {:.2} %", m.ppv());
    }
}

// ---- the signal-quality gate --------------------------------------------------

/// Beats of `signal` (fixture rate) with their R peaks, in seconds, in `from..to`.
fn beats_between(beats: &[Beat], fs: f64, from: f64, to: f64) -> Vec<&Beat> {
    beats
        .iter()
        .filter(|b| (from..to).contains(&(b.sample as f64 / fs)))
        .collect()
}

fn qualities(beats: &[&Beat]) -> Vec<(u64, Quality)> {
    beats.iter().map(|b| (b.sample, b.quality)).collect()
}

/// Fraction of readable beats.
fn readable(beats: &[&Beat]) -> f64 {
    beats.iter().filter(|b| b.quality.is_readable()).count() as f64 / beats.len().max(1) as f64
}

#[test]
fn clean_fixtures_are_readable() {
    // The baseline for the gate tests below: unaltered fixtures pass the gate.
    for name in FIXTURES {
        let f = load(name);
        let beats = extract(f.fs, &f.signal, 256);
        let all: Vec<&Beat> = beats.iter().collect();
        eprintln!("{name}: {:.1} % readable", 100.0 * readable(&all));
        assert!(readable(&all) >= 0.95, "{name}: {:?}", qualities(&all));
    }
}

#[test]
fn constant_signal_gives_no_readable_beat() {
    let fs = 360.0;
    for level in [0.9f32, 0.0, -2.5] {
        let beats = extract(fs, &vec![level; 60 * 360], 256);
        eprintln!("constant {level} mV: {} beats", beats.len());
        assert!(
            beats.iter().all(|b| !b.quality.is_readable()),
            "constant {level} mV: {:?}",
            beats
                .iter()
                .map(|b| (b.sample, b.quality))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn flat_line_after_ecg_is_not_readable() {
    let f = load("100_0");
    let fs = f.fs;
    let mut x = f.signal[..(60.0 * fs) as usize].to_vec();
    let flat_from = (30.0 * fs) as usize;
    x[flat_from..].fill(0.0);
    let beats = extract(fs, &x, 256);
    let flat = beats_between(&beats, fs, 30.0, 60.0);
    let before = beats_between(&beats, fs, 5.0, 28.0);
    eprintln!(
        "flat line: {} beats in the flat part: {:?}",
        flat.len(),
        qualities(&flat)
    );
    assert!(
        flat.iter().all(|b| !b.quality.is_readable()),
        "{:?}",
        qualities(&flat)
    );
    assert!(readable(&before) >= 0.95, "{:?}", qualities(&before));
}

/// Clamps `x[from..to]` to ±`fraction` of its largest absolute value; returns the limit.
fn clip(x: &mut [f32], from: usize, to: usize, fraction: f32) -> f32 {
    let limit = fraction * x[from..to].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for v in &mut x[from..to] {
        *v = v.clamp(-limit, limit);
    }
    limit
}

/// Longest run of samples at the clamp level (±`limit`) within 100 ms of sample `r`, seconds.
fn flat_top_s(x: &[f32], r: usize, limit: f32, fs: f64) -> f64 {
    let reach = (0.1 * fs) as usize;
    let window = &x[r.saturating_sub(reach)..(r + reach).min(x.len())];
    let (mut best, mut run, mut prev) = (0, 0, f32::NAN);
    for &v in window {
        run = if v.abs() == limit && v == prev {
            run + 1
        } else if v.abs() == limit {
            1
        } else {
            0
        };
        prev = v;
        best = best.max(run);
    }
    best as f64 / fs
}

#[test]
fn clipped_stretch_is_flagged_clipped() {
    // Saturation at a quarter of the largest deflection turns the R peaks into
    // flat tops 80 ms long. (At 40 % the tops are only 14–17 ms, shorter than
    // the gate's 30 ms clipping criterion, and most beats pass; see the report.)
    // 208_540 is left out here: see `clipped_r_peak_late_in_a_block_is_flagged`.
    for name in ["100_0", "119_180"] {
        let f = load(name);
        let fs = f.fs;
        let (from, to) = ((60.0 * fs) as usize, (120.0 * fs) as usize);
        let mut x = f.signal.clone();
        let limit = clip(&mut x, from, to, 0.25);
        let beats = extract(fs, &x, 256);
        let clipped = beats_between(&beats, fs, 61.0, 119.0);
        let after = beats_between(&beats, fs, 125.0, 175.0);
        let mut tops: Vec<f64> = clipped
            .iter()
            .map(|b| flat_top_s(&x, b.sample as usize, limit, fs))
            .collect();
        tops.sort_by(f64::total_cmp);
        let median_run_ms = 1000.0 * tops[tops.len() / 2];
        eprintln!(
            "{name}: clamp at ±{limit:.2} mV: flat tops {median_run_ms:.0} ms (median); {}/{} beats clipped; {:.1} % readable after",
            clipped
                .iter()
                .filter(|b| b.quality == Quality::Clipped)
                .count(),
            clipped.len(),
            100.0 * readable(&after)
        );
        assert!(
            median_run_ms >= 50.0,
            "{name}: the clamp did not make long flat tops"
        );
        assert!(
            clipped.len() > 40,
            "{name}: {} beats in the clipped stretch",
            clipped.len()
        );
        assert!(
            clipped.iter().all(|b| b.quality == Quality::Clipped),
            "{name}: {:?}",
            qualities(&clipped)
        );
        assert!(readable(&after) >= 0.95, "{name}: {:?}", qualities(&after));
    }
}

#[test]
fn clipped_r_peak_late_in_a_block_is_flagged() {
    // 208_540 clamped as above: the beat at sample 24841 sits on a 44 ms flat top
    // at the clamp level, yet is flagged Good: its block (24840..25200) is not
    // complete when the beat is emitted at 25179, so its verdict is not used.
    let f = load("208_540");
    let fs = f.fs;
    let mut x = f.signal.clone();
    let limit = clip(&mut x, (60.0 * fs) as usize, (120.0 * fs) as usize, 0.25);
    let beats = extract(fs, &x, 256);
    let long_flat_top: Vec<&Beat> = beats_between(&beats, fs, 61.0, 119.0)
        .into_iter()
        .filter(|b| flat_top_s(&x, b.sample as usize, limit, fs) >= 0.04)
        .collect();
    eprintln!(
        "208_540 clamped: {} beats on flat tops of 40 ms or more",
        long_flat_top.len()
    );
    assert!(long_flat_top.len() > 20);
    assert!(
        long_flat_top.iter().all(|b| b.quality == Quality::Clipped),
        "{:?}",
        qualities(&long_flat_top)
    );
}

#[test]
fn invalid_samples_inside_a_beat_are_never_readable() {
    // Bursts of 10 NaN samples (28 ms) every 7.37 s. A beat whose own span,
    // from 0.5 s before its R peak to 0.8 RR after it, holds invalid samples
    // must not be readable. Observed: 8 of 92 such beats come out Good, e.g.
    // 100_0 beat at 7105 with NaN at 7200..7210: it is emitted at 7537, before
    // the quality block 7200..7560 holding the NaN is complete.
    let (mut total, mut wrong) = (0, Vec::new());
    for name in FIXTURES {
        let f = load(name);
        let fs = f.fs;
        let mut x = f.signal.clone();
        let mut bursts = Vec::new();
        let mut t = 20.0;
        while t < 170.0 {
            let s = (t * fs) as usize;
            x[s..s + 10].fill(f32::NAN);
            bursts.push(s);
            t += 7.37;
        }
        let beats = extract(fs, &x, 256);
        let touched: Vec<&Beat> = beats
            .iter()
            .filter(|b| {
                let r = b.sample as usize;
                let Some(rr) = b.rr_next_ms else { return false };
                let end = r + (0.8 * rr / 1000.0 * fs) as usize;
                bursts
                    .iter()
                    .any(|&s| s + 10 > r.saturating_sub((0.5 * fs) as usize) && s < end)
            })
            .collect();
        eprintln!("{name}: {} beats with NaN in their own span", touched.len());
        assert!(touched.len() > 20);
        total += touched.len();
        wrong.extend(
            touched
                .iter()
                .filter(|b| b.quality.is_readable())
                .map(|b| (name, b.sample, b.emitted_at)),
        );
    }
    assert!(
        wrong.is_empty(),
        "{} of {total} beats with NaN inside flagged Good (fixture, R peak, emitted at): {wrong:?}",
        wrong.len()
    );
}

#[test]
fn invalid_samples_flag_lead_off_then_recover() {
    let f = load("100_0");
    let fs = f.fs;
    let mut x = f.signal.clone();
    let bad: Vec<usize> = (0..(0.5 * fs) as usize)
        .map(|i| (60.0 * fs) as usize + i)
        .chain([
            (61.3 * fs) as usize,
            (61.4 * fs) as usize + 1,
            (62.0 * fs) as usize + 7,
        ])
        .collect();
    for (k, &i) in bad.iter().enumerate() {
        x[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 5000.0][k % 4];
    }
    let (first, last) = (bad[0] as f64 / fs, *bad.last().unwrap() as f64 / fs);
    let mut beats = Vec::new();
    let mut e = BeatExtractor::new(ExtractorConfig::new(fs)).unwrap();
    for part in x.chunks(97) {
        e.push(part, &mut beats);
    }
    e.finish(&mut beats);
    // Beats whose span (0.5 s before the R peak to the end of the window) holds an invalid sample.
    let touched: Vec<&Beat> = beats
        .iter()
        .filter(|b| {
            let r = b.sample as usize;
            let end = r + (1.2 * b.rr_next_ms.unwrap_or(1000.0) / 1000.0 * fs) as usize;
            bad.iter().any(|&i| i + (0.5 * fs) as usize >= r && i < end)
        })
        .collect();
    let near = beats_between(&beats, fs, first - 0.3, last + 0.3);
    let later = beats_between(&beats, fs, last + 5.0, 180.0);
    eprintln!(
        "invalid samples {first:.2}..{last:.2} s: beats touching them {:?}; later {:.1} % readable",
        qualities(&touched),
        100.0 * readable(&later)
    );
    assert!(touched.len() >= 2);
    assert!(
        near.iter().all(|b| b.quality == Quality::LeadOff),
        "{:?}",
        qualities(&near)
    );
    assert!(
        touched.iter().all(|b| !b.quality.is_readable()),
        "{:?}",
        qualities(&touched)
    );
    assert!(beats.iter().all(|b| b.values.iter().all(|v| v.is_finite())));
    assert!(later.len() > 100);
    assert!(readable(&later) >= 0.95, "{:?}", qualities(&later));
}

#[test]
fn heavy_noise_is_not_readable() {
    for name in FIXTURES {
        let f = load(name);
        let fs = f.fs;
        let mut x = f.signal.clone();
        let mut rng = Lcg(0x0123_4567 + f.signal.len() as u64);
        let (from, to) = ((60.0 * fs) as usize, (120.0 * fs) as usize);
        for v in &mut x[from..to] {
            *v += (4.0 * rng.unit() - 2.0) as f32;
        }
        let beats = extract(fs, &x, 256);
        let noisy = beats_between(&beats, fs, 61.0, 119.0);
        let after = beats_between(&beats, fs, 125.0, 175.0);
        eprintln!(
            "{name}: ±2 mV noise: {} beats, {:.1} % readable; {:.1} % readable after",
            noisy.len(),
            100.0 * readable(&noisy),
            100.0 * readable(&after)
        );
        assert!(
            noisy.iter().all(|b| !b.quality.is_readable()),
            "{name}: {:?}",
            qualities(&noisy)
        );
        assert!(readable(&after) >= 0.95, "{name}: {:?}", qualities(&after));
    }
}

/// 119_180 with a 20 mV jump at `at_s` seconds that stays (the electrode came off).
fn stepped(at_s: f64) -> (f64, Vec<f32>) {
    let f = load("119_180");
    let mut x = f.signal.clone();
    for v in &mut x[(at_s * f.fs) as usize..] {
        *v += 20.0;
    }
    (f.fs, x)
}

#[test]
fn lead_off_step_is_flagged() {
    let (fs, x) = stepped(60.5);
    let beats = extract(fs, &x, 256);
    let after_step = beats_between(&beats, fs, 60.5, 61.5);
    let later = beats_between(&beats, fs, 70.0, 180.0);
    eprintln!(
        "20 mV step at 60.5 s: beats in the next second {:?}; later {:.1} % readable",
        qualities(&after_step),
        100.0 * readable(&later)
    );
    assert!(!after_step.is_empty());
    assert!(
        after_step.iter().all(|b| b.quality == Quality::LeadOff),
        "{:?}",
        qualities(&after_step)
    );
    assert!(later.len() > 100);
    assert!(readable(&later) >= 0.95, "{:?}", qualities(&later));
}

#[test]
fn lead_off_step_at_a_block_boundary_is_flagged() {
    // The step at sample 21600 = 60.000 s, where a quality block starts: the
    // beats at 21471, 21603, 21831 and 21944 all come out Good.
    let (fs, x) = stepped(60.0);
    let beats = extract(fs, &x, 256);
    let near = beats_between(&beats, fs, 59.5, 61.0);
    assert!(!near.is_empty());
    assert!(
        near.iter().all(|b| !b.quality.is_readable()),
        "{:?}",
        qualities(&near)
    );
}

// ---- sampling rates -----------------------------------------------------------

/// A synthetic ECG at `fs` Hz for `secs` seconds: Gaussian Q, R (1 mV, ~40 ms
/// wide), S and T waves, RR intervals varying between 0.7 and 0.9 s, slow
/// baseline wander and a little noise. Returns the signal and the R-peak times (s).
fn synthetic_ecg(fs: f64, secs: f64, seed: u64) -> (Vec<f32>, Vec<f64>) {
    let mut rng = Lcg(seed);
    let mut peaks = Vec::new();
    let mut t = 0.6;
    while t < secs - 0.5 {
        peaks.push(t);
        t += 0.7 + 0.2 * rng.unit();
    }
    let gauss = |t: f64, centre: f64, sd: f64, amp: f64| {
        let z = (t - centre) / sd;
        if z.abs() > 8.0 {
            0.0
        } else {
            amp * (-0.5 * z * z).exp()
        }
    };
    let n = (secs * fs) as usize;
    let mut x = vec![0.0f32; n];
    for (i, v) in x.iter_mut().enumerate() {
        let t = i as f64 / fs;
        let mut y =
            0.1 * (2.0 * std::f64::consts::PI * 0.25 * t).sin() + 0.01 * (2.0 * rng.unit() - 1.0);
        // Only the beats near t contribute.
        let k = peaks.partition_point(|&p| p < t - 1.0);
        for &p in peaks[k..].iter().take_while(|&&p| p < t + 1.0) {
            y += gauss(t, p - 0.03, 0.008, -0.1)
                + gauss(t, p, 0.01, 1.0)
                + gauss(t, p + 0.03, 0.008, -0.25)
                + gauss(t, p + 0.28, 0.04, 0.3)
                + gauss(t, p - 0.16, 0.02, 0.1);
        }
        *v = y as f32;
    }
    (x, peaks)
}

#[test]
fn synthetic_ecg_at_every_supported_rate() {
    for fs in [100.0, 128.0, 250.0, 360.0, 500.0, 1000.0] {
        let secs = 60.0;
        let (x, peaks) = synthetic_ecg(fs, secs, fs as u64);
        let beats = extract(fs, &x, 200);
        // Every beat after the first 2 s is found, with no extra ones.
        let scored = |t: f64| (2.0..secs - 1.0).contains(&t);
        let expected: Vec<f64> = peaks.iter().copied().filter(|&t| scored(t)).collect();
        let found: Vec<f64> = beats
            .iter()
            .map(|b| b.sample as f64 / fs)
            .filter(|&t| scored(t))
            .collect();
        let worst = expected
            .iter()
            .zip(&found)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let good = beats.iter().filter(|b| b.quality.is_readable()).count();
        eprintln!(
            "{fs} Hz: {} beats expected, {} found; worst R-peak error {:.1} ms; {good}/{} readable",
            expected.len(),
            found.len(),
            1000.0 * worst,
            beats.len()
        );
        assert_eq!(found.len(), expected.len(), "{fs} Hz: found {found:?}");
        assert!(
            worst <= 0.020,
            "{fs} Hz: R peak off by {:.1} ms",
            1000.0 * worst
        );
        assert!(
            good as f64 >= 0.95 * beats.len() as f64,
            "{fs} Hz: only {good} readable"
        );
    }
}

#[test]
fn unsupported_rates_are_rejected() {
    for fs in [99.0, 1001.0, 0.0, -360.0, f64::NAN, f64::INFINITY] {
        match BeatExtractor::new(ExtractorConfig::new(fs)) {
            Err(DspError::SamplingRate(r)) => assert!(r == fs || (r.is_nan() && fs.is_nan())),
            other => panic!(
                "{fs} Hz: expected a sampling-rate error, got {:?}",
                other.map(|_| ())
            ),
        }
    }
    for fs in [100.0, 1000.0] {
        assert!(
            BeatExtractor::new(ExtractorConfig::new(fs)).is_ok(),
            "{fs} Hz rejected"
        );
    }
    let bad_notch = ExtractorConfig {
        powerline_hz: Some(55.0),
        ..ExtractorConfig::new(360.0)
    };
    assert_eq!(
        BeatExtractor::new(bad_notch).err(),
        Some(DspError::Powerline(55.0))
    );
    let msg = DspError::SamplingRate(99.0).to_string();
    assert!(msg.contains("99") && msg.contains("100 and 1000"), "{msg}");
}

#[test]
fn patient_context_is_chunk_invariant_causal_and_learns_the_patient() {
    use holterd::dsp::context::CONTEXT_FEATURES;
    for name in FIXTURES {
        let f = load(name);
        let reference = extract(f.fs, &f.signal, f.signal.len());
        let contexts = |beats: &[Beat]| -> Vec<[f32; CONTEXT_FEATURES]> {
            beats.iter().map(|b| b.context).collect()
        };
        for chunk in [1, 7, 360, 100_000] {
            let beats = extract_chunked(f.fs, &f.signal, &mut std::iter::repeat(chunk));
            assert_eq!(
                contexts(&beats),
                contexts(&reference),
                "{name}: chunks of {chunk} change the context features"
            );
        }
        // Causality: a beat's features never change when later samples arrive.
        let half = extract(f.fs, &f.signal[..f.signal.len() / 2], 360);
        let emitted: Vec<_> = reference
            .iter()
            .filter(|b| b.emitted_at <= (f.signal.len() / 2) as u64)
            .collect();
        assert!(emitted.len() > 50);
        for (a, b) in emitted.iter().zip(&half) {
            assert_eq!(a.context, b.context, "{name}: beat at {} changed", a.sample);
        }
        // After the warm-up the dominant beat is learned: most beats match it closely.
        // (The fixtures are 3 to 5 minutes long: past half the warm-up.)
        let warm: Vec<_> = reference.iter().filter(|b| b.context[13] >= 0.5).collect();
        assert!(warm.len() > 50, "{name}: {} warm beats", warm.len());
        let close = warm.iter().filter(|b| b.context[5] > 0.9).count();
        assert!(
            close * 2 > warm.len(),
            "{name}: only {close} of {} beats correlate with the dominant beat",
            warm.len()
        );
        assert!(
            reference
                .iter()
                .all(|b| b.context.iter().all(|v| v.is_finite()))
        );
    }
}
