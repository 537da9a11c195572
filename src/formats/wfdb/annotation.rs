//! MIT-format annotation files (`.atr`): a stream of 16-bit little-endian
//! words, each a 6-bit code and a 10-bit time increment, with the SKIP, NUM,
//! SUB, CHN and AUX pseudo-codes.

use super::{WfdbError, read_file};
use std::path::Path;

const SKIP: u8 = 59;
const NUM: u8 = 60;
const SUB: u8 = 61;
const CHN: u8 = 62;
const AUX: u8 = 63;

/// Annotation symbols by code (WFDB's `ecgcodes.h`); index = code.
const SYMBOLS: [&str; 42] = [
    " ", "N", "L", "R", "a", "V", "F", "J", "A", "S", "E", "j", "/", "Q", "~", "[15]", "|", "[17]",
    "s", "T", "*", "D", "\"", "=", "p", "B", "^", "t", "+", "u", "?", "!", "[", "]", "e", "n", "@",
    "x", "f", "(", ")", "r",
];

/// An annotation code (1..=49), with its symbol and beat classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnotationCode(pub u8);

impl AnnotationCode {
    /// The WFDB mnemonic symbol, e.g. `N`, `V`, `+` (`[n]` for codes without one).
    pub fn symbol(self) -> &'static str {
        SYMBOLS.get(self.0 as usize).copied().unwrap_or("[n]")
    }

    /// True for codes that denote a QRS complex (WFDB's `isqrs`).
    pub fn is_beat(self) -> bool {
        matches!(self.0, 1..=13 | 25 | 30 | 34 | 35 | 38 | 41)
    }

    /// The AAMI EC57 class of a beat code; `None` for non-beats.
    pub fn aami_class(self) -> Option<AamiClass> {
        match self.symbol() {
            "N" | "L" | "R" | "e" | "j" => Some(AamiClass::N),
            "A" | "a" | "J" | "S" => Some(AamiClass::S),
            "V" | "E" => Some(AamiClass::V),
            "F" => Some(AamiClass::F),
            "/" | "f" | "Q" => Some(AamiClass::Q),
            _ => None,
        }
    }
}

/// AAMI EC57 heartbeat classes, in the Kaggle dataset's label order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AamiClass {
    /// Normal and bundle-branch-block beats (N L R e j).
    N,
    /// Supraventricular ectopic beats (A a J S).
    S,
    /// Ventricular ectopic beats (V E).
    V,
    /// Fusion of ventricular and normal beats (F).
    F,
    /// Paced and unclassifiable beats (/ f Q).
    Q,
}

impl AamiClass {
    /// All classes in label order.
    pub const ALL: [AamiClass; 5] = [
        AamiClass::N,
        AamiClass::S,
        AamiClass::V,
        AamiClass::F,
        AamiClass::Q,
    ];

    /// The class of an AAMI letter (`N`, `S`, `V`, `F`, `Q`).
    pub fn from_letter(c: char) -> Option<Self> {
        match c {
            'N' => Some(AamiClass::N),
            'S' => Some(AamiClass::S),
            'V' => Some(AamiClass::V),
            'F' => Some(AamiClass::F),
            'Q' => Some(AamiClass::Q),
            _ => None,
        }
    }

    /// The class's letter.
    pub fn letter(self) -> char {
        ['N', 'S', 'V', 'F', 'Q'][self as usize]
    }

    /// The class's letter as a string (how stores and the API write it).
    pub fn as_str(self) -> &'static str {
        ["N", "S", "V", "F", "Q"][self as usize]
    }

    /// Label index (0 to 4).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The seed paper's binary label: 0 for normal (N), 1 for abnormal.
    pub fn binary(self) -> u8 {
        u8::from(self != AamiClass::N)
    }
}

/// One annotation.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Sample index (time) of the annotation.
    pub sample: u64,
    /// Annotation code.
    pub code: AnnotationCode,
    /// Subtype (`SUB` pseudo-code), 0 by default.
    pub subtype: i8,
    /// Signal number (`CHN`), persistent from one annotation to the next.
    pub chan: u8,
    /// Annotator number (`NUM`), persistent from one annotation to the next.
    pub num: i8,
    /// Auxiliary text (`AUX`), e.g. a rhythm `(AFIB`.
    pub aux: Option<String>,
}

/// Reads and decodes an MIT-format annotation file.
pub fn read_annotations(path: &Path) -> Result<Vec<Annotation>, WfdbError> {
    let bytes = read_file(path)?;
    parse_annotations(&bytes)
        .map_err(|(offset, msg)| WfdbError::invalid(path, format!("byte {offset}: {msg}")))
}

pub(crate) fn parse_annotations(bytes: &[u8]) -> Result<Vec<Annotation>, (usize, String)> {
    let word = |at: usize| -> Result<u16, (usize, String)> {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or((at, "truncated: file ends inside an annotation".to_string()))
    };
    let mut out: Vec<Annotation> = Vec::new();
    let (mut time, mut chan, mut num) = (0u64, 0u8, 0i8);
    let mut pos = 0;
    while pos < bytes.len() {
        let w = word(pos)?;
        let code = (w >> 10) as u8;
        let data = w & 0x3ff;
        let at = pos;
        pos += 2;
        match code {
            0 if data == 0 => return Ok(out),
            SKIP => {
                let hi = word(pos)? as u32;
                let lo = word(pos + 2)? as u32;
                pos += 4;
                let skip = ((hi << 16) | lo) as i32;
                time = time
                    .checked_add_signed(skip as i64)
                    .ok_or((at, format!("SKIP of {skip} samples moves time before 0")))?;
            }
            NUM | SUB | CHN | AUX => {
                let last = out
                    .last_mut()
                    .ok_or((at, format!("pseudo-code {code} before any annotation")))?;
                match code {
                    NUM => {
                        num = data as i16 as i8;
                        last.num = num;
                    }
                    SUB => last.subtype = data as i16 as i8,
                    CHN => {
                        chan = data as u8;
                        last.chan = chan;
                    }
                    _ => {
                        let len = data as usize;
                        let text = bytes.get(pos..pos + len).ok_or((
                            pos,
                            format!("truncated: AUX string of {len} bytes runs past the end"),
                        ))?;
                        pos += len + (len & 1);
                        let text = text.split(|&b| b == 0).next().unwrap_or(&[]);
                        last.aux = Some(String::from_utf8_lossy(text).into_owned());
                    }
                }
            }
            1..=49 => {
                time += data as u64;
                out.push(Annotation {
                    sample: time,
                    code: AnnotationCode(code),
                    subtype: 0,
                    chan,
                    num,
                    aux: None,
                });
            }
            _ => return Err((at, format!("invalid annotation code {code}"))),
        }
    }
    // Some writers omit the end-of-file word; the annotations read so far are complete.
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(code: u16, data: u16) -> [u8; 2] {
        ((code << 10) | data).to_le_bytes()
    }

    #[test]
    fn decodes_codes_skip_aux_sub_chn_num() {
        let mut b = Vec::new();
        b.extend(w(28, 18)); // '+' at 18
        b.extend(w(63, 3)); // AUX "(N"
        b.extend(b"(N\0\0");
        b.extend(w(1, 100)); // N at 118
        b.extend(w(61, 2)); // SUB 2
        b.extend(w(62, 1)); // CHN 1
        b.extend(w(59, 0)); // SKIP 70000
        b.extend(1u16.to_le_bytes());
        b.extend(4464u16.to_le_bytes());
        b.extend(w(5, 2)); // V at 118 + 70000 + 2
        b.extend(w(60, 3)); // NUM 3
        b.extend(w(0, 0));
        let a = parse_annotations(&b).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!((a[0].sample, a[0].code.symbol()), (18, "+"));
        assert_eq!(a[0].aux.as_deref(), Some("(N"));
        assert_eq!((a[1].sample, a[1].subtype, a[1].chan), (118, 2, 1));
        assert_eq!(
            (a[2].sample, a[2].code.symbol(), a[2].chan, a[2].num),
            (70120, "V", 1, 3)
        );
        assert!(a[1].code.is_beat() && !a[0].code.is_beat());
        assert_eq!(a[2].code.aami_class(), Some(AamiClass::V));
    }

    #[test]
    fn truncated_and_invalid_files_are_errors() {
        let mut b = Vec::new();
        b.extend(w(1, 10));
        b.push(0x05);
        assert!(parse_annotations(&b).unwrap_err().1.contains("truncated"));
        let mut b = Vec::new();
        b.extend(w(1, 10));
        b.extend(w(63, 40));
        b.extend(b"ab");
        assert!(parse_annotations(&b).unwrap_err().1.contains("AUX"));
        assert!(
            parse_annotations(&w(61, 1))
                .unwrap_err()
                .1
                .contains("before any")
        );
        assert!(
            parse_annotations(&w(55, 1))
                .unwrap_err()
                .1
                .contains("invalid annotation code")
        );
    }
}
