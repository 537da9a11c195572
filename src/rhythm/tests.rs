//! The analyser on synthetic beat sequences: each episode kind's onset and
//! offset, nothing invented on sinus rhythm with isolated ectopics.

use super::*;
use crate::formats::wfdb::AamiClass::{N, S, V};

/// Beats at the given RR intervals (s) with the given classes, from t = 0.
fn beats(seq: &[(f64, Option<AamiClass>)]) -> Vec<RhythmBeat> {
    let mut t = 0.0;
    seq.iter()
        .map(|&(rr, class)| {
            t += rr;
            RhythmBeat {
                r_time_us: (t * 1e6).round() as i64,
                class,
            }
        })
        .collect()
}

fn sinus(n: usize, rr: f64) -> Vec<(f64, Option<AamiClass>)> {
    vec![(rr, Some(N)); n]
}

/// Closed episodes after feeding everything and finishing.
fn run(seq: &[(f64, Option<AamiClass>)]) -> (Vec<RhythmEvent>, Vec<Episode>) {
    run_with(RhythmConfig::default(), seq)
}

fn run_with(
    config: RhythmConfig,
    seq: &[(f64, Option<AamiClass>)],
) -> (Vec<RhythmEvent>, Vec<Episode>) {
    let mut a = RhythmAnalyser::new(config);
    let mut out = Vec::new();
    for b in beats(seq) {
        a.push(b, &mut out);
    }
    a.finish(&mut out);
    let closed = out
        .iter()
        .filter_map(|e| match e {
            RhythmEvent::Closed(e) => Some(e.clone()),
            RhythmEvent::Opened(_) | RhythmEvent::Withdrawn(_) => None,
        })
        .collect();
    (out, closed)
}

fn kinds(episodes: &[Episode]) -> Vec<EpisodeKind> {
    episodes.iter().map(|e| e.kind).collect()
}

/// A small deterministic generator of irregular intervals.
fn irregular(n: usize, seed: u64) -> Vec<(f64, Option<AamiClass>)> {
    let mut rng = crate::model::SplitMix64::new(seed);
    (0..n)
        .map(|_| (0.45 + 0.5 * f64::from(rng.next_f32()), Some(N)))
        .collect()
}

#[test]
fn sinus_rhythm_with_isolated_ectopics_gives_nothing() {
    let mut seq = sinus(400, 0.8);
    for i in (20..400).step_by(37) {
        // A PVC: early, then a compensatory pause.
        seq[i] = (0.5, Some(V));
        seq[i + 1] = (1.1, Some(N));
    }
    for i in (40..400).step_by(53) {
        // A PAC: early, then a shorter, non-compensatory interval.
        seq[i] = (0.55, Some(S));
        seq[i + 1] = (0.9, Some(N));
    }
    let (events, closed) = run(&seq);
    assert!(events.is_empty(), "{events:?}");
    assert!(closed.is_empty());
}

#[test]
fn a_ventricular_run_is_vt_when_fast_and_idioventricular_when_slow() {
    let mut seq = sinus(30, 0.8);
    seq.extend([
        (0.45, Some(V)),
        (0.45, Some(V)),
        (0.45, Some(V)),
        (0.45, Some(V)),
    ]);
    seq.extend(sinus(30, 0.8));
    let (events, closed) = run(&seq);
    assert_eq!(kinds(&closed), [EpisodeKind::VentricularTachycardia]);
    let vt = &closed[0];
    assert_eq!(vt.beats, 4);
    let first_v = beats(&seq)[30].r_time_us;
    assert_eq!((vt.start_us, vt.end_us), (first_v, first_v + 1_350_000));
    assert!((vt.max_bpm - 133.3).abs() < 0.1);
    // Opened at the third V, before the run ended.
    match &events[0] {
        RhythmEvent::Opened(e) => assert_eq!((e.beats, e.end_us), (3, first_v + 900_000)),
        e => panic!("{e:?}"),
    }
    let mut slow = sinus(30, 0.8);
    slow.extend([(1.0, Some(V)); 5]);
    slow.extend(sinus(30, 0.8));
    assert_eq!(kinds(&run(&slow).1), [EpisodeKind::IdioventricularRhythm]);
    // A couplet is no run.
    let mut couplet = sinus(30, 0.8);
    couplet.extend([(0.45, Some(V)), (0.45, Some(V))]);
    couplet.extend(sinus(30, 0.8));
    assert!(run(&couplet).1.is_empty());
}

#[test]
fn a_supraventricular_run_is_svt_when_fast() {
    let mut seq = sinus(30, 0.8);
    seq.extend([(0.4, Some(S)); 6]);
    seq.extend(sinus(30, 0.8));
    let (_, closed) = run(&seq);
    assert_eq!(kinds(&closed), [EpisodeKind::SupraventricularTachycardia]);
    assert_eq!(closed[0].beats, 6);
}

#[test]
fn an_svt_goes_on_through_beats_called_n_while_fast_and_steady() {
    // Abrupt onset: four S beats at 150 /min, then the same rhythm called N
    // (no longer early against the beats before), then sinus rhythm again.
    let mut seq = sinus(30, 0.8);
    seq.extend([(0.4, Some(S)); 4]);
    seq.extend([(0.4, Some(N)); 20]);
    seq.extend(sinus(30, 0.8));
    let svt = |closed: Vec<Episode>| -> Vec<Episode> {
        closed
            .into_iter()
            .filter(|e| e.kind == EpisodeKind::SupraventricularTachycardia)
            .collect()
    };
    let found = svt(run(&seq).1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].beats, 24);
    // A fast sinus rhythm reached gradually, with no S onset, is no SVT.
    let mut ramp = sinus(30, 0.8);
    let mut rr = 0.8;
    while rr > 0.45 {
        rr *= 0.99;
        ramp.push((rr, Some(N)));
    }
    ramp.extend(sinus(30, 0.45));
    assert!(svt(run(&ramp).1).is_empty());
    // An SVT whose rhythm turns irregular ends there.
    let mut irregular_end = sinus(30, 0.8);
    irregular_end.extend([(0.4, Some(S)); 4]);
    irregular_end.extend([(0.4, Some(N)), (0.55, Some(N)), (0.4, Some(N))]);
    irregular_end.extend(sinus(30, 0.8));
    let found = svt(run(&irregular_end).1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].beats, 5);
}

#[test]
fn a_vt_goes_on_through_single_capture_beats_on_its_rhythm() {
    let vt = |closed: &[Episode]| -> Vec<Episode> {
        closed
            .iter()
            .filter(|e| e.kind == EpisodeKind::VentricularTachycardia)
            .cloned()
            .collect()
    };
    // 21 beats at 160 /min, every fourth called N on the same rhythm
    // (capture or fusion beats): one VT of all 21 beats.
    let mut seq = sinus(30, 0.8);
    for i in 0..21 {
        let class = if i % 4 == 3 { N } else { V };
        seq.push((0.375, Some(class)));
    }
    seq.extend(sinus(30, 0.8));
    let (events, closed) = run(&seq);
    let found = vt(&closed);
    assert_eq!(found.len(), 1, "{closed:?}");
    assert_eq!(found[0].beats, 21);
    assert_eq!(found[0].start_us, beats(&seq)[30].r_time_us);
    assert_eq!(found[0].end_us, beats(&seq)[50].r_time_us);
    let opened = events
        .iter()
        .filter(|e| matches!(e, RhythmEvent::Opened(e) if e.kind == EpisodeKind::VentricularTachycardia))
        .count();
    assert_eq!(opened, 1);
    // Two non-V beats in a row end it at the last V beat.
    let mut two = sinus(30, 0.8);
    two.extend([(0.375, Some(V)); 5]);
    two.extend([(0.375, Some(N)); 2]);
    two.extend([(0.375, Some(V)); 5]);
    two.extend(sinus(30, 0.8));
    let found = vt(&run(&two).1);
    assert_eq!(found.iter().map(|e| e.beats).collect::<Vec<_>>(), [5, 5]);
    // A single N beat off the rhythm (a sinus beat after a pause) ends it,
    // and the VT ends at its last V beat, not at the held beat.
    let mut off = sinus(30, 0.8);
    off.extend([(0.375, Some(V)); 5]);
    off.push((0.8, Some(N)));
    off.extend([(0.375, Some(V)); 5]);
    off.extend(sinus(30, 0.8));
    let all = beats(&off);
    let found = vt(&run(&off).1);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].end_us, all[34].r_time_us);
    // A held beat followed by a V beat off the rhythm ends it too.
    let mut late = sinus(30, 0.8);
    late.extend([(0.375, Some(V)); 5]);
    late.push((0.375, Some(N)));
    late.push((0.6, Some(V)));
    late.extend(sinus(30, 0.8));
    let found = vt(&run(&late).1);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].beats, 5);
    // A VT alternating longer and shorter intervals goes on through a
    // capture beat within their range.
    let mut alternating = sinus(30, 0.8);
    for i in 0..12 {
        let rr = if i % 2 == 0 { 0.47 } else { 0.65 };
        alternating.push((rr, Some(if i == 7 { N } else { V })));
    }
    alternating.extend(sinus(30, 0.8));
    let found = vt(&run(&alternating).1);
    assert_eq!(found.iter().map(|e| e.beats).collect::<Vec<_>>(), [12]);
    // Ventricular bigeminy after a VT ends it: V and N alternating.
    let mut bigeminy = sinus(30, 0.8);
    bigeminy.extend([(0.375, Some(V)); 4]);
    for _ in 0..5 {
        bigeminy.extend([(0.375, Some(N)), (0.375, Some(V))]);
    }
    bigeminy.extend(sinus(30, 0.8));
    let found = vt(&run(&bigeminy).1);
    assert_eq!(found.iter().map(|e| e.beats).collect::<Vec<_>>(), [6]);
    // A slow (idioventricular) run does not go on through N beats.
    let mut slow = sinus(30, 1.0);
    for i in 0..12 {
        slow.push((0.9, Some(if i % 4 == 2 { N } else { V })));
    }
    slow.extend(sinus(30, 1.0));
    let closed = run(&slow).1;
    assert!(
        closed
            .iter()
            .filter(|e| e.kind == EpisodeKind::IdioventricularRhythm)
            .all(|e| e.beats < 12),
        "{closed:?}"
    );
}

#[test]
fn bigeminy_and_trigeminy_after_three_cycles() {
    let mut seq = sinus(20, 0.8);
    for _ in 0..10 {
        seq.extend([(0.9, Some(N)), (0.5, Some(V))]);
    }
    seq.extend(sinus(20, 0.8));
    let (_, closed) = run(&seq);
    assert_eq!(kinds(&closed), [EpisodeKind::Bigeminy]);
    let b = beats(&seq);
    assert_eq!(closed[0].start_us, b[20].r_time_us);
    // Ends with the last beat in its place in the cycle.
    assert_eq!(closed[0].end_us, b[40].r_time_us);

    let mut tri = sinus(20, 0.8);
    for _ in 0..6 {
        tri.extend([(0.8, Some(N)), (0.8, Some(N)), (0.5, Some(V))]);
    }
    tri.extend(sinus(20, 0.8));
    assert_eq!(kinds(&run(&tri).1), [EpisodeKind::Trigeminy]);

    // Two cycles are not yet bigeminy.
    let mut two = sinus(20, 0.8);
    two.extend([
        (0.9, Some(N)),
        (0.5, Some(V)),
        (0.9, Some(N)),
        (0.5, Some(V)),
    ]);
    two.extend(sinus(20, 0.8));
    assert!(run(&two).1.is_empty());
}

#[test]
fn pauses_and_asystole_by_their_interval_and_not_across_noise() {
    let mut seq = sinus(20, 0.8);
    seq.push((2.4, Some(N)));
    seq.extend(sinus(10, 0.8));
    seq.push((3.5, Some(N)));
    seq.extend(sinus(10, 0.8));
    seq.push((1.9, Some(N)));
    seq.extend(sinus(10, 0.8));
    // Between unreadable beats a long interval is no pause.
    seq.push((0.8, None));
    seq.push((2.5, None));
    seq.extend(sinus(10, 0.8));
    let (_, closed) = run(&seq);
    assert_eq!(kinds(&closed), [EpisodeKind::Pause, EpisodeKind::Asystole]);
    assert!((closed[0].duration_s() - 2.4).abs() < 1e-6);
    assert!((closed[1].duration_s() - 3.5).abs() < 1e-6);
}

#[test]
fn a_silence_is_announced_before_the_beat_that_ends_it() {
    let mut a = RhythmAnalyser::new(RhythmConfig::default());
    let mut out = Vec::new();
    for b in beats(&sinus(10, 0.8)) {
        a.push(b, &mut out);
    }
    let last = 8_000_000;
    a.advance(last + 1_000_000, &mut out);
    assert!(out.is_empty());
    a.advance(last + 2_100_000, &mut out);
    a.advance(last + 2_500_000, &mut out);
    assert!(matches!(&out[..], [RhythmEvent::Opened(e)] if e.kind == EpisodeKind::Pause));
    a.advance(last + 3_200_000, &mut out);
    // The pause grew into asystole: the pause is withdrawn, asystole announced.
    assert!(matches!(&out[1], RhythmEvent::Withdrawn(e) if e.kind == EpisodeKind::Pause));
    assert!(matches!(&out[2], RhythmEvent::Opened(e) if e.kind == EpisodeKind::Asystole));
    assert!(
        a.ongoing().is_empty(),
        "an announced pause is not a stored episode"
    );
    a.push(
        RhythmBeat {
            r_time_us: last + 3_600_000,
            class: Some(N),
        },
        &mut out,
    );
    // The closing beat closes the asystole already opened, without reopening it.
    assert_eq!(out.len(), 4);
    assert!(
        matches!(&out[3], RhythmEvent::Closed(e) if e.kind == EpisodeKind::Asystole && e.end_us == last + 3_600_000)
    );
}

#[test]
fn an_announced_pause_is_withdrawn_when_a_beat_is_found_within_it() {
    let mut a = RhythmAnalyser::new(RhythmConfig::default());
    let mut out = Vec::new();
    for b in beats(&sinus(10, 0.8)) {
        a.push(b, &mut out);
    }
    let last = 8_000_000;
    a.advance(last + 2_200_000, &mut out);
    assert!(matches!(&out[..], [RhythmEvent::Opened(e)] if e.kind == EpisodeKind::Pause));
    // Searchback finds a small beat 1.1 s after the last: no pause after all.
    for t in [last + 1_100_000, last + 2_300_000] {
        a.push(
            RhythmBeat {
                r_time_us: t,
                class: Some(N),
            },
            &mut out,
        );
    }
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[1], RhythmEvent::Withdrawn(e) if e.kind == EpisodeKind::Pause));
    // And a silence at the end of the stream is withdrawn, not reported.
    a.advance(last + 5_000_000, &mut out);
    a.finish(&mut out);
    assert!(matches!(&out[2], RhythmEvent::Opened(e) if e.kind == EpisodeKind::Pause));
    assert!(matches!(&out[3], RhythmEvent::Withdrawn(_)));
    assert_eq!(out.len(), 4);
}

#[test]
fn bradycardia_and_tachycardia_need_their_minimum_duration() {
    let mut seq = sinus(20, 0.8);
    seq.extend(sinus(20, 1.5)); // 40 /min for 30 s
    seq.extend(sinus(20, 0.8));
    seq.extend(sinus(30, 0.5)); // 120 /min for 15 s
    seq.extend(sinus(20, 0.8));
    seq.extend(sinus(6, 0.5)); // 3 s: too short
    seq.extend(sinus(20, 0.8));
    let (_, closed) = run(&seq);
    assert_eq!(
        kinds(&closed),
        [EpisodeKind::Bradycardia, EpisodeKind::Tachycardia]
    );
    let b = beats(&seq);
    // Onset: the first beat of the first window entirely at the slow rate.
    assert_eq!(closed[0].start_us, b[19].r_time_us);
    assert!(closed[0].min_bpm < 41.0);
}

#[test]
fn signal_loss_after_its_minimum_span() {
    let mut seq = sinus(20, 0.8);
    seq.extend([(0.8, None); 10]);
    seq.extend(sinus(20, 0.8));
    seq.extend([(0.8, None); 3]);
    seq.extend(sinus(20, 0.8));
    let (_, closed) = run(&seq);
    assert_eq!(kinds(&closed), [EpisodeKind::SignalLoss]);
    let b = beats(&seq);
    assert_eq!(
        (closed[0].start_us, closed[0].end_us),
        (b[20].r_time_us, b[30].r_time_us)
    );
}

#[test]
fn atrial_fibrillation_is_found_and_dated_to_its_onset() {
    let mut seq = sinus(200, 0.8);
    seq.extend(irregular(300, 7));
    seq.extend(sinus(200, 0.8));
    let (_, closed) = run(&seq);
    assert_eq!(kinds(&closed), [EpisodeKind::AtrialFibrillation]);
    let b = beats(&seq);
    let (onset, offset) = (b[200].r_time_us, b[499].r_time_us);
    let af = &closed[0];
    // Within a quarter of the window (8 beats, about 6 s) of the true onset and offset.
    assert!((af.start_us - onset).abs() < 6_000_000, "{af:?} vs {onset}");
    assert!((af.end_us - offset).abs() < 6_000_000, "{af:?} vs {offset}");
}

#[test]
fn bigeminal_and_ectopic_rhythms_are_not_atrial_fibrillation() {
    // Atrial bigeminy: alternating short and long intervals.
    let mut seq = sinus(50, 0.8);
    for _ in 0..150 {
        seq.extend([(0.5, Some(S)), (1.0, Some(N))]);
    }
    seq.extend(sinus(50, 0.8));
    assert!(
        !kinds(&run(&seq).1).contains(&EpisodeKind::AtrialFibrillation),
        "atrial bigeminy"
    );
    // Frequent PVCs at irregular places: their intervals are left out.
    let mut pvc = sinus(400, 0.8);
    let mut rng = crate::model::SplitMix64::new(3);
    let mut i = 10;
    while i + 2 < pvc.len() {
        pvc[i] = (0.45, Some(V));
        pvc[i + 1] = (1.15, Some(N));
        i += 3 + (rng.next_f32() * 4.0) as usize;
    }
    assert!(!kinds(&run(&pvc).1).contains(&EpisodeKind::AtrialFibrillation));
    // An irregular stretch shorter than the shortest AF episode.
    let mut short = sinus(200, 0.8);
    short.extend(irregular(20, 9));
    short.extend(sinus(200, 0.8));
    assert!(run(&short).1.is_empty());
}

#[test]
fn atrial_trigeminy_is_not_atrial_fibrillation() {
    // Normal, normal, early S with a longer interval after it: a cycle of
    // three intervals, repeating, so RRᵢ ≈ RRᵢ₋₃ although successive and
    // alternate intervals differ.
    let mut seq = sinus(50, 0.8);
    for _ in 0..120 {
        seq.extend([(0.8, Some(N)), (0.5, Some(S)), (1.1, Some(N))]);
    }
    seq.extend(sinus(50, 0.8));
    assert!(!kinds(&run(&seq).1).contains(&EpisodeKind::AtrialFibrillation));
}

#[test]
fn atrial_fibrillation_ends_when_ventricular_trigeminy_follows() {
    // AF, then sinus rhythm with a PVC every third beat, then a short
    // irregular burst: the clean intervals of the trigeminy (one per cycle)
    // are as regular as the sinus rhythm, so the episode ends near the
    // change instead of being stretched over the trigeminy to the burst.
    let mut seq = sinus(100, 0.8);
    seq.extend(irregular(300, 11));
    let af_end = seq.len() - 1;
    for cycle in 0..200 {
        seq.extend([(0.9, Some(N)), (0.9, Some(N)), (0.5, Some(V))]);
        if cycle % 4 == 3 {
            // Now and then a PVC is missing: a few clean intervals in a row.
            seq.push((0.9, Some(N)));
        }
    }
    seq.extend(irregular(20, 14));
    seq.extend(sinus(100, 0.8));
    let (_, closed) = run(&seq);
    let af: Vec<_> = closed
        .iter()
        .filter(|e| e.kind == EpisodeKind::AtrialFibrillation)
        .collect();
    assert_eq!(af.len(), 1, "{closed:?}");
    let offset = beats(&seq)[af_end].r_time_us;
    assert!(
        (af[0].end_us - offset).abs() < 30_000_000,
        "{:?} vs {offset}",
        af[0]
    );
}

#[test]
fn atrial_fibrillation_is_not_carried_across_minutes_without_clean_intervals() {
    // AF, three minutes of ventricular bigeminy (no interval between two
    // non-V beats), then AF again: two episodes, not one bridging the bigeminy.
    let mut seq = sinus(100, 0.8);
    seq.extend(irregular(200, 12));
    for _ in 0..150 {
        seq.extend([(0.7, Some(N)), (0.5, Some(V))]);
    }
    seq.extend(irregular(200, 13));
    seq.extend(sinus(100, 0.8));
    let (_, closed) = run(&seq);
    let af = closed
        .iter()
        .filter(|e| e.kind == EpisodeKind::AtrialFibrillation)
        .count();
    assert_eq!(af, 2, "{closed:?}");
}

#[test]
fn replayed_beats_change_nothing() {
    let mut seq = sinus(30, 0.8);
    seq.extend([(0.45, Some(V)); 4]);
    seq.extend(sinus(30, 0.8));
    let b = beats(&seq);
    let (mut once, mut twice) = (Vec::new(), Vec::new());
    let mut a = RhythmAnalyser::new(RhythmConfig::default());
    for x in &b {
        a.push(*x, &mut once);
    }
    let mut a = RhythmAnalyser::new(RhythmConfig::default());
    for (i, x) in b.iter().enumerate() {
        a.push(*x, &mut twice);
        if i > 0 {
            a.push(b[i - 1], &mut twice);
        }
    }
    assert_eq!(once, twice);
}

#[test]
fn the_settings_are_checked() {
    assert!(RhythmConfig::default().validate().is_ok());
    let bad = RhythmConfig {
        brady_bpm: 120.0,
        ..RhythmConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("brady_bpm"));
    let bad = RhythmConfig {
        pause_s: f64::NAN,
        ..RhythmConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("pause_s"));
    assert_eq!(
        EpisodeKind::parse("atrial_fibrillation"),
        Some(EpisodeKind::AtrialFibrillation)
    );
    assert_eq!(EpisodeKind::parse("afib"), None);
}
