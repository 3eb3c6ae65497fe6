//! The crash tests: the simulator (Call Bridges, FreeSWITCH switches, Kamailio nodes) drives
//! load while the exporter is killed with SIGKILL at random moments and restarted each time;
//! at the end every counter equals the simulator's acknowledged totals exactly. Then the files are damaged as a disk might damage them (the
//! newest snapshot, one byte in the middle of the journal) and the totals still hold, except
//! for the records of the one damaged journal entry, which are reported.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdr_exporter::sim::{self, Expected, Retry, SimConfig};
use common::expect::{assert_exporter_shows, scrape};
use rand::{Rng, SeedableRng};

fn spawn(port: u16, data: &Path, snapshot_seconds: u64) -> common::Reaped {
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
            .env(
                "CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS",
                snapshot_seconds.to_string(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_listening(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exporter did not come back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Simulated Call Bridges with every fault on, while the exporter is killed at random
/// moments (seeded, so a failure can be replayed) and restarted at once. Returns the
/// acknowledged totals once the exporter shows them, with the exporter still running.
async fn load_with_kills(
    port: u16,
    dir: &Path,
    snapshot_seconds: u64,
) -> (Expected, common::Reaped) {
    let mut child = spawn(port, dir, snapshot_seconds);
    wait_listening(port).await;
    let cfg = SimConfig {
        target: format!("http://127.0.0.1:{port}/cdr"),
        call_bridges: 4,
        unclustered: 1,
        tenants: 3,
        calls_per_second: 25.0,
        duration: Some(Duration::from_secs(8)),
        seed: 7_000_003,
        drop_rate: 0.01,
        restart_every: Some(Duration::from_secs(3)),
        duplicate_rate: 0.05,
        // A killed exporter never answers: retry soon.
        request_timeout: Duration::from_secs(2),
        freeswitch_switches: 2,
        kamailio_nodes: 2,
        // Retried for as long as the exporter may be down: nothing is given up.
        freeswitch_retry: Retry {
            retries: 300,
            delay: Duration::from_millis(100),
        },
        kamailio_retry: Retry {
            retries: 300,
            delay: Duration::from_millis(100),
        },
        ..SimConfig::default()
    };
    let sim = tokio::spawn(sim::run(cfg, std::future::pending()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xC0FFEE);
    let mut kills = 0;
    while kills < 5 && !sim.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        child = spawn(port, dir, snapshot_seconds);
        wait_listening(port).await;
    }
    assert!(kills >= 3, "only {kills} kills before the simulation ended");
    let summary = tokio::time::timeout(Duration::from_secs(120), sim)
        .await
        .expect("simulation hung")
        .unwrap()
        .expect("simulation failed");
    assert_eq!(
        summary.records_unsent, 0,
        "every record was eventually acknowledged"
    );
    assert_eq!(summary.rejected_batches, 0);
    for p in [&summary.freeswitch, &summary.kamailio] {
        assert!(p.acknowledged > 20, "{summary}");
        assert_eq!((p.given_up, p.unsent), (0, 0), "{summary}");
    }
    // The kills hit them too (a refused connection is retried).
    assert!(
        summary.freeswitch.retries > 0 && summary.kamailio.retries > 0,
        "{summary}"
    );
    assert!(summary.expected.series["freeswitch_cdr_legs_total"] > 0);
    assert!(summary.expected.series["kamailio_rtpengine_calls_total"] > 0);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_exporter_shows(addr, &summary.expected).await;
    (summary.expected, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (expected, mut child) = load_with_kills(port, dir.path(), 1).await;
    // Once more after a final kill: the state on disk alone gives the same numbers.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = spawn(port, dir.path(), 1);
    wait_listening(port).await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_exporter_shows(addr, &expected).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_a_corrupt_newest_snapshot_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (expected, mut child) = load_with_kills(port, dir.path(), 1).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut snaps: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    snaps.sort();
    assert!(snaps.len() >= 2, "snapshots every second: {snaps:?}");
    let newest = snaps.pop().unwrap();
    let mut data = std::fs::read(&newest).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 4] {
        *b ^= 0xa5;
    }
    std::fs::write(&newest, data).unwrap();
    let mut child = spawn(port, dir.path(), 1);
    wait_listening(port).await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let s = assert_exporter_shows(addr, &expected).await;
    assert_eq!(
        s.get("cdr_exporter_recovery_unreadable_snapshots", &[]),
        Some(1.0)
    );
    assert_eq!(s.get("cdr_exporter_recovery_lost_batches", &[]), Some(0.0));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The record types and counts of one journal entry's CMS body; `None` for a FreeSWITCH
/// or Kamailio body.
fn records_by_type(body: &[u8]) -> Option<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for e in cdr_exporter::cdr::parse(body).ok()?.records {
        *out.entry(e.header.record_type.as_str().to_owned())
            .or_default() += 1;
    }
    (!out.is_empty()).then_some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_one_flipped_journal_byte_loses_only_that_entry() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No snapshot during the run: the whole run is in the journal.
    let (expected, mut child) = load_with_kills(port, dir.path(), 3600).await;
    child.kill().unwrap();
    child.wait().unwrap();
    // The largest segment; walk its entry headers (magic, payload length, CRC, seq; payload
    // = version, meta length, meta, body) to the entry in the middle.
    let seg = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    let mut starts = Vec::new();
    let mut at = 0;
    while at + 20 <= data.len() {
        starts.push(at);
        at += 20 + u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    assert!(starts.len() > 20, "{} entries", starts.len());
    // The first CMS entry from the middle on (FreeSWITCH and Kamailio entries sit between).
    let (e, meta_len, body_len, damaged) = starts[starts.len() / 2..]
        .iter()
        .find_map(|&e| {
            let len = u32::from_le_bytes(data[e + 4..e + 8].try_into().unwrap()) as usize;
            let meta_len = u32::from_le_bytes(data[e + 21..e + 25].try_into().unwrap()) as usize;
            let body = &data[e + 25 + meta_len..e + 20 + len];
            records_by_type(body).map(|d| (e, meta_len, body.len(), d))
        })
        .expect("a CMS entry in the second half of the segment");
    let body_mid = e + 25 + meta_len + body_len / 2;
    data[body_mid] ^= 0x10;
    std::fs::write(&seg, data).unwrap();

    let mut child = spawn(port, dir.path(), 3600);
    wait_listening(port).await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let s = scrape(addr).await;
    assert_eq!(s.get("cdr_exporter_recovery_lost_batches", &[]), Some(1.0));
    assert_eq!(s.get("cdr_exporter_recovery_incomplete", &[]), Some(1.0));
    // Every record total is the acknowledged one, less at most what the damaged entry held
    // (less exactly, unless a later retry of the same batch brought some of it back).
    let lost_records: u64 = damaged.values().sum();
    let got = s.sum("cdr_exporter_records_total", &[]);
    assert!(
        got <= expected.records_total as f64
            && got >= (expected.records_total - lost_records) as f64,
        "records_total {got}, acknowledged {}, damaged entry held {lost_records}",
        expected.records_total
    );
    for (t, n) in &expected.records_by_type {
        let got = s.sum("cdr_exporter_records_total", &[("record_type", t)]);
        let lost = damaged.get(t).copied().unwrap_or(0);
        assert!(
            got <= *n as f64 && got >= (*n - lost) as f64,
            "{t}: {got}, acknowledged {n}, damaged entry held {lost}"
        );
    }
    // The damaged entry was a CMS one: FreeSWITCH and Kamailio lost nothing.
    let voip: Vec<String> = common::expect::mismatches(&expected, &s)
        .into_iter()
        .filter(|m| m.starts_with("freeswitch_") || m.starts_with("kamailio_"))
        .collect();
    assert!(voip.is_empty(), "{voip:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}
