//! Test support: fixtures, a real server on port 0, a keep-alive HTTP/1.1 client, and a
//! reader for scraped samples.
#![allow(dead_code)]

pub mod binary;
pub mod expect;
pub mod records;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cdr_exporter::config::Config;
use http_body_util::{BodyExt, Full};
use tokio::sync::oneshot;

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A child process that is killed and reaped when dropped, so a failing test never leaves
/// an exporter running.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A config for tests: loopback, port 0, a temp data dir.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.to_owned(),
        ..Config::default()
    }
}

/// A running exporter; dropping the guard without `stop` aborts it.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<Result<(), cdr_exporter::RunError>>>,
}

impl Server {
    pub async fn start(cfg: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(cdr_exporter::run(cfg, listener, async move {
            let _ = rx.await;
        }));
        Server {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops abruptly, as a crash would (no final snapshot), and waits until the data
    /// directory's lock is free again so the next start can take it.
    pub async fn abort(mut self, data_dir: &std::path::Path) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        let lock = data_dir.join("lock");
        eventually(Duration::from_secs(10), "the data directory lock", || {
            let lock = lock.clone();
            async move {
                let f = std::fs::File::open(&lock).ok()?;
                f.try_lock().ok().map(|_| ())
            }
        })
        .await;
    }

    /// Graceful shutdown; returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), cdr_exporter::RunError> {
        let _ = self.shutdown.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("server did not stop")
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// One HTTP/1.1 connection: every request goes over the same TCP stream (keep-alive).
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
    /// The body as received (a gzip body is not text).
    pub raw: Bytes,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Conn { sender, addr }
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        self.sender
            .ready()
            .await
            .expect("connection closed by server");
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/xml");
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = self.sender.send_request(req).await.expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            raw: body,
        }
    }

    /// A request with extra headers.
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &hyper::HeaderMap,
        body: Vec<u8>,
    ) -> Resp {
        self.sender
            .ready()
            .await
            .expect("connection closed by server");
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = self
            .sender
            .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            raw: body,
        }
    }

    /// POSTs the guide's chapter 6 posts `posts` (e.g. `1..=6`) in order, each answered 200.
    pub async fn post_ch6(&mut self, posts: std::ops::RangeInclusive<u32>) {
        for i in posts {
            let r = self
                .post("/cdr", fixture(&format!("ch6-post{i}.xml")))
                .await;
            assert_eq!(r.status, 200, "ch6-post{i}: {}", r.body);
        }
    }

    pub async fn post(&mut self, path: &str, body: Vec<u8>) -> Resp {
        self.request("POST", path, None, body).await
    }

    /// A POST with this Content-Type (none if `None`).
    pub async fn post_typed(
        &mut self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut h = hyper::HeaderMap::new();
        if let Some(ct) = content_type {
            h.insert("content-type", ct.parse().unwrap());
        }
        self.request_with("POST", path, &h, body).await
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, None, Vec::new()).await
    }

    pub async fn scrape(&mut self) -> Scrape {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, 200);
        Scrape(r.body)
    }
}

/// Polls `f` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Scraped text with helpers to read samples.
pub struct Scrape(pub String);

impl Scrape {
    /// Every sample a restart must restore, sorted: all but what belongs to one process
    /// (process_*, HTTP self-metrics and the series count they add to, the log limiter's
    /// count, which in-process servers share) and the journal, snapshot and recovery
    /// housekeeping.
    pub fn restored_state(&self) -> Vec<String> {
        const PER_PROCESS: &[&str] = &[
            "process_",
            "cdr_exporter_http_",
            "cdr_exporter_series ",
            "cdr_exporter_log_lines_suppressed_total",
            "cdr_exporter_journal",
            "cdr_exporter_snapshot",
            "cdr_exporter_recovery",
        ];
        let mut v: Vec<String> = self
            .0
            .lines()
            .filter(|l| !l.starts_with('#') && !PER_PROCESS.iter().any(|p| l.starts_with(p)))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }

    /// Every sample `(labels, value)` named exactly `name`.
    pub fn samples(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        let mut out = Vec::new();
        for line in self.0.lines() {
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let (n, labels) = match series.find('{') {
                Some(i) => (&series[..i], &series[i + 1..series.len() - 1]),
                None => (series, ""),
            };
            if n != name {
                continue;
            }
            let v: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap(),
            };
            out.push((parse_labels(labels), v));
        }
        out
    }

    /// Sum of the samples of `name` whose labels include all of `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .into_iter()
            .filter(|(l, _)| {
                want.iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The one sample of `name` with exactly the labels `want` (in any order).
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let hits: Vec<f64> = self
            .samples(name)
            .into_iter()
            .filter(|(l, _)| {
                l.len() == want.len()
                    && want
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, v)| v)
            .collect();
        assert!(
            hits.len() <= 1,
            "{name} {want:?} matched {} series",
            hits.len()
        );
        hits.first().copied()
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let eq = rest.find('=').unwrap();
        let key = rest[..eq].trim_start_matches(',').to_string();
        let mut val = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = 0;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, n) = chars.next().unwrap();
                    val.push(match n {
                        'n' => '\n',
                        other => other,
                    });
                }
                '"' => {
                    end = eq + 2 + i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        out.push((key, val));
        rest = rest[end..].trim_start_matches(',');
    }
    out
}
