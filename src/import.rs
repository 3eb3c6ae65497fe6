//! `cdr-exporter import-freeswitch DIR`: the CDRs FreeSWITCH gave up on (its `err-log-dir`
//! files) posted to the receiver as FreeSWITCH would have, so none is lost.
//!
//! Each file is checked locally (name `[a_]<uuid>.cdr.xml|json`, decodable, its uuid the
//! CDR's own), then POSTed in the encoding it holds with `?uuid=<stem>`. The receiver
//! dedupes on (switch, uuid), so importing a file twice, or one whose first POST did arrive,
//! counts it once. After a 2xx the file moves to `DIR/imported/` (unless `keep`), so a rerun
//! only tries what is left.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use crate::freeswitch::{self, Encoding};

/// Largest file read (the exporter's default `max_body_bytes`).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Tries per file on a 5xx or a connection failure.
const TRIES: u32 = 5;

/// What to import and where to.
#[derive(Clone, Debug)]
pub struct ImportConfig {
    pub dir: PathBuf,
    /// The receiver's FreeSWITCH URL, e.g. `http://127.0.0.1:19477/freeswitch/cdr`.
    pub target: String,
    pub token: Option<String>,
    /// `user:password` for basic auth.
    pub basic: Option<String>,
    /// Leave imported files where they are.
    pub keep: bool,
    pub progress: bool,
}

/// How the import went, file by file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub posted: usize,
    /// Files that are not CDRs FreeSWITCH wrote (left in place), with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Files the receiver refused (4xx) or that could not be delivered (left in place).
    pub failed: Vec<(PathBuf, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("target {0:?}: {1}")]
    Target(String, String),
}

/// An err-log-dir file ready to post.
struct Prepared {
    path: PathBuf,
    stem: String,
    content_type: &'static str,
    body: Vec<u8>,
}

/// Reads and checks one file; `Err` is the reason it is not importable.
fn prepare(path: &Path) -> Result<Prepared, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("file name is not UTF-8")?;
    let stem = freeswitch::ErrLogName::parse(name)
        .ok_or("not a FreeSWITCH err-log file name ([a_]<uuid>.cdr.xml or .cdr.json)")?
        .stem
        .to_owned();
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FILE_BYTES {
        return Err(format!("{len} bytes, more than {MAX_FILE_BYTES}"));
    }
    let contents = std::fs::read(path).map_err(|e| e.to_string())?;
    freeswitch::parse_err_log_file(name, &contents).map_err(|e| e.to_string())?;
    let encoding = freeswitch::decode_err_log_contents(&contents)
        .map_err(|e| e.to_string())?
        .encoding;
    // The file holds the encoded text without `cdr=`: put the form field back.
    let body = match encoding {
        Encoding::TextXml | Encoding::Json => contents,
        Encoding::UrlEncoded | Encoding::Base64 | Encoding::Plain => {
            [b"cdr=".as_slice(), &contents].concat()
        }
    };
    Ok(Prepared {
        path: path.to_owned(),
        stem,
        content_type: encoding.content_type(),
        body,
    })
}

/// The files to import: `*.cdr.xml` and `*.cdr.json` directly in `dir`, by name.
fn candidates(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ImportError::Dir(dir.to_owned(), e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".cdr.xml") || n.ends_with(".cdr.json"))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// One keep-alive connection to the receiver, reopened when it breaks.
struct Client {
    addr: String,
    host: String,
    path: String,
    auth: Option<String>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    fn new(cfg: &ImportConfig) -> Result<Client, ImportError> {
        let bad = |m: &str| ImportError::Target(cfg.target.clone(), m.to_owned());
        let uri: hyper::Uri = cfg.target.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad(
                "only http:// is supported (run it beside the exporter)",
            ));
        }
        let a = uri.authority().ok_or_else(|| bad("needs a host"))?;
        let mut path = uri.path().to_owned();
        let mut query: Vec<String> = uri.query().map(|q| vec![q.to_owned()]).unwrap_or_default();
        if let Some(t) = &cfg.token {
            query.push(format!("token={}", freeswitch::encode_value(t)));
        }
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        use base64::Engine;
        let auth = cfg.basic.as_ref().map(|b| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(b)
            )
        });
        Ok(Client {
            addr: format!("{}:{}", a.host(), a.port_u16().unwrap_or(80)),
            host: a.as_str().to_owned(),
            path,
            auth,
            sender: None,
        })
    }

    /// POSTs one file; the status, or the connection error.
    async fn post(&mut self, p: &Prepared) -> Result<u16, String> {
        if self.sender.as_mut().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await.map_err(|e| e.to_string())?;
        let sep = if self.path.contains('?') { '&' } else { '?' };
        let mut req = hyper::Request::post(format!("{}{sep}uuid={}", self.path, p.stem))
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, p.content_type)
            .header(hyper::header::USER_AGENT, "cdr-exporter-import");
        if let Some(a) = &self.auth {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(Bytes::from(p.body.clone())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
            .await
            .map_err(|_| "no answer within 60 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let _ = resp.into_body().collect().await;
        Ok(status)
    }
}

/// Imports every err-log file in `cfg.dir`.
pub async fn import_freeswitch(cfg: &ImportConfig) -> Result<ImportSummary, ImportError> {
    let files = candidates(&cfg.dir)?;
    let mut client = Client::new(cfg)?;
    let done_dir = cfg.dir.join("imported");
    let bar = if cfg.progress {
        indicatif::ProgressBar::new(files.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files, {per_sec}, eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    let mut summary = ImportSummary::default();
    for path in files {
        bar.inc(1);
        let p = match prepare(&path) {
            Ok(p) => p,
            Err(e) => {
                summary.unreadable.push((path, e));
                continue;
            }
        };
        let mut outcome = Err(String::new());
        for attempt in 0..TRIES {
            outcome = client.post(&p).await;
            match outcome {
                // Retrying cannot help a 4xx; a 5xx or a broken connection may pass later.
                Ok(s) if s < 500 => break,
                _ => {
                    client.sender = None;
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        match outcome {
            Ok(s) if (200..300).contains(&s) => {
                summary.posted += 1;
                if !cfg.keep {
                    let moved = std::fs::create_dir_all(&done_dir).and_then(|_| {
                        std::fs::rename(&p.path, done_dir.join(p.path.file_name().unwrap()))
                    });
                    if let Err(e) = moved {
                        bar.println(format!(
                            "{}: posted, but not moved to {}: {e}",
                            p.path.display(),
                            done_dir.display()
                        ));
                    }
                }
            }
            Ok(s) => summary
                .failed
                .push((p.path, format!("the receiver answered {s}"))),
            Err(e) => summary.failed.push((p.path, e)),
        }
        bar.set_message(format!(
            "{} posted, {} unreadable, {} failed",
            summary.posted,
            summary.unreadable.len(),
            summary.failed.len()
        ));
    }
    bar.finish();
    Ok(summary)
}
