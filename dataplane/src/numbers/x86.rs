//! The x86_64 vector paths of the number reader: the separators of a 64-byte block (SSE2, part of
//! x86_64), and a short fraction read from one 16-byte load (SSSE3, checked at run time).

use std::arch::x86_64::{
    __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_madd_epi16,
    _mm_maddubs_epi16, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_packs_epi32,
    _mm_set1_epi8, _mm_set1_epi16, _mm_set1_epi32, _mm_shuffle_epi8, _mm_srli_si128, _mm_sub_epi8,
};

use super::{Kind, Number, Numbers, exact, flat_array_with};

/// `super::flat_array` with `short_fraction` tried first on each number.
///
/// # Safety
/// The processor must have SSSE3.
#[target_feature(enable = "ssse3")]
pub(super) unsafe fn flat_array(
    bytes: &[u8],
    start: usize,
    numbers: &mut Numbers,
) -> Option<(usize, usize)> {
    flat_array_with(bytes, start, numbers, |bytes, from, to| {
        short_fraction(bytes, from, to)
    })
}

/// Bit i set where `block[i]` is `,` or `]`.
#[target_feature(enable = "sse2")]
#[inline]
pub(super) fn separators(block: &[u8; 64]) -> u64 {
    let comma = _mm_set1_epi8(b',' as i8);
    let close = _mm_set1_epi8(b']' as i8);
    let mut mask = 0u64;
    for (i, lane) in block.chunks_exact(16).enumerate() {
        let bytes = load(lane.try_into().expect("sixteen bytes"));
        let hits = _mm_or_si128(_mm_cmpeq_epi8(bytes, comma), _mm_cmpeq_epi8(bytes, close));
        mask |= u64::from(_mm_movemask_epi8(hits) as u16) << (16 * i);
    }
    mask
}

#[target_feature(enable = "sse2")]
#[inline]
fn load(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: 16 readable bytes, and loadu needs no alignment.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

/// `bytes[from..to]` when it is a plain fraction of at most 16 bytes: `-?d+.d+`, no leading zero
/// (so at most 15 digits, exact in an f64), with 16 bytes readable from `from`. None otherwise.
///
/// The digits are checked and gathered in vector lanes: the dot is shuffled out, the digits are
/// shuffled to the right of a 16-lane register, and two multiply-adds make two 8-digit halves.
/// The value is then Clinger's exact path, as `super::number` takes it.
#[target_feature(enable = "ssse3")]
fn short_fraction(bytes: &[u8], from: usize, to: usize) -> Option<Number> {
    let length = to - from;
    let chunk: &[u8; 16] = bytes.get(from..from + 16)?.try_into().ok()?;
    if !(3..=16).contains(&length) {
        return None;
    }
    let text = load(chunk);
    let inside = (1u32 << length) - 1;
    let dots = _mm_movemask_epi8(_mm_cmpeq_epi8(text, _mm_set1_epi8(b'.' as i8))) as u32 & inside;
    let values = _mm_sub_epi8(text, _mm_set1_epi8(b'0' as i8));
    let digit_lanes = _mm_cmpeq_epi8(_mm_min_epu8(values, _mm_set1_epi8(9)), values);
    let digits = _mm_movemask_epi8(digit_lanes) as u32 & inside;
    let negative = chunk[0] == b'-';
    let sign = u32::from(negative);
    let dot = dots.trailing_zeros();
    // One dot, digits everywhere else but the sign, a digit on each side of the dot, and no leading
    // zero before another digit.
    if dots.count_ones() != 1
        || digits | dots | sign != inside
        || dot <= sign
        || dot + 1 >= length as u32
        || (chunk[sign as usize] == b'0' && dot != sign + 1)
    {
        return None;
    }
    // The sign lane becomes a leading 0 digit; lanes past `to` are never shuffled in.
    let digits_only = _mm_and_si128(values, digit_lanes);
    let undotted = _mm_shuffle_epi8(digits_only, load(&WITHOUT[dot as usize]));
    let aligned = _mm_shuffle_epi8(undotted, load(&RIGHT_ALIGNED[length - 1]));
    let pairs = _mm_maddubs_epi16(aligned, _mm_set1_epi16(0x010a)); // 10 * first + second
    let fours = _mm_madd_epi16(pairs, _mm_set1_epi32(0x0001_0064)); // 100 * first + second
    let fours = _mm_packs_epi32(fours, fours); // each below 10,000
    let eights = _mm_madd_epi16(fours, _mm_set1_epi32(0x0001_2710)); // 10,000 * first + second
    let high = u64::from(_mm_cvtsi128_si32(eights) as u32);
    let low = u64::from(_mm_cvtsi128_si32(_mm_srli_si128::<4>(eights)) as u32);
    let mantissa = high * 100_000_000 + low;
    let decimals = i64::from(length as u32 - 1 - dot);
    Some(Number {
        value: exact(mantissa, -decimals, negative),
        kind: Kind::Fraction,
    })
}

/// Shuffles dropping lane `dot`: lane i takes lane i, or i + 1 from the dot on.
static WITHOUT: [[u8; 16]; 16] = {
    let mut table = [[0x80u8; 16]; 16];
    let mut dot = 0;
    while dot < 16 {
        let mut lane = 0;
        while lane < 16 {
            let source = if lane < dot { lane } else { lane + 1 };
            if source < 16 {
                table[dot][lane] = source as u8;
            }
            lane += 1;
        }
        dot += 1;
    }
    table
};

/// Shuffles moving the first `n` lanes to the last `n`, with zeros (0x80) before them.
static RIGHT_ALIGNED: [[u8; 16]; 16] = {
    let mut table = [[0x80u8; 16]; 16];
    let mut n = 0;
    while n < 16 {
        let mut lane = 16 - n;
        while lane < 16 {
            table[n][lane] = (lane - (16 - n)) as u8;
            lane += 1;
        }
        n += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numbers::number;

    /// What `short_fraction` reads of `text`, with a long tail after it (as inside a body).
    fn short(text: &str) -> Option<(u64, Kind)> {
        let body = format!("{text},1234567890123456]");
        // SAFETY: each test checks SSSE3 first.
        let number = unsafe { short_fraction(body.as_bytes(), 0, text.len()) }?;
        Some((number.value.to_bits(), number.kind))
    }

    #[test]
    fn short_fractions_are_read_as_the_complete_reader_reads_them() {
        assert!(
            std::arch::is_x86_feature_detected!("ssse3"),
            "this path needs SSSE3"
        );
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut read = 0;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let decimals = 1 + (state % 14) as usize;
            let magnitude = 10f64.powi((state >> 8) as i32 % 6);
            let value = ((state >> 16) % 2_000_001) as f64 / 1e6 * magnitude - magnitude;
            let text = format!("{value:.decimals$}");
            let (number, _) = number(text.as_bytes(), 0).expect(&text);
            let expected = Some((number.value.to_bits(), number.kind));
            match short(&text) {
                None => assert!(text.len() > 16, "{text} was left to the complete reader"),
                got => {
                    assert_eq!(got, expected, "{text}");
                    read += 1;
                }
            }
        }
        assert!(read > 50_000, "only {read} read here");
    }

    #[test]
    fn everything_else_is_left_to_the_complete_reader() {
        assert!(
            std::arch::is_x86_feature_detected!("ssse3"),
            "this path needs SSSE3"
        );
        for text in [
            "00.5",
            "-00.5",
            "01.5",
            "1.",
            "-1.",
            ".5",
            "-.5",
            "1e5",
            "1.5e3",
            "1.2.3",
            "+1.5",
            "1.5 ",
            " 1.5",
            "1",
            "-7",
            "1.23456789012345678",
            "-1.23456789012345",
            "--1.0",
            "1.-5",
        ] {
            assert_eq!(short(text), None, "{text:?} was read here");
        }
        assert!(short("-0.0").is_some_and(|(bits, _)| bits == (-0.0f64).to_bits()));
        assert!(short("1.23456789012345").is_some(), "16 bytes, 15 digits");
        // Fewer than 16 bytes left in the body: the complete reader reads it.
        // SAFETY: checked at the start.
        assert!(unsafe { short_fraction(b"0.5]", 0, 3) }.is_none());
    }
}
