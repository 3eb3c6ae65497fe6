//! Every promise under attack (issue 9): one test per defect found by attacking the exporter
//! as a hostile client and a careless operator would, through the real server on a real
//! socket, or the real binary and its files.

mod common;

use std::path::Path;
use std::time::Duration;

use common::binary::Exporter;
use common::records::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CB: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";
const LONG: Duration = Duration::from_secs(30);

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn snapshots(data: &Path) -> Vec<std::path::PathBuf> {
    files_in(&data.join("snapshots"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect()
}

/// One callLegStart per record, for `n` distinct legs from `from` on.
fn leg_starts(session: &str, cb: Option<&str>, from: u64, n: u64) -> Vec<u8> {
    let recs: Vec<_> = (from..from + n)
        .map(|i| ("callLegStart", i, leg_start(&guid(0x1e9, i), None)))
        .collect();
    batch(session, cb, &recs)
}

async fn post_ok(c: &mut Conn, path: &str, body: Vec<u8>) {
    let r = c.post(path, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn cfg_no_periodic_snapshots(dir: &Path) -> cdr_exporter::config::Config {
    let mut cfg = test_config(dir);
    cfg.snapshot.interval_seconds = 3600;
    cfg
}

// 1. ---------------------------------------------------------------------------------------

/// Two runs, each ending in a snapshot: the journal after the older one must survive, so
/// either snapshot can load.
async fn two_snapshots(dir: &Path) -> Scrape {
    let cfg = cfg_no_periodic_snapshots(dir);
    let server = Server::start(cfg.clone()).await;
    let mut c = Conn::open(server.addr).await;
    c.post_ch6(1..=3).await;
    drop(c);
    server.stop().await.unwrap();
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    c.post_ch6(4..=6).await;
    let s = c.scrape().await;
    drop(c);
    server.stop().await.unwrap();
    assert_eq!(snapshots(dir).len(), 2);
    s
}

#[tokio::test]
async fn p01_a_corrupt_or_truncated_newest_snapshot_falls_back_without_loss() {
    for damage in ["flip", "truncate"] {
        let dir = tempfile::tempdir().unwrap();
        let before = two_snapshots(dir.path()).await;
        let newest = snapshots(dir.path()).pop().unwrap();
        let mut data = std::fs::read(&newest).unwrap();
        if damage == "flip" {
            let mid = data.len() / 2;
            for b in &mut data[mid..mid + 4] {
                *b ^= 0xff;
            }
        } else {
            data.truncate(data.len() / 2);
        }
        std::fs::write(&newest, data).unwrap();
        let server = Server::start(cfg_no_periodic_snapshots(dir.path())).await;
        let mut c = Conn::open(server.addr).await;
        let after = c.scrape().await;
        assert_eq!(before.restored_state(), after.restored_state(), "{damage}");
        assert_eq!(
            after.get("cdr_exporter_recovery_unreadable_snapshots", &[]),
            Some(1.0)
        );
        assert_eq!(
            after.get("cdr_exporter_recovery_lost_batches", &[]),
            Some(0.0)
        );
        assert_eq!(
            after.get("cdr_exporter_recovery_incomplete", &[]),
            Some(0.0)
        );
        assert!(
            files_in(&dir.path().join("snapshots/damaged")).len() == 1,
            "kept aside"
        );
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn p01_every_snapshot_unreadable_is_reported_and_the_journal_replayed() {
    let dir = tempfile::tempdir().unwrap();
    two_snapshots(dir.path()).await;
    for p in snapshots(dir.path()) {
        std::fs::write(&p, b"CDRS garbage").unwrap();
    }
    let server = Server::start(cfg_no_periodic_snapshots(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let s = c.scrape().await;
    assert_eq!(
        s.get("cdr_exporter_recovery_unreadable_snapshots", &[]),
        Some(2.0)
    );
    assert_eq!(s.get("cdr_exporter_recovery_incomplete", &[]), Some(1.0));
    // The first run's three batches are only in the unreadable snapshots; the second run's
    // three are replayed from the journal kept back to the older snapshot.
    assert_eq!(s.get("cdr_exporter_recovery_lost_batches", &[]), Some(3.0));
    assert_eq!(
        s.get("cdr_exporter_recovery_replayed_batches", &[]),
        Some(3.0)
    );
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 4.0, "posts 4-6");
    server.stop().await.unwrap();
}

// 2. ---------------------------------------------------------------------------------------

#[tokio::test]
async fn p02_one_flipped_byte_mid_journal_loses_only_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_no_periodic_snapshots(dir.path());
    let server = Server::start(cfg.clone()).await;
    let mut c = Conn::open(server.addr).await;
    for i in 0..300 {
        post_ok(
            &mut c,
            "/cdr?call_bridge=cb1",
            leg_starts("5e550000-0000-4000-8000-000000000002", None, i, 1),
        )
        .await;
    }
    drop(c);
    server.abort(dir.path()).await; // a crash: no final snapshot
    let segs = files_in(&dir.path().join("journal"));
    let seg = segs
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut data = std::fs::read(seg).unwrap();
    let len = data.len();
    // Walk the entry headers (magic, payload length, CRC, seq) to entry 150, and flip one
    // byte in the middle of its payload.
    let size =
        |at: usize| 20 + u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
    let mut at = 0;
    for _ in 0..150 {
        at += size(at);
    }
    let one = size(at);
    data[at + 20 + (one - 20) / 2] ^= 0x04;
    std::fs::write(seg, &data).unwrap();
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let s = c.scrape().await;
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 299.0);
    assert_eq!(s.sum("cms_call_legs_active", &[]), 299.0);
    assert_eq!(s.get("cdr_exporter_recovery_lost_batches", &[]), Some(1.0));
    assert_eq!(
        s.get("cdr_exporter_recovery_corrupt_bytes", &[]),
        Some(one as f64)
    );
    assert_eq!(
        std::fs::metadata(seg).unwrap().len() as usize,
        len,
        "never truncated"
    );
    server.stop().await.unwrap();
}

// 3. ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p03_a_client_that_hangs_up_leaves_journal_and_state_in_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg_no_periodic_snapshots(dir.path());
    let server = Server::start(cfg.clone()).await;
    let addr = server.addr;
    for i in 0..300u64 {
        let body = leg_starts("5e550000-0000-4000-8000-000000000003", None, i, 1);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /cdr?call_bridge=cb1 HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        // Hang up at once, without reading the answer.
        drop(s);
    }
    // Quiet: every journaled batch applied, and nothing changed for a second.
    let mut c = Conn::open(addr).await;
    let mut last: Option<(Vec<String>, std::time::Instant)> = None;
    let settling = std::time::Instant::now();
    let live = loop {
        let s = c.scrape().await;
        let appended = s.sum("cdr_exporter_journal_appends_total", &[]);
        let applied = s.sum("cdr_exporter_batches_total", &[]);
        let now = s.restored_state();
        match &last {
            Some((prev, since))
                if *prev == now
                    && appended == applied
                    && since.elapsed() > Duration::from_secs(1) =>
            {
                break s;
            }
            Some((prev, _)) if *prev == now => {}
            _ => last = Some((now, std::time::Instant::now())),
        }
        assert!(
            appended == applied || last.as_ref().unwrap().1.elapsed() < LONG,
            "{appended} journaled, {applied} applied"
        );
        assert!(settling.elapsed() < 2 * LONG, "the state never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(live.sum("cdr_exporter_batches_total", &[]) > 0.0);
    drop(c);
    server.abort(dir.path()).await;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let replayed = c.scrape().await;
    // The connection count is not state.
    let state = |s: &Scrape| -> Vec<String> {
        s.restored_state()
            .into_iter()
            .filter(|l| !l.starts_with("cdr_exporter_connections_active"))
            .collect()
    };
    assert_eq!(
        state(&live),
        state(&replayed),
        "live and replayed state agree"
    );
    server.stop().await.unwrap();
}

// 4. ---------------------------------------------------------------------------------------

#[tokio::test]
async fn p04_a_call_named_first_by_a_leg_survives_the_max_age_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Exporter::start(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--log-level",
            "cdr_exporter=debug",
        ],
        &[("CDR_EXPORTER_TRACKING__SWEEP_INTERVAL_SECONDS", "1")],
    );
    let mut c = Conn::open(e.addr).await;
    let s1 = "5e550000-0000-4000-8000-000000000004";
    let (call, tenant) = (guid(0xca11, 1), guid(0x7e, 1));
    post_ok(
        &mut c,
        "/cdr",
        batch(
            s1,
            Some(CB),
            &[("callLegStart", 0, leg_start(&guid(0x1e9, 1), Some(&call)))],
        ),
    )
    .await;
    // Two sweeps after the leg named the call.
    let seen = e.lines().len();
    e.wait_log(LONG, |l| l.contains("max-age sweep done"));
    let mut n = 0;
    while n < 2 {
        n = e.lines()[seen..]
            .iter()
            .filter(|l| l.contains("max-age sweep done"))
            .count();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    post_ok(
        &mut c,
        "/cdr",
        batch(
            s1,
            Some(CB),
            &[
                ("callStart", 1, call_start(&call, Some(&tenant))),
                ("callEnd", 2, call_end(&call)),
            ],
        ),
    )
    .await;
    let s = c.scrape().await;
    assert_eq!(
        s.sum(
            "cdr_exporter_evicted_objects_total",
            &[("reason", "max_age")]
        ),
        0.0
    );
    assert_eq!(
        s.sum("cms_tenant_calls_ended_total", &[("tenant", &tenant)]),
        1.0
    );
    assert_eq!(
        s.sum(
            "cdr_exporter_records_unmatched_total",
            &[("record_type", "callEnd")]
        ),
        0.0
    );
    drop(c);
    assert!(e.sigterm().success());
}

// 5. ---------------------------------------------------------------------------------------

#[tokio::test]
async fn p05_a_call_end_closes_the_legs_whose_end_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let (call, l1, l2) = (guid(0xca11, 5), guid(0x1e9, 51), guid(0x1e9, 52));
    post_ok(
        &mut c,
        "/cdr",
        batch(
            "5e550000-0000-4000-8000-000000000005",
            Some(CB),
            &[
                ("callStart", 0, call_start(&call, None)),
                ("callLegStart", 1, leg_start(&l1, Some(&call))),
                ("callLegStart", 2, leg_start(&l2, None)),
                ("callLegUpdate", 3, leg_update(&l2, &call)),
                ("callLegEnd", 4, leg_end(&l1, "remoteTeardown")),
                // l2's callLegEnd (index 5) was lost.
                ("callEnd", 6, call_end(&call)),
            ],
        ),
    )
    .await;
    let s = c.scrape().await;
    assert_eq!(s.sum("cms_call_legs_active", &[]), 0.0);
    assert_eq!(s.sum("cms_calls_active", &[]), 0.0);
    assert_eq!(
        s.get(
            "cdr_exporter_evicted_objects_total",
            &[("kind", "call_leg"), ("reason", "call_ended")]
        ),
        Some(1.0)
    );
    assert_eq!(s.sum("cdr_exporter_records_missing_total", &[]), 1.0);
    assert_eq!(
        s.get("cdr_exporter_tracked_objects", &[("kind", "call_leg")]),
        Some(0.0)
    );
    server.stop().await.unwrap();
}

// 6. ---------------------------------------------------------------------------------------

#[tokio::test]
async fn p06_dedupe_does_not_forget_when_other_call_bridges_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let s1 = "5e550000-0000-4000-8000-000000000061";
    let stream = leg_starts(s1, Some(CB), 0, 11);
    post_ok(&mut c, "/cdr", stream.clone()).await;
    // The Call Bridge restarts: session 1 is replaced.
    post_ok(
        &mut c,
        "/cdr",
        leg_starts("5e550000-0000-4000-8000-000000000062", Some(CB), 0, 1),
    )
    .await;
    // 70 other Call Bridges restart.
    for b in 0..70u64 {
        let other = guid(0xcb, b);
        for s in 0..2u64 {
            post_ok(
                &mut c,
                "/cdr",
                leg_starts(&guid(0x5e55, 1000 + b * 2 + s), Some(&other), 0, 1),
            )
            .await;
        }
    }
    let before = c
        .scrape()
        .await
        .sum("cdr_exporter_records_total", &[("call_bridge", CB)]);
    // Session 1's stream, still arriving through a second receiver URI.
    post_ok(&mut c, "/cdr?call_bridge=second-uri", stream).await;
    let s = c.scrape().await;
    assert_eq!(before, 12.0);
    assert_eq!(
        s.sum("cdr_exporter_records_total", &[("call_bridge", CB)]),
        12.0
    );
    assert_eq!(
        s.sum(
            "cdr_exporter_records_duplicate_total",
            &[("call_bridge", CB)]
        ),
        11.0
    );
    server.stop().await.unwrap();
}

// 7. ---------------------------------------------------------------------------------------

#[tokio::test]
async fn p07_records_missing_never_goes_down_and_absurd_jumps_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let s1 = "5e550000-0000-4000-8000-000000000007";
    let mut last = 0.0;
    let mut seen = Vec::new();
    for (i, idx) in [0u64, u64::MAX, 5].iter().enumerate() {
        let body = batch(
            s1,
            Some(CB),
            &[(
                "callLegStart",
                *idx,
                leg_start(&guid(0x1e9, 70 + i as u64), None),
            )],
        );
        post_ok(&mut c, "/cdr", body).await;
        let m = c
            .scrape()
            .await
            .sum("cdr_exporter_records_missing_total", &[]);
        assert!(m >= last, "went down: {seen:?} then {m}");
        last = m;
        seen.push(m);
    }
    assert_eq!(seen, vec![0.0, 0.0, 4.0]);
    let s = c.scrape().await;
    assert_eq!(
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("reason", "absurd_index")]
        ),
        1.0
    );
    // numPreceedingRecordsMissing can be absurd too.
    let body = String::from_utf8(batch(
        s1,
        Some(CB),
        &[("callLegStart", 6, leg_start(&guid(0x1e9, 79), None))],
    ))
    .unwrap()
    .replace(
        "correlatorIndex=\"6\"",
        "correlatorIndex=\"6\" numPreceedingRecordsMissing=\"18446744073709551615\"",
    );
    post_ok(&mut c, "/cdr", body.into_bytes()).await;
    let s = c.scrape().await;
    assert_eq!(s.sum("cdr_exporter_records_missing_total", &[]), 4.0);
    assert_eq!(
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("reason", "absurd_index")]
        ),
        2.0
    );
    server.stop().await.unwrap();
}

// 8. ---------------------------------------------------------------------------------------

#[tokio::test]
async fn p08_numbers_beyond_what_cms_sends_are_invalid_not_infinite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    // Two legs of 1e308 seconds: their sum would be +Inf forever.
    let recs: Vec<_> = (0..2u64)
        .flat_map(|i| {
            let l = guid(0x1e9, 80 + i);
            let end = leg_end(&l, "remoteTeardown")
                .replace("<durationSeconds>30<", "<durationSeconds>1e308<");
            [
                ("callLegStart", 2 * i, leg_start(&l, None)),
                ("callLegEnd", 2 * i + 1, end),
            ]
        })
        .collect();
    post_ok(
        &mut c,
        "/cdr",
        batch("5e550000-0000-4000-8000-000000000008", Some(CB), &recs),
    )
    .await;
    let s = c.scrape().await;
    let sum = s.sum("cms_call_leg_duration_seconds_sum", &[]);
    assert!(sum.is_finite(), "leg duration sum {sum}");
    assert_eq!(
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("reason", "out_of_range")]
        ),
        2.0
    );
    assert_eq!(
        s.sum("cms_call_legs_active", &[]),
        0.0,
        "an unreadable end still ends the leg"
    );
    server.stop().await.unwrap();
}

// 9. ---------------------------------------------------------------------------------------

#[tokio::test]
async fn p09_label_values_are_bounded_in_length() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let long = |i: u64| format!("{i}-{}", "x".repeat(100_000));
    for i in 0..200u64 {
        let (call, l) = (guid(0xca11, 900 + i), guid(0x1e9, 900 + i));
        let end = leg_end(&l, &long(i)).replace(
            "</callLeg>",
            &format!("<rxAudio><codec>{}</codec></rxAudio></callLeg>", long(i)),
        );
        let path = format!("/cdr?call_bridge={}", long(i % 3));
        post_ok(
            &mut c,
            &path[..path.len().min(10_000)],
            batch(
                &guid(0x5e55, 900 + i),
                None,
                &[
                    ("callStart", 0, call_start(&call, Some(&long(i)))),
                    ("callLegStart", 1, leg_start(&l, Some(&call))),
                    ("callLegEnd", 2, end),
                ],
            ),
        )
        .await;
    }
    let s = c.scrape().await;
    assert!(s.0.len() < 1_000_000, "one scrape is {} bytes", s.0.len());
    for line in s.0.lines().filter(|l| !l.starts_with('#')) {
        for v in line.split('"').skip(1).step_by(2) {
            assert!(v.len() <= 128, "a label value of {} bytes", v.len());
        }
    }
    for label in ["tenant", "reason", "codec", "call_bridge"] {
        assert!(
            s.sum(
                "cdr_exporter_label_overflow_total",
                &[("label", label), ("cause", "too_long")]
            ) > 0.0,
            "{label}"
        );
    }
    server.stop().await.unwrap();
}

// 10. --------------------------------------------------------------------------------------

#[tokio::test]
async fn p10_sessions_identities_and_call_lists_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg_no_periodic_snapshots(dir.path());
    cfg.tracking.max_call_bridges = 100;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    // a) New sessions under one callBridge, none of them a boot (index 500).
    for i in 0..3_000u64 {
        post_ok(
            &mut c,
            "/cdr",
            batch(
                &guid(0x5e55, 10_000 + i),
                Some(CB),
                &[(
                    "callStart",
                    500,
                    call_start(&guid(0xca11, 10_000 + i), None),
                )],
            ),
        )
        .await;
    }
    let s = c.scrape().await;
    assert!(s.sum("cdr_exporter_tracked_objects", &[("kind", "session")]) <= 8.0);
    assert!(s.sum("cdr_exporter_tracked_objects", &[("kind", "call")]) <= 8.0);
    assert!(
        s.sum(
            "cdr_exporter_evicted_objects_total",
            &[("kind", "session"), ("reason", "max_sessions")]
        ) >= 2_992.0
    );
    // b) Distinct ?call_bridge= identities.
    for i in 0..3_000u64 {
        post_ok(
            &mut c,
            &format!("/cdr?call_bridge=spray-{i}"),
            batch(
                &guid(0x5e55, 20_000 + i),
                None,
                &[("callStart", 0, call_start(&guid(0xca11, 20_000 + i), None))],
            ),
        )
        .await;
    }
    let s = c.scrape().await;
    assert!(s.sum("cdr_exporter_tracked_objects", &[("kind", "session")]) <= 100.0 + 8.0);
    assert!(s.sum("cdr_exporter_tracked_objects", &[("kind", "call")]) <= 100.0 + 8.0);
    // c) One leg moved back and forth between two calls that never start.
    let s3 = guid(0x5e55, 30_000);
    let leg = guid(0x1e9, 30_000);
    for chunk in 0..20u64 {
        let recs: Vec<_> = (0..1_000u64)
            .map(|k| {
                let i = chunk * 1_000 + k;
                (
                    "callLegUpdate",
                    i,
                    leg_update(&leg, &guid(0xca11, 30_000 + i % 2)),
                )
            })
            .collect();
        post_ok(&mut c, "/cdr?call_bridge=mover", batch(&s3, None, &recs)).await;
    }
    drop(c);
    server.stop().await.unwrap();
    let snap = snapshots(dir.path()).pop().unwrap();
    let size = std::fs::metadata(&snap).unwrap().len();
    assert!(size < 200_000, "snapshot of {size} bytes");
}

// 11. --------------------------------------------------------------------------------------

#[tokio::test]
async fn p11_quarantine_is_bounded_in_files_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.quarantine_max_files = 50;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    for body in [Vec::new(), b"x".to_vec()] {
        for _ in 0..1_000 {
            assert_eq!(c.post("/cdr", body.clone()).await.status, 400);
        }
    }
    let s = c.scrape().await;
    let kept = files_in(&dir.path().join("quarantine")).len();
    assert!(kept <= 50, "{kept} files");
    assert_eq!(
        s.get("cdr_exporter_quarantine_files", &[]),
        Some(kept as f64)
    );
    assert!(s.sum("cdr_exporter_quarantine_dropped_total", &[]) >= 1_950.0);
    server.stop().await.unwrap();
}

// 12. --------------------------------------------------------------------------------------

#[tokio::test]
async fn p12_repeated_warnings_are_rate_limited_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let e = Exporter::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let mut c = Conn::open(e.addr).await;
    let recs: Vec<_> = (0..20_000u64)
        .map(|i| {
            let end = call_end(&guid(0xca11, i));
            (
                "callEnd",
                i,
                end.replace("<durationSeconds>60<", "<durationSeconds>sixty<"),
            )
        })
        .collect();
    let body = batch("5e550000-0000-4000-8000-000000000012", Some(CB), &recs);
    post_ok(&mut c, "/cdr", body).await;
    let s = c.scrape().await;
    drop(c);
    // Exited: every line it wrote has been read.
    let lines = e.lines_after_exit();
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("invalid CDR record skipped"))
        .collect();
    assert!(warned.len() <= 10, "{} lines", warned.len());
    assert!(
        warned
            .iter()
            .any(|l| l.contains("further_suppressed_for_seconds")),
        "the last line says that more were suppressed"
    );
    assert_eq!(
        s.sum(
            "cdr_exporter_records_invalid_total",
            &[("reason", "bad_number")]
        ),
        20_000.0
    );
    assert!(s.sum("cdr_exporter_log_lines_suppressed_total", &[]) >= 19_990.0);
}

// 13. --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p13_clients_that_do_not_read_lose_their_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.server.max_connections = 16;
    cfg.server.write_timeout_seconds = 1;
    let server = Server::start(cfg).await;
    let addr = server.addr;
    let mut hogs = Vec::new();
    for _ in 0..16 {
        hogs.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            let req = "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(2_000);
            // Writes until the server stops reading; never reads an answer.
            let _ = tokio::time::timeout(LONG, s.write_all(req.as_bytes())).await;
            tokio::time::sleep(LONG * 2).await;
            Some(s)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the hogs are connected
                                                          // A Call Bridge's POST gets through once the hogs are dropped.
    eventually(LONG, "a POST answered 200", || async {
        let mut c = tokio::time::timeout(Duration::from_secs(2), async {
            let s = tokio::net::TcpStream::connect(addr).await.ok()?;
            let io = hyper_util::rt::TokioIo::new(s);
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
            tokio::spawn(conn);
            Some(sender)
        })
        .await
        .ok()??;
        let body = leg_starts("5e550000-0000-4000-8000-000000000013", Some(CB), 0, 1);
        let req = hyper::Request::post("/cdr")
            .header("host", "x")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(2), c.send_request(req))
            .await
            .ok()?
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    for h in hogs {
        h.abort();
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p13_bodies_in_flight_are_bounded_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.max_body_bytes = 1 << 20;
    cfg.server.max_inflight_bytes = 2 << 20;
    let server = Server::start(cfg).await;
    let addr = server.addr;
    // Eight clients announce 900 KB, send half, and stall.
    let mut answers = Vec::new();
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /cdr HTTP/1.1\r\nhost: x\r\ncontent-length: 900000\r\n\r\n")
            .await
            .unwrap();
        s.write_all(&vec![b' '; 450_000]).await.unwrap();
        stalled.push(s);
    }
    for s in &mut stalled {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        answers.push(match n {
            Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            _ => String::new(),
        });
    }
    let busy = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .count();
    assert!(busy >= 6, "{answers:?}");
    // A small batch still fits beside the two that hold their share.
    let mut c = Conn::open(addr).await;
    post_ok(
        &mut c,
        "/cdr",
        leg_starts("5e550000-0000-4000-8000-000000000131", Some(CB), 0, 1),
    )
    .await;
    assert!(
        c.scrape()
            .await
            .sum("cdr_exporter_batches_rejected_total", &[("reason", "busy")])
            >= 6.0
    );
    // The stalled clients go away: their share comes back.
    drop(stalled);
    let big = leg_starts("5e550000-0000-4000-8000-000000000132", Some(CB), 0, 3_000);
    assert!(big.len() > 200_000 && big.len() < 1 << 20);
    eventually(LONG, "a large batch accepted", || {
        let big = big.clone();
        async move {
            let mut c = Conn::open(addr).await;
            (c.post("/cdr", big).await.status == 200).then_some(())
        }
    })
    .await;
    server.stop().await.unwrap();
}

// 14. --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p14_a_snapshot_holds_batches_back_only_while_it_copies_pointers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.snapshot.interval_seconds = 1;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    for chunk in 0..100u64 {
        let body = leg_starts(
            "5e550000-0000-4000-8000-000000000014",
            Some(CB),
            chunk * 2_000,
            2_000,
        );
        post_ok(&mut c, "/cdr", body).await;
    }
    assert_eq!(c.scrape().await.sum("cms_call_legs_active", &[]), 200_000.0);
    let posted = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // A snapshot of all 200,000 legs finished after the last big batch. A snapshot runs
    // only when something is new, so each poll adds one small batch.
    let mut extra = 0;
    let s = loop {
        let s = c.scrape().await;
        if s.sum("cdr_exporter_snapshot_last_success_timestamp_seconds", &[]) > posted {
            break s;
        }
        assert!(extra < 600, "no snapshot within a minute");
        let body = leg_starts(
            "5e550000-0000-4000-8000-000000000014",
            Some(CB),
            200_000 + extra,
            1,
        );
        post_ok(&mut c, "/cdr", body).await;
        extra += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gate = s.sum("cdr_exporter_snapshot_last_gate_seconds", &[]);
    let total = s.sum("cdr_exporter_snapshot_last_duration_seconds", &[]);
    eprintln!("snapshot of 200,000 legs: held back {gate} s of {total} s");
    assert!(gate > 0.0 && total > 0.0, "{gate} {total}");
    assert!(
        gate * 10.0 < total,
        "batches were held back {gate} s of a {total} s snapshot"
    );
    drop(c);
    server.stop().await.unwrap();
}

// 15. --------------------------------------------------------------------------------------

#[test]
fn p15_print_config_never_shows_the_token() {
    let out = std::process::Command::new(common::binary::exe())
        .arg("--print-config")
        .env("CDR_EXPORTER_AUTH__TOKEN", "s3cr3t-token-value")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("s3cr3t-token-value"), "{text}");
    assert!(text.contains("token = \"(set, not shown)\""), "{text}");
}

// 16. --------------------------------------------------------------------------------------

#[tokio::test]
async fn p16_restarts_and_lost_ranges_are_logged_with_the_call_bridge_label() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(
        &conf,
        format!("[names.call_bridges]\n\"{CB}\" = \"cms-london-1\"\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut e = Exporter::start(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            conf.to_str().unwrap(),
        ],
        &[],
    );
    let mut c = Conn::open(e.addr).await;
    post_ok(
        &mut c,
        "/cdr",
        leg_starts("5e550000-0000-4000-8000-000000000161", Some(CB), 0, 1),
    )
    .await;
    post_ok(
        &mut c,
        "/cdr",
        leg_starts("5e550000-0000-4000-8000-000000000162", Some(CB), 0, 1),
    )
    .await;
    post_ok(
        &mut c,
        "/cdr",
        leg_starts("5e550000-0000-4000-8000-000000000162", Some(CB), 10, 1),
    )
    .await;
    let restart = e.wait_log(LONG, |l| l.contains("Call Bridge restarted"));
    assert!(restart.contains("call_bridge=cms-london-1"), "{restart}");
    assert!(
        restart.contains("previous_session=5e550000-0000-4000-8000-000000000161"),
        "{restart}"
    );
    let lost = e.wait_log(LONG, |l| l.contains("CDR records lost"));
    for want in [
        "call_bridge=cms-london-1",
        "missing=9",
        "first_missing_correlator_index=1",
        "last_missing_correlator_index=9",
    ] {
        assert!(lost.contains(want), "{want} in {lost}");
    }
    drop(c);
    assert!(e.sigterm().success());
}

// Found by the hostile soak (scripts/soak-hostile.sh) --------------------------------------

/// The journal is bounded in bytes, not only by the snapshot interval: a sender faster than
/// the interval cannot fill the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_on_disk_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg_no_periodic_snapshots(dir.path());
    cfg.max_body_bytes = 1 << 20;
    cfg.snapshot.journal_bytes = 1 << 20;
    cfg.journal.segment_max_bytes = 64 << 10;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let journal = dir.path().join("journal");
    let size = || -> u64 {
        files_in(&journal)
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    let mut most = 0;
    for i in 0..200u64 {
        // ~100 KB a batch: 20 MB in all, against a 1 MiB bound.
        let body = leg_starts(
            "5e550000-0000-4000-8000-000000000017",
            Some(CB),
            i * 800,
            800,
        );
        post_ok(&mut c, "/cdr", body).await;
        most = most.max(size());
    }
    let s = c.scrape().await;
    assert_eq!(s.sum("cms_call_legs_active", &[]), 160_000.0);
    assert!(most < 4 << 20, "the journal reached {most} bytes");
    assert!(
        snapshots(dir.path()).len() >= 2,
        "snapshots were taken on size"
    );
    drop(c);
    server.stop().await.unwrap();
}

/// A quiet real Call Bridge is not forgotten when a client makes up identities by the
/// thousand: its late resend is still a duplicate and it stays one session.
#[tokio::test]
async fn a_quiet_call_bridge_outlives_a_flood_of_made_up_identities() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.tracking.max_call_bridges = 50;
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let quiet = "5e550000-0000-4000-8000-000000000018";
    for i in 0..150 {
        post_ok(&mut c, "/cdr", leg_starts(quiet, Some(CB), i, 1)).await;
    }
    for i in 0..2_000u64 {
        let body = leg_starts(&guid(0x5e55, 40_000 + i), None, 0, 1);
        post_ok(&mut c, &format!("/cdr?call_bridge=made-up-{i}"), body).await;
    }
    // The Call Bridge did not see our 200 for its last batch and sends it again.
    post_ok(&mut c, "/cdr", leg_starts(quiet, Some(CB), 149, 1)).await;
    let s = c.scrape().await;
    let cb = [("call_bridge", CB)];
    assert_eq!(s.sum("cdr_exporter_records_duplicate_total", &cb), 1.0);
    assert_eq!(s.sum("cdr_exporter_sessions_total", &cb), 1.0);
    assert_eq!(s.sum("cms_call_legs_active", &cb), 150.0);
    server.stop().await.unwrap();
}

/// Session lines are rate-limited too: a client that makes up sessions cannot flood the log.
#[tokio::test]
async fn new_session_lines_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let e = Exporter::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let mut c = Conn::open(e.addr).await;
    for i in 0..500u64 {
        post_ok(
            &mut c,
            "/cdr",
            leg_starts(&guid(0x5e55, 50_000 + i), Some(CB), 0, 1),
        )
        .await;
    }
    drop(c);
    let lines = e.lines_after_exit();
    let n = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert!(
        n(": new CDR session") + n(": Call Bridge restarted") <= 20,
        "{lines:#?}"
    );
}
