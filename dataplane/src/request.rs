//! An OIP v2 JSON inference request, read in one pass straight into typed buffers.
//!
//! The reader accepts only what it can prove the Python server would answer with a 200 for the same
//! model: plain numeric `data` (flat or regularly nested), no binary extension, no parameters. For
//! anything else `read` returns `None` and the request goes to the Python server, which answers it
//! (its errors included) as it always has; so this module never phrases an error of its own.

use crate::model::{Datatype, Signature};

/// One input's values, in the element type its model input takes.
#[derive(Debug)]
pub enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
}

#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub shape: Vec<i64>,
    pub values: Values,
}

#[derive(Debug)]
pub struct Request {
    pub id: Option<String>,
    /// Input values in the model's input order.
    pub inputs: Vec<Input>,
    /// Requested outputs by index into the model's outputs, in request order; None = every output.
    pub outputs: Option<Vec<usize>>,
}

/// The request in `body` when this data plane can answer it for a model of `signature`.
pub fn read(body: &[u8], signature: &Signature) -> Option<Request> {
    let mut reader = Reader { bytes: body, at: 0 };
    let request = reader.request(signature)?;
    reader.space();
    if reader.at != body.len() {
        return None;
    }
    checked(request, signature)
}

/// A JSON number: its f64 value (correctly rounded) and what kind of literal it was.
#[derive(Clone, Copy)]
struct Number {
    value: f64,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An integer of at most 15 digits: exact in an f64.
    Integer(i64),
    /// An integer of more digits (NumPy would take it as an int64 and cast that once), or `-0`
    /// (an int 0 or a float -0.0, depending on which of the Python server's JSON decoders reads it).
    UnsureInteger,
    Fraction,
}

/// The numbers of one input's `data`: values, and whether each was an exact integer literal.
#[derive(Default)]
struct Numbers {
    values: Vec<f64>,
    /// Set when the input said FP32 before its data: the values, cast as read (one pass, half the
    /// memory of `values`, which then stays empty).
    singles: Option<Vec<f32>>,
    /// Some number was a fraction (or had an exponent).
    fraction: bool,
    /// Some number was an integer literal read differently by NumPy or the Python decoders.
    unsure_integer: bool,
}

impl Numbers {
    fn count(&self) -> usize {
        self.singles.as_ref().map_or(self.values.len(), Vec::len)
    }

    fn push(&mut self, number: Number) {
        match &mut self.singles {
            Some(singles) => singles.push(number.value as f32),
            None => self.values.push(number.value),
        }
        self.fraction |= number.kind == Kind::Fraction;
        self.unsure_integer |= number.kind == Kind::UnsureInteger;
    }
}

/// Shape of nested `data`: each level's length (by depth), and the depth of the values.
struct Nesting {
    lengths: Vec<usize>,
    leaf_depth: Option<usize>,
}

struct RawInput {
    name: String,
    datatype: Option<String>,
    shape: Option<Vec<i64>>,
    numbers: Numbers,
    nested: Vec<usize>,
    has_data: bool,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// The next byte after white space, consumed when it is `want`.
    fn eat(&mut self, want: u8) -> bool {
        self.space();
        if self.peek() == Some(want) {
            self.at += 1;
            return true;
        }
        false
    }

    /// Items of an object or array: `item` for each, separated by commas, up to `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.eat(close) {
            return Some(());
        }
        loop {
            item(self)?;
            if self.eat(close) {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn object(&mut self, mut member: impl FnMut(&mut Self, String) -> Option<()>) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        self.items(b'}', |reader| {
            let key = reader.string()?;
            if !reader.eat(b':') {
                return None;
            }
            member(reader, key)
        })
    }

    /// A string without escapes (an escaped one is left to the Python server).
    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at])
            .ok()?
            .to_owned();
        self.at += 1;
        Some(text)
    }

    fn number(&mut self) -> Option<Number> {
        self.space();
        let (number, end) = number(self.bytes, self.at)?;
        self.at = end;
        Some(number)
    }

    fn request(&mut self, signature: &Signature) -> Option<Request> {
        let mut id = None;
        let mut raw_inputs: Option<Vec<RawInput>> = None;
        let mut outputs = None;
        self.object(|reader, key| match key.as_str() {
            "id" => {
                id = Some(reader.string()?);
                Some(())
            }
            "inputs" => {
                raw_inputs = Some(reader.inputs()?);
                Some(())
            }
            "outputs" => {
                outputs = Some(reader.outputs(signature)?);
                Some(())
            }
            "parameters" => reader.object(|_, _| None), // only `{}`: parameters change the answer
            _ => None,
        })?;
        let inputs = raw_inputs?;
        Some(Request {
            id,
            inputs: ordered(inputs, signature)?,
            outputs,
        })
    }

    fn inputs(&mut self) -> Option<Vec<RawInput>> {
        let mut inputs = Vec::new();
        if !self.eat(b'[') {
            return None;
        }
        self.items(b']', |reader| {
            inputs.push(reader.input()?);
            Some(())
        })?;
        Some(inputs)
    }

    fn input(&mut self) -> Option<RawInput> {
        let mut raw = RawInput {
            name: String::new(),
            datatype: None,
            shape: None,
            numbers: Numbers::default(),
            nested: Vec::new(),
            has_data: false,
        };
        let mut named = false;
        self.object(|reader, key| match key.as_str() {
            "name" => {
                raw.name = reader.string()?;
                named = true;
                Some(())
            }
            "datatype" => {
                raw.datatype = Some(reader.string()?);
                Some(())
            }
            "shape" => {
                raw.shape = Some(reader.shape()?);
                Some(())
            }
            "data" => {
                let mut nesting = Nesting {
                    lengths: Vec::new(),
                    leaf_depth: None,
                };
                // Room for what the shape declares, when it came first and the body can hold it
                // (every number takes two bytes at least, with its comma).
                let declared = raw
                    .shape
                    .as_ref()
                    .map_or(0, |shape| shape.iter().product::<i64>().max(0) as usize);
                let room = declared.min((reader.bytes.len() - reader.at) / 2);
                raw.numbers = Numbers::default();
                if raw.datatype.as_deref() == Some("FP32") {
                    raw.numbers.singles = Some(Vec::with_capacity(room));
                } else {
                    raw.numbers.values.reserve(room);
                }
                reader.data(0, &mut nesting, &mut raw.numbers)?;
                raw.nested = nesting.lengths;
                raw.has_data = true;
                Some(())
            }
            _ => None,
        })?;
        named.then_some(raw)
    }

    fn shape(&mut self) -> Option<Vec<i64>> {
        let mut shape = Vec::new();
        if !self.eat(b'[') {
            return None;
        }
        self.items(b']', |reader| {
            let Kind::Integer(dim) = reader.number()?.kind else {
                return None;
            };
            (dim >= 0).then(|| shape.push(dim))
        })?;
        Some(shape)
    }

    /// An array at `depth` of `data`: numbers, or arrays all as long as the first at their depth.
    fn data(&mut self, depth: usize, nesting: &mut Nesting, numbers: &mut Numbers) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        self.space();
        let mut length = 0usize;
        if self.peek() == Some(b'[') {
            if nesting.leaf_depth.is_some_and(|leaf| leaf <= depth) {
                return None;
            }
            self.items(b']', |reader| {
                length += 1;
                reader.data(depth + 1, nesting, numbers)
            })?;
        } else {
            if *nesting.leaf_depth.get_or_insert(depth) != depth {
                return None;
            }
            // The hot loop of a large request: numbers and commas, nothing else.
            let bytes = self.bytes;
            let mut at = self.at;
            loop {
                let (number, end) = number(bytes, at)?;
                numbers.push(number);
                length += 1;
                at = end;
                while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
                    at += 1;
                }
                match bytes.get(at) {
                    Some(b',') => at += 1,
                    Some(b']') => break,
                    _ => return None,
                }
                while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(at) {
                    at += 1;
                }
            }
            self.at = at + 1;
        }
        // Inner arrays end first: each level's length goes to its own index (0 until seen).
        if nesting.lengths.len() <= depth {
            nesting.lengths.resize(depth + 1, 0);
        }
        match nesting.lengths[depth] {
            0 => {
                nesting.lengths[depth] = length;
                Some(())
            }
            seen => (seen == length).then_some(()),
        }
    }

    fn outputs(&mut self, signature: &Signature) -> Option<Vec<usize>> {
        let mut chosen = Vec::new();
        if !self.eat(b'[') {
            return None;
        }
        self.items(b']', |reader| {
            let mut index = None;
            reader.object(|reader, key| match key.as_str() {
                "name" => {
                    let name = reader.string()?;
                    index = Some(
                        signature
                            .outputs
                            .iter()
                            .position(|output| output.name == name)?,
                    );
                    Some(())
                }
                "parameters" => reader.object(|reader, key| {
                    (key == "binary_data" && reader.literal(b"false")).then_some(())
                }),
                _ => None,
            })?;
            chosen.push(index?);
            Some(())
        })?;
        Some(chosen)
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        self.space();
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            return true;
        }
        false
    }
}

/// Inputs in the model's order, each exactly once.
fn ordered(mut inputs: Vec<RawInput>, signature: &Signature) -> Option<Vec<Input>> {
    if inputs.len() != signature.inputs.len() {
        return None;
    }
    let mut ordered = Vec::with_capacity(inputs.len());
    for spec in &signature.inputs {
        let at = inputs.iter().position(|raw| raw.name == spec.name)?;
        let raw = inputs.swap_remove(at);
        if raw.datatype.as_deref() != Some(spec.datatype.name()) || !raw.has_data {
            return None;
        }
        let shape = raw.shape?;
        let count: usize = raw.nested.iter().product();
        if shape
            .iter()
            .try_fold(1usize, |total, &dim| total.checked_mul(dim as usize))?
            != count
            || count != raw.numbers.count()
        {
            return None;
        }
        ordered.push(Input {
            name: raw.name,
            shape,
            values: typed(raw.numbers, spec.datatype)?,
        });
    }
    Some(ordered)
}

/// The numbers as `datatype` the way NumPy's cast of the decoded list makes them; None where the
/// Python server would refuse them (a fraction for an integer input, out of range) or could differ
/// (an integer literal too long to be exact in an f64: NumPy would take it as an int64 first).
fn typed(numbers: Numbers, datatype: Datatype) -> Option<Values> {
    if numbers.unsure_integer {
        return None;
    }
    let values = numbers.values;
    Some(match (datatype, numbers.singles) {
        (Datatype::Fp32, Some(singles)) => Values::F32(singles),
        (Datatype::Fp32, None) => Values::F32(values.iter().map(|&value| value as f32).collect()),
        (_, Some(_)) => return None, // read as FP32 for a datatype given twice
        (Datatype::Fp64, None) => Values::F64(values),
        _ if numbers.fraction => return None,
        (Datatype::Int64, None) => Values::I64(values.iter().map(|&value| value as i64).collect()),
        (Datatype::Int32, None) => Values::I32(
            values
                .iter()
                .map(|&value| i32::try_from(value as i64).ok())
                .collect::<Option<_>>()?,
        ),
        (Datatype::Bool | Datatype::Uint8 | Datatype::Other, None) => return None,
    })
}

/// The shapes against the model's fixed dimensions.
fn checked(request: Request, signature: &Signature) -> Option<Request> {
    for (input, spec) in request.inputs.iter().zip(&signature.inputs) {
        if input.shape.len() != spec.shape.len()
            || input
                .shape
                .iter()
                .zip(&spec.shape)
                .any(|(&got, &want)| want != -1 && want != got)
        {
            return None;
        }
    }
    Some(request)
}

/// The JSON number at `at` and where it ends.
#[inline(always)]
fn number(bytes: &[u8], start: usize) -> Option<(Number, usize)> {
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
    // Clinger's fast path: an exact mantissa and an exact power of ten make one correctly rounded
    // IEEE operation; everything else goes to a complete algorithm (fast-float2).
    let value = if digits <= 15 && (-22..=22).contains(&exponent) {
        let magnitude = mantissa as f64;
        let scaled = if exponent < 0 {
            magnitude / POW10[(-exponent) as usize]
        } else {
            magnitude * POW10[exponent as usize]
        };
        // The sign without a branch: signs of data are as good as random, so a branch mispredicts.
        f64::from_bits(scaled.to_bits() | (u64::from(negative) << 63))
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

    #[test]
    fn numbers_are_correctly_rounded_as_std_parses_them() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let digits = 1 + (next() % 25) as usize;
            let mut text = String::new();
            if next() % 2 == 0 {
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
            if next() % 3 == 0 {
                text.push_str(&format!("e{}", (next() % 80) as i64 - 40));
            }
            let expected: f64 = text.parse().unwrap();
            let (value, _) = parsed(&text).unwrap_or_else(|| panic!("{text} refused"));
            assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
        }
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

    fn signature() -> Signature {
        use crate::model::Port;
        let port = |name: &str, datatype, shape: &[i64]| Port {
            name: name.into(),
            datatype,
            shape: shape.to_vec(),
        };
        Signature {
            inputs: vec![
                port("x", Datatype::Fp32, &[-1, 2]),
                port("ids", Datatype::Int64, &[-1]),
            ],
            outputs: vec![port("y", Datatype::Fp32, &[-1])],
        }
    }

    #[test]
    fn requests_are_read_into_the_models_order_and_types() {
        let body = br#"{"id":"a","inputs":[{"name":"ids","datatype":"INT64","shape":[2],"data":[3,-4]},
            {"name":"x","shape":[2,2],"datatype":"FP32","data":[[0.1,2],[3e0,-4.5]]}],"outputs":[{"name":"y"}]}"#;
        let request = read(body, &signature()).expect("read");
        assert_eq!(request.id.as_deref(), Some("a"));
        assert_eq!(request.outputs, Some(vec![0]));
        assert_eq!(request.inputs[0].name, "x");
        assert!(
            matches!(&request.inputs[0].values, Values::F32(v) if v == &[0.1f32, 2.0, 3.0, -4.5])
        );
        assert!(matches!(&request.inputs[1].values, Values::I64(v) if v == &[3, -4]));
    }

    #[test]
    fn what_the_python_server_must_answer_is_left_to_it() {
        let x = r#"{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}"#;
        let ids = |data: &str| {
            format!(r#"{{"name":"ids","shape":[1],"datatype":"INT64","data":{data}}}"#)
        };
        let both = |ids_data: &str| format!(r#"{{"inputs":[{x},{}]}}"#, ids(ids_data));
        assert!(read(both("[1]").as_bytes(), &signature()).is_some());
        for refused in [
            both("[1.5]"),                        // a fraction for an integer input
            both("[1e0]"),                        // so is an exponent
            both("[1,2]"),                        // two values for shape [1]
            format!(r#"{{"inputs":[{x}]}}"#),     // a missing input
            format!(r#"{{"inputs":[{x},{x}]}}"#), // an input twice
            format!(r#"{{"inputs":[{x},{}],"extra":1}}"#, ids("[1]")), // a key it does not know
            both("[1]").replace("[1,2]", "[[1],[2,3]]"), // ragged
            both("[1]").replace("\"shape\":[1,2]", "\"shape\":[1,3]"), // not the model's width
        ] {
            assert!(
                read(refused.as_bytes(), &signature()).is_none(),
                "{refused}"
            );
        }
    }
}
