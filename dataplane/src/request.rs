//! An OIP v2 JSON inference request, read in one pass straight into typed buffers.
//!
//! The reader accepts only what it can prove the Python server would answer with a 200 for the same
//! model: plain numeric `data` (flat or regularly nested), no binary extension, no parameters. For
//! anything else `read` returns `None` and the request goes to the Python server, which answers it
//! (its errors included) as it always has; so this module never phrases an error of its own.

use crate::model::{Datatype, Signature};
use crate::numbers::{Kind, Number, Numbers, flat_array, number};

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
            let (count, end) = flat_array(self.bytes, self.at, numbers)?;
            length = count;
            self.at = end + 1;
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

#[cfg(test)]
mod tests {
    use super::*;

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
