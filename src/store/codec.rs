//! The byte-level pieces the packed layouts share ([`super::signal`] blocks
//! and [`super::beat_block`]s): zigzag LEB128 varints, a reading cursor that
//! fails on truncation instead of panicking, and zstd with a size cap.

use super::StoreError;

/// Refuses a packed row that inflates past this (a corrupt or hostile row).
const MAX_INFLATED_BYTES: u64 = 256 << 20;

/// Maps signed to unsigned so that small magnitudes of either sign are small.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as an LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One LEB128 varint from the front of `bytes`, and how many bytes it took.
pub(crate) fn take_varint(bytes: &[u8]) -> Result<(u64, usize), StoreError> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(StoreError::Corrupt("unterminated varint".into()))
}

/// Compresses a packed body (zstd at `level`).
pub(crate) fn compress(body: &[u8], level: i32) -> Vec<u8> {
    // Compressing a buffer in memory fails only on allocation failure.
    zstd::bulk::compress(body, level).unwrap_or_else(|e| panic!("zstd: {e}"))
}

/// Inflates a packed row, refusing one that grows past 256 MiB; `what` names
/// the layout in the error.
pub(crate) fn inflate(data: &[u8], what: &str) -> Result<Vec<u8>, StoreError> {
    use std::io::Read;
    let corrupt = |e: &str| StoreError::Corrupt(format!("{what}: {e}"));
    let mut body = Vec::new();
    zstd::stream::read::Decoder::new(data)
        .map_err(|e| corrupt(&e.to_string()))?
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| corrupt(&e.to_string()))?;
    if body.len() as u64 > MAX_INFLATED_BYTES {
        return Err(corrupt("inflates past 256 MiB"));
    }
    Ok(body)
}

/// Predicts each value of an integer sequence as the straight line through
/// the two before it (the first as 0, the second as the first): the residuals
/// of a smooth signal, such as ECG counts or a beat's steps, are small.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LinearPredictor {
    seen: u8,
    q1: i64,
    q2: i64,
}

impl LinearPredictor {
    /// The next value's prediction.
    pub(crate) fn predict(&self) -> i64 {
        match self.seen {
            0 => 0,
            1 => self.q1,
            _ => self.q1.wrapping_mul(2).wrapping_sub(self.q2),
        }
    }

    /// Takes the next value.
    pub(crate) fn push(&mut self, q: i64) {
        (self.q1, self.q2) = (q, self.q1);
        self.seen = (self.seen + 1).min(2);
    }
}

/// Splits `0..n` into consecutive runs, a new one starting at `i` where
/// `split(start, i)` says so (`start`: the first index of the run so far).
pub(crate) fn runs(n: usize, split: impl Fn(usize, usize) -> bool) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..n {
        if split(start, i) {
            out.push(start..i);
            start = i;
        }
    }
    if start < n {
        out.push(start..n);
    }
    out
}

/// Reads a packed body front to back; `what` names the layout in errors.
pub(crate) struct Cursor<'a> {
    pub(crate) rest: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Cursor { rest: bytes, what }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn varint(&mut self) -> Result<u64, StoreError> {
        let (v, used) = take_varint(self.rest)?;
        self.rest = &self.rest[used..];
        Ok(v)
    }

    pub(crate) fn f32(&mut self) -> Result<f32, StoreError> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, StoreError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(a))
    }

    /// A count read as a varint, refused when it could not fit in what is left
    /// at `min_bytes` each (so a corrupt count cannot reserve huge memory).
    pub(crate) fn count(&mut self, min_bytes: usize) -> Result<usize, StoreError> {
        let n = usize::try_from(self.varint()?).map_err(|_| self.corrupt("length"))?;
        if n.saturating_mul(min_bytes) > self.rest.len() {
            return Err(self.corrupt("truncated"));
        }
        Ok(n)
    }

    pub(crate) fn corrupt(&self, e: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: {e}", self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_truncation_is_an_error() {
        let values = [0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN];
        let mut out = Vec::new();
        for v in values {
            put_varint(&mut out, zigzag(v));
        }
        let mut c = Cursor::new(&out, "test");
        for v in values {
            assert_eq!(unzigzag(c.varint().unwrap()), v);
        }
        assert!(c.rest.is_empty());
        assert!(c.byte().is_err());
        assert!(take_varint(&[0x80, 0x80]).is_err());
    }

    #[test]
    fn runs_cover_every_index_once() {
        assert!(runs(0, |_, _| true).is_empty());
        assert_eq!(runs(3, |_, _| false), vec![0..3usize]);
        assert_eq!(runs(3, |_, _| true), [0..1, 1..2, 2..3]);
        assert_eq!(runs(5, |start, i| i - start >= 2), [0..2, 2..4, 4..5]);
    }

    #[test]
    fn inflate_refuses_garbage() {
        let err = inflate(b"not zstd", "beat block").unwrap_err();
        assert!(err.to_string().contains("beat block"), "{err}");
        assert_eq!(inflate(&compress(b"abc", 3), "x").unwrap(), b"abc");
    }
}
