//! Nothing acknowledged is lost: restarts (clean and kill -9) continue every counter and the
//! correlation state; a journal that cannot be written answers 503 and applies nothing; a
//! torn journal tail is detected and the valid entries kept.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const CB: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";

#[tokio::test]
async fn a_clean_restart_continues_counters_and_open_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    c.post_ch6(1..=4).await;
    let before = c.scrape().await;
    drop(c);
    server.stop().await.unwrap();
    assert!(
        std::fs::read_dir(dir.path().join("snapshots"))
            .unwrap()
            .count()
            >= 1,
        "a snapshot at shutdown"
    );

    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let after = c.scrape().await;
    assert_eq!(
        before.restored_state(),
        after.restored_state(),
        "same values after restart"
    );
    assert_eq!(after.sum("cms_calls_active", &[("call_bridge", CB)]), 1.0);
    assert_eq!(
        after.sum("cms_tenant_call_legs_active", &[("tenant", "none")]),
        2.0
    );
    // The call goes on: the legs still know their call and tenant, and a resend is a duplicate.
    assert_eq!(c.post("/cdr", fixture("ch6-post4.xml")).await.status, 200);
    c.post_ch6(5..=6).await;
    let s = c.scrape().await;
    assert_eq!(
        s.sum("cms_calls_active", &[]) + s.sum("cms_call_legs_active", &[]),
        0.0
    );
    assert_eq!(
        s.sum("cms_tenant_call_legs_ended_total", &[("tenant", "none")]),
        2.0
    );
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 8.0);
    assert_eq!(s.sum("cdr_exporter_records_duplicate_total", &[]), 1.0);
    assert_eq!(
        s.get("cdr_exporter_sessions_total", &[("call_bridge", CB)]),
        Some(1.0)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn journal_write_failure_answers_503_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The first journal segment is a full disk (every write fails with ENOSPC).
    let jdir = dir.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let seg = jdir.join(format!("{:020}.wal", 1));
    std::os::unix::fs::symlink("/dev/full", &seg).unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let r = c.post("/cdr", fixture("ch6-post1.xml")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let s = c.scrape().await;
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[]),
        0.0,
        "nothing applied"
    );
    assert_eq!(s.sum("cms_call_legs_active", &[]), 0.0);
    assert_eq!(
        s.get(
            "cdr_exporter_batches_rejected_total",
            &[("source", "cms"), ("reason", "journal_error")]
        ),
        Some(1.0)
    );
    assert!(s.sum("cdr_exporter_journal_errors_total", &[]) >= 1.0);
    // Space is freed: the Call Bridge's retry now succeeds, once.
    std::fs::remove_file(&seg).unwrap();
    assert_eq!(c.post("/cdr", fixture("ch6-post1.xml")).await.status, 200);
    let s = c.scrape().await;
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 1.0);
    assert_eq!(s.sum("cms_call_legs_active", &[]), 1.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_torn_journal_tail_is_detected_and_valid_entries_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.snapshot.interval_seconds = 3600;
    let server = Server::start(cfg.clone()).await;
    let mut c = Conn::open(server.addr).await;
    c.post_ch6(1..=3).await;
    drop(c);
    // Stop abruptly (no final snapshot): recovery must replay the journal.
    server.abort(dir.path()).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("snapshots"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    // A crash in the middle of a write leaves half an entry after the valid ones.
    let mut segs: Vec<_> = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let last = segs
        .iter()
        .rev()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap()
        .clone();
    let mut data = std::fs::read(&last).unwrap();
    data.extend_from_slice(b"CDRJ\x40\x00\x00\x00garbage-from-a-torn-write");
    std::fs::write(&last, data).unwrap();

    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let s = c.scrape().await;
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[]),
        4.0,
        "posts 1-3 hold 4 records"
    );
    assert_eq!(s.sum("cms_call_legs_active", &[]), 2.0);
    assert!(s.sum("cdr_exporter_recovery_corrupt_bytes", &[]) > 0.0);
    assert_eq!(s.sum("cdr_exporter_recovery_replayed_batches", &[]), 3.0);
    server.stop().await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_exporter(port: u16, data: &std::path::Path) -> common::Reaped {
    common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data.to_str().unwrap(),
                "--log-level",
                "warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_up(port: u16) -> Conn {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Conn::open(addr).await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exporter did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_exporter(port, dir.path());
    let mut c = wait_up(port).await;
    c.post_ch6(1..=5).await;
    let before = c.scrape().await;
    drop(c);
    child.kill().unwrap(); // SIGKILL: no final snapshot, no flush
    child.wait().unwrap();

    let mut child = spawn_exporter(port, dir.path());
    let mut c = wait_up(port).await;
    let after = c.scrape().await;
    assert_eq!(before.restored_state(), after.restored_state());
    assert_eq!(after.sum("cms_call_legs_active", &[]), 1.0);
    assert_eq!(c.post("/cdr", fixture("ch6-post6.xml")).await.status, 200);
    let s = c.scrape().await;
    assert_eq!(
        s.sum("cms_calls_active", &[]) + s.sum("cms_call_legs_active", &[]),
        0.0
    );
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 8.0);
    child.kill().unwrap();
    child.wait().unwrap();
}
