//! The OIP v2 JSON answer, as the Python server's `encode_response` writes it (float32 values in
//! their shortest round-trip form, NaN and infinities as null, as orjson writes NumPy floats).

use crate::model::{Output, OutputData, Port};

pub fn encode(
    model: &str,
    version: &str,
    id: &str,
    ports: &[Port],
    outputs: &[Output],
    chosen: &[usize],
) -> Vec<u8> {
    let values: usize = chosen
        .iter()
        .map(|&index| outputs[index].shape.iter().product::<i64>().max(0) as usize)
        .sum();
    let mut out = Vec::with_capacity(128 + 12 * values);
    out.extend_from_slice(b"{\"model_name\":");
    string(&mut out, model);
    out.extend_from_slice(b",\"model_version\":");
    string(&mut out, version);
    out.extend_from_slice(b",\"id\":");
    string(&mut out, id);
    out.extend_from_slice(b",\"outputs\":[");
    for (position, &index) in chosen.iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        let (port, output) = (&ports[index], &outputs[index]);
        out.extend_from_slice(b"{\"name\":");
        string(&mut out, &port.name);
        out.extend_from_slice(b",\"datatype\":\"");
        out.extend_from_slice(port.datatype.name().as_bytes());
        out.extend_from_slice(b"\",\"shape\":[");
        list(&mut out, &output.shape, |out, dim| {
            out.extend_from_slice(itoa::Buffer::new().format(*dim).as_bytes())
        });
        out.extend_from_slice(b"],\"data\":[");
        data(&mut out, &output.data);
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

fn data(out: &mut Vec<u8>, data: &OutputData) {
    let mut floats = ryu::Buffer::new();
    let mut integers = itoa::Buffer::new();
    match data {
        OutputData::F32(values) => list(out, values, |out, &value| float(out, &mut floats, value)),
        OutputData::F64(values) => list(out, values, |out, &value| float(out, &mut floats, value)),
        OutputData::I64(values) => list(out, values, |out, value| {
            out.extend_from_slice(integers.format(*value).as_bytes())
        }),
        OutputData::I32(values) => list(out, values, |out, value| {
            out.extend_from_slice(integers.format(*value).as_bytes())
        }),
        OutputData::U8(values) => list(out, values, |out, value| {
            out.extend_from_slice(integers.format(*value).as_bytes())
        }),
        OutputData::Bool(values) => list(out, values, |out, &value| {
            out.extend_from_slice(if value { b"true" } else { b"false" })
        }),
    }
}

fn float<F: ryu::Float + Finite>(out: &mut Vec<u8>, buffer: &mut ryu::Buffer, value: F) {
    if value.finite() {
        out.extend_from_slice(buffer.format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

trait Finite {
    fn finite(self) -> bool;
}

impl Finite for f32 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl Finite for f64 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}

fn list<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(out, item);
    }
}

/// A JSON string literal.
pub fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}
