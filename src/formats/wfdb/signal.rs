//! Decoding of the sample formats 212 (two 12-bit samples in three bytes) and
//! 16 (16-bit little-endian two's complement).

/// Decodes `count` format-212 samples from `bytes`, or `None` if `bytes` is too short.
pub fn decode_212(bytes: &[u8], count: usize) -> Option<Vec<i32>> {
    let needed = count.div_ceil(2) * 3 - if count % 2 == 1 { 1 } else { 0 };
    if bytes.len() < needed {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for chunk in bytes.chunks(3) {
        if out.len() >= count {
            break;
        }
        let b0 = chunk[0] as i32;
        let b1 = chunk.get(1).copied().unwrap_or(0) as i32;
        out.push(sign_extend_12(b0 | ((b1 & 0x0f) << 8)));
        if out.len() < count {
            let b2 = chunk.get(2).copied().unwrap_or(0) as i32;
            out.push(sign_extend_12(b2 | ((b1 & 0xf0) << 4)));
        }
    }
    Some(out)
}

/// Decodes `count` format-16 samples from `bytes`, or `None` if `bytes` is too short.
pub fn decode_16(bytes: &[u8], count: usize) -> Option<Vec<i32>> {
    let bytes = bytes.get(..count.checked_mul(2)?)?;
    Some(
        bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as i32)
            .collect(),
    )
}

/// Number of whole samples of `format` that `len` bytes hold.
pub(crate) fn samples_in(format: u32, len: usize) -> usize {
    match format {
        212 => len / 3 * 2 + usize::from(len % 3 == 2),
        _ => len / 2,
    }
}

fn sign_extend_12(v: i32) -> i32 {
    if v & 0x800 != 0 { v - 0x1000 } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_212_unpacks_pairs_and_signs() {
        // s0 = 0x123, s1 = -1 (0xfff): bytes 0x23, (0xf << 4) | 0x1, 0xff
        let got = decode_212(&[0x23, 0xf1, 0xff, 0x00, 0x08, 0x00], 4).unwrap();
        assert_eq!(got, vec![0x123, -1, -2048, 0]);
        assert_eq!(decode_212(&[0x23, 0xf1, 0xff], 3), None);
        assert_eq!(
            decode_212(&[0x23, 0xf1, 0xff, 0x05, 0x00], 3).unwrap()[2],
            5
        );
    }

    #[test]
    fn format_16_is_little_endian_signed() {
        assert_eq!(
            decode_16(&[0x01, 0x00, 0xff, 0xff, 0x00, 0x80], 3).unwrap(),
            vec![1, -1, -32768]
        );
        assert_eq!(decode_16(&[0x01], 1), None);
    }

    #[test]
    fn sample_counts_from_lengths() {
        assert_eq!(samples_in(212, 6), 4);
        assert_eq!(samples_in(212, 5), 3);
        assert_eq!(samples_in(16, 5), 2);
    }
}
