//! kubeloop-dataplane: a native front for the Python inference server (see main.rs and README.md).

pub mod answer;
pub mod config;
pub mod model;
mod numbers;
pub mod proxy;
pub mod request;
pub mod stats;
