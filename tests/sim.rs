//! The Call Bridge simulator against the real exporter: after a run with every fault on,
//! each exporter counter equals what the simulator says it must be (no loss, no double
//! count), and without drops nothing stays active. Also `simulate --expect-json` and `demo`
//! through the binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdr_exporter::sim::{self, Expected, SimConfig, Summary};
use common::expect::*;
use common::*;

async fn simulate(cfg: SimConfig) -> Summary {
    // Spawned: the run is a Send future that other code can put on a runtime.
    let run = tokio::spawn(sim::run(cfg, std::future::pending()));
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("simulation did not finish")
        .unwrap()
        .expect("simulation failed")
}

fn faulty(target: String, drop_rate: f64) -> SimConfig {
    SimConfig {
        target,
        call_bridges: 4,
        unclustered: 1,
        tenants: 3,
        calls_per_second: 20.0,
        duration: Some(Duration::from_secs(5)),
        seed: 20240611,
        drop_rate,
        restart_every: Some(Duration::from_secs(2)),
        duplicate_rate: 0.1,
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_matches_the_simulator_with_all_faults_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let summary = simulate(faulty(format!("http://{}/cdr", server.addr), 0.02)).await;
    let e = &summary.expected;
    // The run exercised what it is meant to.
    assert!(summary.calls_started > 50, "{summary}");
    assert_eq!(summary.records_unsent, 0, "{summary}");
    assert_eq!(summary.rejected_batches, 0, "{summary}");
    assert!(summary.records_dropped > 0, "{summary}");
    assert!(
        e.missing > 0 && e.restarts > 0 && e.duplicate_records_sent > 0,
        "{e:?}"
    );
    assert!(e.sessions > 4, "restarts make new sessions: {e:?}");
    assert!(
        e.evicted_restart > 0,
        "restarts found objects in flight: {e:?}"
    );
    assert!(
        e.recordings_started > 0 && e.streamings_started > 0,
        "{e:?}"
    );
    assert!(e.legs_ended_by_reason.len() >= 5, "{e:?}");
    assert!(e.mos_legs > 0);
    let s = assert_exporter_shows(server.addr, e).await;
    assert!(
        s.sum(
            "cdr_exporter_evicted_objects_total",
            &[("reason", "restart")]
        ) > 0.0
    );
    // One label per bridge: three clustered GUIDs and the unclustered one by its URI name.
    let unclustered = sim::unclustered_name(3);
    assert!(
        s.sum(
            "cdr_exporter_sessions_total",
            &[("call_bridge", &unclustered)]
        ) >= 1.0
    );
    let bridges: std::collections::HashSet<String> = s
        .samples("cdr_exporter_sessions_total")
        .into_iter()
        .filter_map(|(l, _)| l.into_iter().find(|(k, _)| k == "call_bridge").map(|x| x.1))
        .collect();
    assert_eq!(bridges.len(), 4, "{bridges:?}");
    // Tenants arrive as GUIDs; some calls may have lost their callStart (tenant unknown).
    let tenants: std::collections::HashSet<String> = s
        .samples("cms_tenant_calls_started_total")
        .into_iter()
        .filter_map(|(l, _)| l.into_iter().find(|(k, _)| k == "tenant").map(|x| x.1))
        .collect();
    assert_eq!(tenants.len(), 3, "{tenants:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stays_active_without_drops() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let summary = simulate(faulty(format!("http://{}/cdr", server.addr), 0.0)).await;
    let e = &summary.expected;
    assert_eq!(e.missing, 0);
    assert!(e.restarts > 0 && e.duplicate_records_sent > 0, "{e:?}");
    assert_eq!(
        (
            e.active_calls,
            e.active_legs,
            e.active_recordings,
            e.active_streamings
        ),
        (0, 0, 0, 0),
        "{e:?}"
    );
    let s = assert_exporter_shows(server.addr, e).await;
    for gauge in [
        "cms_calls_active",
        "cms_call_legs_active",
        "cms_tenant_calls_active",
        "cms_tenant_call_legs_active",
        "cms_recordings_active",
        "cms_streamings_active",
    ] {
        for (labels, v) in s.samples(gauge) {
            assert_eq!(v, 0.0, "{gauge}{labels:?}");
        }
    }
    // Abandoned calls were ended by the restarts, counted as such, and nothing is held.
    assert!(
        s.sum(
            "cdr_exporter_evicted_objects_total",
            &[("reason", "restart")]
        ) > 0.0
    );
    for kind in ["call", "call_leg", "recording", "streaming"] {
        assert_eq!(
            s.sum("cdr_exporter_tracked_objects", &[("kind", kind)]),
            0.0,
            "{kind}"
        );
    }
    // Sessions stay for dedupe, each bridge's within its bound.
    let sessions = s.sum("cdr_exporter_tracked_objects", &[("kind", "session")]);
    assert!(
        sessions >= 1.0 && sessions <= e.sessions as f64,
        "{sessions}"
    );
    assert_eq!(s.sum("cdr_exporter_records_invalid_total", &[]), 0.0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_command_writes_what_the_exporter_shows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let json = dir.path().join("expected.json");
    let target = format!("http://{}/cdr?system_id=ignored", server.addr);
    let args = [
        "simulate",
        "--target",
        &target,
        "--call-bridges",
        "2",
        "--unclustered",
        "1",
        "--calls-per-second",
        "10",
        "--duration",
        "2s",
        "--seed",
        "7",
        "--drop-rate",
        "0.05",
        "--quiet",
        "--expect-json",
        json.to_str().unwrap(),
    ];
    let args = args.map(String::from);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for word in [
        "generated",
        "acknowledged",
        "dropped",
        "restarts",
        "records/s",
        "seed 7",
    ] {
        assert!(stdout.contains(word), "summary lacks {word}: {stdout}");
    }
    let text = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
        "records_total",
        "records_by_type",
        "calls_started",
        "calls_ended",
        "legs_started",
        "legs_ended",
        "legs_ended_by_reason",
        "recordings_started",
        "recordings_ended",
        "streamings_started",
        "streamings_ended",
        "missing",
        "duplicate_records_sent",
        "sessions",
        "restarts",
        "active_calls",
        "active_legs",
        "active_recordings",
        "active_streamings",
        "mos_legs",
    ] {
        assert!(v.get(field).is_some(), "{field} missing from {text}");
    }
    let e: Expected = serde_json::from_str(&text).unwrap();
    assert!(e.records_total > 0);
    assert_exporter_shows(server.addr, &e).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_live_metrics_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut url = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while addr.is_none() || !url {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("demo logs where it listens and what to open");
        if line.contains("listening") {
            addr = line
                .split("addr=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        }
        url |= line.contains("demo:") && line.contains("/metrics");
    }
    let addr = addr.unwrap();
    let s = eventually(Duration::from_secs(30), "demo traffic", || async move {
        let s = scrape(addr).await;
        (s.sum("cms_calls_started_total", &[]) > 0.0
            && s.sum("cms_call_legs_ended_total", &[]) > 0.0)
            .then_some(s)
    })
    .await;
    assert!(s.sum("cdr_exporter_records_total", &[]) > 0.0);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "demo did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
}
