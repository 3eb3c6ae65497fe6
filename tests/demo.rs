//! The realistic simulator: time compression keeps the exact totals exact, realistic call
//! lengths arrive as realistic `durationSeconds` long before they would in real time, and
//! `demo` honours its flags (tenants, rate, speedup, bad share, the scripted incident).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdr_exporter::sim::{self, Durations, SimConfig, Summary};
use common::expect::*;
use common::*;

async fn simulate(cfg: SimConfig) -> Summary {
    let run = tokio::spawn(sim::run(cfg, std::future::pending()));
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("simulation did not finish")
        .unwrap()
        .expect("simulation failed")
}

/// Every fault on, 8 s of simulated time at 4×: the totals are exact, and it took about 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_time_keeps_the_totals_exact() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let summary = simulate(SimConfig {
        target: format!("http://{}/cdr", server.addr),
        call_bridges: 3,
        unclustered: 1,
        tenants: 3,
        calls_per_second: 10.0,
        duration: Some(Duration::from_secs(8)),
        seed: 31337,
        drop_rate: 0.02,
        restart_every: Some(Duration::from_secs(3)),
        duplicate_rate: 0.05,
        speedup: 4.0,
        ..SimConfig::default()
    })
    .await;
    assert!(summary.calls_started > 50, "{summary}");
    assert!(summary.restarts > 0, "{summary}");
    assert!(
        summary.elapsed < Duration::from_secs(7),
        "8 s of simulated time took {:?} at 4×",
        summary.elapsed
    );
    assert_eq!(summary.records_unsent, 0, "{summary}");
    assert_exporter_shows(server.addr, &summary.expected).await;
    server.stop().await.unwrap();
}

/// Realistic calls at 1000×: meetings of half an hour end within seconds, say so in
/// `durationSeconds`, and the totals are exact with nothing left active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realistic_calls_at_1000x_are_exact_and_long() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let summary = simulate(SimConfig {
        target: format!("http://{}/cdr", server.addr),
        call_bridges: 2,
        tenants: 2,
        calls_per_second: 1.0,
        duration: Some(Duration::from_secs(120)),
        seed: 4711,
        durations: Durations::Realistic,
        speedup: 1000.0,
        ..SimConfig::default()
    })
    .await;
    let e = &summary.expected;
    assert!(summary.calls_completed > 60, "{summary}");
    assert_eq!(e.active_calls + e.active_legs, 0, "{e:?}");
    // At most 2 h of simulated time for the longest call: 7.2 s at 1000×.
    assert!(summary.elapsed < Duration::from_secs(60), "{summary}");
    let s = assert_exporter_shows(server.addr, e).await;
    let count = s.sum("cms_call_duration_seconds_count", &[]);
    let mean = s.sum("cms_call_duration_seconds_sum", &[]) / count;
    assert!(
        (300.0..3000.0).contains(&mean),
        "mean call {mean} s over {count} calls"
    );
    let long = count - s.sum("cms_call_duration_seconds_bucket", &[("le", "600")]);
    assert!(long > count * 0.3, "{long} of {count} calls over 10 min");
    server.stop().await.unwrap();
}

fn tenant_of(labels: &[(String, String)]) -> Option<String> {
    labels
        .iter()
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v.clone())
}

/// `demo` with its flags: 2 tenants, 200× and an incident on tenant 1 from the start with
/// every leg bad, no bad legs otherwise. Within a minute of wall time: only those tenants,
/// calls minutes long (impossible without the speedup), tenant 1's legs at low MOS and
/// tenant 0's not, and the log states the options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_honours_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args([
                "--tenants",
                "2",
                "--calls-per-second",
                "0.2",
                "--speedup",
                "200",
                "--bad-share",
                "0",
                "--incident-after",
                "0s",
                "--incident-for",
                "1h",
                "--incident-tenant",
                "1",
                "--incident-bad-share",
                "1",
            ])
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
    let (mut addr, mut options, mut incident, mut session_note) = (None, false, false, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while addr.is_none() || !options || !incident || !session_note {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("demo logs where it listens and what it simulates");
        if line.contains("listening") {
            addr = line
                .split("addr=")
                .nth(1)
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        }
        options |= line.contains("tenants=2")
            && line.contains("speedup=200")
            && line.contains("calls_per_second=0.2")
            && line.contains("bad_share=0");
        incident |=
            line.contains("scripted incident") && line.contains(&sim::tenant_guid(2024, 3, 2, 1));
        session_note |= line.contains("new CDR session");
    }
    let addr = addr.unwrap();
    let bad_share = |s: &Scrape, tenant: &str| {
        let want = [("tenant", tenant), ("le", "3.1")];
        let n = s.sum("cms_tenant_call_leg_mos_count", &want[..1]);
        (n, s.sum("cms_tenant_call_leg_mos_bucket", &want) / n)
    };
    let t0 = sim::tenant_guid(2024, 3, 2, 0);
    let t1 = sim::tenant_guid(2024, 3, 2, 1);
    let s = eventually(Duration::from_secs(60), "demo traffic", || {
        let (t0, t1) = (t0.clone(), t1.clone());
        async move {
            let s = scrape(addr).await;
            let long = s.sum("cms_call_duration_seconds_count", &[])
                - s.sum("cms_call_duration_seconds_bucket", &[("le", "300")]);
            // The other two sources play beside the bridges.
            let voip = s.sum("freeswitch_cdr_legs_total", &[]) > 0.0
                && s.sum("kamailio_rtpengine_calls_total", &[]) > 0.0;
            (long >= 5.0 && voip && bad_share(&s, &t0).0 >= 50.0 && bad_share(&s, &t1).0 >= 50.0)
                .then_some(s)
        }
    })
    .await;
    // Calls over 5 min ended within a minute of the start: simulated time ran faster.
    assert!(started.elapsed() < Duration::from_secs(100));
    let tenants: std::collections::BTreeSet<String> = s
        .samples("cms_tenant_calls_started_total")
        .iter()
        .filter_map(|(l, _)| tenant_of(l))
        .collect();
    assert_eq!(tenants, [t0.clone(), t1.clone()].into(), "--tenants 2");
    let (n0, share0) = bad_share(&s, &t0);
    let (n1, share1) = bad_share(&s, &t1);
    assert!(
        share1 > 0.7,
        "incident tenant: {share1} of {n1} legs at MOS ≤ 3.1"
    );
    assert!(
        share0 < 0.1,
        "other tenant: {share0} of {n0} legs at MOS ≤ 3.1"
    );
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

/// Bad demo options are refused with a message, before any traffic.
#[test]
fn demo_refuses_an_incident_on_a_missing_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--tenants", "2", "--incident-tenant", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("incident"), "{err}");
}
