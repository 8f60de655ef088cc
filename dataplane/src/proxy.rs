//! Forwarding to the Python server: the request as it came, the answer as it comes back.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// A body of bytes already in hand.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}
const POOL_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Upstream {
    client: Client<HttpConnector, Body>,
    authority: hyper::http::uri::Authority,
}

impl Upstream {
    pub fn new(address: &str) -> Result<Self, String> {
        let uri: Uri = address
            .parse()
            .map_err(|_| format!("upstream {address:?} is not a URI"))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("upstream {address:?} has no host"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Shorter than the Python server's keep-alive timeout (75 s): a pooled connection is never
            // picked just as that server closes it.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self { client, authority })
    }

    pub async fn forward(&self, mut request: Request<Body>) -> Response<Body> {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str());
        let uri = Uri::builder()
            .scheme("http")
            .authority(self.authority.clone())
            .path_and_query(path)
            .build();
        match uri {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return unavailable(),
        }
        match self.client.request(request).await {
            Ok(mut response) => {
                // Hop-by-hop: the upstream connection's own (the Python server ages its
                // connections); whether the client's connection closes is decided here.
                response.headers_mut().remove(hyper::header::CONNECTION);
                response.map(|body| body.boxed())
            }
            Err(_) => unavailable(),
        }
    }
}

/// 503 as the Python server answers while it cannot serve: a client retries another pod.
fn unavailable() -> Response<Body> {
    let body = Bytes::from_static(b"{\"error\":\"the inference server is not reachable\"}");
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
