//! kubeloop-dataplane: a native front for the Python inference server.
//!
//! It answers OIP v2 JSON inference requests for numeric models itself (HTTP, JSON and onnxruntime
//! without Python per request) and forwards every other request, and every inference request it
//! cannot prove it answers as the Python server would, to that server unchanged.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use kubeloop_dataplane::config::Config;
use kubeloop_dataplane::model::Model;
use kubeloop_dataplane::proxy::{Body, Upstream, full};
use kubeloop_dataplane::stats::Stats;
use kubeloop_dataplane::{answer, request};

const MAX_REQUEST_ID_LENGTH: usize = 256;
/// The contract's paths (`kubeloop.contracts.dataplane`): counts, and whether to answer inference.
const STATS_PATH: &str = "/dataplane/stats";
const ANSWERING_PATH: &str = "/dataplane/answering";
/// Each connection's age limit is the configured one times a factor in [1 - JITTER, 1 + JITTER]
/// (as `kubeloop_serving.connections`), so clients that connected together reconnect apart.
const JITTER: f64 = 0.1;
/// On SIGTERM, idle keep-alive connections are closed only when none is left or this has passed:
/// until then every answer tells its client to close (as `kubeloop_serving.drain`), since closing an
/// idle connection races with a request already on the wire.
const CLOSE_IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(3);

struct State {
    config: Config,
    model: Model,
    native: bool,
    upstream: Upstream,
    track: HeaderValue,
    stats: Stats,
    forwarded: AtomicU64,
    draining: AtomicBool,
    connections: AtomicUsize,
    answering: AtomicBool,
}

fn main() {
    // Ends with the Python server that started it, however that one ends (SIGKILL, OOM kill).
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and changes nothing else.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("kubeloop-dataplane: {problem}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(problem) = runtime.block_on(serve(config)) {
        eprintln!("kubeloop-dataplane: {problem}");
        std::process::exit(1);
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let environment = ort::init_from(&config.ort_library)
        .map_err(|error| {
            format!(
                "cannot load onnxruntime from {}: {error}",
                config.ort_library.display()
            )
        })?
        .with_name("kubeloop-dataplane")
        .build()
        .map_err(|error| error.to_string())?;
    let model = Model::load(&environment, &config.model_path, config.intra_op_threads)
        .map_err(|error| format!("cannot load {}: {}", config.model_path.display(), error.0))?;
    let native = model.signature.served_natively();
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|error| format!("cannot listen on {}:{}: {error}", config.host, config.port))?;
    eprintln!(
        "kubeloop-dataplane: serving {} version {} on {}:{} ({}), forwarding to {}",
        config.model_name,
        config.model_version,
        config.host,
        config.port,
        if native {
            "inference answered here"
        } else {
            "every request forwarded: the model's types are not served natively"
        },
        config.upstream
    );
    let state = Arc::new(State {
        track: HeaderValue::from_str(&config.track)
            .map_err(|_| "the track is not a header value".to_owned())?,
        upstream: Upstream::new(&config.upstream)?,
        answering: AtomicBool::new(config.answering),
        model,
        native,
        config,
        stats: Stats::new(),
        forwarded: AtomicU64::new(0),
        draining: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| error.to_string())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let local = peer.ip().is_loopback();
                let _ = stream.set_nodelay(true);
                let counted = Arc::clone(&state);
                let state = Arc::clone(&state);
                let ends = connection_end(state.config.max_connection_age_seconds);
                let service = service_fn(move |request| {
                    let state = Arc::clone(&state);
                    async move {
                        let mut response = handle(Arc::clone(&state), request, local).await?;
                        let draining = state.draining.load(Ordering::Relaxed);
                        if draining || ends.is_some_and(|end| std::time::Instant::now() >= end) {
                            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                counted.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let _ = connection.await;
                    counted.connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
            _ = terminate.recv() => break,
        }
    }
    drop(listener); // no new connections: the Service sends those elsewhere
    state.draining.store(true, Ordering::Relaxed);
    let idle_deadline = tokio::time::Instant::now() + CLOSE_IDLE_AFTER;
    while state.connections.load(Ordering::Relaxed) > 0
        && tokio::time::Instant::now() < idle_deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let drain = std::time::Duration::from_secs_f64(state.config.drain_seconds);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "kubeloop-dataplane: connections still open after {:?}; closing them",
            drain
        );
    }
    eprintln!(
        "kubeloop-dataplane: stopped; forwarded {} requests",
        state.forwarded.load(Ordering::Relaxed)
    );
    Ok(())
}

/// When a connection accepted now should close after its next answer (None: never).
fn connection_end(max_age_seconds: f64) -> Option<std::time::Instant> {
    if max_age_seconds <= 0.0 {
        return None;
    }
    let mut raw = [0u8; 4];
    getrandom::fill(&mut raw).ok()?;
    let unit = f64::from(u32::from_le_bytes(raw)) / f64::from(u32::MAX);
    let age = max_age_seconds * (1.0 - JITTER + 2.0 * JITTER * unit);
    Some(std::time::Instant::now() + std::time::Duration::from_secs_f64(age))
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    local: bool,
) -> Result<Response<Body>, Infallible> {
    if request.method() == Method::PUT && request.uri().path() == ANSWERING_PATH && local {
        return Ok(set_answering(&state, request).await);
    }
    if request.method() == Method::GET && request.uri().path() == STATS_PATH {
        return Ok(json_answer(
            StatusCode::OK,
            &state.track,
            state.stats.document().into(),
        ));
    }
    let ours = infer_version(request.uri().path(), &state.config.model_name)
        .is_some_and(|version| version.is_none_or(|version| version == state.config.model_version));
    let answering = state.native && state.answering.load(Ordering::Relaxed);
    if answering && request.method() == Method::POST && ours {
        return Ok(infer(&state, request).await);
    }
    let (head, body) = request.into_parts();
    Ok(forward(&state, head, body.boxed()).await)
}

/// The Python server's answer to the request, counted as forwarded.
async fn forward(state: &State, head: hyper::http::request::Parts, body: Body) -> Response<Body> {
    state.forwarded.fetch_add(1, Ordering::Relaxed);
    state
        .upstream
        .forward(Request::from_parts(head, body))
        .await
}

/// `true` or `false` from the Python server (a loopback peer): whether to answer inference here.
async fn set_answering(state: &State, request: Request<Incoming>) -> Response<Body> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let answering = match body.as_ref() {
        b"true" => true,
        b"false" => false,
        _ => {
            let message = "the body must be true or false";
            return error_answer(StatusCode::BAD_REQUEST, &state.track, message);
        }
    };
    state.answering.store(answering, Ordering::Relaxed);
    json_answer(StatusCode::OK, &state.track, body)
}

/// For `/v2/models/{model}[/versions/{v}]/infer`: Some(the version, if named), else None.
fn infer_version<'p>(path: &'p str, model: &str) -> Option<Option<&'p str>> {
    let rest = path.strip_prefix("/v2/models/")?.strip_suffix("/infer")?;
    match rest.split_once("/versions/") {
        None => (rest == model).then_some(None),
        Some((name, version)) => (name == model && !version.contains('/')).then_some(Some(version)),
    }
}

async fn infer(state: &State, request: Request<Incoming>) -> Response<Body> {
    let (head, body) = request.into_parts();
    let limit = state.config.max_request_bytes;
    let declared_over = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|length| length > limit as u64);
    if declared_over || head.headers.contains_key("inference-header-content-length") {
        return forward(state, head, body.boxed()).await;
    }
    let timeout = std::time::Duration::from_secs_f64(state.config.body_timeout_seconds);
    let Ok(collected) = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await
    else {
        let seconds = state.config.body_timeout_seconds;
        let message = format!("the request body did not arrive within {seconds} s");
        return error_answer(StatusCode::REQUEST_TIMEOUT, &state.track, &message);
    };
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            let message = format!("request body exceeds the limit of {limit} bytes");
            return error_answer(StatusCode::BAD_REQUEST, &state.track, &message);
        }
        Err(_) => {
            let message = "the request body was cut off";
            return error_answer(StatusCode::BAD_REQUEST, &state.track, message);
        }
    };
    match answer_here(state, &head, &bytes) {
        Some(response) => response,
        None => forward(state, head, full(bytes)).await,
    }
}

/// The answer to a request this data plane can answer exactly as the Python server would.
fn answer_here(
    state: &State,
    head: &hyper::http::request::Parts,
    body: &Bytes,
) -> Option<Response<Body>> {
    // As the Python server's request duration: from the read body to the encoded answer.
    let started = std::time::Instant::now();
    let _inflight = state.stats.started();
    let signature = &state.model.signature;
    let parsed = request::read(body, signature)?;
    let header_id = match head.headers.get("x-request-id") {
        Some(value) => Some(value.to_str().ok()?), // Python reads it as latin-1: left to it
        None => None,
    };
    let id = match (parsed.id.as_deref(), header_id) {
        (Some(id), _) if !id.is_empty() => id.to_owned(),
        (_, Some(id)) if !id.is_empty() => id.to_owned(),
        _ => new_request_id(),
    };
    if id.len() > MAX_REQUEST_ID_LENGTH {
        return None;
    }
    let chosen = parsed
        .outputs
        .unwrap_or_else(|| (0..signature.outputs.len()).collect());
    let outputs = state.model.run(parsed.inputs).ok()?;
    let document = answer::encode(
        &state.config.model_name,
        &state.config.model_version,
        &id,
        &signature.outputs,
        &outputs,
        &chosen,
    );
    let mut response = json_answer(StatusCode::OK, &state.track, document.into());
    response
        .headers_mut()
        .insert("x-request-id", HeaderValue::from_str(&id).ok()?);
    state.stats.answered(
        started.elapsed().as_secs_f64(),
        outputs.first().map(|output| &output.data),
    );
    Some(response)
}

/// `{"error": message}`, as the Python server's errors.
fn error_answer(status: StatusCode, track: &HeaderValue, message: &str) -> Response<Body> {
    let mut document = b"{\"error\":".to_vec();
    answer::string(&mut document, message);
    document.push(b'}');
    json_answer(status, track, document.into())
}

fn json_answer(status: StatusCode, track: &HeaderValue, body: Bytes) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("x-kubeloop-track", track.clone());
    response
}

/// 32 lower-case hex characters of the OS's randomness, as the Python server's ids.
fn new_request_id() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the OS's randomness");
    raw.iter().map(|byte| format!("{byte:02x}")).collect()
}
