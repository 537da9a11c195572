//! WFDB reading, end to end on real files: the fixture records and their
//! annotations (header fields, sample values against the source record,
//! annotation order and beat counts), the full MIT-BIH record 100 from the
//! reference data when it is present, and damaged files (truncated or corrupt
//! signal files, a missing signal file, bad header fields, truncated
//! annotations), each of which must give an error naming the file and the
//! problem, never a panic.

mod common;

use common::{FIXTURES, fixture};
use holterd::formats::wfdb::{self, WfdbError};
use std::path::{Path, PathBuf};

/// (fixture, source record, start sample in the source, second lead, beat annotations).
const FIXTURE_FACTS: [(&str, &str, usize, &str, usize); 3] = [
    ("100_0", "100", 0, "V5", 223),
    ("119_180", "119", 180 * 360, "V1", 196),
    ("208_540", "208", 540 * 360, "V1", 296),
];

#[test]
fn fixture_headers_and_samples() {
    for (name, _, _, lead2, _) in FIXTURE_FACTS {
        let rec = wfdb::read_record(&fixture(name)).unwrap();
        let h = &rec.header;
        assert_eq!(h.record, name);
        assert_eq!(h.fs, 360.0);
        assert_eq!(h.samples, Some(64_800));
        assert_eq!(rec.len(), 64_800);
        assert_eq!(rec.samples.len(), 2);
        assert!(rec.samples.iter().all(|s| s.len() == 64_800));
        assert_eq!(h.signals.len(), 2);
        for s in &h.signals {
            assert_eq!(s.file, format!("{name}.dat"));
            assert_eq!(s.format, 16);
            assert_eq!((s.gain, s.baseline, s.adc_zero), (200.0, 1024, 1024));
            assert_eq!(s.units, "mV");
            assert_eq!(s.adc_resolution, Some(11));
            assert!(s.initial_value.is_some() && s.checksum.is_some());
        }
        assert_eq!(h.signals[0].description, "MLII");
        assert_eq!(h.signals[1].description, lead2);
        assert_eq!(h.channel_of("mlii"), Some(0));
        // 11-bit samples around a baseline of 1024, physical values a few mV.
        for s in &rec.samples {
            assert!(
                s.iter().all(|&v| (0..2048).contains(&v)),
                "{name}: sample outside 11 bits"
            );
        }
        let mv = rec.physical(0);
        assert_eq!(mv[0], ((rec.samples[0][0] - 1024) as f64 / 200.0) as f32);
        let (lo, hi) = mv
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(
            lo > -5.2 && hi < 5.2 && hi - lo > 1.0,
            "{name}: MLII spans {lo}..{hi} mV"
        );
    }
}

#[test]
fn fixture_annotations_are_ordered_beats() {
    for (name, _, _, _, n_beats) in FIXTURE_FACTS {
        let anns = wfdb::read_annotations(&fixture(name).with_extension("atr")).unwrap();
        assert!(
            anns.windows(2).all(|w| w[0].sample <= w[1].sample),
            "{name}: annotations out of order"
        );
        assert!(
            anns.iter().all(|a| a.sample < 64_800),
            "{name}: annotation past the end"
        );
        let beats: Vec<_> = anns.iter().filter(|a| a.code.is_beat()).collect();
        assert_eq!(beats.len(), n_beats, "{name}: beat annotations");
        assert!(
            beats.windows(2).all(|w| w[0].sample < w[1].sample),
            "{name}: two beats at one sample"
        );
        // Every beat symbol maps to an AAMI class; non-beats (rhythm '+') do not.
        assert!(beats.iter().all(|a| a.code.aami_class().is_some()));
        assert!(
            anns.iter()
                .filter(|a| !a.code.is_beat())
                .all(|a| a.code.aami_class().is_none())
        );
        // Heart rate is plausible: 3 minutes of 40–200 bpm.
        assert!((120..=600).contains(&beats.len()));
    }
    let count = |name: &str, class: wfdb::AamiClass| {
        wfdb::read_annotations(&fixture(name).with_extension("atr"))
            .unwrap()
            .iter()
            .filter(|a| a.code.aami_class() == Some(class))
            .count()
    };
    assert_eq!(count("119_180", wfdb::AamiClass::V), 55, "119_180 PVCs");
    assert_eq!(count("208_540", wfdb::AamiClass::V), 112, "208_540 PVCs");
    assert_eq!(
        count("208_540", wfdb::AamiClass::F),
        68,
        "208_540 fusion beats"
    );
    // The first rhythm annotation of record 100 carries its rhythm as AUX text.
    let a100 = wfdb::read_annotations(&fixture("100_0").with_extension("atr")).unwrap();
    assert_eq!(a100[0].code.symbol(), "+");
    assert_eq!(
        a100[0].aux.as_deref().map(|s| s.trim_end_matches('\0')),
        Some("(N")
    );
    assert_eq!(FIXTURES.len(), FIXTURE_FACTS.len());
}

/// The reference data directory's `mitdb`, or `None` (with a message) when absent.
fn mitdb() -> Option<PathBuf> {
    let dir = holterd::data_dir().join("mitdb");
    if dir.join("100.hea").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: reference data not found at {} (set HOLTER_DATA_DIR)",
            dir.display()
        );
        None
    }
}

#[test]
fn fixtures_match_their_source_records() {
    let Some(db) = mitdb() else { return };
    for (name, source, start, _, _) in FIXTURE_FACTS {
        let src = wfdb::read_record(&db.join(source)).unwrap();
        let fx = wfdb::read_record(&fixture(name)).unwrap();
        for ch in 0..2 {
            assert_eq!(
                fx.samples[ch],
                src.samples[ch][start..start + 64_800],
                "{name} signal {ch}"
            );
            assert_eq!(
                fx.header.signals[ch].description,
                src.header.signals[ch].description
            );
        }
        let src_anns = wfdb::read_annotations(&db.join(format!("{source}.atr"))).unwrap();
        let expect: Vec<(u64, &str)> = src_anns
            .iter()
            .filter(|a| (start as u64..start as u64 + 64_800).contains(&a.sample))
            .map(|a| (a.sample - start as u64, a.code.symbol()))
            .collect();
        let got: Vec<(u64, &str)> = wfdb::read_annotations(&fixture(name).with_extension("atr"))
            .unwrap()
            .iter()
            .map(|a| (a.sample, a.code.symbol()))
            .collect();
        assert_eq!(got, expect, "{name}: annotations");
    }
}

#[test]
fn mitdb_record_100() {
    let Some(db) = mitdb() else { return };
    let rec = wfdb::read_record(&db.join("100")).unwrap();
    assert_eq!(rec.header.record, "100");
    assert_eq!(rec.header.fs, 360.0);
    assert_eq!(rec.header.samples, Some(650_000));
    assert_eq!(rec.len(), 650_000);
    let names: Vec<&str> = rec
        .header
        .signals
        .iter()
        .map(|s| s.description.as_str())
        .collect();
    assert_eq!(names, ["MLII", "V5"]);
    assert!(
        rec.header
            .signals
            .iter()
            .all(|s| s.format == 212 && s.gain == 200.0)
    );
    // The reader verified these against the header; check they are what PhysioNet lists.
    assert_eq!((rec.samples[0][0], rec.samples[1][0]), (995, 1011));
    // The `.hea` extension may be given too.
    let again = wfdb::read_record(&db.join("100.hea")).unwrap();
    assert_eq!(again.samples[0][..1000], rec.samples[0][..1000]);

    let anns = wfdb::read_annotations(&db.join("100.atr")).unwrap();
    let beats: Vec<u64> = anns
        .iter()
        .filter(|a| a.code.is_beat())
        .map(|a| a.sample)
        .collect();
    assert_eq!(beats.len(), 2273);
    assert!(beats.windows(2).all(|w| w[0] < w[1]));
    assert!(*beats.last().unwrap() < 650_000);
    let count = |sym: &str| anns.iter().filter(|a| a.code.symbol() == sym).count();
    assert_eq!((count("N"), count("A"), count("V")), (2239, 33, 1));
}

// ---- damaged files ----------------------------------------------------------

/// Copies fixture 100_0 (header, signal, annotations) into `dir`; returns the record path.
fn copy_fixture(dir: &Path) -> PathBuf {
    for ext in ["hea", "dat", "atr"] {
        std::fs::copy(
            fixture("100_0").with_extension(ext),
            dir.join(format!("100_0.{ext}")),
        )
        .unwrap();
    }
    dir.join("100_0")
}

/// Asserts that `result` is an error whose message names `file` and contains every one of `words`.
fn assert_error<T: std::fmt::Debug>(
    result: Result<T, WfdbError>,
    file: &Path,
    words: &[&str],
) -> WfdbError {
    let err = result.expect_err("damaged input was accepted");
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "{msg:?} does not name {}",
        file.display()
    );
    for w in words {
        assert!(msg.contains(w), "{msg:?} does not mention {w:?}");
    }
    err
}

#[test]
fn truncated_signal_file() {
    let dir = common::temp_dir("truncated-dat");
    let rec = copy_fixture(&dir);
    let dat = rec.with_extension("dat");
    let bytes = std::fs::read(&dat).unwrap();
    // Cut at a frame boundary and in the middle of a sample.
    for keep in [bytes.len() / 2, bytes.len() - 1, 3, 0] {
        std::fs::write(&dat, &bytes[..keep]).unwrap();
        assert_error(wfdb::read_record(&rec), &dat, &["truncated", "64800"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn checksum_mismatch_warns_and_strict_mode_refuses() {
    let dir = common::temp_dir("checksum");
    let rec = copy_fixture(&dir);
    let dat = rec.with_extension("dat");
    let mut bytes = std::fs::read(&dat).unwrap();
    // The low byte of signal 1 (V5), sample 30000: not a first sample.
    bytes[30_000 * 4 + 2] ^= 0x10;
    std::fs::write(&dat, &bytes).unwrap();
    let read = wfdb::read_record_with(&rec, wfdb::ReadOptions::default()).unwrap();
    assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
    assert!(read.warnings[0].contains("checksum") && read.warnings[0].contains("V5"));
    let strict = wfdb::ReadOptions {
        strict_checksums: true,
    };
    assert_error(
        wfdb::read_record_with(&rec, strict),
        &rec.with_extension("hea"),
        &["checksum", "signal 1", "V5", "HOLTER_WFDB_STRICT"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A header in the style of the PhysioNet/CinC 2017 AF challenge: a `.mat`
/// signal file with a 24-byte prefix, and 0 in the checksum field.
#[test]
fn challenge_2017_headers_with_a_zero_checksum_are_read() {
    let dir = common::temp_dir("cinc2017");
    let samples: Vec<i16> = (0..3000).map(|i| ((i % 300) as i16 - 127) * 3).collect();
    let mut mat = vec![0u8; 24];
    for v in &samples {
        mat.extend(v.to_le_bytes());
    }
    std::fs::write(dir.join("A00001.mat"), &mat).unwrap();
    let first = samples[0];
    std::fs::write(
        dir.join("A00001.hea"),
        format!("A00001 1 300 3000\nA00001.mat 16+24 1000/mV 16 0 {first} 0 0 ECG\n"),
    )
    .unwrap();
    let r = wfdb::read_record_with(&dir.join("A00001"), wfdb::ReadOptions::default()).unwrap();
    assert_eq!(r.len(), 3000);
    assert_eq!(
        r.samples[0][..3],
        [first as i32, samples[1] as i32, samples[2] as i32]
    );
    assert_eq!(r.warnings.len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn first_value_mismatch() {
    let dir = common::temp_dir("first-value");
    let rec = copy_fixture(&dir);
    let hea = rec.with_extension("hea");
    // Corrupt the first sample in the signal file...
    let dat = rec.with_extension("dat");
    let mut bytes = std::fs::read(&dat).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&dat, &bytes).unwrap();
    assert_error(
        wfdb::read_record(&rec),
        &hea,
        &["first sample", "signal 0", "MLII", "995"],
    );
    // ...or the header's first value.
    std::fs::copy(fixture("100_0").with_extension("dat"), &dat).unwrap();
    let text = std::fs::read_to_string(&hea)
        .unwrap()
        .replace(" 1011 ", " 1012 ");
    std::fs::write(&hea, text).unwrap();
    assert_error(
        wfdb::read_record(&rec),
        &hea,
        &["first sample", "signal 1", "1012"],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_signal_file() {
    let dir = common::temp_dir("missing-dat");
    let rec = copy_fixture(&dir);
    let dat = rec.with_extension("dat");
    std::fs::remove_file(&dat).unwrap();
    let err = assert_error(wfdb::read_record(&rec), &dat, &[]);
    match err {
        WfdbError::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // A missing header is reported the same way.
    let hea = dir.join("nothing.hea");
    assert_error(wfdb::read_record(&dir.join("nothing")), &hea, &[]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn header_with_bad_fields() {
    let dir = common::temp_dir("bad-header");
    let rec = copy_fixture(&dir);
    let hea = rec.with_extension("hea");
    let good = std::fs::read_to_string(&hea).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let sig0 = lines[1];
    let cases: Vec<(String, &[&str])> = vec![
        (String::new(), &["empty header"]),
        ("# only a comment\n".into(), &["empty header"]),
        (
            good.replacen(" 2 360 ", " two 360 ", 1),
            &["line 1", "number of signals"],
        ),
        (
            good.replacen(" 360 ", " fast ", 1),
            &["line 1", "sampling frequency"],
        ),
        (
            good.replacen(" 360 ", " 0 ", 1),
            &["sampling frequency", "positive"],
        ),
        (
            good.replacen(" 64800", " 64800.5", 1),
            &["number of samples"],
        ),
        (
            format!("{}\n{sig0}\n", lines[0]),
            &["2 signals", "only 1 signal lines"],
        ),
        (
            good.replacen(" 16 200(1024)", " 16 abc(1024)", 1),
            &["line 2", "gain"],
        ),
        (
            good.replacen(" 16 200(1024)", " 16 200(base)", 1),
            &["line 2", "baseline"],
        ),
        (
            good.replacen(" 16 200", " 80 200", 2),
            &["format 80", "not supported"],
        ),
        (
            good.replacen(" 16 200", " x16 200", 1),
            &["line 2", "format"],
        ),
        (
            good.replacen(".dat 16 200", ".dat 212 200", 1),
            &["different formats"],
        ),
        (
            good.replacen(" 11 1024 995", " 11 zero 995", 1),
            &["line 2", "ADC zero"],
        ),
        (
            good.replacen(" 995 ", " first ", 1),
            &["line 2", "initial value"],
        ),
    ];
    for (text, words) in cases {
        std::fs::write(&hea, &text).unwrap();
        assert_error(wfdb::read_record(&rec), &hea, words);
    }
    // Not text at all.
    std::fs::write(&hea, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    assert_error(wfdb::read_record(&rec), &hea, &["UTF-8"]);
    // The untouched header still reads (the cases above failed for their own reason).
    std::fs::write(&hea, &good).unwrap();
    assert_eq!(wfdb::read_record(&rec).unwrap().len(), 64_800);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn truncated_annotation_file() {
    let dir = common::temp_dir("truncated-atr");
    let rec = copy_fixture(&dir);
    let atr = rec.with_extension("atr");
    let bytes = std::fs::read(&atr).unwrap();
    let full = wfdb::read_annotations(&atr).unwrap();
    // In the middle of a 16-bit word.
    std::fs::write(&atr, &bytes[..101]).unwrap();
    assert_error(
        wfdb::read_annotations(&atr),
        &atr,
        &["truncated", "byte 100"],
    );
    // Inside the AUX text of the first annotation ('+' with "(N").
    std::fs::write(&atr, &bytes[..5]).unwrap();
    assert_error(wfdb::read_annotations(&atr), &atr, &["truncated", "AUX"]);
    // Any cut: an error naming the file, or (at an annotation boundary, as
    // when the end-of-file word is missing) a prefix of the annotations.
    let (mut errors, mut prefixes) = (0, 0);
    for keep in 0..bytes.len() {
        std::fs::write(&atr, &bytes[..keep]).unwrap();
        match wfdb::read_annotations(&atr) {
            Ok(anns) => {
                assert!(
                    full.starts_with(&anns[..anns.len().saturating_sub(1)]),
                    "cut at {keep}"
                );
                if let Some(last) = anns.last() {
                    assert_eq!(last.sample, full[anns.len() - 1].sample, "cut at {keep}");
                }
                prefixes += 1;
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&atr.display().to_string()) && msg.contains("byte"),
                    "{msg}"
                );
                errors += 1;
            }
        }
    }
    assert!(
        errors >= bytes.len() / 2 - 1,
        "{errors} errors in {} cuts",
        bytes.len()
    );
    assert!(prefixes > 0);
    // A missing annotation file.
    std::fs::remove_file(&atr).unwrap();
    assert_error(wfdb::read_annotations(&atr), &atr, &[]);
    std::fs::remove_dir_all(&dir).ok();
}
