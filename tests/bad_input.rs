//! Every row of the architecture's bad-input table, and hostile bodies: the answer, what is
//! kept, and that it is counted by reason. Nothing panics, memory stays bounded.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const S: &str = "ba000000-0000-4000-8000-000000000001";

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

fn leg_end(i: u64, inner: &str) -> String {
    format!("<record type=\"callLegEnd\" time=\"2024-01-01T00:00:00Z\" correlatorIndex=\"{i}\"><callLeg id=\"10000000-0000-4000-8000-{i:012}\"><reason>error</reason>{inner}</callLeg></record>")
}

fn records(session: &str, body: &str) -> Vec<u8> {
    format!("<records session=\"{session}\">{body}</records>").into_bytes()
}

/// (name, body, expected status, reason counted in batches_rejected or records_invalid)
fn table() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let deep = format!("<records session=\"{S}\"><record type=\"callLegEnd\" correlatorIndex=\"1\">{}{}</record></records>", "<x>".repeat(5000), "</x>".repeat(5000));
    let entity = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><records session=\"x\"><record type=\"callStart\" correlatorIndex=\"0\"><call id=\"c\"><name>&c;</name></call></record></records>";
    let external = "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><records session=\"x\"/>";
    let mut bad_utf8 = records(
        S,
        "<record type=\"callStart\" correlatorIndex=\"0\"><call id=\"c\"><name>",
    )
    .to_vec();
    bad_utf8.truncate(bad_utf8.len() - "</records>".len());
    bad_utf8.extend_from_slice(b"\xff\xfe\xc3</name></call></record></records>");
    let huge_attr = format!("<records session=\"{S}\" junk=\"{}\"><record type=\"callStart\" correlatorIndex=\"0\"><call id=\"c0000000-0000-4000-8000-000000000001\"/></record></records>", "A".repeat(2_000_000));
    vec![
        ("empty body", Vec::new(), 400, "empty"),
        ("whitespace body", b"  \n ".to_vec(), 400, "empty"),
        ("not XML", b"hello, world".to_vec(), 400, "wrong_root"),
        ("wrong root", b"<events><record/></events>".to_vec(), 400, "wrong_root"),
        ("no session", b"<records><record type=\"callStart\" correlatorIndex=\"0\"/></records>".to_vec(), 400, "missing_session"),
        ("truncated", records(S, "<record type=\"callStart\" correlatorIndex=\"0\"><call id=\"c\"><na")[..60].to_vec(), 400, "malformed_xml"),
        ("mismatched tags", records(S, "<record type=\"callStart\" correlatorIndex=\"0\"><call id=\"c\"><name>x</nam></call></record>"), 400, "malformed_xml"),
        ("two roots", [records(S, ""), records(S, "")].concat(), 400, "malformed_xml"),
        ("DTD entity expansion", entity.as_bytes().to_vec(), 400, "doctype"),
        ("external DTD", external.as_bytes().to_vec(), 400, "doctype"),
        ("deep nesting", deep.into_bytes(), 400, "too_deep"),
        ("invalid UTF-8", bad_utf8, 400, "invalid_utf8"),
        ("huge attribute (ignored)", huge_attr.into_bytes(), 200, ""),
    ]
}

#[tokio::test]
async fn the_bad_input_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.quarantine_max_bytes = 64 * 1024;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let mut expected: std::collections::HashMap<&str, f64> = Default::default();
    for (name, body, status, reason) in table() {
        let r = c.post("/cdr", body).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        if status == 400 {
            assert_eq!(
                r.body.trim_end().lines().count(),
                1,
                "{name}: one-line reason"
            );
            *expected.entry(reason).or_default() += 1.0;
        }
    }
    // Well-formed batch, some records invalid: 200, the valid ones applied, the rest counted.
    let mixed = [
        leg_end(0, "<durationSeconds>-5</durationSeconds>"),
        leg_end(1, "<durationSeconds>NaN</durationSeconds>"),
        leg_end(2, "<durationSeconds>1e400</durationSeconds>"),
        "<record type=\"callLegEnd\" correlatorIndex=\"3\"><callLeg><reason>error</reason></callLeg></record>".to_string(),
        "<record type=\"callLegEnd\" correlatorIndex=\"1e30\"><callLeg id=\"x\"/></record>".to_string(),
        "<record type=\"callLegEnd\" correlatorIndex=\"5\" time=\"yesterday\"><callLeg id=\"x\"/></record>".to_string(),
        "<record type=\"somethingNew\" correlatorIndex=\"6\"><gadget id=\"g\"/></record>".to_string(),
        leg_end(7, "<durationSeconds>30</durationSeconds><rxAudio><codec>g711u</codec><packetStatistics><packetGap><duration>30</duration><density>150</density></packetGap></packetStatistics></rxAudio>"),
        leg_end(8, "<durationSeconds>30</durationSeconds><remoteTeardown>maybe</remoteTeardown>"),
    ]
    .concat();
    let r = c
        .post(
            "/cdr?call_bridge=mixed",
            records("ba000000-0000-4000-8000-000000000002", &mixed),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = c.scrape().await;
    for (reason, n) in &expected {
        assert_eq!(
            s.get(
                "cdr_exporter_batches_rejected_total",
                &[("source", "cms"), ("reason", reason)]
            ),
            Some(*n),
            "rejections for {reason}"
        );
    }
    let inv = |r: &str| {
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("call_bridge", "mixed"), ("reason", r)],
        )
    };
    assert_eq!(
        inv("bad_number"),
        3.0,
        "negative, NaN and out-of-range durations"
    );
    assert_eq!(inv("missing_id"), 1.0);
    assert_eq!(inv("missing_correlator_index"), 1.0);
    assert_eq!(inv("bad_time"), 1.0);
    assert_eq!(inv("bad_boolean"), 1.0);
    assert_eq!(
        s.get(
            "cdr_exporter_records_total",
            &[("call_bridge", "mixed"), ("record_type", "somethingNew")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "cdr_exporter_records_total",
            &[("call_bridge", "mixed"), ("record_type", "callLegEnd")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.sum(
            "cms_call_leg_mos_unavailable_total",
            &[("call_bridge", "mixed"), ("reason", "invalid_values")]
        ),
        1.0
    );
    // The quarantine kept what it could within its size.
    let q = dir.path().join("quarantine");
    let total: u64 = std::fs::read_dir(&q)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        total > 0 && total <= 64 * 1024,
        "quarantine holds {total} bytes"
    );
    // Still healthy.
    assert_eq!(c.get("/-/healthy").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_100_mb_body_is_refused_without_being_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let before = rss_bytes();
    // Chunked, no Content-Length: the limit must cut the stream, not the announcement.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"POST /cdr HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, "x".repeat(1 << 20));
    let mut sent = 0usize;
    for _ in 0..100 {
        if raw.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server stopped reading: good
        }
        sent += 1;
    }
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 413"), "{head}");
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "RSS grew by {grown} bytes after {sent} MB sent"
    );
    // Announced as 100 MB: refused before reading.
    let mut c = Conn::open(server.addr).await;
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"POST /cdr HTTP/1.1\r\nhost: x\r\ncontent-length: 104857600\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(20), raw.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"));
    let s = c.scrape().await;
    assert!(
        s.sum(
            "cdr_exporter_batches_rejected_total",
            &[("source", "cms"), ("reason", "too_large")]
        ) >= 1.0
    );
    assert_eq!(c.get("/-/healthy").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unauthorized_batches_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.auth.token = "t0ken".into();
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    assert_eq!(c.post("/cdr", fixture("ch6-post1.xml")).await.status, 401);
    assert_eq!(
        c.post("/cdr", b"<garbage".to_vec()).await.status,
        401,
        "auth before parsing"
    );
    let s = c.scrape().await;
    assert_eq!(
        s.get(
            "cdr_exporter_batches_rejected_total",
            &[("source", "cms"), ("reason", "unauthorized")]
        ),
        Some(2.0)
    );
    assert_eq!(
        s.sum("cdr_exporter_journal_appends_total", &[]),
        0.0,
        "nothing journaled"
    );
    assert!(
        !dir.path().join("quarantine").exists(),
        "nothing quarantined"
    );
    server.stop().await.unwrap();
}
