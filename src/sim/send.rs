//! The sending side of the CDR protocol, per Call Bridge, as CMS does it: records queue in
//! order, go out in batches of 1..K over one keep-alive HTTP/1.1 connection, and the next batch
//! waits for the 200 of the previous one. Connection errors, timeouts and 5xx retry the same
//! batch with exponential backoff; a 4xx is counted and skipped (retrying cannot help).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::StatusCode;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};

use super::expect::Mirror;
use super::flow::SimRecord;
use super::{Counters, SimError, TargetCounters};

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long a batch waits for more records before it goes out with what it has.
const LINGER: Duration = Duration::from_millis(5);

/// Where a bridge posts: `http://host:port/path?query`.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// `host:port` to connect to.
    pub connect: String,
    /// The `Host` header.
    pub host: String,
    /// Origin-form request target (path and query).
    pub path_and_query: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, SimError> {
        let bad = |msg: &str| SimError::Target {
            url: url.to_owned(),
            msg: msg.to_owned(),
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(bad(&format!("scheme {other} is not supported (use http)"))),
            None => return Err(bad("needs a scheme and a host (http://host:port/cdr)")),
        }
        let auth = uri.authority().ok_or_else(|| bad("needs a host"))?;
        let port = auth.port_u16().unwrap_or(80);
        let host = auth.host();
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        Ok(Target {
            connect: format!("{host}:{port}"),
            host: auth.as_str().to_owned(),
            path_and_query,
        })
    }

    /// The same target with `name=value` added to the query.
    pub fn with_query(&self, name: &str, value: &str) -> Target {
        let sep = if self.path_and_query.contains('?') {
            if self.path_and_query.ends_with(['?', '&']) {
                ""
            } else {
                "&"
            }
        } else {
            "?"
        };
        Target {
            path_and_query: format!("{}{sep}{name}={value}", self.path_and_query),
            ..self.clone()
        }
    }
}

/// The answer to one batch after all retries.
enum Delivery {
    Acknowledged,
    Rejected(StatusCode),
    /// The run was aborted before a 200.
    Aborted,
}

enum Attempt {
    Ok,
    Rejected(StatusCode),
    Retry(String),
}

pub(crate) struct Sender {
    pub target: Target,
    pub call_bridge: Option<String>,
    pub batch_max: usize,
    pub duplicate_rate: f64,
    pub timeout: Duration,
    pub rng: ChaCha8Rng,
    pub counters: Arc<Counters>,
    /// This receiver's share of `counters`.
    pub per_target: Arc<TargetCounters>,
    pub bridge: String,
    conn: Option<SendRequest<Full<Bytes>>>,
    mirror: Mirror,
}

impl Sender {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bridge: String,
        target: Target,
        call_bridge: Option<String>,
        batch_max: usize,
        duplicate_rate: f64,
        timeout: Duration,
        rng: ChaCha8Rng,
        counters: Arc<Counters>,
        per_target: Arc<TargetCounters>,
    ) -> Sender {
        Sender {
            target,
            call_bridge,
            batch_max,
            duplicate_rate,
            timeout,
            rng,
            counters,
            per_target,
            bridge,
            conn: None,
            mirror: Mirror::default(),
        }
    }

    /// Sends everything the generator queues, until it closes the queue and the queue is
    /// empty, or `abort` turns true. Returns the exporter's expected view of this bridge.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<SimRecord>,
        mut abort: watch::Receiver<bool>,
    ) -> Mirror {
        let mut held: Option<SimRecord> = None;
        loop {
            let first = match held.take() {
                Some(r) => r,
                None => {
                    tokio::select! {
                        r = rx.recv() => match r {
                            Some(r) => r,
                            None => break,
                        },
                        _ = aborted(&mut abort) => break,
                    }
                }
            };
            let want = self.rng.random_range(1..=self.batch_max);
            let mut batch = vec![first];
            while batch.len() < want {
                let next = match rx.try_recv() {
                    Ok(r) => Some(r),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        tokio::time::timeout(LINGER, rx.recv()).await.ok().flatten()
                    }
                };
                let Some(next) = next else { break };
                // One session per batch: a restart starts a new one.
                if next.session_no != batch[0].session_no {
                    held = Some(next);
                    break;
                }
                batch.push(next);
            }
            let body = Bytes::from(super::xml::envelope(
                &batch[0].session,
                self.call_bridge.as_deref(),
                batch.iter().map(|r| r.xml.as_str()),
            ));
            let n = batch.len() as u64;
            self.counters.sent.fetch_add(n, Relaxed);
            self.per_target.sent.fetch_add(n, Relaxed);
            match self.deliver(&body, &mut abort).await {
                Delivery::Acknowledged => {
                    self.counters.acknowledged.fetch_add(n, Relaxed);
                    self.per_target.acknowledged.fetch_add(n, Relaxed);
                    self.mirror.acknowledged(&batch);
                    // As when the Call Bridge missed our 200: the same batch again.
                    if self.duplicate_rate > 0.0 && self.rng.random_bool(self.duplicate_rate) {
                        match self.deliver(&body, &mut abort).await {
                            Delivery::Acknowledged => {
                                self.counters.duplicate_batches.fetch_add(1, Relaxed);
                                self.counters.duplicate_records.fetch_add(n, Relaxed);
                                self.per_target.duplicate_records.fetch_add(n, Relaxed);
                            }
                            Delivery::Rejected(s) => self.rejected(s, n),
                            Delivery::Aborted => break,
                        }
                    }
                }
                Delivery::Rejected(s) => self.rejected(s, n),
                Delivery::Aborted => break,
            }
        }
        self.mirror
    }

    fn rejected(&self, status: StatusCode, n: u64) {
        self.counters.rejected_batches.fetch_add(1, Relaxed);
        self.counters.rejected_records.fetch_add(n, Relaxed);
        self.per_target.rejected_records.fetch_add(n, Relaxed);
        tracing::warn!(bridge = %self.bridge, %status, records = n, "CDR batch rejected by the receiver; not retried");
    }

    /// Posts `body` until it gets a final answer, backing off between attempts.
    async fn deliver(&mut self, body: &Bytes, abort: &mut watch::Receiver<bool>) -> Delivery {
        let mut backoff = BACKOFF_START;
        let mut first = true;
        loop {
            if !first {
                self.counters.retries.fetch_add(1, Relaxed);
                self.per_target.retries.fetch_add(1, Relaxed);
            }
            first = false;
            let attempt = tokio::select! {
                a = self.attempt(body.clone()) => a,
                _ = aborted(abort) => return Delivery::Aborted,
            };
            match attempt {
                Attempt::Ok => return Delivery::Acknowledged,
                Attempt::Rejected(s) => return Delivery::Rejected(s),
                Attempt::Retry(why) => {
                    tracing::debug!(bridge = %self.bridge, error = %why, backoff = ?backoff, "CDR batch not acknowledged; retrying");
                    *self.counters.last_error.lock() = Some(why);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = aborted(abort) => return Delivery::Aborted,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One POST on the kept-alive connection (opened if needed).
    async fn attempt(&mut self, body: Bytes) -> Attempt {
        let timeout = self.timeout;
        let res = tokio::time::timeout(timeout, async {
            let conn = match self.conn.as_mut() {
                Some(c) if !c.is_closed() => c,
                _ => {
                    let c = connect(&self.target.connect).await?;
                    self.counters.connections.fetch_add(1, Relaxed);
                    self.per_target.connections.fetch_add(1, Relaxed);
                    self.conn.insert(c)
                }
            };
            conn.ready().await.map_err(|e| e.to_string())?;
            let req = hyper::Request::post(self.target.path_and_query.as_str())
                .header(hyper::header::HOST, self.target.host.as_str())
                .header(hyper::header::CONTENT_TYPE, "application/xml")
                .body(Full::new(body))
                .map_err(|e| e.to_string())?;
            let sent = Instant::now();
            let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            // Read the answer to the end so the connection can carry the next batch.
            resp.into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, sent.elapsed()))
        })
        .await;
        match res {
            Ok(Ok((StatusCode::OK, latency))) => {
                // From writing the POST to reading its 200: what a Call Bridge waits.
                self.counters.ack_latency.record(latency);
                Attempt::Ok
            }
            Ok(Ok((s, _))) if s.is_client_error() => Attempt::Rejected(s),
            Ok(Ok((s, _))) => Attempt::Retry(format!("answered {s}")),
            Ok(Err(e)) => {
                self.conn = None;
                Attempt::Retry(e)
            }
            Err(_) => {
                self.conn = None;
                Attempt::Retry(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                ))
            }
        }
    }
}

/// Resolves when `abort` is (or becomes) true; never if its sender is gone while false.
async fn aborted(abort: &mut watch::Receiver<bool>) {
    if abort.wait_for(|a| *a).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:9000/cdr").unwrap();
        assert_eq!(t.connect, "127.0.0.1:9000");
        assert_eq!(t.host, "127.0.0.1:9000");
        assert_eq!(t.path_and_query, "/cdr");
        assert_eq!(
            t.with_query("call_bridge", "sim-cb-2").path_and_query,
            "/cdr?call_bridge=sim-cb-2"
        );
        let t = Target::parse("http://localhost/cdr?token=x").unwrap();
        assert_eq!(t.connect, "localhost:80");
        assert_eq!(
            t.with_query("call_bridge", "sim-cb-0").path_and_query,
            "/cdr?token=x&call_bridge=sim-cb-0"
        );
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!(t.connect, "[::1]:8080");
        assert_eq!(t.path_and_query, "/");
        assert!(Target::parse("https://x/cdr").is_err());
        assert!(Target::parse("/cdr").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
