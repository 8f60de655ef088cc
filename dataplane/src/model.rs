//! The ONNX model: one onnxruntime session, its signature, and a run on decoded inputs.

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use crate::request::{Input, Values};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Datatype {
    Fp32,
    Fp64,
    Int64,
    Int32,
    Bool,
    Uint8,
    /// Any other element type (or a non-tensor): such a model is served by the Python server alone.
    Other,
}

impl Datatype {
    fn of(value: &ValueType) -> Self {
        match value {
            ValueType::Tensor { ty, .. } => match ty {
                TensorElementType::Float32 => Self::Fp32,
                TensorElementType::Float64 => Self::Fp64,
                TensorElementType::Int64 => Self::Int64,
                TensorElementType::Int32 => Self::Int32,
                TensorElementType::Bool => Self::Bool,
                TensorElementType::Uint8 => Self::Uint8,
                _ => Self::Other,
            },
            _ => Self::Other,
        }
    }

    /// The OIP datatype name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Int64 => "INT64",
            Self::Int32 => "INT32",
            Self::Bool => "BOOL",
            Self::Uint8 => "UINT8",
            Self::Other => "",
        }
    }
}

pub struct Port {
    pub name: String,
    pub datatype: Datatype,
    /// Dimensions, -1 where dynamic.
    pub shape: Vec<i64>,
}

pub struct Signature {
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

impl Signature {
    /// Whether this data plane can answer requests for the model at all: numeric inputs it decodes,
    /// outputs it encodes.
    pub fn served_natively(&self) -> bool {
        let decodable = [
            Datatype::Fp32,
            Datatype::Fp64,
            Datatype::Int64,
            Datatype::Int32,
        ];
        self.inputs
            .iter()
            .all(|port| decodable.contains(&port.datatype))
            && self
                .outputs
                .iter()
                .all(|port| port.datatype != Datatype::Other)
    }
}

/// An output tensor as onnxruntime returned it.
pub enum OutputData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    U8(Vec<u8>),
}

pub struct Output {
    pub shape: Vec<i64>,
    pub data: OutputData,
}

pub struct Model {
    pub signature: Signature,
    session: Mutex<Session>,
}

#[derive(Debug)]
pub struct ModelError(pub String);

impl<R> From<ort::Error<R>> for ModelError {
    fn from(error: ort::Error<R>) -> Self {
        Self(error.to_string())
    }
}

impl Model {
    /// The model at `path`, with the Python server's session options (sequential, every graph
    /// optimization, `threads` intra-op threads that sleep rather than spin).
    pub fn load(
        environment: &ort::environment::Environment,
        path: &Path,
        threads: usize,
    ) -> Result<Self, ModelError> {
        let session = Session::builder(environment)?
            .with_intra_threads(threads)?
            .with_inter_threads(1)?
            .with_parallel_execution(false)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            .with_intra_op_spinning(false)?
            .with_inter_op_spinning(false)?
            .commit_from_file(path)?;
        let ports = |outlets: &[ort::value::Outlet]| -> Vec<Port> {
            outlets
                .iter()
                .map(|outlet| Port {
                    name: outlet.name().to_owned(),
                    datatype: Datatype::of(outlet.dtype()),
                    shape: match outlet.dtype() {
                        ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
                        _ => Vec::new(),
                    },
                })
                .collect()
        };
        let signature = Signature {
            inputs: ports(session.inputs()),
            outputs: ports(session.outputs()),
        };
        Ok(Self {
            signature,
            session: Mutex::new(session),
        })
    }

    /// Run the model on `inputs` (in the signature's order); every output, in the signature's order.
    pub fn run(&self, inputs: Vec<Input>) -> Result<Vec<Output>, ModelError> {
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(inputs.len());
        for input in inputs {
            let shape = input.shape;
            let value = match input.values {
                Values::F32(data) => Tensor::from_array((shape, data))?.into_dyn(),
                Values::F64(data) => Tensor::from_array((shape, data))?.into_dyn(),
                Values::I64(data) => Tensor::from_array((shape, data))?.into_dyn(),
                Values::I32(data) => Tensor::from_array((shape, data))?.into_dyn(),
            };
            values.push((input.name, value));
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| ModelError("the session lock is poisoned".into()))?;
        let outputs = session.run(values)?;
        let mut answers = Vec::with_capacity(self.signature.outputs.len());
        for port in &self.signature.outputs {
            let value = &outputs[port.name.as_str()];
            answers.push(match port.datatype {
                Datatype::Fp32 => extract(value, OutputData::F32)?,
                Datatype::Fp64 => extract(value, OutputData::F64)?,
                Datatype::Int64 => extract(value, OutputData::I64)?,
                Datatype::Int32 => extract(value, OutputData::I32)?,
                Datatype::Bool => extract(value, OutputData::Bool)?,
                Datatype::Uint8 => extract(value, OutputData::U8)?,
                Datatype::Other => {
                    return Err(ModelError(format!(
                        "output {:?} has an unserved type",
                        port.name
                    )));
                }
            });
        }
        Ok(answers)
    }
}

fn extract<T: ort::value::PrimitiveTensorElementType + Clone>(
    value: &DynValue,
    wrap: fn(Vec<T>) -> OutputData,
) -> Result<Output, ModelError> {
    let (shape, data) = value.try_extract_tensor::<T>()?;
    Ok(Output {
        shape: shape.iter().copied().collect(),
        data: wrap(data.to_vec()),
    })
}
