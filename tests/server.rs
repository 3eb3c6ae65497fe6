//! The real server on port 0: the chapter 6 flow over one keep-alive connection, and the
//! HTTP behaviour (errors, limits, identity, negotiation, probes, shutdown).

mod common;

use std::time::Duration;

use common::*;

const CB: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";

#[tokio::test]
async fn chapter6_flow_over_one_keepalive_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    for i in 1..=6 {
        let r = c.post("/cdr", fixture(&format!("ch6-post{i}.xml"))).await;
        assert_eq!(r.status, 200, "post {i}: {}", r.body);
        // Halfway through, both legs are up and attributed to the call.
        if i == 4 {
            let s = c.scrape().await;
            assert_eq!(s.sum("cms_calls_active", &[("call_bridge", CB)]), 1.0);
            assert_eq!(s.sum("cms_call_legs_active", &[("call_bridge", CB)]), 2.0);
            assert_eq!(
                s.sum("cms_tenant_call_legs_active", &[("tenant", "none")]),
                2.0,
                "legs took the call's tenant"
            );
            assert_eq!(
                s.sum("cms_tenant_call_legs_active", &[("tenant", "unknown")]),
                0.0
            );
        }
    }
    let s = c.scrape().await;
    let cb = ("call_bridge", CB);
    assert_eq!(
        s.sum("cms_calls_active", &[cb]),
        0.0,
        "no call active at the end"
    );
    assert_eq!(
        s.sum("cms_call_legs_active", &[cb]),
        0.0,
        "no leg active at the end"
    );
    for family in ["cms_calls_started_total", "cms_calls_ended_total"] {
        let by_bridge = s.get(family, &[cb, ("call_type", "coSpace")]);
        assert_eq!(by_bridge, Some(1.0), "{family}");
    }
    for family in [
        "cms_tenant_calls_started_total",
        "cms_tenant_calls_ended_total",
    ] {
        assert_eq!(s.get(family, &[("tenant", "none")]), Some(1.0), "{family}");
    }
    assert_eq!(
        s.get(
            "cms_call_legs_started_total",
            &[cb, ("leg_type", "sip"), ("direction", "incoming")]
        ),
        Some(2.0)
    );
    let ended = |reason, rt| {
        s.get(
            "cms_call_legs_ended_total",
            &[cb, ("reason", reason), ("remote_teardown", rt)],
        )
    };
    assert_eq!(ended("remoteTeardown", "true"), Some(1.0));
    assert_eq!(ended("callDeactivated", "false"), Some(1.0));
    assert_eq!(s.sum("cms_call_legs_ended_total", &[cb]), 2.0);
    assert_eq!(
        s.get("cms_tenant_call_legs_ended_total", &[("tenant", "none")]),
        Some(2.0)
    );
    // Durations land in the histograms: two legs of 10 s, one call of 10 s.
    assert_eq!(
        s.get("cms_call_leg_duration_seconds_count", &[cb]),
        Some(2.0)
    );
    assert_eq!(
        s.get("cms_call_leg_duration_seconds_sum", &[cb]),
        Some(20.0)
    );
    assert_eq!(
        s.get(
            "cms_call_leg_duration_seconds_bucket",
            &[cb, ("le", "10.0")]
        ),
        Some(2.0)
    );
    assert_eq!(
        s.get(
            "cms_call_leg_duration_seconds_bucket",
            &[cb, ("le", "+Inf")]
        ),
        Some(2.0)
    );
    let call = [cb];
    assert_eq!(s.get("cms_call_duration_seconds_count", &call), Some(1.0));
    assert_eq!(s.get("cms_call_duration_seconds_sum", &call), Some(10.0));
    assert_eq!(s.get("cms_call_participants_max_sum", &call), Some(2.0));
    // Self-metrics: 8 records by type, none lost or repeated, one session, six batches.
    let rec = |t| s.get("cdr_exporter_records_total", &[cb, ("record_type", t)]);
    assert_eq!(rec("callStart"), Some(1.0));
    assert_eq!(rec("callLegStart"), Some(2.0));
    assert_eq!(rec("callLegUpdate"), Some(2.0));
    assert_eq!(rec("callLegEnd"), Some(2.0));
    assert_eq!(rec("callEnd"), Some(1.0));
    assert_eq!(s.sum("cdr_exporter_records_missing_total", &[]), 0.0);
    assert_eq!(s.sum("cdr_exporter_records_duplicate_total", &[]), 0.0);
    assert_eq!(s.get("cdr_exporter_sessions_total", &[cb]), Some(1.0));
    assert_eq!(s.get("cdr_exporter_batches_total", &[cb]), Some(6.0));
    // 2015-07-23T07:33:05Z
    assert_eq!(
        s.get("cdr_exporter_last_record_timestamp_seconds", &[cb]),
        Some(1437636785.0)
    );

    // A resend of an acknowledged batch (lost 200) changes nothing but the duplicate count.
    let r = c.post("/cdr", fixture("ch6-post2.xml")).await;
    assert_eq!(r.status, 200);
    let s2 = c.scrape().await;
    assert_eq!(s2.sum("cdr_exporter_records_duplicate_total", &[cb]), 2.0);
    assert_eq!(s2.sum("cms_calls_started_total", &[cb]), 1.0);
    assert_eq!(s2.sum("cms_calls_active", &[cb]), 0.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_bodies_get_400_one_line_reason_and_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let cases = [
        ("malformed-not-xml.txt", "wrong_root"),
        ("malformed-truncated.xml", "malformed_xml"),
        ("malformed-wrong-root.xml", "wrong_root"),
        ("malformed-mismatched.xml", "malformed_xml"),
        ("malformed-empty.xml", "empty"),
        ("malformed-doctype.xml", "doctype"),
    ];
    for (f, _) in cases {
        let r = c.post("/cdr", fixture(f)).await;
        assert_eq!(r.status, 400, "{f}: {}", r.body);
        assert_eq!(
            r.body.trim_end().lines().count(),
            1,
            "{f}: one-line reason, got {:?}",
            r.body
        );
        assert!(!r.body.trim().is_empty());
    }
    let s = c.scrape().await;
    assert_eq!(
        s.sum("cdr_exporter_batches_rejected_total", &[]),
        cases.len() as f64
    );
    for (f, reason) in cases {
        assert!(
            s.sum(
                "cdr_exporter_batches_rejected_total",
                &[("source", "cms"), ("reason", reason)]
            ) >= 1.0,
            "{f} → {reason}"
        );
    }
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[]),
        0.0,
        "nothing of a rejected batch is applied"
    );
    // Non-empty rejected bodies are kept for diagnosis (the empty one has nothing to keep).
    let q = dir.path().join("quarantine");
    let n = std::fs::read_dir(&q).map(|d| d.count()).unwrap_or(0);
    assert!(n >= cases.len() - 1, "quarantine holds {n} files");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn quarantine_stays_within_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.quarantine_max_bytes = 3000;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    for i in 0..20 {
        let body = format!("<records>{}</nope>", "x".repeat(900 + i)).into_bytes();
        assert_eq!(c.post("/cdr", body).await.status, 400);
    }
    let q = dir.path().join("quarantine");
    let total: u64 = std::fs::read_dir(&q)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total <= 3000 && total > 0, "quarantine holds {total} bytes");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn body_over_limit_gets_413_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.max_body_bytes = 4096;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let big = format!(
        "<records session=\"a865433a-4926-4549-a701-9bb5b93c75e6\">{}</records>",
        " ".repeat(10_000)
    );
    let r = c.post("/cdr", big.into_bytes()).await;
    assert_eq!(r.status, 413);
    // A stream without Content-Length is cut off at the limit too.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut raw = stream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(b"POST /cdr HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 8000, "y".repeat(8000));
    raw.write_all(chunk.as_bytes()).await.unwrap();
    raw.write_all(b"0\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let s = Conn::open(server.addr).await.scrape().await;
    assert_eq!(
        s.get(
            "cdr_exporter_batches_rejected_total",
            &[("source", "cms"), ("reason", "too_large")]
        ),
        Some(2.0)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unclustered_identity_comes_from_query_then_peer_and_names_map() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.names
        .call_bridges
        .insert("cms-east".into(), "East CMS".into());
    cfg.names
        .tenants
        .insert("441e38cc-86a9-4764-b95a-020ad7e169af".into(), "Acme".into());
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let body = fixture("unclustered-batch.xml");
    assert_eq!(
        c.post("/cdr?call_bridge=cms-east", body.clone())
            .await
            .status,
        200
    );
    let s = c.scrape().await;
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[("call_bridge", "East CMS")]),
        4.0
    );
    assert_eq!(
        s.sum(
            "cms_calls_started_total",
            &[("call_bridge", "East CMS"), ("call_type", "adHoc")]
        ),
        1.0
    );
    assert_eq!(
        s.sum("cms_tenant_calls_started_total", &[("tenant", "Acme")]),
        1.0,
        "the names map gives the tenant its name"
    );

    // The same session arriving as ?system_id= (a second receiver URI) is the same stream:
    // all duplicates, nothing counted twice.
    assert_eq!(
        c.post("/cdr?system_id=cms1", body.clone()).await.status,
        200
    );
    let s = c.scrape().await;
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 4.0);
    assert_eq!(s.sum("cdr_exporter_records_duplicate_total", &[]), 4.0);

    // A new session without any parameter is identified by the peer address.
    let other = String::from_utf8(body).unwrap().replace(
        "b02263ca-a7b1-4889-b1d4-39f7117b62ce",
        "b02263ca-a7b1-4889-b1d4-39f7117b62cf",
    );
    assert_eq!(c.post("/cdr", other.into_bytes()).await.status, 200);
    let s = c.scrape().await;
    assert_eq!(
        s.sum(
            "cdr_exporter_records_total",
            &[("call_bridge", "127.0.0.1")]
        ),
        4.0
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_negotiates_openmetrics_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(
        c.post("/cdr", fixture("clustered-batch.xml")).await.status,
        200
    );
    let prom_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = c
        .request("GET", "/metrics", Some(prom_accept), vec![])
        .await;
    assert_eq!(
        om.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.body.ends_with("# EOF\n"));
    assert!(om.body.contains("# TYPE cdr_exporter_records counter"));
    assert!(om.body.contains("# TYPE cdr_exporter_build info"));
    assert!(om
        .body
        .contains("# UNIT cms_call_leg_duration_seconds seconds"));
    for accept in [None, Some("text/plain"), Some("*/*")] {
        let t = c.request("GET", "/metrics", accept, vec![]).await;
        assert_eq!(
            t.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        assert!(!t.body.contains("# EOF"));
        assert!(!t.body.contains("# UNIT"));
        assert!(t.body.contains("# TYPE cdr_exporter_records_total counter"));
        assert!(t.body.contains("# TYPE cdr_exporter_build_info gauge"));
        assert!(t.body.contains("cdr_exporter_build_info{version=\""));
        assert!(t.body.contains("# TYPE process_cpu_seconds_total counter"));
        assert!(t.body.contains("process_resident_memory_bytes "));
    }
    server.stop().await.unwrap();
}

/// Prometheus sends `Accept-Encoding: gzip`: the answer is gzip and holds the same samples as
/// the plain one; a scraper that does not ask gets plain text.
#[tokio::test]
async fn metrics_are_gzipped_when_the_scraper_asks() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(
        c.post("/cdr", fixture("clustered-batch.xml")).await.status,
        200
    );
    let plain = c.get("/metrics").await;
    assert!(plain.headers.get("content-encoding").is_none());
    let mut h = hyper::HeaderMap::new();
    h.insert("accept-encoding", "gzip".parse().unwrap());
    let gz = c.request_with("GET", "/metrics", &h, vec![]).await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.headers["content-encoding"], "gzip");
    assert_eq!(gz.headers["vary"], "Accept, Accept-Encoding");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz.raw[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert!(
        gz.raw.len() * 3 < text.len(),
        "{} of {}",
        gz.raw.len(),
        text.len()
    );
    // Same samples, but for the request counters the first scrape moved.
    let (text, plain) = (Scrape(text), Scrape(plain.body));
    assert_eq!(text.restored_state(), plain.restored_state());
    assert_eq!(text.sum("cdr_exporter_records_total", &[]), 4.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn probes_and_landing_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(c.get("/-/healthy").await.status, 200);
    assert_eq!(c.get("/-/ready").await.status, 200);
    let l = c.get("/").await;
    assert_eq!(l.status, 200);
    assert!(l.body.contains("href=\"/metrics\""));
    assert!(l.body.contains("/cdr"));
    assert_eq!(c.get("/cdr").await.status, 405, "GET on the receiver path");
    assert_eq!(c.get("/nope").await.status, 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_batch() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let addr = server.addr;
    // Send headers and half the body, start shutdown, then finish the body: the batch
    // must still be applied and acknowledged.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = fixture("clustered-batch.xml");
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /cdr HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    raw.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    raw.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(raw);
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn receiver_uri_variants_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    // A trailing slash, or no path at all in the receiver URI, must not leave the Call
    // Bridge retrying a 404 forever.
    assert_eq!(c.post("/cdr/", fixture("ch6-post1.xml")).await.status, 200);
    assert_eq!(c.post("/", fixture("ch6-post2.xml")).await.status, 200);
    assert_eq!(
        c.post("/?system_id=cms9", fixture("unclustered-batch.xml"))
            .await
            .status,
        200
    );
    let s = c.scrape().await;
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[("call_bridge", CB)]),
        3.0
    );
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[("call_bridge", "cms9")]),
        4.0
    );
    // An unlabelled gauge has no empty braces.
    assert!(s
        .0
        .contains("\ncdr_exporter_mos_assumed_delay_seconds 0.0\n"));
    server.stop().await.unwrap();
}

/// `cdr_exporter_http_requests_total{path,code}` and the duration histogram: every route,
/// every answer, and any number of unknown paths in one `other` series.
#[tokio::test]
async fn requests_are_counted_by_route_and_status_and_timed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(c.post("/cdr", fixture("ch6-post1.xml")).await.status, 200);
    assert_eq!(c.post("/cdr/", fixture("ch6-post2.xml")).await.status, 200);
    assert_eq!(c.post("/cdr", b"<garbage".to_vec()).await.status, 400);
    assert_eq!(c.post("/freeswitch/cdr", b"".to_vec()).await.status, 400);
    assert_eq!(c.get("/-/healthy").await.status, 200);
    for i in 0..50 {
        assert_eq!(c.get(&format!("/scan/{i}")).await.status, 404);
    }
    let _ = c.scrape().await;
    let s = c.scrape().await;
    let req = |p: &str, code: &str| {
        s.get(
            "cdr_exporter_http_requests_total",
            &[("path", p), ("code", code)],
        )
    };
    assert_eq!(
        req("/cdr", "200"),
        Some(2.0),
        "trailing slash is the same route"
    );
    assert_eq!(req("/cdr", "400"), Some(1.0));
    assert_eq!(req("/freeswitch/cdr", "400"), Some(1.0));
    assert_eq!(req("/-/healthy", "200"), Some(1.0));
    assert_eq!(req("other", "404"), Some(50.0));
    assert_eq!(
        req("/metrics", "200"),
        Some(1.0),
        "the scrape before this one"
    );
    assert_eq!(
        s.samples("cdr_exporter_http_requests_total").len(),
        6,
        "no series per unknown path"
    );
    assert_eq!(
        s.get(
            "cdr_exporter_http_request_duration_seconds_count",
            &[("path", "/cdr")]
        ),
        Some(3.0)
    );
    let sum = s
        .get(
            "cdr_exporter_http_request_duration_seconds_sum",
            &[("path", "/cdr")],
        )
        .unwrap();
    assert!(sum > 0.0 && sum < 30.0, "{sum}");
}
