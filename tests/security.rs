//! The receiver as a network service: TLS (and its reload), token and allowlist, a separate
//! metrics listener, the connection limit and slow-client timeouts.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate for 127.0.0.1 / localhost, written as PEM files.
fn write_cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key, ck.cert.der().to_vec())
}

/// Connects over TLS trusting exactly `ca_der`; returns the server certificate it saw.
async fn tls_post(
    addr: SocketAddr,
    ca_der: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let seen = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok((status, seen))
}

#[tokio::test]
async fn tls_12_and_13_and_reload_when_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der1) = write_cert(dir.path(), "a");
    let mut cfg = test_config(dir.path());
    cfg.tls.cert_file = cert.to_str().unwrap().into();
    cfg.tls.key_file = key.to_str().unwrap().into();
    cfg.tls.reload_interval_seconds = 1;
    let server = Server::start(cfg).await;
    let (st, seen) = tls_post(
        server.addr,
        &der1,
        &[&rustls::version::TLS13],
        "/cdr",
        fixture("ch6-post1.xml"),
    )
    .await
    .unwrap();
    assert_eq!((st, seen == der1), (200, true));
    let (st, _) = tls_post(
        server.addr,
        &der1,
        &[&rustls::version::TLS12],
        "/cdr",
        fixture("ch6-post2.xml"),
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "TLS 1.2 works too");
    // Plain HTTP on the TLS port does not get through.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("200 OK"));

    // New certificate files: new connections get them without a restart.
    std::thread::sleep(Duration::from_millis(1100)); // a different mtime
    let (cert2, key2, der2) = write_cert(dir.path(), "b");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    let seen = eventually(Duration::from_secs(20), "the reloaded certificate", || {
        let der2 = der2.clone();
        let addr = server.addr;
        async move {
            match tls_post(
                addr,
                &der2,
                &[&rustls::version::TLS13],
                "/cdr",
                fixture("ch6-post3.xml"),
            )
            .await
            {
                Ok((200, seen)) => Some(seen),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(seen, der2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn token_in_query_or_bearer_header_and_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.auth.token = "s3cret-token".into();
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(
        c.post("/cdr", fixture("ch6-post1.xml")).await.status,
        401,
        "no token"
    );
    assert_eq!(
        c.post("/cdr?token=wrong", fixture("ch6-post1.xml"))
            .await
            .status,
        401
    );
    assert_eq!(
        c.post("/cdr?token=s3cret-tokenX", fixture("ch6-post1.xml"))
            .await
            .status,
        401,
        "a longer token is wrong too"
    );
    assert_eq!(
        c.post(
            "/cdr?token=s3cret-token&call_bridge=cms1",
            fixture("ch6-post1.xml")
        )
        .await
        .status,
        200
    );
    let mut bearer = hyper::HeaderMap::new();
    bearer.insert("authorization", "Bearer s3cret-token".parse().unwrap());
    let r = c
        .request_with("POST", "/cdr", &bearer, fixture("ch6-post2.xml"))
        .await;
    assert_eq!(r.status, 200);
    let s = c.scrape().await;
    assert_eq!(
        s.get(
            "cdr_exporter_batches_rejected_total",
            &[("source", "cms"), ("reason", "unauthorized")]
        ),
        Some(3.0)
    );
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[]),
        3.0,
        "nothing of a refused batch is applied"
    );
    assert!(
        !s.0.contains("s3cret"),
        "the token never appears in metrics"
    );
    let landing = c.get("/").await.body;
    assert!(!landing.contains("s3cret"), "nor on the landing page");
    server.stop().await.unwrap();

    // Allowlist: loopback is not in 10.0.0.0/8.
    let mut cfg = test_config(dir.path());
    cfg.data_dir = dir.path().join("b");
    cfg.auth.allow = vec!["10.0.0.0/8".into()];
    let server = Server::start(cfg.clone()).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(c.post("/cdr", fixture("ch6-post1.xml")).await.status, 403);
    assert_eq!(
        c.scrape().await.get(
            "cdr_exporter_batches_rejected_total",
            &[("source", "cms"), ("reason", "forbidden")]
        ),
        Some(1.0)
    );
    server.stop().await.unwrap();
    cfg.auth.allow = vec!["10.0.0.0/8".into(), "127.0.0.1".into()];
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(c.post("/cdr", fixture("ch6-post1.xml")).await.status, 200);
    server.stop().await.unwrap();
}

#[test]
fn token_is_never_logged_and_sighup_reloads_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = write_cert(dir.path(), "a");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfgfile = dir.path().join("c.toml");
    std::fs::write(
        &cfgfile,
        format!(
            "listen = \"127.0.0.1:{port}\"\nlog_level = \"trace\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\nreload_interval_seconds = 0\n[auth]\ntoken = \"tok-5up3r-s3cr3t\"\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args([
                "--config",
                cfgfile.to_str().unwrap(),
                "--data-dir",
                dir.path().join("d").to_str().unwrap(),
            ])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let der_a = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(&cert)
            .unwrap()
            .to_vec()
    };
    rt.block_on(async {
        let start = Instant::now();
        loop {
            if let Ok((st, _)) = tls_post(
                addr,
                &der_a,
                &[&rustls::version::TLS13],
                "/cdr?token=tok-5up3r-s3cr3t",
                fixture("ch6-post1.xml"),
            )
            .await
            {
                assert_eq!(st, 200);
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (st, _) = tls_post(
            addr,
            &der_a,
            &[&rustls::version::TLS13],
            "/cdr?token=wrong-guess",
            fixture("ch6-post2.xml"),
        )
        .await
        .unwrap();
        assert_eq!(st, 401);
    });
    // Replace the files and send SIGHUP (polling is off): new connections see the new cert.
    let (cert2, key2, der_b) = write_cert(dir.path(), "b");
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    rt.block_on(async {
        let start = Instant::now();
        loop {
            if let Ok((200, seen)) = tls_post(
                addr,
                &der_b,
                &[&rustls::version::TLS13],
                "/cdr?token=tok-5up3r-s3cr3t",
                fixture("ch6-post2.xml"),
            )
            .await
            {
                assert_eq!(seen, der_b);
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "SIGHUP did not reload the certificate"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("TLS certificate reloaded")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("unauthorized")),
        "the refusal is logged"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("tok-5up3r") || l.contains("wrong-guess")),
        "a token appeared in the logs"
    );
}

#[tokio::test]
async fn metrics_on_a_separate_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    let mport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.server.metrics_listen = format!("127.0.0.1:{mport}");
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(c.post("/cdr", fixture("ch6-post1.xml")).await.status, 200);
    assert_eq!(
        c.get("/metrics").await.status,
        404,
        "not on the receiver's listener"
    );
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let mut m = eventually(
        Duration::from_secs(20),
        "the metrics listener",
        || async move { tokio::net::TcpStream::connect(maddr).await.ok().map(|_| ()) },
    )
    .await;
    let _ = &mut m;
    let mut mc = Conn::open(maddr).await;
    let s = mc.scrape().await;
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 1.0);
    assert_eq!(
        mc.post("/cdr", fixture("ch6-post2.xml")).await.status,
        404,
        "no receiver on the metrics listener"
    );
    // The configuration is shown with the metrics, not on the public receiver port.
    let public = c.get("/").await;
    assert_eq!(public.status, 200);
    assert!(
        !public.body.contains("Configuration") && !public.body.contains("data_dir"),
        "{}",
        public.body
    );
    let private = mc.get("/").await;
    assert!(private.body.contains("Configuration in force") && private.body.contains("data_dir"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn connection_limit_and_slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.server.max_connections = 2;
    cfg.server.header_timeout_seconds = 1;
    cfg.server.body_timeout_seconds = 1;
    let server = Server::start(cfg).await;
    let mut a = Conn::open(server.addr).await;
    assert_eq!(a.get("/-/healthy").await.status, 200);
    // A slow client that sent headers but not its body gets 408 after body_timeout.
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /cdr HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n<records")
        .await
        .unwrap();
    // Third connection: over the limit, closed at once.
    let mut third = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /-/healthy HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "over the limit: closed without an answer, got {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let n = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(slow);
    // A client that never finishes its headers is dropped after header_timeout.
    let mut stuck = eventually(Duration::from_secs(10), "a free connection slot", || {
        let addr = server.addr;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            s.write_all(b"GET /-/healthy HTTP/1.1\r\nhost").await.ok()?;
            Some(s)
        }
    })
    .await;
    let start = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(15), stuck.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // `a` sat idle past header_timeout and was closed too: scrape on a fresh connection.
    drop(a);
    let s = Conn::open(server.addr).await.scrape().await;
    assert!(
        s.sum(
            "cdr_exporter_connections_rejected_total",
            &[("reason", "max_connections")]
        ) >= 1.0
    );
    assert_eq!(
        s.get(
            "cdr_exporter_batches_rejected_total",
            &[("source", "cms"), ("reason", "timeout")]
        ),
        Some(1.0)
    );
    server.stop().await.unwrap();
}

/// curl against the metrics listener: (exit code, status, headers + body).
async fn curl(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "-D", "-", "-w", "\n%{http_code}", "--max-time", "20"])
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text.lines().last().unwrap_or("").to_owned();
    (out.status.code().unwrap_or(-1), code, text)
}

/// `--web.config.file` (the exporter-toolkit format) on the metrics listener: TLS with
/// client certificates verified when given, bcrypt basic auth, extra headers; the receiver
/// is untouched.
#[tokio::test]
async fn web_config_file_guards_the_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (_cert, _key, _) = write_cert(dir.path(), "srv");
    // A CA for clients, a client it signed, and one it did not.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(vec!["prometheus".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.path().join("client.crt"), client.pem()).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
    let (stranger, stranger_key, _) = write_cert(dir.path(), "stranger");
    let hash = bcrypt::hash("scrape-me", 4).unwrap();
    let web = dir.path().join("web.yml");
    // Relative paths: relative to the web config file, as the toolkit reads them.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: srv.crt\n  key_file: srv.key\n  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let mport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = test_config(dir.path());
    cfg.server.metrics_listen = format!("127.0.0.1:{mport}");
    cfg.server.web_config_file = web.to_str().unwrap().into();
    let server = Server::start(cfg.clone()).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(
        c.post("/cdr", fixture("ch6-post1.xml")).await.status,
        200,
        "the receiver is plain HTTP"
    );
    let url = format!("https://127.0.0.1:{mport}/metrics");
    let ca = dir.path().join("srv.crt").display().to_string();
    let base = |extra: &[&str]| {
        let mut v = vec!["--cacert".to_string(), ca.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(url.clone());
        v
    };
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    eventually(
        Duration::from_secs(20),
        "the metrics listener",
        || async move { tokio::net::TcpStream::connect(maddr).await.ok().map(|_| ()) },
    )
    .await;
    let (_, code, text) = curl(base(&[])).await;
    assert_eq!(code, "401", "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{text}"
    );
    let (_, code, _) = curl(base(&["--user", "prometheus:wrong"])).await;
    assert_eq!(code, "401");
    let (_, code, _) = curl(base(&["--user", "nobody:scrape-me"])).await;
    assert_eq!(code, "401");
    let (_, code, text) = curl(base(&["--user", "prometheus:scrape-me"])).await;
    assert_eq!(code, "200", "{text}");
    assert!(text.contains("cdr_exporter_records_total"), "{text:.300}");
    assert!(
        text.to_ascii_lowercase().contains("x-frame-options: deny"),
        "{text:.300}"
    );
    // A client certificate from the configured CA is accepted; one from another is not.
    let client_crt = dir.path().join("client.crt").display().to_string();
    let client_key = dir.path().join("client.key").display().to_string();
    let (_, code, text) = curl(base(&[
        "--user",
        "prometheus:scrape-me",
        "--cert",
        &client_crt,
        "--key",
        &client_key,
    ]))
    .await;
    assert_eq!(code, "200", "{text}");
    let (exit, _, text) = curl(base(&[
        "--user",
        "prometheus:scrape-me",
        "--cert",
        stranger.to_str().unwrap(),
        "--key",
        stranger_key.to_str().unwrap(),
    ]))
    .await;
    assert_ne!(
        exit, 0,
        "a client certificate from another CA must fail the handshake: {text}"
    );
    // Plain HTTP on the TLS listener does not get metrics.
    let (_, code, _) = curl(vec![format!("http://127.0.0.1:{mport}/metrics")]).await;
    assert_ne!(code, "200");
    let s = c.get("/metrics").await;
    assert_eq!(s.status, 404, "no /metrics on the receiver");
    server.stop().await.unwrap();

    // Without a metrics listener the file has nothing to guard: refused, naming both keys.
    cfg.server.metrics_listen = String::new();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("server.web_config_file") && e.contains("metrics_listen"),
        "{e}"
    );
}
