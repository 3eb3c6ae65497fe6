//! The HTTP edge: `POST /cdr` (CMS), `POST /freeswitch/cdr`, `POST /kamailio/mos`,
//! `GET /metrics`, `/`, `/-/healthy`, `/-/ready`; access control, limits, TLS, the accept
//! loop and the errors clients see.

pub mod serve;
pub mod tls;
pub mod web_config;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;

use crate::metrics::{self as m, Exposition, Metrics};
use crate::pipeline::{self, AcceptError, Format, Pipeline, Received};

/// What the HTTP layer needs, as plain values.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub cdr_path: String,
    pub freeswitch_path: String,
    pub kamailio_path: String,
    pub metrics_path: String,
    pub max_body_bytes: u64,
    /// Bodies being received or applied, in total over all connections (503 beyond).
    pub max_inflight_bytes: u64,
    /// Shown on the landing page.
    pub summary: Vec<(String, String)>,
    /// Who may POST (replaced on SIGHUP).
    pub access: Access,
    /// Time a client has to send a body.
    pub body_timeout: Duration,
}

/// Who may POST to the receiver paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Shared secret (`?token=` or `Authorization: Bearer`).
    pub token: Option<String>,
    /// HTTP basic user and password; with a token, either suffices.
    pub basic: Option<(String, String)>,
    /// Networks allowed; empty allows all.
    pub allow: Vec<ipnet::IpNet>,
}

pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub metrics: Arc<Metrics>,
    pub exposition: Exposition,
    pub config: HttpConfig,
    access: parking_lot::RwLock<Arc<Access>>,
    /// Bytes of request bodies held right now (see `max_inflight_bytes`).
    inflight: Arc<AtomicU64>,
}

impl AppState {
    pub fn new(
        pipeline: Arc<Pipeline>,
        exposition: Exposition,
        config: HttpConfig,
    ) -> Arc<AppState> {
        let metrics = pipeline.ingest().metrics.clone();
        // Rejections are rare: their series exist at 0 so the first one is an increase.
        let v = &metrics.vocab;
        for (source, reasons) in [
            (Format::Cms, crate::cdr::ParseError::REASONS),
            (Format::FreeSwitch, crate::freeswitch::REASONS),
            (Format::Kamailio, crate::rtpengine::REASONS),
        ] {
            for r in HttpError::REASONS.iter().chain(reasons) {
                metrics
                    .batches_rejected
                    .touch((v.get(source.source()), v.get(r)));
            }
        }
        Arc::new(AppState {
            pipeline,
            metrics,
            exposition,
            access: parking_lot::RwLock::new(Arc::new(config.access.clone())),
            config,
            inflight: Arc::default(),
        })
    }

    /// Replaces the token, basic credentials and allowlist (SIGHUP); requests already
    /// past the check finish.
    pub fn set_access(&self, access: Access) {
        *self.access.write() = Arc::new(access);
    }

    pub fn access(&self) -> Arc<Access> {
        self.access.read().clone()
    }
}

/// Everything on one listener.
pub fn router(state: Arc<AppState>) -> Router {
    base(true)
        .merge(cdr_routes(&state))
        .route(&state.config.metrics_path, get(get_metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The receiver alone (when /metrics has its own listener): no configuration on its `/`.
pub fn cdr_router(state: Arc<AppState>) -> Router {
    base(false)
        .merge(cdr_routes(&state))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The `path` label of a request: one of the routes, or `other` (bounded whatever is asked).
fn path_label<'a>(cfg: &'a HttpConfig, path: &str) -> &'a str {
    let norm = |p: &str| {
        let t = p.trim_end_matches('/');
        if t.is_empty() {
            "/".to_owned()
        } else {
            t.to_owned()
        }
    };
    let p = norm(path);
    [
        cfg.cdr_path.as_str(),
        cfg.freeswitch_path.as_str(),
        cfg.kamailio_path.as_str(),
        cfg.metrics_path.as_str(),
        "/",
        "/-/healthy",
        "/-/ready",
    ]
    .into_iter()
    .find(|r| norm(r) == p)
    .unwrap_or("other")
}

/// Counts every request by path and status and times it (body read, journal and apply
/// included: what a sender waits for).
async fn observe(
    State(st): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let path = path_label(&st.config, req.uri().path()).to_owned();
    let resp = next.run(req).await;
    let m = &st.metrics;
    let p: m::vocab::HttpPath = m.vocab.get(&path);
    m.http_requests
        .inc((p, m.vocab.get(resp.status().as_str())));
    m.http_duration
        .observe((p,), started.elapsed().as_secs_f64());
    resp
}

/// The receiver paths, with and without a trailing slash, and `POST /` (CMS) for receiver
/// URIs configured without a path: a Call Bridge that gets 404 retries forever.
fn cdr_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let c = &state.config;
    let mut r = Router::new().route("/", post(post_cdr));
    for (path, handler) in [
        (&c.cdr_path, post(post_cdr)),
        (&c.freeswitch_path, post(post_freeswitch)),
        (&c.kamailio_path, post(post_kamailio)),
    ] {
        let path = path.trim_end_matches('/');
        if !path.is_empty() {
            r = r
                .route(path, handler.clone())
                .route(&format!("{path}/"), handler);
        }
    }
    r
}
/// /metrics alone, for `server.metrics_listen`.
pub fn metrics_router(state: Arc<AppState>, guard: Option<Arc<web_config::Guard>>) -> Router {
    let r = base(true).route(&state.config.metrics_path, get(get_metrics));
    let r = match guard {
        Some(g) => r.layer(axum::middleware::from_fn_with_state(g, guarded)),
        None => r,
    };
    r.layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The web config file's basic auth and headers, before anything else of the request.
async fn guarded(
    State(g): State<Arc<web_config::Guard>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = if g.allows(req.headers()).await {
        next.run(req).await
    } else {
        let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"cdr-exporter metrics\""),
        );
        r
    };
    for (k, v) in g.headers() {
        resp.headers_mut().insert(k, v);
    }
    resp
}

/// `/` and the probes; `/` shows the configuration only where `/metrics` is served.
fn base(with_config: bool) -> Router<Arc<AppState>> {
    let root = if with_config {
        get(landing)
    } else {
        get(|| async { "cdr-exporter receiver\n" })
    };
    Router::new()
        .route("/", root)
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
}

/// Errors the client sees: a status and a one-line reason.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Not a batch (malformed, wrong root, ...): `reason` is the label value.
    #[error("{message}")]
    BadBatch {
        reason: &'static str,
        message: String,
    },
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    #[error("could not read body: {0}")]
    Read(String),
    #[error("cannot store the batch now ({0}); retry later")]
    Unavailable(crate::store::StoreError),
    #[error("too many request bodies in flight (server.max_inflight_bytes); retry later")]
    Busy,
    #[error("missing or wrong credentials (token or basic)")]
    Unauthorized { basic: bool },
    #[error("address not allowed")]
    Forbidden,
    #[error("body not received within {0:?}")]
    Timeout(Duration),
}

impl HttpError {
    /// Every reason of this edge (parse reasons come from the wire formats).
    pub const REASONS: &'static [&'static str] = &[
        "too_large",
        "read_error",
        "journal_error",
        "busy",
        "unauthorized",
        "forbidden",
        "timeout",
    ];

    fn status(&self) -> StatusCode {
        match self {
            HttpError::BadBatch { .. } | HttpError::Read(_) => StatusCode::BAD_REQUEST,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Unavailable(_) | HttpError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden => StatusCode::FORBIDDEN,
            HttpError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            HttpError::BadBatch { reason, .. } => reason,
            HttpError::TooLarge(_) => "too_large",
            HttpError::Read(_) => "read_error",
            HttpError::Unavailable(_) => "journal_error",
            HttpError::Busy => "busy",
            HttpError::Unauthorized { .. } => "unauthorized",
            HttpError::Forbidden => "forbidden",
            HttpError::Timeout(_) => "timeout",
        }
    }
}

impl From<AcceptError> for HttpError {
    fn from(e: AcceptError) -> Self {
        match e {
            AcceptError::Rejected { reason, message } => HttpError::BadBatch { reason, message },
            AcceptError::Unavailable(e) => HttpError::Unavailable(e),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut r = (self.status(), format!("{self}\n")).into_response();
        match self {
            HttpError::Unauthorized { basic } => {
                let h = r.headers_mut();
                h.append(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                // curl (FreeSWITCH) with auth-scheme "any" answers a Basic challenge.
                if basic {
                    h.append(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static("Basic realm=\"cdr-exporter\""),
                    );
                }
            }
            HttpError::Unavailable(_) | HttpError::Busy => {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            _ => {}
        }
        r
    }
}

/// Checks the allowlist and the token before anything of the body is read.
fn authorize(
    cfg: &Access,
    peer: SocketAddr,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), HttpError> {
    if !cfg.allow.is_empty() {
        let ip = peer.ip().to_canonical();
        if !cfg.allow.iter().any(|n| n.contains(&ip)) {
            return Err(HttpError::Forbidden);
        }
    }
    if cfg.token.is_none() && cfg.basic.is_none() {
        return Ok(());
    }
    // Constant time: the comparison must not tell an attacker how much was right.
    use subtle::ConstantTimeEq;
    let same = |a: &[u8], b: &[u8]| bool::from(a.ct_eq(b));
    let authz = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let scheme = |name: &str| {
        let a = authz?;
        let (s, rest) = a.split_once(' ')?;
        s.eq_ignore_ascii_case(name).then(|| rest.trim())
    };
    if let Some(expected) = &cfg.token {
        let given = q
            .get("token")
            .map(String::as_str)
            .or(scheme("Bearer"))
            .unwrap_or("");
        if same(given.as_bytes(), expected.as_bytes()) {
            return Ok(());
        }
    }
    if let Some((user, password)) = &cfg.basic {
        use base64::Engine;
        let given = scheme("Basic")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .unwrap_or_default();
        let expected = format!("{user}:{password}");
        if same(&given, expected.as_bytes()) {
            return Ok(());
        }
    }
    Err(HttpError::Unauthorized {
        basic: cfg.basic.is_some(),
    })
}

/// What every receiver handler gets.
type Request = (
    State<Arc<AppState>>,
    ConnectInfo<SocketAddr>,
    Query<HashMap<String, String>>,
    HeaderMap,
    Body,
);

async fn post_cdr(
    st: State<Arc<AppState>>,
    peer: ConnectInfo<SocketAddr>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post_any(Format::Cms, (st, peer, q, headers, body)).await
}

async fn post_freeswitch(
    st: State<Arc<AppState>>,
    peer: ConnectInfo<SocketAddr>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post_any(Format::FreeSwitch, (st, peer, q, headers, body)).await
}

async fn post_kamailio(
    st: State<Arc<AppState>>,
    peer: ConnectInfo<SocketAddr>,
    q: Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    post_any(Format::Kamailio, (st, peer, q, headers, body)).await
}

async fn post_any(format: Format, req: Request) -> Response {
    let (State(st), ConnectInfo(peer), Query(q), headers, body) = req;
    match receive(&st, format, peer, &q, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => {
            let m = &st.metrics;
            let source = format.source();
            m.batches_rejected
                .inc((m.vocab.get(source), m.vocab.get(e.reason())));
            crate::warn_limited!(%peer, source, reason = e.reason(), error = %e, "request rejected");
            e.into_response()
        }
    }
}

/// A share of `max_inflight_bytes`, given back when dropped.
struct Inflight {
    total: Arc<AtomicU64>,
    held: u64,
    limit: u64,
}

impl Inflight {
    /// Holds `n` bytes in all, or fails if that would pass the limit.
    fn grow_to(&mut self, n: u64) -> Result<(), HttpError> {
        if n <= self.held {
            return Ok(());
        }
        let more = n - self.held;
        let before = self.total.fetch_add(more, Ordering::Relaxed);
        if before + more > self.limit {
            self.total.fetch_sub(more, Ordering::Relaxed);
            return Err(HttpError::Busy);
        }
        self.held = n;
        Ok(())
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.total.fetch_sub(self.held, Ordering::Relaxed);
    }
}

/// Reads the body within the size, time and in-flight bounds.
async fn read_body(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Inflight), HttpError> {
    let limit = st.config.max_body_bytes;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // Refuse early what announces itself as too large.
    if announced.is_some_and(|n| n > limit) {
        return Err(HttpError::TooLarge(limit));
    }
    let mut inflight = Inflight {
        total: st.inflight.clone(),
        held: 0,
        limit: st.config.max_inflight_bytes,
    };
    inflight.grow_to(announced.unwrap_or(0))?;
    let collect = async {
        let mut body = body;
        let mut buf = bytes::BytesMut::with_capacity(announced.unwrap_or(0) as usize);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| HttpError::Read(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                let n = (buf.len() + data.len()) as u64;
                if n > limit {
                    return Err(HttpError::TooLarge(limit));
                }
                inflight.grow_to(n)?;
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    let bytes = tokio::time::timeout(st.config.body_timeout, collect)
        .await
        .map_err(|_| HttpError::Timeout(st.config.body_timeout))??;
    Ok((bytes, inflight))
}

async fn receive(
    st: &AppState,
    format: Format,
    peer: SocketAddr,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    authorize(&st.access(), peer, q, headers)?;
    let (body, _inflight) = read_body(st, headers, body).await?;
    let sender_param = match format {
        Format::Cms => q.get("call_bridge").or_else(|| q.get("system_id")),
        Format::FreeSwitch => q.get("switch"),
        Format::Kamailio => q.get("node"),
    };
    let received = Received {
        format,
        received_at: pipeline::unix_now(),
        peer: Some(peer.ip()),
        sender_param: sender_param.cloned(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let out = st.pipeline.accept(received).await?;
    tracing::debug!(
        %peer,
        source = format.source(),
        applied = out.applied,
        duplicates = out.duplicates,
        invalid = out.invalid,
        missing = out.missing,
        "request applied"
    );
    Ok((StatusCode::OK, "OK\n").into_response())
}

async fn get_metrics(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let h = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let format = m::Format::negotiate(h(header::ACCEPT));
    let ct = (header::CONTENT_TYPE, format.content_type());
    // Encoding is CPU work: off the async workers, so a large scrape cannot stall batches.
    let st2 = st.clone();
    let gzip = crate::metrics::accepts_gzip(h(header::ACCEPT_ENCODING));
    let body = tokio::task::spawn_blocking(move || {
        if gzip {
            st2.exposition.encode_gzip(format)
        } else {
            st2.exposition.encode(format)
        }
    })
    .await
    .unwrap_or_default();
    let vary = (header::VARY, "Accept, Accept-Encoding");
    if gzip {
        ([ct, vary, (header::CONTENT_ENCODING, "gzip")], body).into_response()
    } else {
        ([ct, vary], body).into_response()
    }
}

/// The listener opens only after recovery, so answering at all means ready.
async fn ready() -> &'static str {
    "Ready\n"
}

async fn landing(State(st): State<Arc<AppState>>) -> Html<String> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let rows: String = st
        .config
        .summary
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><td>{}</td><td><code>{}</code></td></tr>",
                esc(k),
                esc(v)
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cdr-exporter</title></head><body>\
<h1>cdr-exporter {ver}</h1>\
<p>CDR receiver for Cisco Meeting Server, FreeSWITCH and Kamailio/rtpengine. Add <code>http://THIS-HOST:PORT{cdr}</code> as a CDR receiver on each Call Bridge \
(Web Admin &gt; Configure &gt; CDR settings, or <code>POST /api/v1/system/cdrReceivers</code> with <code>uri=...</code>); \
point FreeSWITCH's mod_xml_cdr <code>url</code> at <code>{fs}</code> and Kamailio's MOS reports at <code>{kam}</code>.</p>\
<ul><li><a href=\"{metrics}\">{metrics}</a> (Prometheus)</li><li><a href=\"/-/healthy\">/-/healthy</a></li><li><a href=\"/-/ready\">/-/ready</a></li></ul>\
<h2>Configuration in force</h2><table>{rows}</table></body></html>",
        ver = env!("CARGO_PKG_VERSION"),
        cdr = esc(&st.config.cdr_path),
        fs = esc(&st.config.freeswitch_path),
        kam = esc(&st.config.kamailio_path),
        metrics = esc(&st.config.metrics_path),
    ))
}
