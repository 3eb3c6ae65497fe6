//! The simulator against the real exporter: after a run of Call Bridges, FreeSWITCH switches
//! and Kamailio nodes with every fault on, each exporter counter equals what the simulator
//! says it must be (no loss, no double count), and without drops nothing stays active. Also
//! `simulate --expect-json` and `demo` through the binary, and FreeSWITCH CDRs given up on
//! delivered later by `import-freeswitch`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdr_exporter::sim::{self, Expected, Retry, SimConfig, Summary};
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
        freeswitch_switches: 2,
        kamailio_nodes: 2,
        ..SimConfig::default()
    }
}

/// The sum of the expected series of family `name` whose key contains `part`.
fn series(e: &Expected, name: &str, part: &str) -> u64 {
    e.series
        .iter()
        .filter(|(k, _)| sim::parse_series_key(k).0 == name && k.contains(part))
        .map(|(_, v)| v)
        .sum()
}

/// The FreeSWITCH and Kamailio players delivered everything, of every kind.
fn assert_voip_exercised(summary: &Summary) {
    let e = &summary.expected;
    for p in [&summary.freeswitch, &summary.kamailio] {
        assert!(p.instances == 2 && p.acknowledged > 20, "{summary}");
        assert_eq!((p.given_up, p.unsent), (0, 0), "{summary}");
        assert!(p.duplicates > 0, "{summary}");
    }
    assert_eq!(
        series(e, "freeswitch_cdr_legs_total", ""),
        2 * summary.freeswitch.acknowledged
    );
    assert_eq!(
        series(e, "kamailio_rtpengine_calls_total", ""),
        2 * summary.kamailio.acknowledged
    );
    for part in ["leg=\"a\"", "leg=\"b\""] {
        assert!(series(e, "freeswitch_cdr_legs_total", part) > 0, "{part}");
    }
    for reason in ["no_call_stats", "no_media"] {
        let part = format!("reason=\"{reason}\"");
        assert!(
            series(e, "freeswitch_cdr_leg_mos_unavailable_total", &part) > 0,
            "{reason}"
        );
    }
    for reason in ["not_measured", "not_answered"] {
        let part = format!("reason=\"{reason}\"");
        assert!(
            series(e, "kamailio_rtpengine_call_mos_unavailable_total", &part) > 0,
            "{reason}"
        );
    }
    for (family, min) in [
        ("freeswitch_cdr_leg_mos_count", 10),
        ("freeswitch_cdr_leg_billed_seconds_count", 10),
        ("freeswitch_cdr_domain_legs_total", 20),
        ("kamailio_rtpengine_call_mos_count", 5),
        ("kamailio_rtpengine_call_roundtrip_seconds_count", 5),
        ("kamailio_rtpengine_tenant_calls_total", 20),
    ] {
        assert!(series(e, family, "") >= min, "{family}: {e:?}");
    }
    assert_eq!(series(e, "freeswitch_cdr_invalid_fields_total", ""), 0);
    assert!(e.series_at_least["freeswitch_cdr_duplicates_total"] > 0);
    assert!(e.series_at_least["kamailio_rtpengine_reports_duplicate_total"] > 0);
}

/// A wrong expectation for either source is caught: the comparison is not vacuous.
fn assert_wrong_expectations_are_caught(e: &Expected, s: &Scrape) {
    let labelled = |name: &str| {
        e.series
            .iter()
            .find(|(k, v)| k.starts_with(name) && k.contains('{') && **v > 0)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| panic!("no {name} series"))
    };
    for key in [
        "freeswitch_cdr_legs_total".to_owned(),
        labelled("freeswitch_cdr_leg_hangups_total"),
        labelled("freeswitch_cdr_domain_leg_mos_count"),
        "kamailio_rtpengine_calls_total".to_owned(),
        labelled("kamailio_rtpengine_call_mos_unavailable_total"),
        labelled("kamailio_rtpengine_tenant_call_mos_count"),
    ] {
        let mut wrong = e.clone();
        *wrong.series.get_mut(&key).unwrap() += 1;
        let bad = mismatches(&wrong, s);
        assert!(bad.iter().any(|m| m.starts_with(&key)), "{key}: {bad:?}");
    }
    let mut wrong = e.clone();
    wrong.series_at_least.insert(
        "kamailio_rtpengine_reports_duplicate_total".into(),
        e.series_at_least["kamailio_rtpengine_reports_duplicate_total"] + 1_000,
    );
    assert!(!mismatches(&wrong, s).is_empty());
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
    assert_voip_exercised(&summary);
    let s = assert_exporter_shows(server.addr, e).await;
    assert_wrong_expectations_are_caught(e, &s);
    // Without retries every duplicate the exporter counted is one the players re-sent.
    for (family, p) in [
        ("freeswitch_cdr_duplicates_total", &summary.freeswitch),
        (
            "kamailio_rtpengine_reports_duplicate_total",
            &summary.kamailio,
        ),
    ] {
        if p.retries == 0 {
            assert_eq!(s.sum(family, &[]), p.duplicates as f64, "{family}");
        }
    }
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
    assert_voip_exercised(&summary);
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
        "--freeswitch-switches",
        "1",
        "--kamailio-nodes",
        "1",
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
    assert!(e.series["freeswitch_cdr_legs_total"] > 0, "{text}");
    assert!(e.series["kamailio_rtpengine_calls_total"] > 0, "{text}");
    assert!(
        stdout.contains("freeswitch") && stdout.contains("kamailio"),
        "{stdout}"
    );
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

/// FreeSWITCH CDRs that could not be delivered (nothing listens at their target) are written
/// to the err-log dir as mod_xml_cdr and mod_json_cdr write them, never counted as
/// acknowledged; `import-freeswitch` then delivers them and the exporter shows exactly what
/// they add.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_up_freeswitch_cdrs_arrive_through_import() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err_log = dir.path().join("xml_cdr");
    let summary = simulate(SimConfig {
        target: format!("http://{}/cdr", server.addr),
        call_bridges: 1,
        calls_per_second: 8.0,
        duration: Some(Duration::from_secs(2)),
        seed: 11,
        freeswitch_switches: 2,
        // The listener above is gone: every attempt is refused.
        freeswitch_target: Some(format!("http://{closed}/freeswitch/cdr")),
        freeswitch_retry: Retry {
            retries: 1,
            delay: Duration::from_millis(10),
        },
        freeswitch_err_log_dir: Some(err_log.clone()),
        ..SimConfig::default()
    })
    .await;
    let fs = &summary.freeswitch;
    assert!(fs.generated > 5, "{summary}");
    assert_eq!(fs.acknowledged, 0, "{summary}");
    assert_eq!(fs.given_up, fs.generated, "{summary}");
    assert_eq!(fs.err_log_files, fs.given_up, "{summary}");
    assert_eq!(fs.retries, fs.given_up, "one retry each: {summary}");
    let files: Vec<String> = std::fs::read_dir(&err_log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len() as u64, fs.given_up, "{files:?}");
    for ext in [".cdr.xml", ".cdr.json"] {
        assert!(files.iter().any(|f| f.ends_with(ext)), "{files:?}");
    }
    assert!(files.iter().any(|f| f.starts_with("a_")), "{files:?}");
    // Nothing of them is expected yet, and the exporter shows nothing of them.
    assert!(summary.expected.series.is_empty());
    let given_up = &summary.freeswitch_given_up;
    assert_eq!(
        given_up.series["freeswitch_cdr_legs_total"], fs.given_up,
        "{given_up:?}"
    );
    let s = assert_exporter_shows(server.addr, &summary.expected).await;
    assert_eq!(s.sum("freeswitch_cdr_legs_total", &[]), 0.0);

    let target = format!("http://{}/freeswitch/cdr", server.addr);
    let args = [
        "import-freeswitch".to_owned(),
        err_log.to_str().unwrap().to_owned(),
        "--target".to_owned(),
        target,
        "--quiet".to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut e = summary.expected.clone();
    e.add(given_up);
    let s = assert_exporter_shows(server.addr, &e).await;
    assert_eq!(s.sum("freeswitch_cdr_legs_total", &[]), fs.given_up as f64);
    let imported = std::fs::read_dir(err_log.join("imported")).unwrap().count();
    assert_eq!(imported as u64, fs.given_up);
    server.stop().await.unwrap();
}

/// Any non-2xx is retried, as mod_xml_cdr does (and the Kamailio player too): a receiver
/// that refuses each CDR and report once (503 and 400) still gets every one, and every
/// refusal is one retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_retry_any_non_2xx() {
    use axum::body::Bytes;
    use axum::http::{StatusCode, Uri};
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Seen {
        bodies: HashSet<Bytes>,
        refused: u64,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let st = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let st = st.clone();
        async move {
            if uri.path() == "/cdr" {
                return StatusCode::OK;
            }
            let mut s = st.lock().unwrap();
            if s.bodies.insert(body) {
                s.refused += 1;
                if uri.path() == "/kamailio/mos" {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            } else {
                StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let retry = Retry {
        retries: 3,
        delay: Duration::from_millis(5),
    };
    let summary = simulate(SimConfig {
        target: format!("http://{addr}/cdr"),
        call_bridges: 1,
        calls_per_second: 10.0,
        duration: Some(Duration::from_secs(1)),
        seed: 5,
        freeswitch_switches: 1,
        kamailio_nodes: 1,
        freeswitch_retry: retry,
        kamailio_retry: retry,
        ..SimConfig::default()
    })
    .await;
    let (fs, kam) = (&summary.freeswitch, &summary.kamailio);
    for p in [fs, kam] {
        assert!(p.generated > 3, "{summary}");
        assert_eq!(p.acknowledged, p.generated, "{summary}");
        assert_eq!(p.retries, p.generated, "{summary}");
        assert_eq!((p.given_up, p.unsent), (0, 0), "{summary}");
    }
    assert_eq!(seen.lock().unwrap().refused, fs.generated + kam.generated);
    server.abort();
}
