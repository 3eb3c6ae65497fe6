//! The HTTP edge: `POST /cdr`, `GET /metrics`, `/`, `/-/healthy`, `/-/ready`; access
//! control, limits, TLS, the accept loop and the errors clients see.

pub mod serve;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use parking_lot::Mutex;

use crate::cdr::{self, ParseError};
use crate::ingest::{Ingest, Source};
use crate::metrics::{Exposition, Format};
use crate::store::{Journal, StoreError};

/// What the HTTP layer needs, as plain values.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub cdr_path: String,
    pub metrics_path: String,
    pub max_body_bytes: u64,
    pub quarantine_dir: PathBuf,
    pub quarantine_max_bytes: u64,
    /// Shown on the landing page.
    pub summary: Vec<(String, String)>,
    /// Shared secret for the CDR path (`?token=` or `Authorization: Bearer`).
    pub token: Option<String>,
    /// Networks allowed to POST records; empty allows all.
    pub allow: Vec<ipnet::IpNet>,
    /// Time a client has to send a body.
    pub body_timeout: Duration,
}

pub struct AppState {
    pub ingest: Arc<Ingest>,
    pub exposition: Exposition,
    pub config: HttpConfig,
    pub ready: AtomicBool,
    /// Held shared while a batch is journaled and applied, exclusively while a snapshot
    /// copies the state: a snapshot never sees half a batch.
    pub gate: tokio::sync::RwLock<()>,
    journal: std::sync::OnceLock<Journal>,
    quarantine: Quarantine,
}

impl AppState {
    pub fn new(ingest: Arc<Ingest>, exposition: Exposition, config: HttpConfig) -> Arc<AppState> {
        let quarantine =
            Quarantine::new(config.quarantine_dir.clone(), config.quarantine_max_bytes);
        Arc::new(AppState {
            ingest,
            exposition,
            config,
            ready: AtomicBool::new(true),
            gate: tokio::sync::RwLock::new(()),
            journal: std::sync::OnceLock::new(),
            quarantine,
        })
    }

    /// Makes every accepted batch durable before it is applied and acknowledged.
    pub fn set_journal(&self, j: Journal) {
        let _ = self.journal.set(j);
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.get()
    }
}

/// Everything on one listener.
pub fn router(state: Arc<AppState>) -> Router {
    base(&state)
        .merge(cdr_routes(&state))
        .route(&state.config.metrics_path, get(get_metrics))
        .with_state(state)
}

/// The receiver alone (when /metrics has its own listener).
pub fn cdr_router(state: Arc<AppState>) -> Router {
    base(&state).merge(cdr_routes(&state)).with_state(state)
}

/// The receiver path, with and without a trailing slash, and `POST /` for receiver URIs
/// configured without a path: a Call Bridge that gets 404 retries forever.
fn cdr_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let path = state.config.cdr_path.trim_end_matches('/');
    let mut r = Router::new().route("/", post(post_cdr));
    if !path.is_empty() {
        r = r
            .route(path, post(post_cdr))
            .route(&format!("{path}/"), post(post_cdr));
    }
    r
}
/// /metrics alone, for `server.metrics_listen`.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    base(&state)
        .route(&state.config.metrics_path, get(get_metrics))
        .with_state(state)
}

fn base(_: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(landing))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
}

/// Errors the client sees: a status and a one-line reason.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    BadBatch(#[from] ParseError),
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    #[error("could not read body: {0}")]
    Read(String),
    #[error("cannot store the batch now ({0}); retry later")]
    Unavailable(StoreError),
    #[error("missing or wrong token")]
    Unauthorized,
    #[error("address not allowed")]
    Forbidden,
    #[error("body not received within {0:?}")]
    Timeout(Duration),
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::BadBatch(_) => StatusCode::BAD_REQUEST,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Read(_) => StatusCode::BAD_REQUEST,
            HttpError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Unauthorized => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden => StatusCode::FORBIDDEN,
            HttpError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            HttpError::BadBatch(e) => e.as_label(),
            HttpError::TooLarge(_) => "too_large",
            HttpError::Read(_) => "read_error",
            HttpError::Unavailable(_) => "journal_error",
            HttpError::Unauthorized => "unauthorized",
            HttpError::Forbidden => "forbidden",
            HttpError::Timeout(_) => "timeout",
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut r = (self.status(), format!("{self}\n")).into_response();
        match self {
            HttpError::Unauthorized => {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            HttpError::Unavailable(_) => {
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
    cfg: &HttpConfig,
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
    if let Some(expected) = &cfg.token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let given = q.get("token").map(String::as_str).or(bearer).unwrap_or("");
        // Constant time: the comparison must not tell an attacker how much was right.
        use subtle::ConstantTimeEq;
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(HttpError::Unauthorized);
        }
    }
    Ok(())
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn post_cdr(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive(&st, peer, &q, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => {
            let m = &st.ingest.metrics;
            let r = m.id(&m.d.reject_reason, e.reason());
            m.batches_rejected.with([r], |c| c.inc());
            tracing::warn!(%peer, reason = e.reason(), error = %e, "CDR batch rejected");
            e.into_response()
        }
    }
}

async fn receive(
    st: &AppState,
    peer: SocketAddr,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    authorize(&st.config, peer, q, headers)?;
    let limit = st.config.max_body_bytes;
    // Refuse early what announces itself as too large.
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > limit {
            return Err(HttpError::TooLarge(limit));
        }
    }
    let collect = http_body_util::Limited::new(body, limit as usize).collect();
    let collected = tokio::time::timeout(st.config.body_timeout, collect)
        .await
        .map_err(|_| HttpError::Timeout(st.config.body_timeout))?;
    let bytes: Bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(HttpError::TooLarge(limit))
        }
        Err(e) => return Err(HttpError::Read(e.to_string())),
    };
    let batch = match cdr::parse(&bytes) {
        Ok(b) => b,
        Err(e) => {
            st.quarantine.keep(&bytes, e.as_label()).await;
            return Err(e.into());
        }
    };
    let query_cb = q
        .get("call_bridge")
        .or_else(|| q.get("system_id"))
        .map(String::as_str);
    let src = Source {
        query_call_bridge: query_cb,
        peer: Some(peer.ip()),
    };
    let received = now();
    // Journal, then apply, then 200: once acknowledged, the batch survives a crash.
    let gate = st.gate.read().await;
    if let Some(j) = st.journal() {
        j.append(
            received,
            Some(peer.ip()),
            query_cb.map(str::to_owned),
            bytes.clone(),
        )
        .await
        .map_err(HttpError::Unavailable)?;
    }
    let out = st.ingest.apply(&batch, &src, received);
    drop(gate);
    tracing::debug!(
        %peer,
        session = %batch.session,
        records = batch.records.len(),
        applied = out.applied,
        duplicates = out.duplicates,
        invalid = out.invalid,
        missing = out.missing,
        "CDR batch applied"
    );
    if out.missing > 0 {
        tracing::warn!(%peer, session = %batch.session, missing = out.missing, "CDR records lost before reaching the exporter");
    }
    Ok((StatusCode::OK, "OK\n").into_response())
}

async fn get_metrics(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = st.exposition.encode(format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready\n").into_response()
    }
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
<p>CDR receiver for Cisco Meeting Server. Add <code>http://THIS-HOST:PORT{cdr}</code> as a CDR receiver on each Call Bridge \
(Web Admin &gt; Configure &gt; CDR settings, or <code>POST /api/v1/system/cdrReceivers</code> with <code>uri=...</code>).</p>\
<ul><li><a href=\"{metrics}\">{metrics}</a> (Prometheus)</li><li><a href=\"/-/healthy\">/-/healthy</a></li><li><a href=\"/-/ready\">/-/ready</a></li></ul>\
<h2>Configuration in force</h2><table>{rows}</table></body></html>",
        ver = env!("CARGO_PKG_VERSION"),
        cdr = esc(&st.config.cdr_path),
        metrics = esc(&st.config.metrics_path),
    ))
}

/// Keeps rejected bodies for diagnosis, bounded in total size (oldest dropped first).
struct Quarantine {
    dir: PathBuf,
    max_bytes: u64,
    files: Mutex<(std::collections::VecDeque<(PathBuf, u64)>, u64)>,
    seq: AtomicU64,
}

impl Quarantine {
    fn new(dir: PathBuf, max_bytes: u64) -> Quarantine {
        let mut files: Vec<(PathBuf, u64, SystemTime)> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if let Ok(md) = e.metadata() {
                    if md.is_file() {
                        files.push((e.path(), md.len(), md.modified().unwrap_or(UNIX_EPOCH)));
                    }
                }
            }
        }
        files.sort_by_key(|f| f.2);
        let total = files.iter().map(|f| f.1).sum();
        Quarantine {
            dir,
            max_bytes,
            files: Mutex::new((files.into_iter().map(|f| (f.0, f.1)).collect(), total)),
            seq: AtomicU64::new(0),
        }
    }

    async fn keep(&self, body: &[u8], reason: &str) {
        let size = body.len() as u64;
        if self.max_bytes == 0 || size > self.max_bytes {
            return;
        }
        let name = format!(
            "{}-{}-{}.body",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            self.seq.fetch_add(1, Ordering::Relaxed),
            reason
        );
        let path = self.dir.join(name);
        let mut doomed = Vec::new();
        {
            let mut g = self.files.lock();
            while g.1 + size > self.max_bytes {
                match g.0.pop_front() {
                    Some((p, s)) => {
                        g.1 -= s;
                        doomed.push(p);
                    }
                    None => break,
                }
            }
            g.0.push_back((path.clone(), size));
            g.1 += size;
        }
        let body = body.to_vec();
        let dir = self.dir.clone();
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for p in doomed {
                let _ = std::fs::remove_file(p);
            }
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, body)
        })
        .await;
        if let Ok(Err(e)) = res {
            tracing::warn!(error = %e, dir = %self.dir.display(), "could not quarantine rejected body");
        }
    }
}
