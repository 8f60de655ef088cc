//! Settings from `KUBELOOP_DATAPLANE_*` environment variables.

use std::path::PathBuf;

pub struct Config {
    pub model_path: PathBuf,
    pub model_name: String,
    pub model_version: String,
    pub track: String,
    pub host: String,
    pub port: u16,
    /// The Python server every request this data plane does not answer goes to (`http://host:port`).
    pub upstream: String,
    pub ort_library: PathBuf,
    pub intra_op_threads: usize,
    pub workers: usize,
    pub max_request_bytes: usize,
    pub drain_seconds: f64,
    pub body_timeout_seconds: f64,
    /// Close a keep-alive connection after its first answer past this age (0: never).
    pub max_connection_age_seconds: f64,
    /// Whether to answer inference at start; the Python server turns it off while it routes
    /// (`PUT ANSWERING_PATH`), since routing (canary, shadow, A/B) is its own.
    pub answering: bool,
}

const PREFIX: &str = "KUBELOOP_DATAPLANE_";

impl Config {
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            model_path: required("MODEL_PATH")?.into(),
            model_name: required("MODEL_NAME")?,
            model_version: required("MODEL_VERSION")?,
            track: optional("TRACK").unwrap_or_else(|| "stable".into()),
            host: optional("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port: number("PORT", 8080)?,
            upstream: required("UPSTREAM")?,
            ort_library: required("ORT_LIBRARY")?.into(),
            intra_op_threads: number("INTRA_OP_THREADS", 1)?,
            workers: number::<usize>("WORKERS", 1)?.max(1),
            max_request_bytes: number("MAX_REQUEST_BYTES", 16 * 1024 * 1024)?,
            drain_seconds: number("DRAIN_SECONDS", 20.0)?,
            body_timeout_seconds: number("BODY_TIMEOUT_SECONDS", 30.0)?,
            max_connection_age_seconds: number("MAX_CONNECTION_AGE_SECONDS", 30.0)?,
            answering: number("ANSWERING", true)?,
        })
    }
}

fn optional(name: &str) -> Option<String> {
    std::env::var(format!("{PREFIX}{name}"))
        .ok()
        .filter(|value| !value.is_empty())
}

fn required(name: &str) -> Result<String, String> {
    optional(name).ok_or_else(|| format!("{PREFIX}{name} is required"))
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match optional(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{PREFIX}{name} must be a number, got {text:?}")),
    }
}
