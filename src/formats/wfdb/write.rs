//! Writing records (format 16) and MIT-format annotation files, used to cut
//! the test fixtures and the bundled demo excerpts out of the reference database.

use super::{Annotation, AnnotationCode, Header, WfdbError, read_annotations, read_record};
use std::path::{Path, PathBuf};

/// What [`cut_record`] wrote.
#[derive(Debug, Clone)]
pub struct CutSummary {
    /// The new record's path, without extension.
    pub record: PathBuf,
    /// Samples per signal.
    pub samples: usize,
    /// Annotations written.
    pub annotations: usize,
}

/// Annotation code of a rhythm change (`+`), whose aux text names the rhythm.
const RHYTHM: AnnotationCode = AnnotationCode(28);

/// Cuts seconds `from_s..to_s` of `source` (a record path, its `.atr` beside
/// it) into a new format-16 record `<out>/<name>` (default
/// `<record>_<from seconds>`): samples unchanged, with a
/// fresh checksum and first value, and the annotations inside the stretch.
/// If the stretch starts inside a rhythm, a rhythm annotation at its first
/// sample carries that rhythm over, as analysers need the rhythm in effect.
pub fn cut_record(
    source: &Path,
    from_s: f64,
    to_s: f64,
    out: &Path,
    name: Option<&str>,
) -> Result<CutSummary, WfdbError> {
    let record = read_record(source)?;
    let name = name.map_or_else(
        || format!("{}_{}", record.header.record, from_s as u64),
        str::to_string,
    );
    let name = name.as_str();
    let fs = record.header.fs;
    if !(from_s >= 0.0 && to_s > from_s) {
        return Err(WfdbError::invalid(
            &record.header_path,
            format!("cannot cut {from_s} s to {to_s} s: need 0 <= from < to"),
        ));
    }
    let (from, to) = (
        (from_s * fs) as usize,
        ((to_s * fs) as usize).min(record.len()),
    );
    if from >= to {
        return Err(WfdbError::invalid(
            &record.header_path,
            format!("the record is only {:.1} s long", record.len() as f64 / fs),
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| WfdbError::io(out, e))?;
    let samples: Vec<Vec<i32>> = record
        .samples
        .iter()
        .map(|s| s[from..to].to_vec())
        .collect();
    write_record_16(out, name, &record.header, &samples)?;
    let all = read_annotations(&record.header_path.with_extension("atr"))?;
    let (from_u, to_u) = (from as u64, to as u64);
    let rhythm_before = all
        .iter()
        .rfind(|a| a.sample < from_u && a.code == RHYTHM && a.aux.is_some())
        .cloned();
    let mut anns: Vec<Annotation> = all
        .into_iter()
        .filter(|a| (from_u..to_u).contains(&a.sample))
        .map(|mut a| {
            a.sample -= from_u;
            a
        })
        .collect();
    let starts_with_rhythm = anns
        .first()
        .is_some_and(|a| a.sample == 0 && a.code == RHYTHM);
    if let (Some(mut r), false) = (rhythm_before, starts_with_rhythm) {
        r.sample = 0;
        anns.insert(0, r);
    }
    write_annotations(&out.join(format!("{name}.atr")), &anns)?;
    Ok(CutSummary {
        record: out.join(name),
        samples: to - from,
        annotations: anns.len(),
    })
}

/// Writes `<dir>/<name>.hea` and `<dir>/<name>.dat` (format 16) for the given
/// signals (ADC units), keeping each signal's gain, baseline and name.
pub fn write_record_16(
    dir: &Path,
    name: &str,
    source: &Header,
    samples: &[Vec<i32>],
) -> Result<(), WfdbError> {
    let len = samples.first().map_or(0, Vec::len);
    let dat_name = format!("{name}.dat");
    let mut dat = Vec::with_capacity(len * samples.len() * 2);
    for i in 0..len {
        for sig in samples {
            let v = i16::try_from(sig[i]).map_err(|_| {
                WfdbError::invalid(
                    &dir.join(&dat_name),
                    format!("sample {} does not fit format 16", sig[i]),
                )
            })?;
            dat.extend(v.to_le_bytes());
        }
    }
    let mut hea = format!("{name} {} {} {len}\n", samples.len(), source.fs);
    for (spec, sig) in source.signals.iter().zip(samples) {
        let checksum = super::record::checksum(sig);
        hea += &format!(
            "{dat_name} 16 {}({})/{} {} {} {} {checksum} 0 {}\n",
            spec.gain,
            spec.baseline,
            spec.units,
            spec.adc_resolution.unwrap_or(16),
            spec.adc_zero,
            sig.first().copied().unwrap_or(0),
            spec.description
        );
    }
    let write = |file: String, bytes: &[u8]| {
        let p = dir.join(file);
        std::fs::write(&p, bytes).map_err(|e| WfdbError::io(&p, e))
    };
    write(dat_name.clone(), &dat)?;
    write(format!("{name}.hea"), hea.as_bytes())
}

/// Writes annotations in MIT format (codes, SKIP for long gaps, SUB, CHN, NUM, AUX).
pub fn write_annotations(path: &Path, annotations: &[Annotation]) -> Result<(), WfdbError> {
    let mut out = Vec::new();
    let word = |out: &mut Vec<u8>, code: u8, data: u16| {
        out.extend((((code as u16) << 10) | (data & 0x3ff)).to_le_bytes())
    };
    let (mut time, mut chan, mut num) = (0u64, 0u8, 0i8);
    for a in annotations {
        let delta = a
            .sample
            .checked_sub(time)
            .ok_or_else(|| WfdbError::invalid(path, "annotations are not in time order"))?;
        if delta > 1023 {
            word(&mut out, 59, 0);
            // The reader takes a SKIP interval as signed 32-bit.
            let d = i32::try_from(delta).map_err(|_| {
                WfdbError::invalid(path, format!("gap of {delta} samples is too long for SKIP"))
            })? as u32;
            out.extend(((d >> 16) as u16).to_le_bytes());
            out.extend((d as u16).to_le_bytes());
            word(&mut out, a.code.0, 0);
        } else {
            word(&mut out, a.code.0, delta as u16);
        }
        time = a.sample;
        if a.subtype != 0 {
            word(&mut out, 61, a.subtype as u8 as u16);
        }
        if a.chan != chan {
            word(&mut out, 62, a.chan as u16);
            chan = a.chan;
        }
        if a.num != num {
            word(&mut out, 60, a.num as u8 as u16);
            num = a.num;
        }
        if let Some(aux) = &a.aux {
            let b = aux.as_bytes();
            let len = b.len().min(255);
            word(&mut out, 63, len as u16);
            out.extend(&b[..len]);
            if len % 2 == 1 {
                out.push(0);
            }
        }
    }
    word(&mut out, 0, 0);
    std::fs::write(path, out).map_err(|e| WfdbError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::super::annotation::parse_annotations;
    use super::super::{AnnotationCode, read_annotations, read_record};
    use super::*;

    #[test]
    fn annotations_round_trip() {
        let anns = vec![
            Annotation {
                sample: 5,
                code: AnnotationCode(28),
                subtype: 0,
                chan: 0,
                num: 0,
                aux: Some("(AFIB".into()),
            },
            Annotation {
                sample: 400,
                code: AnnotationCode(1),
                subtype: 1,
                chan: 1,
                num: 2,
                aux: None,
            },
            Annotation {
                sample: 90_000,
                code: AnnotationCode(5),
                subtype: 0,
                chan: 1,
                num: 2,
                aux: None,
            },
        ];
        let dir = std::env::temp_dir().join(format!("holterd-ann-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.atr");
        write_annotations(&p, &anns).unwrap();
        assert_eq!(read_annotations(&p).unwrap(), anns);
        assert_eq!(
            parse_annotations(&std::fs::read(&p).unwrap())
                .unwrap()
                .len(),
            3
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn record_round_trips_through_format_16() {
        let dir = std::env::temp_dir().join(format!("holterd-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = super::super::parse_header(
            Path::new("t.hea"),
            "t 2 360 4\nt.dat 212 200 11 1024 1 0 0 MLII\nt.dat 212 200 11 1024 2 0 0 V1\n",
        )
        .unwrap();
        let samples = vec![vec![1, -5, 1000, 7], vec![2, 3, -2000, 9]];
        write_record_16(&dir, "t", &header, &samples).unwrap();
        let rec = read_record(&dir.join("t")).unwrap();
        assert_eq!(rec.samples, samples);
        assert_eq!(rec.header.signals[1].description, "V1");
        assert_eq!(rec.header.signals[0].baseline, 1024);
        std::fs::remove_dir_all(&dir).ok();
    }
}
