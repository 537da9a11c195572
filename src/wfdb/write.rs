//! Writing records (format 16) and MIT-format annotation files, used to cut
//! small test fixtures out of the reference database.

use super::{Annotation, Header, WfdbError};
use std::path::Path;

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
