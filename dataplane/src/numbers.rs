//! JSON numbers, read straight into typed buffers: one number, and the flat array of them that is
//! the bulk of an inference request.
//!
//! Numbers are read as the Python server's decoders read them: correctly rounded to an f64 (Clinger's
//! exact path where it applies, fast-float2 otherwise), with integer literals told apart.

#[cfg(target_arch = "x86_64")]
mod x86;

/// A JSON number: its f64 value (correctly rounded) and what kind of literal it was.
#[derive(Clone, Copy)]
pub(crate) struct Number {
    pub value: f64,
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An integer of at most 15 digits: exact in an f64.
    Integer(i64),
    /// An integer of more digits (NumPy would take it as an int64 and cast that once), or `-0`
    /// (an int 0 or a float -0.0, depending on which of the Python server's JSON decoders reads it).
    UnsureInteger,
    Fraction,
}

/// The numbers of one input's `data`: values, and whether each was an exact integer literal.
#[derive(Default)]
pub(crate) struct Numbers {
    pub values: Vec<f64>,
    /// Set when the input said FP32 before its data: the values, cast as read (one pass, half the
    /// memory of `values`, which then stays empty).
    pub singles: Option<Vec<f32>>,
    /// Some number was a fraction (or had an exponent).
    pub fraction: bool,
    /// Some number was an integer literal read differently by NumPy or the Python decoders.
    pub unsure_integer: bool,
}

impl Numbers {
    pub fn count(&self) -> usize {
        self.singles.as_ref().map_or(self.values.len(), Vec::len)
    }

    pub fn push(&mut self, number: Number) {
        match &mut self.singles {
            Some(singles) => singles.push(number.value as f32),
            None => self.values.push(number.value),
        }
        self.fraction |= number.kind == Kind::Fraction;
        self.unsure_integer |= number.kind == Kind::UnsureInteger;
    }
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The numbers of a flat array, from `start` (after its `[`) to its `]`, pushed into `numbers`: how
/// many, and where the `]` is. None for anything but numbers separated by commas (and white space).
pub(crate) fn flat_array(
    bytes: &[u8],
    start: usize,
    numbers: &mut Numbers,
) -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: this processor has SSSE3.
        return unsafe { x86::flat_array(bytes, start, numbers) };
    }
    flat_array_with(bytes, start, numbers, |_, _, _| None)
}

/// `flat_array`, trying `short` on each number first (it reads the common short fractions, and
/// returns None for every other text, which `number` then reads or refuses).
///
/// The separators of each 64-byte block are found first, so each number is read between two known
/// positions: reading one does not wait for the end of the one before, and `short` can read a
/// whole number from one load with no loop.
#[inline(always)]
fn flat_array_with(
    bytes: &[u8],
    start: usize,
    numbers: &mut Numbers,
    short: impl Fn(&[u8], usize, usize) -> Option<Number>,
) -> Option<(usize, usize)> {
    let mut count = 0;
    let mut item = start;
    let mut block = start;
    while block < bytes.len() {
        let mut mask = separators(&bytes[block..]);
        while mask != 0 {
            let at = block + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let number = match short(bytes, item, at) {
                Some(number) => number,
                None => between(bytes, item, at)?,
            };
            numbers.push(number);
            count += 1;
            if bytes[at] == b']' {
                return Some((count, at));
            }
            item = at + 1;
        }
        block += 64;
    }
    None
}

/// The number that is all of `bytes[from..to]` but white space around it.
#[inline(always)]
fn between(bytes: &[u8], from: usize, to: usize) -> Option<Number> {
    let mut at = from;
    // bytes[to] is a separator, so neither loop passes it.
    while is_space(bytes[at]) {
        at += 1;
    }
    let (number, mut end) = number(bytes, at)?;
    while end < to && is_space(bytes[end]) {
        end += 1;
    }
    (end == to).then_some(number)
}

#[inline(always)]
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\n' | b'\r' | b'\t')
}

/// Bit i set where `bytes[i]` is `,` or `]`, for the first 64 bytes (or fewer, at the end).
#[inline(always)]
fn separators(bytes: &[u8]) -> u64 {
    match bytes.first_chunk::<64>() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of x86_64.
        Some(block) => unsafe { x86::separators(block) },
        #[cfg(not(target_arch = "x86_64"))]
        Some(block) => block
            .chunks_exact(8)
            .enumerate()
            .fold(0, |mask, (i, word)| {
                mask | (separators_in_word(word) << (8 * i))
            }),
        None => bytes.iter().enumerate().fold(0, |mask, (i, &byte)| {
            mask | (u64::from(matches!(byte, b',' | b']')) << i)
        }),
    }
}

/// The separators of 8 bytes, a bit each (exact: no carry crosses a byte). Compiled on x86_64 only
/// for the test that compares it with the vector version.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn separators_in_word(word: &[u8]) -> u64 {
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
    let equal = |byte: u8| {
        let x = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
        !(((x & LOW) + LOW) | x) & !LOW
    };
    ((equal(b',') | equal(b']')) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// The JSON number at `at` and where it ends.
#[inline(always)]
pub(crate) fn number(bytes: &[u8], start: usize) -> Option<(Number, usize)> {
    let mut at = start;
    let negative = bytes.get(at) == Some(&b'-');
    at += usize::from(negative);
    let mut mantissa: u64 = 0;
    let integer_start = at;
    at = decimal_digits(bytes, at, &mut mantissa);
    // Digits counted from the first one, leading zeros of a fraction included: a bound, not a count
    // of significant digits, so a few exact values take the complete algorithm below.
    let mut digits = at - integer_start;
    if digits == 0 || (digits > 1 && bytes[integer_start] == b'0') {
        return None; // no digit, or a leading zero
    }
    let mut exponent: i64 = 0;
    let mut integer = true;
    if bytes.get(at) == Some(&b'.') {
        integer = false;
        at += 1;
        let fraction_start = at;
        at = decimal_digits(bytes, at, &mut mantissa);
        let fraction = at - fraction_start;
        if fraction == 0 {
            return None;
        }
        digits += fraction;
        exponent = -(fraction as i64);
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        integer = false;
        at += 1;
        let sign = match bytes.get(at) {
            Some(b'-') => {
                at += 1;
                -1
            }
            Some(b'+') => {
                at += 1;
                1
            }
            _ => 1,
        };
        let exponent_start = at;
        let mut given: i64 = 0;
        while let Some(&byte @ b'0'..=b'9') = bytes.get(at) {
            given = (given * 10 + i64::from(byte - b'0')).min(1 << 20);
            at += 1;
        }
        if at == exponent_start {
            return None;
        }
        exponent += sign * given;
    }
    // Clinger's fast path where it applies; everything else goes to a complete algorithm.
    let value = if digits <= 15 && (-22..=22).contains(&exponent) {
        exact(mantissa, exponent, negative)
    } else {
        let value = fast_float2::parse::<f64, _>(&bytes[start..at]).ok()?;
        if !value.is_finite() {
            return None;
        }
        value
    };
    let kind = match (integer, digits <= 15 && !(negative && mantissa == 0)) {
        (false, _) => Kind::Fraction,
        (true, false) => Kind::UnsureInteger,
        (true, true) => Kind::Integer(if negative {
            -(mantissa as i64)
        } else {
            mantissa as i64
        }),
    };
    Some((Number { value, kind }, at))
}

/// Clinger's fast path: `mantissa` × 10^`exponent`, signed, for a mantissa of at most 15 digits (so
/// exact in an f64) and an exponent within ±22 (an exact power of ten): one correctly rounded IEEE
/// operation.
#[inline(always)]
fn exact(mantissa: u64, exponent: i64, negative: bool) -> f64 {
    let magnitude = mantissa as f64;
    let scaled = if exponent < 0 {
        magnitude / POW10[(-exponent) as usize]
    } else {
        magnitude * POW10[exponent as usize]
    };
    // The sign without a branch: signs of data are as good as random, so a branch mispredicts.
    f64::from_bits(scaled.to_bits() | (u64::from(negative) << 63))
}

/// The decimal digits from `at` accumulated into `mantissa` (wrapping past 19 digits, when the
/// caller no longer uses it), eight at a time where the body has eight bytes left; where they end.
#[inline(always)]
fn decimal_digits(bytes: &[u8], mut at: usize, mantissa: &mut u64) -> usize {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // The high bit of each byte that is not an ASCII digit (bytes above the first such may be
        // flagged wrongly by a carry; only the first counts).
        let not_digit = (word.wrapping_add(0x4646_4646_4646_4646) | word.wrapping_sub(ZEROS))
            & 0x8080_8080_8080_8080;
        let count = (not_digit.trailing_zeros() / 8) as usize;
        if count == 0 {
            return at;
        }
        let value = if count == 8 {
            word
        } else {
            (word << (8 * (8 - count))) | (ZEROS >> (8 * count))
        };
        *mantissa = mantissa
            .wrapping_mul(POW10_U64[count])
            .wrapping_add(eight_digits(value));
        at += count;
        if count < 8 {
            return at;
        }
    }
    while let Some(&byte) = bytes.get(at) {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
        at += 1;
    }
    at
}

const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The value of eight ASCII digits, the first in the lowest byte (fast_float's SWAR conversion).
#[inline(always)]
fn eight_digits(word: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 0x000F_4240_0000_0064;
    const MUL2: u64 = 0x0000_2710_0000_0001;
    let value = word.wrapping_sub(0x3030_3030_3030_3030);
    let value = value.wrapping_mul(10).wrapping_add(value >> 8);
    ((value & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((value >> 16) & MASK).wrapping_mul(MUL2)))
        >> 32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<(f64, Kind)> {
        let (number, end) = number(text.as_bytes(), 0)?;
        (end == text.len()).then_some((number.value, number.kind))
    }

    /// An xorshift sequence with a fixed seed: the same literals on every run.
    fn sequence() -> impl FnMut() -> u64 {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// A JSON number of 1 to `max_digits` digits, with a sign half the time and an exponent a third.
    fn literal(next: &mut impl FnMut() -> u64, max_digits: u64) -> String {
        let digits = 1 + (next() % max_digits) as usize;
        let mut text = String::new();
        if next().is_multiple_of(2) {
            text.push('-');
        }
        let integer_digits = 1 + (next() % digits as u64) as usize;
        for position in 0..digits {
            if position == integer_digits {
                text.push('.');
            }
            let digit = (next() % 10) as u8;
            let digit = if position == 0 && integer_digits > 1 {
                1 + digit % 9
            } else {
                digit
            };
            text.push(char::from(b'0' + digit));
        }
        if next().is_multiple_of(3) {
            text.push_str(&format!("e{}", (next() % 80) as i64 - 40));
        }
        text
    }

    #[test]
    fn numbers_are_correctly_rounded_as_std_parses_them() {
        let mut next = sequence();
        for _ in 0..200_000 {
            let text = literal(&mut next, 25);
            let expected: f64 = text.parse().unwrap();
            let (value, _) = parsed(&text).unwrap_or_else(|| panic!("{text} refused"));
            assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
        }
    }

    /// An array's count, its `]`'s position, and each value's bits and kind.
    type ArrayRead = (usize, usize, Vec<(u64, Kind)>);

    /// What both array readers (the one this processor takes, and the portable one) read of `text`.
    fn arrays(text: &str) -> [Option<ArrayRead>; 2] {
        let read = |taken: bool| {
            let mut numbers = Numbers::default();
            let mut kinds = Vec::new();
            let (count, end) = if taken {
                flat_array(text.as_bytes(), 0, &mut numbers)?
            } else {
                flat_array_with(text.as_bytes(), 0, &mut numbers, |_, _, _| None)?
            };
            // Kinds are read again one by one: `Numbers` keeps only their summary.
            for item in text[..end].split(',') {
                kinds.push(number(item.trim().as_bytes(), 0)?.0.kind);
            }
            let values = numbers.values.iter().map(|value| value.to_bits());
            Some((count, end, values.zip(kinds).collect()))
        };
        [read(true), read(false)]
    }

    #[test]
    fn arrays_read_each_number_as_it_reads_alone() {
        let mut next = sequence();
        let spaces = ["", "", "", " ", "\n  "];
        for _ in 0..3_000 {
            let mut text = String::new();
            let mut expected = Vec::new();
            let count = 1 + (next() % 40) as usize;
            for index in 0..count {
                // Mostly the short fractions of a float tensor, some of everything else.
                let item = match next() % 4 {
                    0 => literal(&mut next, 25),
                    _ => format!(
                        "{:.*}",
                        (next() % 9) as usize,
                        (next() % 2_000_000) as f64 / 1e5 - 10.0
                    ),
                };
                let (number, _) = number(item.as_bytes(), 0).expect(&item);
                expected.push((number.value.to_bits(), number.kind));
                let mut space = || spaces[(next() % spaces.len() as u64) as usize];
                let before = space();
                let after = space();
                text.push_str(&format!("{before}{item}{after}"));
                text.push(if index + 1 == count { ']' } else { ',' });
            }
            let end = text.len() - 1;
            // Sometimes the body ends right at the `]`, sometimes a long tail follows it.
            if next().is_multiple_of(2) {
                text.push_str(&"}".repeat(70));
            }
            for read in arrays(&text) {
                assert_eq!(read, Some((count, end, expected.clone())), "{text}");
            }
        }
    }

    #[test]
    fn separators_are_found_alike_by_words_and_vectors() {
        let mut next = sequence();
        let alphabet = b"0123456789.,-]e [\xc3\xac\x7f";
        for _ in 0..20_000 {
            let block: Vec<u8> = (0..64)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let by_words = block
                .chunks_exact(8)
                .enumerate()
                .fold(0, |mask, (i, word)| {
                    mask | (separators_in_word(word) << (8 * i))
                });
            let by_bytes = block.iter().enumerate().fold(0u64, |mask, (i, &byte)| {
                mask | (u64::from(matches!(byte, b',' | b']')) << i)
            });
            assert_eq!(by_words, by_bytes, "{:?}", String::from_utf8_lossy(&block));
            assert_eq!(separators(&block), by_bytes);
        }
    }

    #[test]
    fn arrays_hold_only_numbers_and_commas() {
        for refused in [
            "]",
            "1,,2]",
            ",1]",
            "1,]",
            "1 2]",
            "1,2",
            "1;2]",
            "01,1]",
            "1.,2]",
            "[1]",
            "\"1\"]",
            "1,2}",
            "-,1]",
            "1.5.5]",
            "0.5e]",
            "00.5]",
            "-.5]",
            "1.0-]",
            "0.1234567,9.87654321x]",
        ] {
            assert_eq!(arrays(refused), [None, None], "{refused:?} was read");
        }
        // The first `]` ends the array, whatever follows.
        let [taken, portable] = arrays("1.5, -2.25 ],3]");
        assert_eq!(taken, portable);
        assert_eq!(taken.map(|(count, end, _)| (count, end)), Some((2, 11)));
    }

    #[test]
    fn only_json_numbers_are_read() {
        for refused in [
            "01", "-01", "1.", ".5", "+1", "1e", "1e+", "-", "", "inf", "NaN", "1.e3", "0x10",
        ] {
            assert!(parsed(refused).is_none(), "{refused:?} was read");
        }
        assert!(parsed("1e999").is_none(), "an infinity was read");
    }

    #[test]
    fn integer_literals_are_told_apart() {
        assert!(matches!(parsed("42"), Some((42.0, Kind::Integer(42)))));
        assert!(matches!(parsed("-7"), Some((-7.0, Kind::Integer(-7)))));
        assert!(matches!(parsed("0"), Some((0.0, Kind::Integer(0)))));
        assert!(matches!(parsed("-0"), Some((_, Kind::UnsureInteger))));
        assert!(matches!(
            parsed("1234567890123456"),
            Some((_, Kind::UnsureInteger))
        ));
        assert!(matches!(parsed("4.0"), Some((4.0, Kind::Fraction))));
        assert!(matches!(parsed("4e0"), Some((4.0, Kind::Fraction))));
    }
}
